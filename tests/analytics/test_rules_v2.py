"""Rules v2 (SPEC §4): per-metric direction and margins, statuses on the CI, Holm across guardrails,
non-inferiority, sparse counts, A/B/n, planned MDE — every boundary, with independent references."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep

from analytics import (
    DEFAULT_POLICY,
    ExperimentInfo,
    GuardrailStatus,
    InputInfo,
    Interval,
    Margin,
    MetricPolicy,
    Policy,
    ProportionStatistic,
    RawTable,
    analyze,
    assess_guardrails,
    policy_from_mapping,
    policy_to_mapping,
    report_to_dict,
    two_proportion_ztest,
    validate_aggregated,
)
from analytics.decision import harm_interval
from analytics.inference import EffectEstimate, MetricType
from analytics.wording import format_p

CONTROL_VALUES: dict[str, float] = {"proportion": 0.2, "mean": 812.0, "ratio": 19.4}


def _estimate(kind: MetricType, delta: float, low: float, high: float, p: float, control: float) -> EffectEstimate:
    return EffectEstimate(kind, 10_000, control, 10_000, control + delta, delta, Interval(low, high), 0.001, 0.0, None,
                          p, None, None, None)


def _on_harm_scale(kind: MetricType, better: str, harm: float, harm_low: float, harm_high: float,
                   p: float) -> EffectEstimate:
    """An estimate whose harm (in ``better``'s bad direction) is ``harm`` with CI [harm_low, harm_high]."""
    control = CONTROL_VALUES[kind]
    if better == "lower":
        return _estimate(kind, harm, harm_low, harm_high, p, control)
    return _estimate(kind, -harm, -harm_high, -harm_low, p, control)


def _status(kind: MetricType, better: str, margins: tuple[Margin, Margin], harm: float, low: float, high: float,
            p: float = 1e-6) -> GuardrailStatus:
    policy = Policy(metrics=(MetricPolicy("g", better=better, margin=margins[0],  # type: ignore[arg-type]
                                          severe_margin=margins[1]),))
    settings = policy.settings("g", "guardrail", kind)
    (assessed,) = assess_guardrails([("g", _on_harm_scale(kind, better, harm, low, high, p), settings)], policy)
    return assessed.status


MARGIN_FORMS = {
    "absolute": lambda kind: (Margin(0.01 * CONTROL_VALUES[kind]), Margin(0.03 * CONTROL_VALUES[kind])),
    "relative": lambda kind: (Margin(0.01, relative=True), Margin(0.03, relative=True)),
}
CASES = [(kind, better, form) for kind in ("proportion", "mean", "ratio") for better in ("lower", "higher")
         for form in ("absolute", "relative")]


@pytest.mark.parametrize(("kind", "better", "form"), CASES)
def test_every_status_boundary_for_every_metric_type_direction_and_margin_form(kind: MetricType, better: str,
                                                                            form: str) -> None:
    margins = MARGIN_FORMS[form](kind)
    m = 0.01 * CONTROL_VALUES[kind]  # both forms give the same absolute margin
    big_m = 0.03 * CONTROL_VALUES[kind]
    tiny = 1e-12 * max(1.0, m) * 0.1  # inside the 1e-12 tolerance
    hair = 1e-9 * max(1.0, CONTROL_VALUES[kind])

    def status(harm: float, low: float, high: float, p: float = 1e-6) -> GuardrailStatus:
        return _status(kind, better, margins, harm, low, high, p)

    # worsened / severe: significant harm beyond m / M; exactly at the margin does not exceed it
    assert status(m, m / 2, m * 1.5) is GuardrailStatus.INCONCLUSIVE  # harm at m, CI past m
    assert status(m + tiny, m / 2, m * 1.5) is GuardrailStatus.INCONCLUSIVE
    assert status(m + hair, m / 2, m * 1.5) is GuardrailStatus.WORSENED
    assert status(big_m, m, big_m * 1.5) is GuardrailStatus.WORSENED
    assert status(big_m + tiny, m, big_m * 1.5) is GuardrailStatus.WORSENED
    assert status(big_m + hair, m, big_m * 1.5) is GuardrailStatus.SEVERE
    # minor: significant harm whose whole CI is within m; a CI end exactly at m is within
    assert status(m / 2, m / 4, m) is GuardrailStatus.MINOR
    assert status(m / 2, m / 4, m + tiny) is GuardrailStatus.MINOR
    assert status(m / 2, m / 4, m + hair) is GuardrailStatus.INCONCLUSIVE
    # not significant: ok when the CI stays within m, inconclusive when it reaches past m
    assert status(m / 2, -m, m, p=0.3) is GuardrailStatus.OK
    assert status(m / 2, -m, m + hair, p=0.3) is GuardrailStatus.INCONCLUSIVE
    # a significant improvement is ok however large
    assert status(-big_m * 5, -big_m * 6, -big_m * 4) is GuardrailStatus.OK
    # significance is the adjusted p against α: a large harm with p = α exactly is not significant
    assert status(big_m * 2, -m, big_m * 3, p=0.05) is GuardrailStatus.INCONCLUSIVE


def test_relative_margins_scale_with_the_control_value() -> None:
    policy = policy_from_mapping({"metrics": {"load_ms": {"better": "lower", "margin": "1%", "severe_margin": "5%"}}})
    settings = policy.settings("load_ms", "guardrail", "mean")
    estimate = _estimate("mean", 6.0, 2.0, 10.0, 0.003, 812.0)  # +6 ms on 812 ms, CI up to +10 ms
    (assessed,) = assess_guardrails([("load_ms", estimate, settings)], policy)
    assert assessed.margin == pytest.approx(8.12, abs=1e-12)
    assert assessed.severe_margin == pytest.approx(40.6, abs=1e-12)
    assert assessed.status is GuardrailStatus.INCONCLUSIVE  # +6 < 8.12, but +10 is not ruled out


def test_harm_scale_follows_the_declared_direction() -> None:
    estimate = _estimate("proportion", 0.002, 0.001, 0.003, 0.001, 0.2)
    harm, ci = harm_interval(estimate, "lower")
    assert (harm, ci.low, ci.high) == (0.002, 0.001, 0.003)
    harm, ci = harm_interval(estimate, "higher")
    assert (harm, ci.low, ci.high) == (-0.002, -0.003, -0.001)


def test_defaults_per_metric_type_and_role_and_which_are_defaults() -> None:
    policy = Policy()
    rate = policy.settings("cancel", "guardrail", "proportion")
    assert (rate.better, rate.margin, rate.severe_margin) == ("lower", Margin(0.001), Margin(0.003))
    mean = policy.settings("load_ms", "guardrail", "mean")
    assert (mean.margin, mean.severe_margin) == (Margin(0.01, relative=True), Margin(0.03, relative=True))
    assert policy.settings("revenue", "primary", "mean").better == "higher"
    assert policy.settings("aov", "secondary", "ratio").margin == Margin(0.01, relative=True)
    declared = policy_from_mapping({"metrics": {"cancel": {"margin": 0.002}}})
    cancel = declared.settings("cancel", "guardrail", "proportion")
    assert (cancel.better_default, cancel.margin_default, cancel.severe_margin_default) == (True, False, True)
    assert cancel.margin == Margin(0.002)
    # v1 harm_directions keeps working as an alias of `better`
    legacy = policy_from_mapping({"harm_directions": {"retention": "decrease"}})
    assert legacy.settings("retention", "guardrail", "proportion").better == "higher"


def test_policy_round_trips_and_rejects_bad_metric_settings() -> None:
    values = {"require_non_inferiority": True, "guardrail_correction": "none", "planned_mde": "5%",
              "metrics": {"load_ms": {"better": "lower", "margin": "1%", "severe_margin": "5%"},
                          "aov": {"numerator": "revenue", "denominator": "orders"}}}
    policy = policy_from_mapping(values)
    assert policy.planned_mde == pytest.approx(0.05) and policy.planned_mde_relative
    assert policy_from_mapping(policy_to_mapping(policy)) == policy
    for bad, message in [({"metrics": {"x": {"better": "up"}}}, "better"),
                         ({"metrics": {"x": {"margin": "lots"}}}, "metrics.x.margin"),
                         ({"metrics": {"x": {"margin": -1}}}, "metrics.x.margin"),
                         ({"metrics": {"x": {"numerator": "a"}}}, "both numerator and denominator"),
                         ({"metrics": {"x": {"colour": "red"}}}, "unknown key"),
                         ({"metrics": {"x": {"margin": "5%", "severe_margin": "2%"}}}, "must not be smaller"),
                         ({"guardrail_correction": "bonferroni"}, "guardrail_correction"),
                         ({"require_non_inferority": True}, "did you mean 'require_non_inferiority'")]:
        with pytest.raises(ValueError, match=message):
            policy_from_mapping(bad)


def _report(rows: list[list[object]], header: tuple[str, ...], policy: Policy = DEFAULT_POLICY, primary: str | None = None):
    table = RawTable(header, tuple(tuple(str(c) for c in r) for r in rows))
    validation = validate_aggregated(table, policy=policy, primary=primary)
    return analyze(validation.data, validation.issues, policy=policy, experiment=ExperimentInfo("t"),
                   input_info=InputInfo("aggregated", len(rows), "0" * 64), analytics_version="test")


def test_a_typo_in_a_metric_name_blocks_with_did_you_mean() -> None:
    header = ("variant", "users", "conversions", "guardrail_retention")
    rows = [["control", 10_000, 1_200, 4_000], ["treatment", 10_000, 1_300, 4_000]]
    for values in ({"metrics": {"retension": {"better": "higher"}}}, {"harm_directions": {"retension": "decrease"}}):
        report = _report(rows, header, policy_from_mapping(values))
        (issue,) = [i for i in report.health.issues if i.code == "unknown_policy_metric"]
        assert "did you mean retention?" in issue.message and issue.severity == "blocked"
        assert (report.decision.outcome.value, report.decision.rule) == ("hold", "data_blocked")


def test_a_millisecond_guardrail_is_judged_on_its_own_scale() -> None:
    """+6 ms on 812 ms (+0.7%) used to be Rollback because 6 > 0.003."""
    header = ("variant", "users", "conversions", "guardrail_load_ms_mean", "guardrail_load_ms_std")
    rows = [["control", 200_000, 24_000, 812.0, 300.0], ["treatment", 200_000, 25_000, 818.0, 300.0]]
    report = _report(rows, header)
    (g,) = report.comparisons[0].guardrails
    assert g.assessment is not None and g.assessment.margin == pytest.approx(8.12)
    assert g.status is GuardrailStatus.MINOR  # significant, CI [+4.1, +7.9] within 8.12
    assert report.decision.outcome.value == "launch"


def test_a_lower_is_better_primary_launches_when_it_falls() -> None:
    header = ("variant", "users", "conversions", "checkout_seconds_mean", "checkout_seconds_std")
    rows = [["control", 20_000, 2_400, 40.0, 20.0], ["treatment", 20_000, 2_400, 36.0, 20.0]]
    assert _report(rows, header, primary="checkout_seconds").decision.rule == "primary_worse"
    policy = policy_from_mapping({"metrics": {"checkout_seconds": {"better": "lower"}}})
    report = _report(rows, header, policy, primary="checkout_seconds")
    assert (report.decision.outcome.value, report.decision.rule) == ("launch", "primary_better")
    assert report_to_dict(report)["comparisons"][0]["primary"]["better"] == "lower"
    # and a rise of a lower-is-better primary rolls back
    worse = [["control", 20_000, 2_400, 36.0, 20.0], ["treatment", 20_000, 2_400, 40.0, 20.0]]
    assert _report(worse, header, policy, primary="checkout_seconds").decision.rule == "primary_worse"


def test_a_significant_harm_whose_interval_passes_the_margin_is_inconclusive_not_minor() -> None:
    estimate = _estimate("proportion", 0.0009, 0.0003, 0.0015, 0.003, 0.05)
    policy = Policy()
    (assessed,) = assess_guardrails([("error", estimate, policy.settings("error", "guardrail", "proportion"))], policy)
    assert assessed.status is GuardrailStatus.INCONCLUSIVE
    header = ("variant", "users", "conversions", "guardrail_error")
    rows = [["control", 1_000_000, 120_000, 50_000], ["treatment", 1_000_000, 125_000, 50_900]]
    report = _report(rows, header)
    (g,) = report.comparisons[0].guardrails
    assert g.status is GuardrailStatus.INCONCLUSIVE and g.estimate.p_value < 0.05
    assert g.estimate.absolute_ci.low == pytest.approx(0.0003, abs=1e-5)
    assert report.decision.outcome.value == "launch"
    assert "Guardrail error is inconclusive: a harm up to +0.15 pp cannot be ruled out (margin 0.10 pp)." in report.risks
    assert any("error up to +0.15 pp" in r for r in report.decision.reasons)


def test_harm_tests_are_holm_adjusted_across_an_arms_guardrails() -> None:
    raw = [0.02, 0.03, 0.2]
    estimates = [_estimate("proportion", 0.002, 0.0005, 0.0035, p, 0.2) for p in raw]
    policy = Policy()
    settings = policy.settings("g", "guardrail", "proportion")
    assessed = assess_guardrails([(f"g{i}", e, settings) for i, e in enumerate(estimates)], policy)
    expected = multipletests(raw, method="holm")[1]
    assert [a.p_value_adjusted for a in assessed] == pytest.approx(list(expected), abs=1e-15)
    assert [a.status for a in assessed] == [GuardrailStatus.INCONCLUSIVE] * 3  # 0.06, 0.06, 0.2: none significant
    unadjusted = Policy(guardrail_correction="none")
    statuses = [a.status for a in assess_guardrails([(f"g{i}", e, settings) for i, e in enumerate(estimates)],
                                                    unadjusted)]
    assert statuses == [GuardrailStatus.WORSENED, GuardrailStatus.WORSENED, GuardrailStatus.INCONCLUSIVE]


def test_non_inferiority_mode_holds_and_says_how_many_users_would_show_it() -> None:
    header = ("variant", "users", "conversions", "guardrail_error")
    rows = [["control", 20_000, 2_400, 1_000], ["treatment", 20_000, 2_700, 1_000]]
    assert _report(rows, header).decision.rule == "primary_better"
    report = _report(rows, header, Policy(require_non_inferiority=True))
    assert (report.decision.outcome.value, report.decision.rule) == ("hold", "guardrail_unproven")
    assert report.decision.rule_number == 6
    reason = report.decision.reasons[-1]
    # independent closed form: equal arms need n = (z_.975 + z_.8)² · 2p(1−p) / m² per arm
    p = 0.05
    per_arm = math.ceil((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2 * 2 * p * (1 - p) / 0.001**2)
    found = re.search(r"about ([\d,]+) users in total \(([\d,]+) control \+ ([\d,]+) treatment, ([\d,]+) more", reason)
    assert found is not None, reason
    total, control, treatment, more = (int(g.replace(",", "")) for g in found.groups())
    assert control == treatment == per_arm and total == control + treatment and more == total - 40_000


def test_relative_ci_is_log_scale_golden_to_statsmodels() -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        n_c, n_t = (int(v) for v in rng.integers(50, 5_000_000, size=2))
        c = int(rng.integers(1, n_c)); t = int(rng.integers(1, n_t))  # noqa: E702
        estimate = two_proportion_ztest(ProportionStatistic(n_c, c), ProportionStatistic(n_t, t))
        low, high = confint_proportions_2indep(t, n_t, c, n_c, compare="ratio", method="log")
        assert estimate.relative_ci is not None and estimate.relative_ci_method == "log"
        assert estimate.relative_ci.low == pytest.approx(low - 1.0, rel=1e-9, abs=1e-12)
        assert estimate.relative_ci.high == pytest.approx(high - 1.0, rel=1e-9, abs=1e-12)


def test_relative_ci_of_means_uses_t_on_the_log_scale() -> None:
    from analytics import SampleMeanStatistic, welch_ttest

    control, treatment = SampleMeanStatistic(400, 12.0, 900.0), SampleMeanStatistic(380, 13.5, 1000.0)
    estimate = welch_ttest(control, treatment)
    df = estimate.degrees_of_freedom
    assert df is not None
    se = math.sqrt(1000.0 / (380 * 13.5**2) + 900.0 / (400 * 12.0**2))
    critical = stats.t.ppf(0.975, df)
    assert estimate.relative_ci is not None
    assert estimate.relative_ci.low == pytest.approx(math.exp(math.log(13.5 / 12.0) - critical * se) - 1, rel=1e-12)
    # a mean at or below zero: the log is undefined, the linear interval is used and named
    negative = welch_ttest(SampleMeanStatistic(400, -2.0, 9.0), SampleMeanStatistic(400, 1.0, 9.0))
    assert negative.relative_ci_method == "linear"


def test_relative_ci_never_passes_minus_100_percent() -> None:
    """3 vs 12 conversions of 20,000 used to give '+300%, CI −206% to +806%'."""
    estimate = two_proportion_ztest(ProportionStatistic(20_000, 3), ProportionStatistic(20_000, 12))
    assert estimate.relative_ci is not None and estimate.relative_ci.low > 0  # agrees with p < 0.05
    assert estimate.p_value < 0.05
    rng = np.random.default_rng(11)
    for _ in range(10_000):
        n_c, n_t = (int(v) for v in rng.integers(10, 100_000, size=2))
        rate = float(rng.uniform(0.0005, 0.999))
        c = int(rng.binomial(n_c, rate)); t = int(rng.binomial(n_t, rate * float(rng.uniform(0.0, 3.0))) if  # noqa: E702
                                                  rate * 3 < 1 else rng.binomial(n_t, rate))
        if c == 0:
            continue
        estimate = two_proportion_ztest(ProportionStatistic(n_c, c), ProportionStatistic(n_t, t))
        assert estimate.relative_ci is not None and estimate.relative_ci.low >= -1.0
        assert estimate.relative_ci.low <= estimate.relative_effect <= estimate.relative_ci.high  # type: ignore[operator]


def test_sparse_counts_need_fishers_exact_test_to_agree() -> None:
    header = ("variant", "users", "conversions")
    report = _report([["control", 500, 0], ["treatment", 500, 5]], header)
    (issue,) = [i for i in report.health.issues if i.code == "sparse_counts"]
    assert issue.severity == "warning" and "control" in issue.message
    primary = report.comparisons[0].primary
    assert primary.estimate.p_value < 0.05  # the Wald test alone would launch
    assert primary.p_value_exact == pytest.approx(stats.fisher_exact([[5, 495], [0, 500]]).pvalue, rel=1e-12)
    assert primary.p_value_exact == pytest.approx(0.0619, abs=1e-4)
    assert (report.decision.outcome.value, report.decision.rule) == ("hold", "inconclusive")
    assert "Fisher's exact test does not" in report.decision.reasons[0]
    # enough counts: no exact p, no warning
    dense = _report([["control", 5_000, 500], ["treatment", 5_000, 600]], header)
    assert dense.comparisons[0].primary.p_value_exact is None
    assert not [i for i in dense.health.issues if i.code == "sparse_counts"]
    # sparse but both tests agree: launches
    agree = _report([["control", 20_000, 3], ["treatment", 20_000, 30]], header)
    assert agree.decision.outcome.value == "launch" and agree.comparisons[0].primary.p_value_exact is not None


def test_multi_arm_simultaneous_intervals_and_indistinguishable_winners() -> None:
    header = ("variant", "users", "conversions")
    rows = [["control", 50_000, 6_000], ["a", 50_000, 6_500], ["b", 50_000, 6_510]]
    report = _report(rows, header)
    for comparison, (_, n, conversions) in zip(report.comparisons, rows[1:], strict=True):
        low, high = confint_proportions_2indep(int(conversions), int(n), 6_000, 50_000, method="wald", alpha=0.05 / 2)
        assert comparison.primary.ci_simultaneous is not None
        assert comparison.primary.ci_simultaneous.low == pytest.approx(low, rel=1e-9)
        assert comparison.primary.ci_simultaneous.high == pytest.approx(high, rel=1e-9)
    assert report.decision.winner == "b"
    between = two_proportion_ztest(ProportionStatistic(50_000, 6_500), ProportionStatistic(50_000, 6_510))
    assert between.p_value > 0.9
    assert any("indistinguishable" in r and f"p = {format_p(between.p_value)}" in r for r in report.decision.reasons)
    clear = _report([["control", 50_000, 6_000], ["a", 50_000, 6_400], ["b", 50_000, 6_900]], header)
    assert not any("indistinguishable" in r for r in clear.decision.reasons)
    assert any("significantly better than the runner-up a" in r for r in clear.decision.reasons)
    single = _report(rows[:2], header)
    assert single.comparisons[0].primary.ci_simultaneous is None


def _numbers(text: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*\d|\d", text)]


def test_rule_7_sentence_adds_up_and_uses_the_planned_mde() -> None:
    header = ("variant", "users", "conversions")
    rows = [["control", 20_000, 2_400], ["treatment", 20_000, 2_430]]
    report = _report(rows, header, Policy(planned_mde=0.005))
    hint = report.decision.reasons[-1]
    found = re.search(r"About ([\d,]+) more users are needed \(([\d,]+) more in control and ([\d,]+) more in treatment, "
                      r"for ([\d,]+) \+ ([\d,]+) = ([\d,]+) in total\) to detect the planned MDE of 0.50 pp", hint)
    assert found is not None, hint
    more, more_c, more_t, plan_c, plan_t, total = (int(g.replace(",", "")) for g in found.groups())
    assert more == more_c + more_t and total == plan_c + plan_t
    assert (plan_c - 20_000, plan_t - 20_000) == (more_c, more_t)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert plan_c == math.ceil(z**2 * (0.12 * 0.88 + 0.125 * 0.875) / 0.005**2)
    suffices = _report(rows, header, Policy(planned_mde=0.01))
    assert "already suffices to detect the planned MDE of 1.00 pp" in suffices.decision.reasons[-1]
    relative = _report(rows, header, policy_from_mapping({"planned_mde": "5%"}))
    assert "the planned MDE of 5% (0.60 pp)" in relative.decision.reasons[-1]


def test_a_significant_effect_below_the_planned_mde_is_a_risk() -> None:
    header = ("variant", "users", "conversions")
    rows = [["control", 200_000, 24_000], ["treatment", 200_000, 24_600]]
    report = _report(rows, header, Policy(planned_mde=0.05, planned_mde_relative=True))
    assert report.decision.outcome.value == "launch"
    assert "The effect on conversions (+0.30 pp) is below the planned MDE of 5% (0.60 pp)." in report.risks
    assert not _report(rows, header, Policy(planned_mde=0.002)).risks


def test_report_carries_schema_2_rules_version_and_the_settings_used() -> None:
    header = ("variant", "users", "conversions", "guardrail_cancel")
    rows = [["control", 20_000, 2_400, 200], ["treatment", 20_000, 2_700, 200]]
    policy = policy_from_mapping({"metrics": {"cancel": {"margin": "10%"}}})
    body = report_to_dict(_report(rows, header, policy))
    assert (body["schema_version"], body["rules_version"]) == (2, 2)
    (g,) = body["comparisons"][0]["guardrails"]
    assert g["better"] == "lower" and g["better_default"] is True
    assert g["margin"] == {"value": "10%", "absolute": pytest.approx(0.001), "relative": True, "default": False}
    assert g["severe_margin"]["default"] is True and g["severe_margin"]["value"] == 0.003
    assert body["policy"]["metrics"] == {"cancel": {"margin": "10%"}}
    assert body["comparisons"][0]["primary"]["relative_ci_method"] == "log"


def test_bayesian_summary_follows_the_declared_direction() -> None:
    header = ("variant", "users", "conversions", "checkout_seconds_mean", "checkout_seconds_std")
    rows = [["control", 20_000, 2_400, 40.0, 20.0], ["treatment", 20_000, 2_400, 39.5, 20.0]]
    higher = _report(rows, header, primary="checkout_seconds").comparisons[0].primary.bayesian
    lower = _report(rows, header, policy_from_mapping({"metrics": {"checkout_seconds": {"better": "lower"}}}),
                    primary="checkout_seconds").comparisons[0].primary.bayesian
    assert higher is not None and lower is not None
    # flat-prior normal posterior: P(t < c) = Φ(−Δ/SE) with Δ = −0.5, SE = 20·√(2/20,000) = 0.2
    assert lower.prob_treatment_better == pytest.approx(stats.norm.cdf(0.5 / 0.2), rel=1e-9)
    assert higher.prob_treatment_better == pytest.approx(1 - lower.prob_treatment_better, rel=1e-9)
    assert (lower.expected_loss_treatment, lower.expected_loss_control) == (higher.expected_loss_control,
                                                                            higher.expected_loss_treatment)


def test_a_multi_arm_hold_is_explained_by_the_arm_closest_to_launch() -> None:
    header = ("variant", "users", "conversions", "guardrail_error")
    rows = [["control", 40_000, 4_800, 800], ["a", 40_000, 4_820, 800], ["b", 40_000, 5_200, 830]]
    report = _report(rows, header, Policy(require_non_inferiority=True))
    assert [a.rule for a in report.decision.arms] == ["inconclusive", "guardrail_unproven"]
    assert (report.decision.outcome.value, report.decision.rule) == ("hold", "guardrail_unproven")
    assert report.decision.reasons[0].startswith("[b] ")


def test_an_srm_hold_still_lists_its_risks() -> None:
    header = ("variant", "users", "conversions", "guardrail_error")
    report = _report([["control", 10_000, 1_200, 200], ["treatment", 11_000, 1_500, 230]], header)
    assert report.decision.rule == "srm"
    assert any(r.startswith("Guardrail error is inconclusive") for r in report.risks)
