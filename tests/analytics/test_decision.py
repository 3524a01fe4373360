"""One test per decision rule (SPEC §4), the guardrail statuses and the threshold boundaries."""

from __future__ import annotations

import math

import pytest

from analytics import (
    DEFAULT_POLICY,
    ExperimentInfo,
    InputInfo,
    Policy,
    RawTable,
    analyze,
    validate_aggregated,
)


def _report(rows: list[list[object]], header: tuple[str, ...] = ("variant", "users", "conversions", "guardrail_cancel"),
            policy: Policy = DEFAULT_POLICY):
    table = RawTable(header, tuple(tuple(str(c) for c in r) for r in rows))
    validation = validate_aggregated(table, policy=policy)
    return analyze(validation.data, validation.issues, policy=policy, experiment=ExperimentInfo("t"),
                   input_info=InputInfo("aggregated", len(rows), "0" * 64), analytics_version="test")


def test_rule_1_blocked_data_holds() -> None:
    report = _report([["control", 1000, 1200, 1], ["treatment", 1000, 100, 1]])
    assert (report.decision.outcome.value, report.decision.rule) == ("hold", "data_blocked")
    assert report.comparisons == ()
    assert "1200 conversions" in report.decision.reasons[0]


def test_rule_2_srm_holds_but_keeps_comparisons() -> None:
    report = _report([["control", 10_000, 1200, 100], ["treatment", 11_000, 1500, 110]])
    assert report.health.srm is not None and report.health.srm.result.p_value < 1e-5
    assert report.health.status.value == "blocked"
    assert (report.decision.outcome.value, report.decision.rule) == ("hold", "srm")
    assert len(report.comparisons) == 1


def test_rule_3_severe_guardrail_rolls_back_even_when_primary_wins() -> None:
    report = _report([["control", 100_000, 12_000, 1_200], ["treatment", 100_000, 13_000, 1_700]])
    assert report.comparisons[0].primary.significant
    assert (report.decision.outcome.value, report.decision.rule) == ("rollback", "guardrail_severe")


def test_rule_4_primary_worse_rolls_back() -> None:
    report = _report([["control", 100_000, 12_000, 1_200], ["treatment", 100_000, 11_000, 1_190]])
    assert (report.decision.outcome.value, report.decision.rule) == ("rollback", "primary_worse")


def test_rule_5_worsened_guardrail_holds() -> None:
    report = _report([["control", 100_000, 12_000, 1_200], ["treatment", 100_000, 13_000, 1_400]])
    assert (report.decision.outcome.value, report.decision.rule) == ("hold", "guardrail_worsened")


def test_rule_6_primary_better_launches() -> None:
    report = _report([["control", 100_000, 12_000, 1_200], ["treatment", 100_000, 13_000, 1_200]])
    assert (report.decision.outcome.value, report.decision.rule) == ("launch", "primary_better")
    assert report.decision.winner == "treatment"


def test_rule_7_inconclusive_holds_and_says_how_many_users_are_needed() -> None:
    report = _report([["control", 20_000, 2_400, 200], ["treatment", 20_000, 2_430, 200]],
                     policy=Policy(planned_mde=0.01))
    assert (report.decision.outcome.value, report.decision.rule) == ("hold", "inconclusive")
    hint = report.decision.reasons[-1]
    assert "planned MDE" in hint or "suffices" in hint


def test_multi_arm_launches_best_passing_arm_with_holm() -> None:
    report = _report([["control", 50_000, 6_000, 600], ["a", 50_000, 6_350, 600], ["b", 50_000, 6_500, 600]])
    raw = [c.primary.estimate.p_value for c in report.comparisons]
    adjusted = [c.primary.p_value_adjusted for c in report.comparisons]
    assert adjusted[0] != raw[0] or adjusted[1] != raw[1]
    assert report.decision.outcome.value == "launch" and report.decision.winner == "b"


def test_multi_arm_rolls_back_only_when_every_arm_rolls_back() -> None:
    both = _report([["control", 100_000, 12_000, 1_200], ["a", 100_000, 11_000, 1_200], ["b", 100_000, 11_100, 1_200]])
    assert both.decision.outcome.value == "rollback"
    one = _report([["control", 100_000, 12_000, 1_200], ["a", 100_000, 11_000, 1_200], ["b", 100_000, 12_050, 1_200]])
    assert one.decision.outcome.value == "hold"


def test_policy_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="alpha"):
        Policy(alpha=0.0)
    with pytest.raises(ValueError, match="guardrail_worsened"):
        Policy(guardrail_worsened=0.01, guardrail_severe=0.003)
    with pytest.raises(ValueError, match="srm_blocked_p"):
        Policy(srm_warning_p=1e-6, srm_blocked_p=1e-3)


def test_report_never_contains_nan() -> None:
    report = _report([["control", 1000, 0, 0], ["treatment", 1000, 0, 0]])
    from analytics import report_to_dict

    def walk(value: object) -> None:
        if isinstance(value, float):
            assert math.isfinite(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(report_to_dict(report))
    assert report.decision.rule == "inconclusive"
