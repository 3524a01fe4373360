"""The normal, Student t and chi-square functions analytics needs, from ``scipy.special``.

``scipy.stats`` costs about half a second to import (it builds every distribution object); the
special functions it calls underneath cost a few milliseconds. These are the same functions
(``norm.ppf`` is ``ndtri``, ``t.sf`` is ``stdtr`` of −x, ``chi2.sf`` is ``chdtrc``), so results are
unchanged — the golden tests against scipy.stats and statsmodels hold to 1e-9.
"""

from __future__ import annotations

import math

from scipy import special

__all__ = ["chi2_sf", "norm_cdf", "norm_pdf", "norm_ppf", "norm_sf", "t_ppf", "t_sf"]

_SQRT_2PI = math.sqrt(2.0 * math.pi)


def norm_ppf(p: float) -> float:
    """Φ⁻¹(p)."""
    return float(special.ndtri(p))


def norm_cdf(x: float) -> float:
    """Φ(x)."""
    return float(special.ndtr(x))


def norm_sf(x: float) -> float:
    """1 − Φ(x), accurate in the far tail."""
    return float(special.ndtr(-x))


def norm_pdf(x: float) -> float:
    """φ(x)."""
    return math.exp(-0.5 * x * x) / _SQRT_2PI


def t_ppf(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom."""
    return float(special.stdtrit(df, p))


def t_sf(x: float, df: float) -> float:
    """P(T > x) for Student's t with ``df`` degrees of freedom."""
    return float(special.stdtr(df, -x))


def chi2_sf(x: float, df: float) -> float:
    """P(χ² > x) with ``df`` degrees of freedom."""
    return float(special.chdtrc(df, x))
