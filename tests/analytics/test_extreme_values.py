"""Extreme but valid inputs found by fuzzing: each gives finite numbers (or ``None`` where the
value cannot be represented), never an exception — and the rewritten formulas equal the textbook
ones where those are finite (compared with the old expressions and with exact rational arithmetic)."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
from scipy import stats

from analytics import ProportionStatistic, RatioStatistic, SampleMeanStatistic, welch_ttest
from analytics.bayesian import beta_binomial_resolves, beta_binomial_summary, normal_summary
from analytics.cuped import CovariateStatistic, cuped_test
from analytics.inference import _relative, ratio_ztest, two_proportion_ztest, welch_degrees_of_freedom


def _old_relative_se(m_c: float, m_t: float, v_c: float, v_t: float, n_c: int, n_t: int) -> float:
    return math.sqrt(v_t / (m_c**2 * n_t) + v_c * m_t**2 / (m_c**4 * n_c))


def _old_log_se(m_c: float, m_t: float, v_c: float, v_t: float, n_c: int, n_t: int) -> float:
    return math.sqrt(v_t / (n_t * m_t**2) + v_c / (n_c * m_c**2))


def _exact_sqrt(value: Fraction) -> float:
    """√value correctly rounded enough for 1e-15 comparisons (exact rational, then one sqrt of a
    double-rounded mantissa scaled by a power of 4)."""
    exponent = (value.numerator.bit_length() - value.denominator.bit_length()) // 2
    scaled = value / Fraction(4) ** exponent
    return math.ldexp(math.sqrt(float(scaled)), exponent)


def test_relative_se_equals_the_old_formula_on_ordinary_values() -> None:
    rng = random.Random(20261128)
    for _ in range(1000):
        m_c, m_t = rng.uniform(-50, 50) or 1.0, rng.uniform(-50, 50)
        v_c, v_t = rng.uniform(0, 1e3), rng.uniform(0, 1e3)
        n_c, n_t = rng.randint(2, 10**6), rng.randint(2, 10**6)
        _, interval, se, method = _relative(m_c, m_t, v_c, v_t, n_c, n_t, 1.96, non_negative=False)
        assert se == pytest.approx(_old_relative_se(m_c, m_t, v_c, v_t, n_c, n_t), rel=1e-12)
        assert interval is not None
        if method == "log":
            log_se = _old_log_se(m_c, m_t, v_c, v_t, n_c, n_t)
            centre = math.log(m_t / m_c)
            assert interval.low == pytest.approx(math.expm1(centre - 1.96 * log_se), rel=1e-12, abs=1e-15)
            assert interval.high == pytest.approx(math.expm1(centre + 1.96 * log_se), rel=1e-12, abs=1e-15)
        else:
            relative = (m_t - m_c) / m_c
            assert interval.low == pytest.approx(relative - 1.96 * se, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("m_c", "m_t", "v_c", "v_t"), [
    (1e-300, 1.2e-300, 1e-290, 1e-290),  # squares of the means underflow
    (5e-324 * 4, 5e-324 * 5, 1e-300, 1e-300),  # subnormal means
    (-1e-200, -3e-200, 1e-10, 1e-10),
    (1e200, 1.1e200, 1e300, 1e300),  # fourth powers overflow
    (1e300, 1e300, 0.0, 0.0),
])
def test_relative_se_equals_exact_arithmetic_on_extreme_values(m_c: float, m_t: float, v_c: float, v_t: float) -> None:
    n_c, n_t = 1000, 1200
    relative, _, se, _ = _relative(m_c, m_t, v_c, v_t, n_c, n_t, 1.96, non_negative=False)
    c, t = Fraction(m_c), Fraction(m_t)
    exact = _exact_sqrt(Fraction(v_t) / (c * c * n_t) + Fraction(v_c) * t * t / (c**4 * n_c))
    assert relative == pytest.approx(float((t - c) / c), rel=1e-15)
    assert se == pytest.approx(exact, rel=1e-14)


@pytest.mark.parametrize(("mean_c", "mean_t", "std"), [(0.5, 0.6, 1000.0), (1.0, 1.5, 200.0), (0.01, 0.012, 100.0)])
def test_log_interval_beyond_e700_falls_back_to_the_linear_one(mean_c: float, mean_t: float, std: float) -> None:
    n = 10 if std == 1000.0 else 2 if std == 200.0 else 1000
    control, treatment = SampleMeanStatistic(n, mean_c, std * std), SampleMeanStatistic(n, mean_t, std * std)
    result = welch_ttest(control, treatment)
    critical = stats.t.ppf(0.975, result.degrees_of_freedom)
    assert result.relative_ci_method == "linear"
    relative = (mean_t - mean_c) / mean_c
    se = math.sqrt(std**2 / n / mean_c**2 + std**2 / n * mean_t**2 / mean_c**4)
    assert result.relative_ci is not None
    assert result.relative_ci.low == pytest.approx(relative - critical * se, rel=1e-9)
    assert result.relative_ci.high == pytest.approx(relative + critical * se, rel=1e-9)


def test_relative_lift_beyond_double_precision_is_none_with_a_note() -> None:
    result = welch_ttest(SampleMeanStatistic(100, 5e-324, 1.0), SampleMeanStatistic(100, 1e10, 1.0))
    assert result.relative_effect is None and result.relative_ci is None and result.relative_standard_error is None
    assert result.note is not None and "too close to 0" in result.note


@pytest.mark.parametrize(("variance_c", "variance_t", "n_c", "n_t"), [
    (1e308, 1e308, 1000, 1000), (1e200, 1e300, 10, 20), (1e-300, 3e-300, 50, 70), (1e-320, 1e-320, 5, 5),
])
def test_welch_df_equals_exact_arithmetic_without_overflow(variance_c: float, variance_t: float, n_c: int,
                                                           n_t: int) -> None:
    df = welch_degrees_of_freedom(SampleMeanStatistic(n_c, 1.0, variance_c), SampleMeanStatistic(n_t, 1.0, variance_t))
    a, b = Fraction(variance_c) / n_c, Fraction(variance_t) / n_t
    assert df == pytest.approx(float((a + b) ** 2 / (a * a / (n_c - 1) + b * b / (n_t - 1))), rel=1e-14)


def test_welch_df_equals_the_old_formula_on_ordinary_values() -> None:
    rng = random.Random(7)
    for _ in range(1000):
        n_c, n_t = rng.randint(2, 10**5), rng.randint(2, 10**5)
        v_c, v_t = rng.uniform(1e-3, 1e3), rng.uniform(1e-3, 1e3)
        a, b = v_c / n_c, v_t / n_t
        old = (a + b) ** 2 / (a * a / (n_c - 1) + b * b / (n_t - 1))
        df = welch_degrees_of_freedom(SampleMeanStatistic(n_c, 0.0, v_c), SampleMeanStatistic(n_t, 0.0, v_t))
        assert df == pytest.approx(old, rel=1e-12)


def test_ratio_variance_equals_the_old_formula_on_ordinary_values() -> None:
    rng = random.Random(11)
    for _ in range(1000):
        x, y = rng.uniform(-100, 100), rng.uniform(0.1, 100) * rng.choice((-1, 1))
        vx, vy = rng.uniform(0, 100), rng.uniform(0, 100)
        cov = rng.uniform(-1, 1) * math.sqrt(vx * vy)
        old = max(vx / y**2 - 2.0 * cov * x / y**3 + x**2 * vy / y**4, 0.0)
        statistic = RatioStatistic(100, x, y, vx, vy, cov)
        assert statistic.variance == pytest.approx(old, rel=1e-9, abs=1e-12 * (vx + vy) / y**2)


@pytest.mark.parametrize(("x", "y", "vx", "vy", "cov"), [
    (5.0, 1e-80, 1.0, 1e-163, 1e-81),  # y⁴ underflows
    (5.0, 1e100, 1.0, 1e197, 1e99),  # y⁴ overflows
    (-3.0, -1e-60, 2.0, 1e-121, -1e-61),
])
def test_ratio_variance_equals_exact_arithmetic_on_extreme_values(x: float, y: float, vx: float, vy: float,
                                                                  cov: float) -> None:
    statistic = RatioStatistic(1000, x, y, vx, vy, cov)
    fx, fy = Fraction(x), Fraction(y)
    exact = Fraction(vx) / fy**2 - 2 * Fraction(cov) * fx / fy**3 + fx**2 * Fraction(vy) / fy**4
    assert statistic.variance == pytest.approx(float(exact), rel=1e-12)


def test_ratio_whose_variance_is_beyond_double_precision_is_uninformative() -> None:
    control = RatioStatistic.from_sums(1000, numerator_sum=5000.0, numerator_sum_squares=25999.0,
                                       denominator_sum=1e-200, denominator_sum_squares=9.99e-298, cross_sum=5e-200)
    treatment = RatioStatistic.from_sums(1000, numerator_sum=5200.0, numerator_sum_squares=28039.0,
                                         denominator_sum=1e-200, denominator_sum_squares=9.99e-298, cross_sum=5.2e-200)
    result = ratio_ztest(control, treatment)
    assert result.p_value == 1.0 and result.statistic == 0.0 and result.note is not None
    assert result.relative_effect == pytest.approx(0.04, rel=1e-12)
    assert result.relative_ci is None


def _laplace_quantile(q: float, a: float) -> float:
    """Quantile of log(p_t / p_c) for two Beta(a, 1) posteriors (−log p ~ Exp(a) each)."""
    return math.log(2.0 * q) / a if q < 0.5 else -math.log(2.0 * (1.0 - q)) / a


@pytest.mark.parametrize("n", [10**12, 10**15, 2**53 + 2])
@pytest.mark.parametrize(("failures_c", "failures_t"), [(0, 0), (0, None), (3, 0), (1, 5), (None, 2)])
def test_bayesian_near_full_rates_never_crash(n: int, failures_c: int | None, failures_t: int | None) -> None:
    control = ProportionStatistic(n, n - failures_c) if failures_c is not None else ProportionStatistic(n, n // 2)
    treatment = ProportionStatistic(n, n - failures_t) if failures_t is not None else ProportionStatistic(n, n // 3)
    assert not beta_binomial_resolves(control, treatment)
    with pytest.raises(ValueError, match="normal_summary"):
        beta_binomial_summary(control, treatment)
    summary = normal_summary(two_proportion_ztest(control, treatment))
    values = [summary.prob_treatment_better, summary.expected_loss_treatment, summary.expected_loss_control]
    assert all(math.isfinite(v) for v in values)


@pytest.mark.parametrize("n", [10**12, 10**15])
def test_bayesian_zero_rates_are_resolved_and_match_the_closed_form(n: int) -> None:
    summary = beta_binomial_summary(ProportionStatistic(n, 0), ProportionStatistic(n, 0))
    # Beta(1, n + 1) both: P(t > c) = 1/2; p ≈ Exp(n)/n each, so E[(c − t)⁺] = 1/(2(n + 2)).
    assert summary.prob_treatment_better == pytest.approx(0.5, abs=1e-6)
    assert summary.expected_loss_treatment == pytest.approx(1.0 / (2.0 * (n + 2)), rel=1e-5)
    one_zero = beta_binomial_summary(ProportionStatistic(n, 0), ProportionStatistic(n, n // 2))
    assert one_zero.prob_treatment_better == pytest.approx(1.0, abs=1e-12)


def test_bayesian_full_rate_at_moderate_size_matches_the_closed_form() -> None:
    n = 10**9  # still resolved: sd ~ 1e-9 spans ~1e7 doubles
    control, treatment = ProportionStatistic(n, n), ProportionStatistic(n, n)
    assert beta_binomial_resolves(control, treatment)
    summary = beta_binomial_summary(control, treatment)
    assert summary.prob_treatment_better == pytest.approx(0.5, abs=1e-6)
    assert summary.expected_loss_treatment == pytest.approx(1.0 / (2.0 * (n + 1)), rel=1e-5)


def test_cuped_with_a_covariate_beyond_double_precision_is_skipped() -> None:
    # θ = 1e100 times x̄ − x̄_all ~ 5e299: the adjusted means overflow.
    control = CovariateStatistic(100, 1.0, 0.0, 2.0, 1.0, 1e100)
    treatment = CovariateStatistic(100, 1.1, 1e300, 2.0, 1.0, 1e100)
    result = cuped_test(control, treatment, covariate="pre")
    assert result.theta == 0.0 and result.variance_reduction == 0.0
    assert result.adjusted == result.unadjusted
