"""The normal, Student t and chi-square functions analytics needs, from ``scipy.special``.

``scipy.special`` itself is imported at the first call (:func:`special_functions`), not with
analytics: it costs ~0.15 s (its array-API layer loads most of NumPy's namespace), which the
command line spends while a worker reads the file (see ``dashapp.cli``), and which a process that
only validates a table never pays.

``scipy.stats`` costs about half a second to import (it builds every distribution object); the
special functions it calls underneath cost a few milliseconds. These are the same functions
(``norm.ppf`` is ``ndtri``, ``t.sf`` is ``stdtr`` of −x, ``chi2.sf`` is ``chdtrc``, ``beta.ppf`` is
``betaincinv``), so results are unchanged — the golden tests against scipy.stats and statsmodels
hold to 1e-9. The beta density is Loader's saddle-point form (below), which keeps its relative
error near 1e-14 where ``exp(xlogy − betaln)`` loses ~1e-11 at a + b ~ 1e5.
"""

from __future__ import annotations

import functools
import importlib
import math
from types import ModuleType

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "beta_pdf",
    "beta_ppf",
    "chi2_sf",
    "norm_cdf",
    "norm_pdf",
    "norm_ppf",
    "norm_sf",
    "special_functions",
    "t_ppf",
    "t_sf",
]

_SQRT_2PI = math.sqrt(2.0 * math.pi)


@functools.cache
def special_functions() -> ModuleType:
    """``scipy.special``, imported at the first call."""
    return importlib.import_module("scipy.special")


def norm_ppf(p: float) -> float:
    """Φ⁻¹(p)."""
    return float(special_functions().ndtri(p))


def norm_cdf(x: float) -> float:
    """Φ(x)."""
    return float(special_functions().ndtr(x))


def norm_sf(x: float) -> float:
    """1 − Φ(x), accurate in the far tail."""
    return float(special_functions().ndtr(-x))


def norm_pdf(x: float) -> float:
    """φ(x)."""
    return math.exp(-0.5 * x * x) / _SQRT_2PI


def t_ppf(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom."""
    return float(special_functions().stdtrit(df, p))


def t_sf(x: float, df: float) -> float:
    """P(T > x) for Student's t with ``df`` degrees of freedom."""
    return float(special_functions().stdtr(df, -x))


def chi2_sf(x: float, df: float) -> float:
    """P(χ² > x) with ``df`` degrees of freedom."""
    return float(special_functions().chdtrc(df, x))


def beta_ppf(p: float, a: float, b: float) -> float:
    """The p-quantile of Beta(a, b)."""
    return float(special_functions().betaincinv(a, b, p))


def beta_pdf(x: ArrayLike, a: float, b: float) -> NDArray[np.float64]:
    """The Beta(a, b) density at each x (0 outside [0, 1]).

    For a, b ≥ 1 it is (a + b − 1) times the binomial probability of a − 1 successes in
    N = a + b − 2 trials of probability x, in Loader's form (Loader 2000, "Fast and accurate
    computation of binomial probabilities", as in R's ``dbinom_raw``):
    exp(δ(N) − δ(k) − δ(N − k) − D(k, N·x) − D(N − k, N·(1 − x))) · √(N / (2π k (N − k))), with δ the
    Stirling remainder and D(k, m) = k·log(k/m) + m − k evaluated by its series near k = m. Smaller
    shapes use exp((a − 1)·log x + (b − 1)·log(1 − x) − log B(a, b)), exact enough there.
    Raises ``ValueError`` unless a and b are positive and finite.
    """
    if not (0.0 < a < math.inf and 0.0 < b < math.inf):
        raise ValueError(f"a and b must be positive and finite, got a={a}, b={b}")
    points = np.asarray(x, dtype=np.float64)
    found = np.zeros_like(points)
    inside = (points > 0.0) & (points < 1.0)
    values = points[inside]
    k, total = a - 1.0, a + b - 2.0
    if a < 1.0 or b < 1.0:
        special = special_functions()
        found[inside] = np.exp(special.xlogy(a - 1.0, values) + special.xlog1py(b - 1.0, -values) - special.betaln(a, b))
    elif k == 0.0:  # Beta(1, b): b (1 − x)^(b − 1)
        found[inside] = b * np.exp(total * np.log1p(-values))
    elif k == total:  # Beta(a, 1): a x^(a − 1)
        found[inside] = a * np.exp(total * np.log(values))
    else:
        rest = total - k
        log_core = (_stirling_remainder(total) - _stirling_remainder(k) - _stirling_remainder(rest)
                    - _deviance(k, total * values) - _deviance(rest, total * (1.0 - values)))
        found[inside] = (a + b - 1.0) * np.exp(log_core) * math.sqrt(total / (2.0 * math.pi * k * rest))
    # The edges: finite only where the exponent of that edge is 0 (a = 1 at 0, b = 1 at 1).
    found[points == 0.0] = b if a == 1.0 else (math.inf if a < 1.0 else 0.0)
    found[points == 1.0] = a if b == 1.0 else (math.inf if b < 1.0 else 0.0)
    return found


def _stirling_remainder(n: float) -> float:
    """δ(n) = log Γ(n + 1) − log(√(2π n) (n/e)^n), by its asymptotic series above 15."""
    if n <= 15.0:
        return float(special_functions().gammaln(n + 1.0)) - (n + 0.5) * math.log(n) + n - 0.5 * math.log(2.0 * math.pi)
    inverse_square = 1.0 / (n * n)
    return (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - (1.0 / 1680 - inverse_square / 1188) * inverse_square)
                        * inverse_square) * inverse_square) / n


def _deviance(k: float, m: NDArray[np.float64]) -> NDArray[np.float64]:
    """D(k, m) = k·log(k/m) + m − k for k > 0, m > 0; near k = m by the series
    (k − m)·v + 2k·Σ_{j≥1} v^(2j+1)/(2j+1) with v = (k − m)/(k + m), which has no cancellation."""
    with np.errstate(divide="ignore"):
        found = k * np.log(k / m) + m - k
    close = np.abs(k - m) < 0.1 * (k + m)
    if close.any():
        near = m[close]
        ratio = (k - near) / (k + near)
        total = (k - near) * ratio
        term = 2.0 * k * ratio
        squared = ratio * ratio
        for power in range(3, 200, 2):
            term = term * squared
            updated = total + term / power
            if np.array_equal(updated, total):
                break
            total = updated
        found[close] = total
    return found
