"""The Beta–binomial summary against adaptive quadrature (scipy ``integrate.quad``), to 1e-6 and better.

Cases the fixed-node rule finds hardest: millions of users (incomplete beta functions with a, b
~ 1e7, whose ``betaln`` is off by ~3e-7), very unequal arms (the narrow posterior against the
wide one), rates near 0 and 1, and tiny samples whose ratio p_t / p_c has a heavy right tail.
The references integrate scipy.stats densities adaptively and divide by the density's own
integral (so ``betaln``'s error cancels); none of them uses the code under test.
"""

from __future__ import annotations

import math

import pytest
from scipy import integrate, optimize, special, stats

from analytics import ProportionStatistic, beta_binomial_summary

CASES = [
    (1_000, 120, 1_000, 132),
    (1_000_000, 120_000, 1_002_000, 120_800),
    (100_000_000, 40_000_000, 100_000_000, 40_010_000),
    (5_000_000, 500, 5_000_000, 560),  # rates of 1e-4
    (100_000, 99_900, 100_000, 99_880),  # rates near 1
    (10_000_000, 1_200_000, 1_000, 130),  # very unequal arms
    (1_000, 130, 10_000_000, 1_200_000),
    (10_000_000, 3, 1_000, 1),
    (100, 0, 100, 1),
    (10, 10, 10, 9),
    (2, 1, 1, 0),
    (1, 0, 1, 1),
]


def _posterior(statistic_n: int, successes: int) -> stats.rv_continuous:
    return stats.beta(1 + successes, 1 + statistic_n - successes)


def _window(distribution: stats.rv_continuous) -> tuple[float, float, list[float]]:
    a, b = distribution.args  # scipy's std() overflows to NaN for b ~ 5e6; the closed form does not
    mean, sd = a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    low, high = max(0.0, mean - 40 * sd), min(1.0, mean + 40 * sd)
    return low, high, [p for p in (mean - sd, mean, mean + sd) if low < p < high]


def _expect(distribution: stats.rv_continuous, function: object) -> float:
    """E[function(X)] by adaptive quadrature, normalised by the density's own integral."""
    low, high, points = _window(distribution)
    options = {"points": points, "limit": 500, "epsabs": 0.0, "epsrel": 1e-12}
    numerator = integrate.quad(lambda x: distribution.pdf(x) * function(x), low, high, **options)[0]  # type: ignore[operator]
    return numerator / integrate.quad(distribution.pdf, low, high, **options)[0]


def _ratio_cdf(control: stats.rv_continuous, treatment: stats.rv_continuous, r: float) -> float:
    """P(p_t / p_c ≤ r) = E_c[F_t(r·p_c)], split where r·y reaches 1."""
    low, high, points = _window(control)
    if low < 1.0 / r < high:
        points.append(1.0 / r)
    options = {"points": sorted(points), "limit": 500, "epsabs": 0.0, "epsrel": 1e-12}
    numerator = integrate.quad(lambda y: control.pdf(y) * treatment.cdf(min(r * y, 1.0)), low, high, **options)[0]
    return numerator / integrate.quad(control.pdf, low, high, **options)[0]


@pytest.mark.parametrize(("n_c", "x_c", "n_t", "x_t"), CASES)
def test_probability_and_losses_match_adaptive_quadrature(n_c: int, x_c: int, n_t: int, x_t: int) -> None:
    control, treatment = _posterior(n_c, x_c), _posterior(n_t, x_t)
    summary = beta_binomial_summary(ProportionStatistic(n_c, x_c), ProportionStatistic(n_t, x_t))
    a_c, b_c = 1 + x_c, 1 + n_c - x_c
    mean_c = a_c / (a_c + b_c)

    def control_above(x: float) -> float:  # E[(p_c − x)⁺], closed form in the incomplete beta function
        return float(mean_c * special.betaincc(a_c + 1, b_c, x) - x * special.betaincc(a_c, b_c, x))

    def control_below(x: float) -> float:  # E[(x − p_c)⁺]
        return float(x * special.betainc(a_c, b_c, x) - mean_c * special.betainc(a_c + 1, b_c, x))

    assert summary.prob_treatment_better == pytest.approx(_expect(treatment, control.cdf), abs=1e-8)
    assert summary.expected_loss_treatment == pytest.approx(_expect(treatment, control_above), rel=1e-6, abs=1e-12)
    assert summary.expected_loss_control == pytest.approx(_expect(treatment, control_below), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize(("n_c", "x_c", "n_t", "x_t"), CASES)
def test_credible_interval_matches_adaptive_quadrature(n_c: int, x_c: int, n_t: int, x_t: int) -> None:
    control, treatment = _posterior(n_c, x_c), _posterior(n_t, x_t)
    interval = beta_binomial_summary(ProportionStatistic(n_c, x_c), ProportionStatistic(n_t, x_t)).relative_credible_interval
    assert interval is not None
    for bound, tail in ((interval.low, 0.025), (interval.high, 0.975)):
        assert _ratio_cdf(control, treatment, 1.0 + bound) == pytest.approx(tail, abs=1e-8)
        expected = optimize.brentq(lambda r, goal=tail: _ratio_cdf(control, treatment, r) - goal,
                                   (1.0 + bound) * (1 - 1e-3), (1.0 + bound) * (1 + 1e-3), xtol=1e-15, rtol=1e-13)
        assert 1.0 + bound == pytest.approx(expected, rel=1e-7)
        assert math.isfinite(bound)
