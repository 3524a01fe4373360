"""Always-valid inference (SPEC §3.1): golden against gbstats, and peeking-proof by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
from gbstats.models.statistics import ProportionStatistic as GbProportion
from gbstats.models.statistics import SampleMeanStatistic as GbMean

from analytics import ProportionStatistic, SampleMeanStatistic, two_proportion_ztest, welch_ttest
from analytics.sequential import always_valid, confidence_sequence


@pytest.mark.parametrize("seed", range(12))
def test_confidence_sequence_equals_gbstats(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tuning = float(rng.choice([5000.0, 20_000.0, 1e6]))
    alpha = float(rng.choice([0.05, 0.1, 0.01]))
    if seed % 2:
        n_c, n_t = (int(v) for v in rng.integers(200, 500_000, size=2))
        x_c, x_t = int(rng.binomial(n_c, 0.1)), int(rng.binomial(n_t, 0.105))
        ours = two_proportion_ztest(ProportionStatistic(n_c, x_c), ProportionStatistic(n_t, x_t), alpha=alpha)
        a, b = GbProportion(n=n_c, sum=x_c), GbProportion(n=n_t, sum=x_t)
    else:
        n_c, n_t = (int(v) for v in rng.integers(200, 100_000, size=2))
        values_c, values_t = rng.gamma(2, 10, n_c), rng.gamma(2, 10.3, n_t)
        ours = welch_ttest(SampleMeanStatistic(n_c, float(values_c.mean()), float(values_c.var(ddof=1))),
                           SampleMeanStatistic(n_t, float(values_t.mean()), float(values_t.var(ddof=1))), alpha=alpha)
        a = GbMean(n=n_c, sum=float(values_c.sum()), sum_squares=float((values_c**2).sum()))
        b = GbMean(n=n_t, sum=float(values_t.sum()), sum_squares=float((values_t**2).sum()))
    theirs = SequentialTwoSidedTTest(a, b, SequentialConfig(difference_type="absolute", alpha=alpha,
                                                            sequential_tuning_parameter=tuning))
    result = always_valid(ours, alpha=alpha, tuning=tuning)
    low, high = theirs.confidence_interval
    assert result.ci.low == pytest.approx(low, rel=1e-9, abs=1e-12)
    assert result.ci.high == pytest.approx(high, rel=1e-9, abs=1e-12)
    assert result.p_value == pytest.approx(theirs.p_value, rel=1e-9, abs=1e-300)
    # always wider than the fixed-horizon interval, and p never smaller
    assert result.ci.low < ours.absolute_ci.low and result.ci.high > ours.absolute_ci.high
    assert result.p_value >= ours.p_value


def test_bad_arguments_and_degenerate_variance() -> None:
    with pytest.raises(ValueError, match="sequential_tuning"):
        confidence_sequence(0.1, 0.01, 100, alpha=0.05, tuning=0)
    with pytest.raises(ValueError, match="alpha"):
        confidence_sequence(0.1, 0.01, 100, alpha=1.5, tuning=5000)
    flat = confidence_sequence(0.0, 0.0, 100, alpha=0.05, tuning=5000)
    assert (flat.ci.low, flat.ci.high, flat.p_value) == (0.0, 0.0, 1.0)


@pytest.mark.slow
def test_daily_peeking_inflates_fixed_horizon_errors_but_not_the_confidence_sequence() -> None:
    """2,000 A/A experiments with 20 daily looks (500 new users per arm per day, rate 10%):
    fixed-horizon p < 0.05 at *some* look in ≥ 15% of runs; the confidence sequence in ≤ 5%, and
    its interval covers the true effect (0) at every look in ≥ 95% of runs."""
    rng = np.random.default_rng(2023)
    runs, looks, daily, rate = 2_000, 20, 500, 0.1
    control = rng.binomial(daily, rate, size=(runs, looks)).cumsum(axis=1)
    treatment = rng.binomial(daily, rate, size=(runs, looks)).cumsum(axis=1)
    fixed_ever = sequential_ever = 0
    for run in range(runs):
        fixed_hit = sequential_hit = False
        for look in range(looks):
            n = daily * (look + 1)
            estimate = two_proportion_ztest(ProportionStatistic(n, int(control[run, look])),
                                            ProportionStatistic(n, int(treatment[run, look])))
            fixed_hit = fixed_hit or estimate.p_value < 0.05
            sequence = always_valid(estimate, alpha=0.05, tuning=2 * daily * looks)
            sequential_hit = sequential_hit or not sequence.ci.contains(0.0)
        fixed_ever += fixed_hit
        sequential_ever += sequential_hit
    assert fixed_ever / runs >= 0.15
    assert sequential_ever / runs <= 0.05


def test_with_sequential_inference_every_rule_reads_the_always_valid_interval() -> None:
    from analytics import ExperimentInfo, InputInfo, Policy, RawTable, analyze, report_to_dict, validate_aggregated

    header = ("variant", "users", "conversions", "guardrail_error")
    rows = (("control", "20000", "2400", "200"), ("treatment", "20000", "2540", "200"))

    def run(policy: Policy) -> dict[str, object]:
        validation = validate_aggregated(RawTable(header, rows), policy=policy)
        return report_to_dict(analyze(validation.data, validation.issues, policy=policy, experiment=ExperimentInfo("s"),
                                      input_info=InputInfo("aggregated", 2, "0" * 64), analytics_version="t"))

    fixed = run(Policy())
    sequential = run(Policy(sequential=True, sequential_tuning=40_000))
    primary = sequential["comparisons"][0]["primary"]  # type: ignore[index]
    assert fixed["decision"]["rule"] == "primary_better"  # type: ignore[index]
    assert fixed["comparisons"][0]["primary"]["p_value"] < 0.05  # type: ignore[index]
    # the report keeps the fixed-horizon numbers and adds the always-valid ones that decided
    assert primary["p_value"] == fixed["comparisons"][0]["primary"]["p_value"]  # type: ignore[index]
    expected = always_valid(two_proportion_ztest(ProportionStatistic(20_000, 2_400), ProportionStatistic(20_000, 2_540)),
                            alpha=0.05, tuning=40_000)
    assert primary["sequential"]["p_value"] == pytest.approx(expected.p_value, rel=1e-12)
    assert primary["sequential"]["ci"] == pytest.approx([expected.ci.low, expected.ci.high], rel=1e-12)
    assert primary["p_value_adjusted"] == pytest.approx(expected.p_value, rel=1e-12) and expected.p_value > 0.05
    assert sequential["decision"]["rule"] == "inconclusive"  # type: ignore[index]
    assert "always-valid p" in sequential["decision"]["reasons"][0]  # type: ignore[index]
    (guardrail,) = sequential["comparisons"][0]["guardrails"]  # type: ignore[index]
    assert guardrail["harm_ci"][1] == pytest.approx(guardrail["sequential"]["ci"][1], rel=1e-12)
    assert sequential["policy"]["sequential_tuning"] == 40_000  # type: ignore[index]
