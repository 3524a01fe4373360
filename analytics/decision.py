"""Guardrail statuses and the Launch / Hold / Rollback rules (SPEC §4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from analytics.inference import EffectEstimate
from analytics.policy import HarmDirection, Policy

__all__ = [
    "ArmDecision",
    "Decision",
    "GuardrailStatus",
    "Outcome",
    "RuleId",
    "exceeds",
    "format_effect",
    "guardrail_status",
    "harm_of",
]

THRESHOLD_TOLERANCE = 1e-12


class Outcome(StrEnum):
    LAUNCH = "launch"
    HOLD = "hold"
    ROLLBACK = "rollback"


class GuardrailStatus(StrEnum):
    OK = "ok"
    MINOR = "minor"
    INCONCLUSIVE = "inconclusive"
    WORSENED = "worsened"
    SEVERE = "severe"


RuleId = Literal[
    "data_blocked",
    "srm",
    "guardrail_severe",
    "primary_worse",
    "guardrail_worsened",
    "primary_better",
    "inconclusive",
]

RULE_NUMBERS: dict[str, int] = {
    "data_blocked": 1,
    "srm": 2,
    "guardrail_severe": 3,
    "primary_worse": 4,
    "guardrail_worsened": 5,
    "primary_better": 6,
    "inconclusive": 7,
}


@dataclass(frozen=True)
class ArmDecision:
    treatment: str
    outcome: Outcome
    rule: RuleId
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """The overall decision: the rule that fired, why, and (for Launch) the arm to ship."""

    outcome: Outcome
    rule: RuleId
    reasons: tuple[str, ...]
    winner: str | None
    arms: tuple[ArmDecision, ...]

    @property
    def rule_number(self) -> int:
        return RULE_NUMBERS[self.rule]


def format_effect(estimate: EffectEstimate) -> str:
    """``+1.10 pp (+9.0%)`` for rates, ``+0.90 (+7.3%)`` for means."""
    if estimate.metric_type == "proportion":
        text = f"{estimate.absolute_effect * 100:+.2f} pp"
    else:
        text = f"{estimate.absolute_effect:+.4g}"
    if estimate.relative_effect is not None:
        text += f" ({estimate.relative_effect:+.1%})"
    return text


def exceeds(value: float, threshold: float) -> bool:
    """True when ``value`` is above ``threshold`` by more than 1e-12 (SPEC §4)."""
    return value > threshold + THRESHOLD_TOLERANCE


def harm_of(estimate: EffectEstimate, direction: HarmDirection) -> tuple[float, float]:
    """The change in the bad direction and the harmful end of its CI."""
    if direction == "increase":
        return estimate.absolute_effect, estimate.absolute_ci.high
    return -estimate.absolute_effect, -estimate.absolute_ci.low


def guardrail_status(estimate: EffectEstimate, direction: HarmDirection, policy: Policy) -> GuardrailStatus:
    """Classify a guardrail by the size and significance of its harm.

    severe: significant harm > severe threshold; worsened: significant harm >
    worsened threshold; minor: significant harm within the worsened threshold;
    inconclusive: not significant but the CI's harmful end exceeds the worsened
    threshold; ok otherwise (including a significant improvement).
    """
    harm, harmful_end = harm_of(estimate, direction)
    significant = estimate.p_value < policy.alpha
    if significant and harm > 0:
        if exceeds(harm, policy.guardrail_severe):
            return GuardrailStatus.SEVERE
        if exceeds(harm, policy.guardrail_worsened):
            return GuardrailStatus.WORSENED
        return GuardrailStatus.MINOR
    if not significant and exceeds(harmful_end, policy.guardrail_worsened):
        return GuardrailStatus.INCONCLUSIVE
    return GuardrailStatus.OK


def decide_arm(
    treatment: str,
    *,
    primary_metric: str,
    primary: EffectEstimate,
    primary_significant: bool,
    primary_p: float,
    guardrails: Sequence[tuple[str, GuardrailStatus, EffectEstimate]],
    policy: Policy,
    inconclusive_hint: str,
) -> ArmDecision:
    """Rules 3–7 for one treatment arm (rules 1–2 are about the whole file)."""
    def names(status: GuardrailStatus) -> list[str]:
        return [name for name, s, _ in guardrails if s is status]

    def describe(name: str, estimate: EffectEstimate) -> str:
        return f"{name} changed by {format_effect(estimate)} (p = {estimate.p_value:.3g})"

    severe = names(GuardrailStatus.SEVERE)
    if severe:
        details = "; ".join(describe(n, e) for n, s, e in guardrails if s is GuardrailStatus.SEVERE)
        return ArmDecision(treatment, Outcome.ROLLBACK, "guardrail_severe", (
            f"Guardrail {', '.join(severe)} worsened significantly by more than the severe threshold "
            f"({policy.guardrail_severe:g}): {details}.",))
    effect = f"{primary_metric} {format_effect(primary)} (p = {primary_p:.3g})"
    if primary_significant and primary.absolute_effect < 0:
        return ArmDecision(treatment, Outcome.ROLLBACK, "primary_worse", (
            f"The primary metric is significantly worse in {treatment}: {effect}.",))
    worsened = names(GuardrailStatus.WORSENED)
    if worsened:
        details = "; ".join(describe(n, e) for n, s, e in guardrails if s is GuardrailStatus.WORSENED)
        return ArmDecision(treatment, Outcome.HOLD, "guardrail_worsened", (
            f"Guardrail {', '.join(worsened)} worsened significantly by more than the worsened threshold "
            f"({policy.guardrail_worsened:g}): {details}.",))
    if primary_significant and primary.absolute_effect > 0:
        reasons = [f"The primary metric is significantly better in {treatment}: {effect}."]
        inconclusive = names(GuardrailStatus.INCONCLUSIVE)
        if inconclusive:
            reasons.append(f"Guardrail(s) {', '.join(inconclusive)} are inconclusive: harm beyond the worsened "
                           "threshold cannot yet be ruled out; watch them during rollout.")
        return ArmDecision(treatment, Outcome.LAUNCH, "primary_better", tuple(reasons))
    return ArmDecision(treatment, Outcome.HOLD, "inconclusive", (
        f"The primary metric shows no significant difference in {treatment}: {effect}.", inconclusive_hint))
