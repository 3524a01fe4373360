"""Guardrail statuses and the Launch / Hold / Rollback rules (SPEC §4, rules v2).

Each metric has a declared direction (``better``) and margins (:class:`MetricSettings`).
A guardrail is judged on the *harm scale* — the change in its bad direction — by its
significance (Holm-adjusted across the arm's guardrails) and by its two-sided CI against
its own margins, so a harm that cannot be ruled out is never called "within tolerance".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from analytics.inference import EffectEstimate, holm_adjust, z_critical
from analytics.policy import Better, Margin, MetricSettings, Policy
from analytics.sufficient import Interval
from analytics.wording import format_number, format_points, p_clause

__all__ = [
    "RULE_NUMBERS",
    "THRESHOLD_TOLERANCE",
    "ArmDecision",
    "Decision",
    "GuardrailAssessment",
    "GuardrailStatus",
    "Outcome",
    "RuleId",
    "assess_guardrails",
    "decide_arm",
    "describe_margin",
    "exceeds",
    "format_amount",
    "format_effect",
    "guardrail_status",
    "harm_interval",
    "non_inferiority_sample",
    "unproven_text",
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
    "guardrail_unproven",
    "primary_better",
    "inconclusive",
]

RULE_NUMBERS: dict[str, int] = {
    "data_blocked": 1,
    "srm": 2,
    "guardrail_severe": 3,
    "primary_worse": 4,
    "guardrail_worsened": 5,
    "guardrail_unproven": 6,
    "primary_better": 6,
    "inconclusive": 7,
}


@dataclass(frozen=True)
class ArmDecision:
    """The decision rules applied to one treatment arm against control (SPEC §4).

    Attributes
    ----------
    treatment
        The arm's name as it appears in the file.
    outcome
        Launch, Hold or Rollback for this arm alone; :class:`Decision` combines the arms.
    rule
        The first rule that fired (e.g. ``"guardrail_severe"``); ``RULE_NUMBERS`` gives its number.
    reasons
        Sentences for the memo, the first one naming the rule's cause with its numbers.
    """

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


@dataclass(frozen=True)
class GuardrailAssessment:
    """One guardrail of one arm judged against its margins (SPEC §4.3).

    ``harm`` and ``harm_ci`` are on the harm scale (positive = worse); ``margin`` and
    ``severe_margin`` are absolute, in the metric's unit (a relative margin times the control).
    """

    name: str
    estimate: EffectEstimate
    settings: MetricSettings
    status: GuardrailStatus
    harm: float
    harm_ci: Interval
    p_value_adjusted: float
    margin: float
    severe_margin: float


def format_amount(value: float, metric_type: str, *, signed: bool = True) -> str:
    """A change in a metric's unit: ``+0.15 pp`` for rates, ``+6.1`` for means and ratios."""
    if metric_type == "proportion":
        return format_points(value, signed=signed)
    return format_number(value, signed=signed)


def format_effect(estimate: EffectEstimate) -> str:
    """``+1.10 pp (+9.0%)`` for rates, ``+0.90 (+7.3%)`` for means."""
    text = format_amount(estimate.absolute_effect, estimate.metric_type)
    if estimate.relative_effect is not None:
        text += f" ({estimate.relative_effect:+.1%})"
    return text


def describe_margin(margin: Margin, metric_type: str, absolute: float) -> str:
    """``0.1 pp``, ``0.002`` or ``1% of control (8.12)``."""
    if margin.relative:
        return f"{margin.value * 100:.4g}% of control ({format_amount(absolute, metric_type, signed=False)})"
    return format_amount(absolute, metric_type, signed=False)


def exceeds(value: float, threshold: float) -> bool:
    """True when ``value`` is above ``threshold`` by more than 1e-12 (SPEC §4)."""
    return value > threshold + THRESHOLD_TOLERANCE


def harm_interval(estimate: EffectEstimate, better: Better) -> tuple[float, Interval]:
    """The change in the bad direction and its CI on that scale."""
    if better == "lower":
        return estimate.absolute_effect, estimate.absolute_ci
    return -estimate.absolute_effect, Interval(-estimate.absolute_ci.high, -estimate.absolute_ci.low)


def guardrail_status(harm: float, harm_ci: Interval, p_value_adjusted: float, *, alpha: float, margin: float,
                     severe_margin: float, informative: bool = True) -> GuardrailStatus:
    """SPEC §4.3: severe / worsened (significant harm beyond M / m), inconclusive (the CI's
    harmful end beyond m), minor (significant harm whose CI stays within m), ok otherwise.

    A value exactly at a margin (within 1e-12) does not exceed it. ``informative`` is False for
    a zero-variance comparison, which is never significant.
    """
    significant = informative and p_value_adjusted < alpha and harm > 0
    if significant and exceeds(harm, severe_margin):
        return GuardrailStatus.SEVERE
    if significant and exceeds(harm, margin):
        return GuardrailStatus.WORSENED
    if exceeds(harm_ci.high, margin):
        return GuardrailStatus.INCONCLUSIVE
    if significant:
        return GuardrailStatus.MINOR
    return GuardrailStatus.OK


def assess_guardrails(guardrails: Sequence[tuple[str, EffectEstimate, MetricSettings]],
                      policy: Policy) -> tuple[GuardrailAssessment, ...]:
    """Judge one arm's guardrails: harm p-values Holm-adjusted across them (unless
    ``guardrail_correction = "none"``), each against its own margins."""
    raw = [estimate.p_value for _, estimate, _ in guardrails]
    adjusted = holm_adjust(raw) if policy.guardrail_correction == "holm" and len(raw) > 1 else raw
    found = []
    for (name, estimate, settings), p in zip(guardrails, adjusted, strict=True):
        harm, ci = harm_interval(estimate, settings.better)
        margin = settings.margin.absolute(estimate.control_value)
        severe = max(settings.severe_margin.absolute(estimate.control_value), margin)
        status = guardrail_status(harm, ci, p, alpha=policy.alpha, margin=margin, severe_margin=severe,
                                  informative=estimate.standard_error > 0)
        found.append(GuardrailAssessment(name, estimate, settings, status, harm, ci, p, margin, severe))
    return tuple(found)


def non_inferiority_sample(estimate: EffectEstimate, margin: float, *, alpha: float, power: float
                           ) -> tuple[int, int] | None:
    """Users per arm (control, treatment; same split as now) for which the harm's upper CI bound
    falls below ``margin`` with probability ``power`` if the true harm is 0:
    SE_needed = margin / (z_{1−α/2} + z_power), and SE² scales as 1/n. ``None`` when it cannot
    be computed (zero margin or no variance)."""
    if margin <= 0 or estimate.standard_error <= 0:
        return None
    factor = (estimate.standard_error * (z_critical(alpha) + z_critical(2.0 * (1.0 - power))) / margin) ** 2
    return math.ceil(estimate.control_n * factor), math.ceil(estimate.treatment_n * factor)


def _harm_text(g: GuardrailAssessment) -> str:
    kind = g.estimate.metric_type
    return (f"{g.name} harm {format_amount(g.harm, kind)} (CI up to {format_amount(g.harm_ci.high, kind)}, "
            f"{p_clause(g.p_value_adjusted)}{' adjusted' if g.p_value_adjusted != g.estimate.p_value else ''}; "
            f"margin {describe_margin(g.settings.margin, kind, g.margin)}, severe "
            f"{describe_margin(g.settings.severe_margin, kind, g.severe_margin)})")


def unproven_text(g: GuardrailAssessment, *, alpha: float, power: float) -> str:
    """What cannot be ruled out for an inconclusive guardrail, and the sample that would settle it."""
    kind = g.estimate.metric_type
    text = (f"{g.name}: a harm up to {format_amount(g.harm_ci.high, kind)} cannot be ruled out (margin "
            f"{describe_margin(g.settings.margin, kind, g.margin)})")
    sample = non_inferiority_sample(g.estimate, g.margin, alpha=alpha, power=power)
    if sample is not None:
        more = max(0, sample[0] - g.estimate.control_n) + max(0, sample[1] - g.estimate.treatment_n)
        text += (f"; about {sample[0] + sample[1]:,} users in total ({sample[0]:,} control + {sample[1]:,} treatment, "
                 f"{more:,} more than now) would show non-inferiority at {power:.0%} power if the true harm is 0")
    return text


def decide_arm(
    treatment: str,
    *,
    primary_metric: str,
    primary: EffectEstimate,
    better: Better,
    primary_significant: bool,
    primary_p: float,
    exact_p: float | None,
    guardrails: Sequence[GuardrailAssessment],
    policy: Policy,
    inconclusive_hint: str,
) -> ArmDecision:
    """Rules 3–7 for one treatment arm (rules 1–2 are about the whole file).

    ``better`` is the primary metric's declared direction; ``exact_p`` (Fisher's exact test,
    present for sparse counts) must agree with the Wald test for rules 4 and 6.
    """
    def of(status: GuardrailStatus) -> list[GuardrailAssessment]:
        return [g for g in guardrails if g.status is status]

    severe = of(GuardrailStatus.SEVERE)
    if severe:
        return ArmDecision(treatment, Outcome.ROLLBACK, "guardrail_severe", (
            f"Guardrail {', '.join(g.name for g in severe)} worsened significantly beyond its severe margin: "
            f"{'; '.join(_harm_text(g) for g in severe)}.",))
    p_text = p_clause(primary_p).replace("p ", "always-valid p ", 1) if policy.sequential else p_clause(primary_p)
    effect = f"{primary_metric} {format_effect(primary)} ({p_text}; {better} is better)"
    improvement = primary.absolute_effect if better == "higher" else -primary.absolute_effect
    exact_agrees = exact_p is None or exact_p < policy.alpha
    if primary_significant and improvement < 0 and exact_agrees:
        return ArmDecision(treatment, Outcome.ROLLBACK, "primary_worse", (
            f"The primary metric is significantly worse in {treatment}: {effect}.",))
    worsened = of(GuardrailStatus.WORSENED)
    if worsened:
        return ArmDecision(treatment, Outcome.HOLD, "guardrail_worsened", (
            f"Guardrail {', '.join(g.name for g in worsened)} worsened significantly beyond its margin: "
            f"{'; '.join(_harm_text(g) for g in worsened)}.",))
    if primary_significant and improvement > 0 and exact_agrees:
        reasons = [f"The primary metric is significantly better in {treatment}: {effect}."]
        inconclusive = of(GuardrailStatus.INCONCLUSIVE)
        if inconclusive and policy.require_non_inferiority:
            return ArmDecision(treatment, Outcome.HOLD, "guardrail_unproven", (
                *reasons,
                "The policy requires every guardrail to be shown non-inferior, and "
                f"{len(inconclusive)} {'is' if len(inconclusive) == 1 else 'are'} not: "
                + "; ".join(unproven_text(g, alpha=policy.alpha, power=policy.power) for g in inconclusive) + "."))
        if inconclusive:
            reasons.append("Not ruled out, to watch during rollout: " + "; ".join(
                f"{g.name} up to {format_amount(g.harm_ci.high, g.estimate.metric_type)} (margin "
                f"{describe_margin(g.settings.margin, g.estimate.metric_type, g.margin)})" for g in inconclusive) + ".")
        return ArmDecision(treatment, Outcome.LAUNCH, "primary_better", tuple(reasons))
    reasons = [f"The primary metric shows no significant difference in {treatment}: {effect}."]
    if primary_significant and not exact_agrees:
        reasons = [f"The Wald test finds {primary_metric} changed in {treatment} ({format_effect(primary)}, "
                   f"{p_clause(primary_p)}) but Fisher's exact test does not ({p_clause(exact_p)}); with counts this sparse "
                   "the exact test decides, so the result is inconclusive."]
    return ArmDecision(treatment, Outcome.HOLD, "inconclusive", (*reasons, inconclusive_hint))
