"""Seeded simulations: the tests keep their error rates, the CIs their coverage, and the
sample size from the planner delivers its power."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import (
    ProportionStatistic,
    SampleMeanStatistic,
    plan_sample_size,
    two_proportion_ztest,
    welch_ttest,
)

EXPERIMENTS = 10_000
pytestmark = pytest.mark.slow


def _proportion_runs(rng: np.random.Generator, n: int, p_c: float, p_t: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Rejection flags and CI-covers-truth flags for EXPERIMENTS simulated experiments."""
    x_c = rng.binomial(n, p_c, EXPERIMENTS)
    x_t = rng.binomial(n, p_t, EXPERIMENTS)
    rejected = np.empty(EXPERIMENTS, bool)
    covered = np.empty(EXPERIMENTS, bool)
    for i in range(EXPERIMENTS):
        r = two_proportion_ztest(ProportionStatistic(n, int(x_c[i])), ProportionStatistic(n, int(x_t[i])))
        rejected[i] = r.p_value < 0.05
        covered[i] = r.absolute_ci.contains(p_t - p_c)
    return rejected, covered, p_t - p_c


def _mean_runs(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rejected = np.empty(EXPERIMENTS, bool)
    covered = np.empty(EXPERIMENTS, bool)
    for i in range(EXPERIMENTS):
        # Skewed revenue-like data: lognormal, different shapes per arm under the null of equal means.
        a = rng.lognormal(0.0, 1.0, n)
        b = rng.lognormal(0.0, 1.0, n) + shift
        r = welch_ttest(SampleMeanStatistic(n, float(a.mean()), float(a.var(ddof=1))),
                        SampleMeanStatistic(n, float(b.mean()), float(b.var(ddof=1))))
        rejected[i] = r.p_value < 0.05
        covered[i] = r.absolute_ci.contains(shift)
    return rejected, covered


def test_aa_false_positive_rate_and_coverage_of_the_z_test() -> None:
    rng = np.random.default_rng(1)
    rejected, covered, _ = _proportion_runs(rng, 5_000, 0.12, 0.12)
    assert 0.0435 <= rejected.mean() <= 0.0565
    assert 0.9435 <= covered.mean() <= 0.9565


def test_coverage_of_the_z_test_with_a_real_effect() -> None:
    rng = np.random.default_rng(2)
    _, covered, _ = _proportion_runs(rng, 20_000, 0.10, 0.107)
    assert 0.9435 <= covered.mean() <= 0.9565


def test_aa_false_positive_rate_and_coverage_of_the_welch_test() -> None:
    rng = np.random.default_rng(3)
    rejected, covered = _mean_runs(rng, 400, 0.0)
    assert 0.0435 <= rejected.mean() <= 0.0565
    assert 0.9435 <= covered.mean() <= 0.9565


def test_coverage_of_the_welch_test_with_a_real_effect() -> None:
    rng = np.random.default_rng(4)
    _, covered = _mean_runs(rng, 400, 0.2)
    assert 0.9435 <= covered.mean() <= 0.9565


@pytest.mark.parametrize(("baseline", "mde", "split"), [(0.12, 0.012, (50.0, 50.0)), (0.05, 0.01, (30.0, 70.0))])
def test_planned_sample_size_gives_the_planned_power(baseline: float, mde: float, split: tuple[float, float]) -> None:
    plan = plan_sample_size(baseline=baseline, mde=mde, power=0.8, alpha=0.05, split=split)
    rng = np.random.default_rng(5)
    simulations = 5_000
    x_c = rng.binomial(plan.control_n, baseline, simulations)
    x_t = rng.binomial(plan.treatment_n, baseline + mde, simulations)
    hits = sum(
        two_proportion_ztest(ProportionStatistic(plan.control_n, int(c)),
                             ProportionStatistic(plan.treatment_n, int(t))).p_value < 0.05
        for c, t in zip(x_c, x_t, strict=True)
    )
    assert abs(hits / simulations - 0.8) <= 0.02


def test_planned_sample_size_for_a_mean_gives_the_planned_power() -> None:
    plan = plan_sample_size(mean=10.0, std=4.0, mde=0.5, power=0.8)
    rng = np.random.default_rng(6)
    simulations = 5_000
    hits = 0
    for _ in range(simulations):
        a = rng.normal(10.0, 4.0, plan.control_n)
        b = rng.normal(10.5, 4.0, plan.treatment_n)
        r = welch_ttest(SampleMeanStatistic(a.size, float(a.mean()), float(a.var(ddof=1))),
                        SampleMeanStatistic(b.size, float(b.mean()), float(b.var(ddof=1))))
        hits += r.p_value < 0.05
    assert abs(hits / simulations - 0.8) <= 0.02
