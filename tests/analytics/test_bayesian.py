"""Bayesian summaries against independent numerical integration and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from analytics import ProportionStatistic, SampleMeanStatistic, beta_binomial_summary, normal_summary, welch_ttest


def _closed_form_prob_better(a_t: int, b_t: int, a_c: int, b_c: int) -> float:
    """Evan Miller's exact sum for P(p_t > p_c) with integer Beta parameters."""
    total = 0.0
    for i in range(a_t):
        total += math.exp(special.betaln(a_c + i, b_c + b_t) - math.log(b_t + i)
                          - special.betaln(1 + i, b_t) - special.betaln(a_c, b_c))
    return total


def _quad_prob_better(a_t: float, b_t: float, a_c: float, b_c: float) -> float:
    mean, sd = a_t / (a_t + b_t), math.sqrt(a_t * b_t / ((a_t + b_t) ** 2 * (a_t + b_t + 1)))
    low, high = max(0.0, mean - 30 * sd), min(1.0, mean + 30 * sd)
    value, _ = integrate.quad(lambda x: stats.beta.pdf(x, a_t, b_t) * stats.beta.cdf(x, a_c, b_c),
                              low, high, points=[mean], limit=500, epsabs=1e-12, epsrel=1e-10)
    return value


@pytest.mark.parametrize(("n_c", "x_c", "n_t", "x_t"), [
    (100, 10, 100, 15), (200, 3, 180, 7), (150, 140, 150, 145), (500, 60, 520, 58), (1000, 0, 1000, 2),
])
def test_prob_better_matches_closed_form(n_c: int, x_c: int, n_t: int, x_t: int) -> None:
    summary = beta_binomial_summary(ProportionStatistic(n_c, x_c), ProportionStatistic(n_t, x_t))
    expected = _closed_form_prob_better(1 + x_t, 1 + n_t - x_t, 1 + x_c, 1 + n_c - x_c)
    assert summary.prob_treatment_better == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(("n_c", "x_c", "n_t", "x_t"), [
    (10_000, 1_200, 10_050, 1_320), (1_000_000, 120_000, 1_002_000, 120_800), (5_000_000, 500, 5_000_000, 560),
    (100_000, 99_900, 100_000, 99_880), (20_000, 2_400, 20_100, 2_432),
])
def test_prob_better_matches_quadrature_for_large_samples(n_c: int, x_c: int, n_t: int, x_t: int) -> None:
    summary = beta_binomial_summary(ProportionStatistic(n_c, x_c), ProportionStatistic(n_t, x_t))
    expected = _quad_prob_better(1 + x_t, 1 + n_t - x_t, 1 + x_c, 1 + n_c - x_c)
    assert summary.prob_treatment_better == pytest.approx(expected, abs=1e-4)


def test_summaries_are_identical_across_runs() -> None:
    control, treatment = ProportionStatistic(10_000, 1_200), ProportionStatistic(10_050, 1_320)
    first = beta_binomial_summary(control, treatment)
    for _ in range(3):
        assert beta_binomial_summary(control, treatment) == first


def test_expected_loss_matches_double_integral() -> None:
    a_c, b_c, a_t, b_t = 1 + 120, 1 + 880, 1 + 132, 1 + 868
    summary = beta_binomial_summary(ProportionStatistic(1000, 120), ProportionStatistic(1000, 132))

    def loss(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
        # E[max(Y - X, 0)] with X ~ Beta(a_x, b_x), Y ~ Beta(a_y, b_y)
        inner = lambda x: integrate.quad(lambda y: (y - x) * stats.beta.pdf(y, a_y, b_y), x, 1, limit=200)[0]  # noqa: E731
        return integrate.quad(lambda x: stats.beta.pdf(x, a_x, b_x) * inner(x), 0.05, 0.25, limit=200)[0]

    assert summary.expected_loss_treatment == pytest.approx(loss(a_t, b_t, a_c, b_c), abs=1e-7)
    assert summary.expected_loss_control == pytest.approx(loss(a_c, b_c, a_t, b_t), abs=1e-7)


@pytest.mark.parametrize(("n_c", "x_c", "n_t", "x_t"), [(5_000, 600, 5_050, 660), (100, 0, 100, 1), (300, 299, 300, 297)])
def test_relative_credible_interval_has_two_and_a_half_percent_tails(n_c: int, x_c: int, n_t: int, x_t: int) -> None:
    control, treatment = ProportionStatistic(n_c, x_c), ProportionStatistic(n_t, x_t)
    interval = beta_binomial_summary(control, treatment).relative_credible_interval
    assert interval is not None
    rng = np.random.default_rng(7)
    draws_c = rng.beta(1 + x_c, 1 + n_c - x_c, 2_000_000)
    draws_t = rng.beta(1 + x_t, 1 + n_t - x_t, 2_000_000)
    lift = draws_t / draws_c - 1
    assert np.mean(lift < interval.low) == pytest.approx(0.025, abs=0.001)
    assert np.mean(lift > interval.high) == pytest.approx(0.025, abs=0.001)


def test_normal_summary_for_means_closed_form() -> None:
    effect = welch_ttest(SampleMeanStatistic(2_000, 10.0, 25.0), SampleMeanStatistic(2_000, 10.4, 26.0))
    summary = normal_summary(effect)
    se = effect.standard_error
    assert summary.prob_treatment_better == pytest.approx(stats.norm.cdf(0.4 / se), rel=1e-12)
    # E[max(-D, 0)] for D ~ N(0.4, se²) by direct integration
    expected, _ = integrate.quad(lambda d: -d * stats.norm.pdf(d, 0.4, se), -np.inf, 0)
    assert summary.expected_loss_treatment == pytest.approx(expected, rel=1e-7)
