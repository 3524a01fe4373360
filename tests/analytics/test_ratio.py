"""Ratio metrics (SPEC §4.2): delta-method ratio and its z-test, against gbstats ``RatioStatistic``,
a direct numpy computation on user-level rows, and an A/A simulation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import RatioStatistic as GbRatio
from gbstats.models.statistics import SampleMeanStatistic as GbMean
from scipy import stats

from analytics import (
    DEFAULT_POLICY,
    ExperimentInfo,
    InputInfo,
    RatioStatistic,
    RawTable,
    analyze,
    policy_from_mapping,
    ratio_ztest,
    validate_aggregated,
    validate_user_level,
)
from storage.ingest import FileReader


def _sums(rng: np.random.Generator, n: int, scale: float) -> dict[str, float]:
    orders = rng.poisson(rng.uniform(0.5, 4.0), n).astype(float)
    revenue = orders * rng.gamma(2.0, scale, n) + rng.normal(0, 1, n)
    return {"numerator_sum": float(revenue.sum()), "numerator_sum_squares": float((revenue**2).sum()),
            "denominator_sum": float(orders.sum()), "denominator_sum_squares": float((orders**2).sum()),
            "cross_sum": float((revenue * orders).sum())}


def _gbstats(n: int, sums: dict[str, float]) -> GbRatio:
    return GbRatio(n=n, m_statistic=GbMean(n=n, sum=sums["numerator_sum"], sum_squares=sums["numerator_sum_squares"]),
                   d_statistic=GbMean(n=n, sum=sums["denominator_sum"], sum_squares=sums["denominator_sum_squares"]),
                   m_d_sum_of_products=sums["cross_sum"])


@pytest.mark.parametrize("seed", range(12))
def test_ratio_statistic_and_test_equal_gbstats(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_c, n_t = (int(v) for v in rng.integers(50, 20_000, size=2))
    scale = float(rng.uniform(1, 100))
    sums_c, sums_t = _sums(rng, n_c, scale), _sums(rng, n_t, scale * float(rng.uniform(0.9, 1.1)))
    ours_c, ours_t = RatioStatistic.from_sums(n_c, **sums_c), RatioStatistic.from_sums(n_t, **sums_t)
    theirs_c, theirs_t = _gbstats(n_c, sums_c), _gbstats(n_t, sums_t)
    for ours, theirs in ((ours_c, theirs_c), (ours_t, theirs_t)):
        assert ours.mean == pytest.approx(theirs.mean, rel=1e-9)
        assert ours.variance == pytest.approx(theirs.variance, rel=1e-9)
    test = TwoSidedTTest(theirs_c, theirs_t, FrequentistConfig(difference_type="absolute"))
    estimate = ratio_ztest(ours_c, ours_t)
    assert estimate.absolute_effect == pytest.approx(test.point_estimate, rel=1e-9, abs=1e-12)
    assert estimate.standard_error**2 == pytest.approx(test.variance, rel=1e-9)
    # gbstats uses t with Welch df where we use z (SPEC §4.2): same statistic, p close for large df
    assert estimate.statistic == pytest.approx(test.critical_value, rel=1e-9, abs=1e-12)
    assert estimate.p_value == pytest.approx(2 * stats.norm.sf(abs(test.critical_value)), rel=1e-9)
    assert abs(estimate.p_value - test.p_value) < 0.01
    relative = TwoSidedTTest(theirs_c, theirs_t, FrequentistConfig(difference_type="relative"))
    assert estimate.relative_effect == pytest.approx(relative.point_estimate, rel=1e-9, abs=1e-12)
    assert estimate.relative_ci_method == "log"


def test_ratio_from_user_level_rows_equals_a_direct_delta_method(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 6_000
    variant = np.where(rng.random(n) < 0.5, "control", "treatment")
    orders = rng.poisson(2.0, n)
    revenue = np.round(orders * rng.gamma(2.0, 10.0, n) * np.where(variant == "treatment", 1.05, 1.0), 2)
    converted = (orders > 0).astype(int)
    path = tmp_path / "users.csv"
    lines = ["user_id,variant,converted,orders,revenue"]
    lines += [f"{i},{v},{c},{o},{r}" for i, (v, c, o, r) in enumerate(zip(variant, converted, orders, revenue, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    policy = policy_from_mapping({"metrics": {"aov": {"numerator": "revenue", "denominator": "orders",
                                                      "role": "guardrail", "better": "higher"}}})
    with FileReader() as reader:
        loaded = reader.read_path(path, ratios=[("revenue", "orders")])
    assert loaded.user_level is not None
    validation = validate_user_level(loaded.user_level, policy=policy)
    assert validation.data is not None
    (metric,) = [m for m in validation.data.metrics if m.name == "aov"]
    assert metric.role == "guardrail" and metric.metric_type == "ratio"

    def direct(arm: str) -> tuple[float, float]:
        x, y = revenue[variant == arm], orders[variant == arm].astype(float)
        ratio = x.sum() / y.sum()
        cov = np.cov(x, y, ddof=1)
        variance = (cov[0, 0] / y.mean() ** 2 - 2 * cov[0, 1] * x.mean() / y.mean() ** 3
                    + x.mean() ** 2 * cov[1, 1] / y.mean() ** 4)
        return ratio, variance / len(x)

    for arm in ("control", "treatment"):
        statistic = metric.statistics[arm]
        ratio, variance_of_ratio = direct(arm)
        assert statistic.mean == pytest.approx(ratio, rel=1e-9)
        assert statistic.variance / statistic.n == pytest.approx(variance_of_ratio, rel=1e-9)
    report = analyze(validation.data, validation.issues, policy=policy, experiment=ExperimentInfo("r"),
                     input_info=InputInfo("user_level", n, "0" * 64), analytics_version="test")
    (g,) = report.comparisons[0].guardrails
    (rc, vc), (rt, vt) = direct("control"), direct("treatment")
    assert g.estimate.absolute_effect == pytest.approx(rt - rc, rel=1e-9)
    assert g.estimate.standard_error == pytest.approx(math.sqrt(vc + vt), rel=1e-9)
    assert g.harm_direction == "decrease"


def test_ratio_columns_of_an_aggregated_file() -> None:
    header = ("variant", "users", "conversions", "aov_num_sum", "aov_num_sum_sq", "aov_den_sum", "aov_den_sum_sq",
              "aov_num_den_sum")
    rows = (("control", "1000", "100", "5000", "600000", "150", "250", "9000"),
            ("treatment", "1000", "110", "5400", "660000", "155", "260", "9600"))
    validation = validate_aggregated(RawTable(header, rows), policy=DEFAULT_POLICY, primary="aov")
    assert validation.data is not None
    assert validation.data.primary.name == "aov" and validation.data.primary.metric_type == "ratio"
    control = validation.data.primary.statistics["control"]
    assert control.mean == pytest.approx(5000 / 150, rel=1e-12)
    # an incomplete ratio is a warning naming the missing sums; a zero denominator blocks
    partial = validate_aggregated(RawTable(header[:5], tuple(r[:5] for r in rows)), policy=DEFAULT_POLICY)
    (issue,) = [i for i in partial.issues if i.code == "incomplete_metric"]
    assert "aov_den_sum" in issue.message and "aov_num_den_sum" in issue.message
    zero = (rows[0], ("treatment", "1000", "110", "5400", "660000", "0", "0", "0"))
    blocked = validate_aggregated(RawTable(header, zero), policy=DEFAULT_POLICY)
    assert blocked.data is None and [i.code for i in blocked.issues] == ["zero_denominator"]


def test_a_declared_ratio_with_a_missing_column_blocks(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("variant,converted,orders\n" + "".join(f"{'control' if i % 2 else 'treatment'},{int(i % 3 == 0)},{i % 4}\n"
                                                            for i in range(400)))
    policy = policy_from_mapping({"metrics": {"aov": {"numerator": "revenue", "denominator": "orders"}}})
    with FileReader() as reader:
        loaded = reader.read_path(path, ratios=[("revenue", "orders")])
    assert loaded.user_level is not None
    validation = validate_user_level(loaded.user_level, policy=policy)
    assert validation.data is None
    (issue,) = [i for i in validation.issues if i.code == "unknown_ratio_column"]
    assert "'revenue'" in issue.message and "numerator" in issue.message


@pytest.mark.slow
def test_ratio_test_holds_its_level_in_10000_aa_runs() -> None:
    rng = np.random.default_rng(2026)
    runs, n = 10_000, 400
    rejected = 0
    orders = rng.poisson(1.5, size=(runs, 2, n)).astype(float)
    revenue = orders * rng.gamma(2.0, 10.0, size=(runs, 2, n))
    sums = {"numerator_sum": revenue.sum(axis=2), "numerator_sum_squares": (revenue**2).sum(axis=2),
            "denominator_sum": orders.sum(axis=2), "denominator_sum_squares": (orders**2).sum(axis=2),
            "cross_sum": (revenue * orders).sum(axis=2)}
    for run in range(runs):
        control, treatment = (RatioStatistic.from_sums(n, **{k: float(v[run, arm]) for k, v in sums.items()})
                              for arm in (0, 1))
        rejected += ratio_ztest(control, treatment).p_value < 0.05
    assert 0.0435 <= rejected / runs <= 0.0565
