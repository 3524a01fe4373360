"""Golden tests: every number of the frequentist tests against statsmodels / scipy.

The references are computed by the libraries at test time from the same inputs,
never copied from our own output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import _tconfint_generic

from analytics import (
    ProportionStatistic,
    SampleMeanStatistic,
    holm_adjust,
    two_proportion_ztest,
    welch_ttest,
)

REL = 1e-9

# (control_n, control_conversions, treatment_n, treatment_conversions): n from 100 to
# millions, rates near 0 and 1, unequal splits.
PROPORTION_CASES = [
    (100, 10, 100, 15), (100, 1, 120, 4), (150, 148, 140, 135), (250, 50, 750, 170),
    (1_000, 120, 1_000, 132), (1_000, 3, 1_000, 9), (1_000, 997, 1_010, 990), (2_500, 400, 7_500, 1_260),
    (5_000, 600, 5_050, 660), (10_000, 1_200, 10_050, 1_320), (10_000, 12, 10_000, 25), (10_000, 9_990, 9_000, 8_975),
    (20_000, 2_400, 60_000, 7_500), (50_000, 6_000, 50_100, 6_160), (50_000, 49_000, 50_000, 49_100),
    (80_000, 160, 20_000, 52), (100_000, 12_000, 100_400, 12_600), (100_000, 50, 100_000, 71),
    (250_000, 125_000, 250_300, 125_900), (500_000, 5_000, 500_000, 5_210), (1_000_000, 120_000, 1_002_000, 120_800),
    (1_000_000, 999_000, 1_000_000, 999_100), (2_000_000, 20_000, 1_000_000, 10_150), (3_000_000, 300, 3_000_000, 342),
    (5_000_000, 600_000, 5_001_000, 601_500), (300, 150, 700, 380), (1_234, 567, 4_321, 1_987),
    (45_678, 12_345, 45_600, 12_100), (999_999, 1, 999_999, 7), (7_000_000, 3_500_000, 7_000_500, 3_502_800),
    (640, 64, 660, 40), (12_000, 6_000, 12_000, 6_000),
]


def _close(actual: float, expected: float) -> None:
    assert actual == pytest.approx(expected, rel=REL, abs=1e-300)


@pytest.mark.parametrize(("n_c", "x_c", "n_t", "x_t"), PROPORTION_CASES)
def test_two_proportion_ztest_matches_statsmodels_wald(n_c: int, x_c: int, n_t: int, x_t: int) -> None:
    result = two_proportion_ztest(ProportionStatistic(n_c, x_c), ProportionStatistic(n_t, x_t), alpha=0.05)
    reference = sm_proportion.test_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff")
    low, high = sm_proportion.confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff", alpha=0.05)
    _close(result.absolute_effect, x_t / n_t - x_c / n_c)
    _close(result.p_value, reference.pvalue)
    _close(result.statistic, reference.statistic)
    _close(result.absolute_ci.low, low)
    _close(result.absolute_ci.high, high)
    # Relative lift: its delta-method SE written independently of the code, and the CI on the log
    # scale (rules v2) against statsmodels' ratio interval.
    p_c, p_t = x_c / n_c, x_t / n_t
    var_ratio = (p_t * (1 - p_t) / n_t) / p_c**2 + (p_t / p_c**2) ** 2 * (p_c * (1 - p_c) / n_c)
    _close(result.relative_effect, p_t / p_c - 1)
    _close(result.relative_standard_error, math.sqrt(var_ratio))
    ratio_low, ratio_high = sm_proportion.confint_proportions_2indep(x_t, n_t, x_c, n_c, method="log", compare="ratio")
    assert result.relative_ci_method == "log"
    _close(result.relative_ci.low, ratio_low - 1)
    _close(result.relative_ci.high, ratio_high - 1)


def test_confidence_interval_and_p_value_agree() -> None:
    for n_c, x_c, n_t, x_t in PROPORTION_CASES:
        r = two_proportion_ztest(ProportionStatistic(n_c, x_c), ProportionStatistic(n_t, x_t), alpha=0.05)
        excludes_zero = r.absolute_ci.low > 0 or r.absolute_ci.high < 0
        assert excludes_zero == (r.p_value < 0.05)


def _mean_cases() -> list[tuple[int, float, float, int, float, float]]:
    rng = np.random.default_rng(20261127)
    cases = []
    sizes = [(100, 100), (120, 300), (1_000, 1_000), (2_000, 500), (10_000, 10_050), (50_000, 49_000),
             (200_000, 200_000), (1_000_000, 1_000_000), (3_000_000, 1_500_000), (150, 5_000)]
    for n_c, n_t in sizes:
        for scale in (1.0, 30.0, 0.01):
            mean_c = float(rng.uniform(0.5, 50.0)) * scale
            mean_t = mean_c * float(rng.uniform(0.97, 1.05))
            cases.append((n_c, mean_c, scale * float(rng.uniform(0.5, 3.0)),
                          n_t, mean_t, scale * float(rng.uniform(0.5, 3.0))))
    return cases


MEAN_CASES = _mean_cases()


@pytest.mark.parametrize(("n_c", "m_c", "s_c", "n_t", "m_t", "s_t"), MEAN_CASES)
def test_welch_from_mean_std_matches_scipy(n_c: int, m_c: float, s_c: float, n_t: int, m_t: float, s_t: float) -> None:
    result = welch_ttest(SampleMeanStatistic.from_mean_std(n_c, m_c, s_c),
                         SampleMeanStatistic.from_mean_std(n_t, m_t, s_t), alpha=0.05)
    reference = stats.ttest_ind_from_stats(m_t, s_t, n_t, m_c, s_c, n_c, equal_var=False)
    _close(result.p_value, reference.pvalue)
    _close(result.statistic, reference.statistic)
    a, b = s_t**2 / n_t, s_c**2 / n_c
    df = (a + b) ** 2 / (a**2 / (n_t - 1) + b**2 / (n_c - 1))
    low, high = _tconfint_generic(m_t - m_c, math.sqrt(a + b), df, 0.05, "two-sided")
    _close(result.degrees_of_freedom, df)
    _close(result.absolute_ci.low, low)
    _close(result.absolute_ci.high, high)
    _close(result.absolute_effect, m_t - m_c)


@pytest.mark.parametrize("seed", range(12))
def test_welch_from_sums_matches_scipy_on_raw_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_c, n_t = int(rng.integers(100, 20_000)), int(rng.integers(100, 20_000))
    control = rng.gamma(2.0, 5.0, n_c)
    treatment = rng.gamma(2.0, 5.0 * float(rng.uniform(0.95, 1.1)), n_t)
    result = welch_ttest(
        SampleMeanStatistic.from_sums(n_c, math.fsum(control), math.fsum(control**2)),
        SampleMeanStatistic.from_sums(n_t, math.fsum(treatment), math.fsum(treatment**2)),
        alpha=0.05,
    )
    reference = stats.ttest_ind(treatment, control, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert result.p_value == pytest.approx(reference.pvalue, rel=REL)
    assert result.absolute_ci.low == pytest.approx(interval.low, rel=REL)
    assert result.absolute_ci.high == pytest.approx(interval.high, rel=REL)
    assert result.degrees_of_freedom == pytest.approx(reference.df, rel=REL)


def test_welch_relative_ci_uses_t_quantile_on_the_log_scale() -> None:
    n_c, m_c, s_c, n_t, m_t, s_t = 400, 12.4, 30.1, 380, 13.3, 31.0
    result = welch_ttest(SampleMeanStatistic.from_mean_std(n_c, m_c, s_c),
                         SampleMeanStatistic.from_mean_std(n_t, m_t, s_t))
    se = math.sqrt(s_t**2 / (m_c**2 * n_t) + s_c**2 * m_t**2 / (m_c**4 * n_c))
    _close(result.relative_standard_error, se)
    log_se = math.sqrt(s_t**2 / (n_t * m_t**2) + s_c**2 / (n_c * m_c**2))
    t = stats.t.ppf(0.975, result.degrees_of_freedom)
    _close(result.relative_ci.low, math.exp(math.log(m_t / m_c) - t * log_se) - 1)
    _close(result.relative_ci.high, math.exp(math.log(m_t / m_c) + t * log_se) - 1)


@pytest.mark.parametrize("p_values", [[0.01, 0.04, 0.03], [0.2, 0.001], [0.05, 0.05, 0.05, 0.01], [0.9, 0.8, 0.7]])
def test_holm_matches_statsmodels(p_values: list[float]) -> None:
    expected = multipletests(p_values, method="holm")[1]
    assert holm_adjust(p_values) == pytest.approx(list(expected), rel=1e-12)


def test_degenerate_inputs_give_finite_uninformative_results() -> None:
    zero = two_proportion_ztest(ProportionStatistic(1000, 0), ProportionStatistic(1000, 0))
    assert zero.p_value == 1.0 and zero.note and zero.relative_effect is None
    assert math.isfinite(zero.statistic)
    flat = welch_ttest(SampleMeanStatistic(100, 5.0, 0.0), SampleMeanStatistic(100, 5.0, 0.0))
    assert flat.p_value == 1.0 and flat.note
    baseline_zero = welch_ttest(SampleMeanStatistic(100, 0.0, 1.0), SampleMeanStatistic(100, 0.5, 1.0))
    assert baseline_zero.relative_effect is None and math.isfinite(baseline_zero.p_value)


def test_bad_arguments_raise_value_error_naming_them() -> None:
    with pytest.raises(ValueError, match="alpha"):
        two_proportion_ztest(ProportionStatistic(10, 1), ProportionStatistic(10, 2), alpha=1.5)
    with pytest.raises(ValueError, match="successes"):
        ProportionStatistic(10, 11)
    with pytest.raises(ValueError, match="impossible variance"):
        SampleMeanStatistic.from_sums(10, 100.0, 10.0)
