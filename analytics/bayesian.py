"""Bayesian summaries, reported for reference only (they never drive the decision).

Proportions: independent Beta(1, 1) priors, so the posteriors are
Beta(1 + x, 1 + n − x). Every quantity is a one-dimensional integral over the
treatment posterior, evaluated with fixed-order Gauss–Legendre quadrature on
panels that cover the posterior's mass (±40 posterior sd clipped to [0, 1]), so
results are exact to well under 1e-6 and identical across runs:

- P(p_t > p_c) = ∫ f_t(x) F_c(x) dx
- expected loss of shipping treatment E[max(p_c − p_t, 0)], using
  E[(p_c − x)⁺] = E[p_c]·(1 − I_x(a_c + 1, b_c)) − x·(1 − I_x(a_c, b_c))
- equal-tailed credible interval of p_t / p_c − 1, by inverting
  P(p_t / p_c ≤ r) = ∫ f_c(y) F_t(r·y) dy with Brent's method.

Means: the normal approximation with a flat prior, D ~ N(Δ, SE²).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special, stats

from analytics.inference import EffectEstimate
from analytics.sufficient import Interval, ProportionStatistic

__all__ = ["BayesianSummary", "beta_binomial_summary", "normal_summary"]

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)
_PANELS = 48


@dataclass(frozen=True)
class BayesianSummary:
    prob_treatment_better: float
    expected_loss_treatment: float
    expected_loss_control: float
    relative_credible_interval: Interval | None


def _support(a: float, b: float) -> tuple[float, float]:
    mean = a / (a + b)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
    return max(0.0, mean - 40.0 * sd), min(1.0, mean + 40.0 * sd)


def _integrate(function: Callable[[NDArray[np.float64]], NDArray[np.float64]], low: float, high: float) -> float:
    edges = np.linspace(low, high, _PANELS + 1)
    half = (edges[1:] - edges[:-1]) / 2.0
    centre = (edges[1:] + edges[:-1]) / 2.0
    x = (centre[:, None] + half[:, None] * _NODES[None, :]).ravel()
    w = (half[:, None] * _WEIGHTS[None, :]).ravel()
    return float(np.dot(w, function(x)))


def _expected_shortfall(a: float, b: float, x: NDArray[np.float64]) -> NDArray[np.float64]:
    """E[(Y − x)⁺] for Y ~ Beta(a, b)."""
    upper_mean = a / (a + b) * special.betainc(a + 1.0, b, x)
    return np.asarray(a / (a + b) - upper_mean - x * (1.0 - special.betainc(a, b, x)))


def beta_binomial_summary(
    control: ProportionStatistic, treatment: ProportionStatistic, *, credible_level: float = 0.95
) -> BayesianSummary:
    """Posterior summaries of two rates under Beta(1, 1) priors (see module docstring)."""
    a_c, b_c = 1.0 + control.successes, 1.0 + control.n - control.successes
    a_t, b_t = 1.0 + treatment.successes, 1.0 + treatment.n - treatment.successes
    low_t, high_t = _support(a_t, b_t)
    low_c, high_c = _support(a_c, b_c)

    def density_t(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(stats.beta.pdf(x, a_t, b_t))

    def density_c(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(stats.beta.pdf(x, a_c, b_c))

    prob = _integrate(lambda x: density_t(x) * special.betainc(a_c, b_c, x), low_t, high_t)
    loss_treatment = _integrate(lambda x: density_t(x) * _expected_shortfall(a_c, b_c, x), low_t, high_t)
    loss_control = _integrate(lambda x: density_c(x) * _expected_shortfall(a_t, b_t, x), low_c, high_c)

    def ratio_cdf(r: float) -> float:
        return _integrate(lambda y: density_c(y) * special.betainc(a_t, b_t, np.clip(r * y, 0.0, 1.0)), low_c, high_c)

    tail = (1.0 - credible_level) / 2.0
    ratio_low = max(low_t / high_c, 1e-300)
    ratio_high = high_t / max(low_c, 1e-300)
    ratio_high = min(ratio_high, 1e12)
    bounds = []
    for target in (tail, 1.0 - tail):
        root = optimize.brentq(lambda r, t=target: ratio_cdf(r) - t, ratio_low, ratio_high, xtol=1e-12, rtol=1e-10)
        bounds.append(float(root) - 1.0)
    return BayesianSummary(
        prob_treatment_better=min(1.0, max(0.0, prob)),
        expected_loss_treatment=max(0.0, loss_treatment),
        expected_loss_control=max(0.0, loss_control),
        relative_credible_interval=Interval(bounds[0], bounds[1]),
    )


def normal_summary(effect: EffectEstimate, *, credible_level: float = 0.95) -> BayesianSummary:
    """Flat-prior normal posterior of a mean difference, D ~ N(Δ, SE²).

    P(D > 0) = Φ(Δ/SE); E[max(−D, 0)] = SE·φ(Δ/SE) − Δ·Φ(−Δ/SE); the relative
    interval uses the delta-method SE of the lift.
    """
    delta, se = effect.absolute_effect, effect.standard_error
    z = float(stats.norm.ppf(0.5 + credible_level / 2.0))
    if se == 0.0:
        prob = 1.0 if delta > 0 else 0.0 if delta < 0 else 0.5
        loss_t, loss_c = max(-delta, 0.0), max(delta, 0.0)
    else:
        ratio = delta / se
        prob = float(stats.norm.cdf(ratio))
        loss_t = float(se * stats.norm.pdf(ratio) - delta * stats.norm.cdf(-ratio))
        loss_c = float(se * stats.norm.pdf(ratio) + delta * stats.norm.cdf(ratio))
    interval = None
    if effect.relative_effect is not None and effect.relative_standard_error is not None:
        rel, rel_se = effect.relative_effect, effect.relative_standard_error
        interval = Interval(rel - z * rel_se, rel + z * rel_se)
    return BayesianSummary(prob, max(loss_t, 0.0), max(loss_c, 0.0), interval)
