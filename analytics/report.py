"""The report: every comparison, the health check and the decision, as one plain object.

:func:`analyze` is the single entry point used by the CLI, the dashboard and replay;
:func:`report_to_dict` gives the JSON contract of SPEC §5 (``schema_version`` 2, rules v2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from analytics.bayesian import (
    BayesianSummary,
    beta_binomial_resolves,
    beta_binomial_summary,
    normal_summary,
    posterior_to_dict,
)
from analytics.cuped import CupedResult, cuped_test
from analytics.decision import (
    RULE_NUMBERS,
    ArmDecision,
    Decision,
    GuardrailAssessment,
    GuardrailStatus,
    Outcome,
    assess_guardrails,
    decide_arm,
    describe_margin,
    format_amount,
)
from analytics.health import ExperimentData, HealthStatus, Issue, IssueCode, MetricData, Segment, overall_status
from analytics.inference import (
    EffectEstimate,
    benjamini_hochberg_adjust,
    fisher_exact_p,
    holm_adjust,
    interval_at,
    ratio_ztest,
    two_proportion_ztest,
    welch_ttest,
)
from analytics.policy import RULES_VERSION, HarmDirection, Margin, MetricSettings, Policy, SplitMismatch, unknown_metric_message
from analytics.power import MAX_PLANNED_USERS, SampleSizePlan, detectable_effect, plan_sample_size, required_users
from analytics.sequential import SequentialResult, always_valid
from analytics.srm import SrmResult, srm_check
from analytics.sufficient import Interval, ProportionStatistic, RatioStatistic, SampleMeanStatistic, Statistic
from analytics.timeline import DailySrm, TimelinePoint, daily_srm
from analytics.wording import format_count, p_clause

__all__ = [
    "SCHEMA_VERSION",
    "SPARSE_COUNT",
    "Comparison",
    "Direction",
    "ExperimentInfo",
    "GuardrailResult",
    "Health",
    "InputInfo",
    "MetricResult",
    "Report",
    "SegmentResult",
    "SrmSummary",
    "analyze",
    "analyze_segments",
    "build_timeline",
    "compare_metric",
    "decision_view",
    "metric_estimate",
    "report_to_dict",
    "sparse_arms",
]

SCHEMA_VERSION = 2
#: Fewer successes or failures than this in an arm's primary rate is "sparse" (SPEC §4.4).
SPARSE_COUNT = 10
Direction = Literal["positive", "negative", "none"]


@dataclass(frozen=True)
class ExperimentInfo:
    """What the report is about: the experiment's ``name``, its ``hypothesis`` (free text) and the
    ``primary_metric`` the decision is made on (a column stem of the file)."""

    name: str
    hypothesis: str | None = None
    primary_metric: str = "conversions"


@dataclass(frozen=True)
class InputInfo:
    """The input analysed: ``kind`` (one row per variant, or one row per user), the file's data
    ``rows`` and the ``sha256`` of its bytes (replay refuses another input under the same id)."""

    kind: Literal["aggregated", "user_level"]
    rows: int
    sha256: str


@dataclass(frozen=True)
class SrmSummary:
    """The SRM test (``result``) and the status the policy's thresholds give its p-value."""

    result: SrmResult
    status: HealthStatus


@dataclass(frozen=True)
class Health:
    """The data-quality verdict: ``status`` is the worst severity among ``issues`` and the SRM
    check (Healthy when there are none); ``srm`` is ``None`` when the arms could not be counted."""

    status: HealthStatus
    issues: tuple[Issue, ...]
    srm: SrmSummary | None


@dataclass(frozen=True)
class MetricResult:
    """A primary or secondary metric of one arm against control.

    Attributes
    ----------
    metric
        The metric's name (the column stem of the file).
    estimate
        The test the decision reads: CUPED-adjusted when ``cuped`` applied, else the plain one.
    p_value_adjusted
        Primary: the p the decision reads (always-valid when the policy is sequential), Holm-adjusted
        across the treatment arms (unchanged for an A/B test). Secondary: the test's own p.
    significant
        ``p_value_adjusted < α`` and the test is informative (a standard error above 0).
    direction
        The sign of a significant change (``"none"`` when not significant); whether that is good
        follows from ``settings.better``.
    bayesian
        The Bayesian summary with its posteriors (for reference; it never drives the decision);
        ``None`` for secondary metrics.
    cuped
        The adjusted and unadjusted tests when a pre-period covariate exists, else ``None``.
    settings
        The metric's direction and margins as the policy declared them or as defaulted.
    ci_simultaneous
        The absolute CI at 1 − α/k for k treatment arms (Bonferroni), shown beside the Holm p;
        ``None`` for an A/B test.
    p_value_exact
        Fisher's exact p when the counts are sparse (rates only), else ``None``.
    sequential
        The always-valid CI and p (SPEC §3.1) when the policy is sequential, else ``None``.
    """

    metric: str
    estimate: EffectEstimate
    p_value_adjusted: float
    significant: bool
    direction: Direction
    bayesian: BayesianSummary | None
    cuped: CupedResult | None = None
    settings: MetricSettings | None = None
    ci_simultaneous: Interval | None = None
    p_value_exact: float | None = None
    sequential: SequentialResult | None = None


@dataclass(frozen=True)
class GuardrailResult:
    """A guardrail of one arm against control, judged against its margins.

    Attributes
    ----------
    metric
        The guardrail's name (without the ``guardrail_`` prefix of an aggregated file).
    estimate
        Its test (CUPED-adjusted when ``cuped`` applied).
    harm_direction
        Which change is harm: ``"increase"`` (errors, latency) or ``"decrease"``.
    status
        OK, minor, inconclusive, worsened or severe (SPEC §4.3), from ``assessment``.
    cuped
        As in :class:`MetricResult`.
    assessment
        The harm on its own scale (positive = worse), its CI, the margins in the metric's unit and
        the Holm-adjusted harm p across the arm's guardrails.
    sequential
        The always-valid CI and p when the policy is sequential, else ``None``.
    """

    metric: str
    estimate: EffectEstimate
    harm_direction: HarmDirection
    status: GuardrailStatus
    cuped: CupedResult | None = None
    assessment: GuardrailAssessment | None = None
    sequential: SequentialResult | None = None


@dataclass(frozen=True)
class Comparison:
    """One treatment arm against control: its ``primary`` result, each guardrail and each
    secondary metric (arm names as in the file)."""

    control: str
    treatment: str
    primary: MetricResult
    guardrails: tuple[GuardrailResult, ...]
    secondary: tuple[MetricResult, ...] = ()


@dataclass(frozen=True)
class SegmentResult:
    """The primary metric of one treatment within one segment value, with that segment's SRM."""

    column: str
    value: str
    control: str
    treatment: str
    estimate: EffectEstimate
    p_value_adjusted: float
    significant: bool
    srm: SrmSummary


@dataclass(frozen=True)
class Report:
    """Everything one analysis found; :func:`report_to_dict` gives its JSON (SPEC §5).

    Attributes
    ----------
    experiment, input, health
        What was analysed and whether the data can be trusted.
    comparisons
        One per treatment arm; empty when the data is Blocked (SRM alone keeps them).
    decision
        Launch, Hold or Rollback, the rule that fired and its reasons, per arm and overall.
    policy
        Every threshold the decision used, as resolved (defaults filled in).
    analytics_version, schema_version, rules_version
        What computed the report; ``replay`` calls a difference explained by them a version change.
    expected_share
        The planned share of each arm (normalised), as the SRM check used it.
    segments, segment_flags
        Per-segment primary effects (user-level files with segment columns) and the columns whose
        segments disagree in sign.
    risks
        Sentences for the memo: harms not ruled out, significant harms within the margin, effects
        below the planned MDE.
    timeline, srm_daily
        The cumulative effect and the SRM check per day (daily exports; empty otherwise).
    """

    experiment: ExperimentInfo
    input: InputInfo
    health: Health
    comparisons: tuple[Comparison, ...]
    decision: Decision
    policy: Policy
    analytics_version: str
    expected_share: dict[str, float] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    segments: tuple[SegmentResult, ...] = ()
    segment_flags: tuple[str, ...] = ()
    risks: tuple[str, ...] = ()
    rules_version: int = RULES_VERSION
    timeline: tuple[TimelinePoint, ...] = ()
    srm_daily: tuple[DailySrm, ...] = ()


def compare_metric(control: Statistic, treatment: Statistic, *, alpha: float) -> EffectEstimate:
    """The SPEC §3 test for a pair of statistics of the same kind."""
    if isinstance(control, ProportionStatistic) and isinstance(treatment, ProportionStatistic):
        return two_proportion_ztest(control, treatment, alpha=alpha)
    if isinstance(control, SampleMeanStatistic) and isinstance(treatment, SampleMeanStatistic):
        return welch_ttest(control, treatment, alpha=alpha)
    if isinstance(control, RatioStatistic) and isinstance(treatment, RatioStatistic):
        return ratio_ztest(control, treatment, alpha=alpha)
    raise ValueError("control and treatment must be statistics of the same kind")


def metric_estimate(metric: MetricData, control: str, treatment: str,
                    policy: Policy) -> tuple[EffectEstimate, CupedResult | None]:
    """The estimate the decision uses (CUPED-adjusted when a covariate exists and the policy
    says so) and the CUPED result, if any."""
    base = compare_metric(metric.statistics[control], metric.statistics[treatment], alpha=policy.alpha)
    arms = metric.covariate_statistics
    if arms is None or metric.covariate is None:
        return base, None
    cuped = cuped_test(arms[control], arms[treatment], covariate=metric.covariate, all_arms=arms, alpha=policy.alpha)
    adjusted = replace(cuped.adjusted, metric_type=base.metric_type)
    cuped = replace(cuped, adjusted=adjusted, unadjusted=base)
    return (adjusted if policy.use_cuped else base), cuped


def decision_view(estimate: EffectEstimate, policy: Policy, *, alpha: float | None = None
                  ) -> tuple[EffectEstimate, SequentialResult | None]:
    """The estimate the decision rules read: as is, or — with ``policy.sequential`` — with its CI and
    p replaced by the always-valid ones (SPEC §3.1); the sequential result is returned too."""
    if not policy.sequential:
        return estimate, None
    sequence = always_valid(estimate, alpha=policy.alpha if alpha is None else alpha, tuning=policy.tuning)
    return replace(estimate, absolute_ci=sequence.ci, p_value=sequence.p_value), sequence


def _direction(estimate: EffectEstimate, significant: bool) -> Direction:
    if not significant or estimate.absolute_effect == 0:
        return "none"
    return "positive" if estimate.absolute_effect > 0 else "negative"


def _bayesian(metric: MetricData, control: str, treatment: str, estimate: EffectEstimate) -> BayesianSummary:
    """Beta-binomial for rates; the normal approximation (flat prior) for means and ratios. (A
    CUPED-adjusted rate takes the normal one from its adjusted estimate, see :func:`_compare`.)
    A rate whose Beta posterior double precision cannot resolve (near 100% with ~10¹¹ users or
    more, see :func:`beta_binomial_resolves`) takes the normal approximation of its estimate too."""
    c, t = metric.statistics[control], metric.statistics[treatment]
    if isinstance(c, ProportionStatistic) and isinstance(t, ProportionStatistic) and beta_binomial_resolves(c, t):
        return beta_binomial_summary(c, t)
    return normal_summary(estimate)


def _planned_target(policy: Policy, baseline: float) -> float | None:
    """The planned MDE in the metric's unit, when one is recorded."""
    if policy.planned_mde is None:
        return None
    return policy.planned_mde * abs(baseline) if policy.planned_mde_relative else policy.planned_mde


def _describe_planned(policy: Policy, target: float, metric_type: str) -> str:
    if policy.planned_mde_relative and policy.planned_mde is not None:
        return f"{policy.planned_mde * 100:.4g}% ({format_amount(target, metric_type, signed=False)})"
    return format_amount(target, metric_type, signed=False)


def _hint_plan(control: Statistic, target: float, baseline: float, n_c: int, n_t: int,
               policy: Policy) -> SampleSizePlan | None:
    """The sample to detect ``target`` with the arms' current split, or ``None`` when no plan exists:
    no positive finite target, an empty arm, a control rate of 0 or one the target would push to
    100%, a metric without variance, or a target so small that the sample would exceed
    :data:`~analytics.power.MAX_PLANNED_USERS` (the arguments :func:`plan_sample_size` refuses)."""
    if not (0 < target < math.inf and n_c > 0 and n_t > 0):
        return None
    split = (float(n_c), float(n_t))
    rate, mean, std = (baseline, None, None) if isinstance(control, ProportionStatistic) else (
        None, baseline, math.sqrt(control.variance) if control.variance > 0 else None)
    if rate is not None and not (rate > 0.0 and rate + target < 1.0):
        return None
    if rate is None and std is None:
        return None
    if not required_users(mde=target, baseline=rate, mean=mean, std=std, alpha=policy.alpha, power=policy.power,
                          split=split) <= MAX_PLANNED_USERS:
        return None
    return plan_sample_size(mde=target, baseline=rate, mean=mean, std=std, alpha=policy.alpha, power=policy.power,
                            split=split)


def _hint_reachable(control: Statistic, baseline: float, n_c: int, n_t: int, policy: Policy) -> float | None:
    """The smallest effect the current arms detect, or ``None`` when it is undefined: an empty arm,
    a control rate outside [0, 1) or a negative variance (the arguments :func:`detectable_effect`
    refuses)."""
    if n_c <= 0 or n_t <= 0:
        return None
    if isinstance(control, ProportionStatistic):
        if not 0.0 <= baseline < 1.0:
            return None
        return detectable_effect(control_n=n_c, treatment_n=n_t, alpha=policy.alpha, power=policy.power,
                                 baseline=baseline)
    if control.variance < 0:
        return None
    return detectable_effect(control_n=n_c, treatment_n=n_t, alpha=policy.alpha, power=policy.power,
                             std=math.sqrt(control.variance))


def _inconclusive_hint(metric: MetricData, control: str, treatment: str, estimate: EffectEstimate,
                       policy: Policy) -> str:
    """How many more users the arm needs for the planned MDE (or the observed effect); the
    numbers in the sentence add up: more in control + more in treatment = more in total."""
    c = metric.statistics[control]
    n_c, n_t = estimate.control_n, estimate.treatment_n
    baseline = estimate.control_value
    planned = _planned_target(policy, baseline)
    if planned is not None:
        target, what = planned, f"the planned MDE of {_describe_planned(policy, planned, metric.metric_type)}"
    else:
        target = abs(estimate.absolute_effect)
        what = f"the observed effect of {format_amount(target, metric.metric_type, signed=False)}"
    plan = _hint_plan(c, target, baseline, n_c, n_t, policy)
    if plan is None:
        reachable = _hint_reachable(c, baseline, n_c, n_t, policy)
        if reachable is None or not math.isfinite(reachable):
            return "Collect more data before deciding."
        return (f"With {n_c + n_t:,} users the smallest effect detectable at {policy.power:.0%} power is "
                f"{format_amount(reachable, metric.metric_type, signed=False)}; decide whether a smaller effect "
                "matters before running longer.")
    more_c, more_t = max(0, plan.control_n - n_c), max(0, plan.treatment_n - n_t)
    if more_c + more_t == 0:
        return (f"The sample already suffices to detect {what} at {policy.power:.0%} power; the true effect is "
                "probably smaller than that. Treat this as no meaningful difference.")
    return (f"About {more_c + more_t:,} more users are needed ({more_c:,} more in control and {more_t:,} more in "
            f"{treatment}, for {plan.control_n:,} + {plan.treatment_n:,} = {plan.control_n + plan.treatment_n:,} in "
            f"total) to detect {what} at {policy.power:.0%} power.")


def _exact_p(metric: MetricData, control: str, treatment: str) -> float | None:
    """Fisher's exact p when either arm has fewer than 10 successes or failures (rates only)."""
    c, t = metric.statistics[control], metric.statistics[treatment]
    if not (isinstance(c, ProportionStatistic) and isinstance(t, ProportionStatistic)):
        return None
    if min(c.successes, c.n - c.successes, t.successes, t.n - t.successes) >= SPARSE_COUNT:
        return None
    return fisher_exact_p(c, t)


def sparse_arms(metric: MetricData) -> list[str]:
    """Arms whose primary rate has fewer than 10 successes or 10 failures."""
    return [arm for arm, s in metric.statistics.items()
            if isinstance(s, ProportionStatistic) and min(s.successes, s.n - s.successes) < SPARSE_COUNT]


def _compare(data: ExperimentData, treatment: str, policy: Policy, primary_estimate: tuple[EffectEstimate,
             CupedResult | None], adjusted_p: float, exact_p: float | None, arms: int) -> Comparison:
    control = data.control
    primary = data.primary
    estimate, primary_cuped = primary_estimate
    _, sequence = decision_view(estimate, policy)
    # A zero-variance comparison is uninformative, never "significant".
    significant = adjusted_p < policy.alpha and estimate.standard_error > 0
    simultaneous = None
    if arms > 1:  # Bonferroni at α/k, on the scale the decision reads (always-valid when sequential)
        simultaneous = decision_view(estimate, policy, alpha=policy.alpha / arms)[0].absolute_ci if policy.sequential \
            else interval_at(estimate, policy.alpha / arms)
    settings = policy.settings(primary.name, "primary", primary.metric_type)
    bayesian = _bayesian(primary, control, treatment, estimate) if primary_cuped is None or not policy.use_cuped \
        else normal_summary(estimate)
    if settings.better == "lower":  # "better" means lower: P(t < c), and the losses trade places
        bayesian = replace(bayesian, prob_treatment_better=1.0 - bayesian.prob_treatment_better,
                           expected_loss_treatment=bayesian.expected_loss_control,
                           expected_loss_control=bayesian.expected_loss_treatment)
    primary_result = MetricResult(
        metric=primary.name,
        estimate=estimate,
        p_value_adjusted=adjusted_p,
        significant=significant,
        direction=_direction(estimate, significant),
        bayesian=bayesian,
        cuped=primary_cuped,
        settings=settings,
        ci_simultaneous=simultaneous,
        p_value_exact=exact_p,
        sequential=sequence,
    )
    found = []
    for metric in data.by_role("guardrail"):
        g, g_cuped = metric_estimate(metric, control, treatment, policy)
        found.append((metric.name, g, policy.settings(metric.name, "guardrail", metric.metric_type), g_cuped))
    views = [decision_view(g, policy) for _, g, _, _ in found]
    assessed = assess_guardrails([(name, view, settings) for (name, _, settings, _), (view, _) in
                                  zip(found, views, strict=True)], policy)
    guardrails = tuple(GuardrailResult(a.name, g, a.settings.harm_direction, a.status, g_cuped, a, sequence)
                       for a, (_, g, _, g_cuped), (_, sequence) in zip(assessed, found, views, strict=True))
    secondary = []
    for metric in data.by_role("secondary"):
        s, s_cuped = metric_estimate(metric, control, treatment, policy)
        sig = s.p_value < policy.alpha and s.standard_error > 0
        secondary.append(MetricResult(metric.name, s, s.p_value, sig, _direction(s, sig), None, s_cuped,
                                      policy.settings(metric.name, "secondary", metric.metric_type)))
    return Comparison(control, treatment, primary_result, guardrails, tuple(secondary))


def build_timeline(days: Sequence[tuple[str, ExperimentData]], policy: Policy) -> tuple[TimelinePoint, ...]:
    """Per date and treatment, the cumulative primary effect (the same comparison the report makes,
    CUPED and ratios included): fixed-horizon CI and p, and the always-valid ones when
    ``policy.sequential``."""
    points = []
    for day, data in days:
        for treatment in data.treatments:
            fixed, _ = metric_estimate(data.primary, data.control, treatment, policy)
            sequence = always_valid(fixed, alpha=policy.alpha, tuning=policy.tuning) if policy.sequential else None
            points.append(TimelinePoint(
                day, treatment, fixed.control_n, fixed.treatment_n, fixed.control_value, fixed.treatment_value,
                fixed.absolute_effect, fixed.absolute_ci, fixed.p_value,
                sequence.ci if sequence else None, sequence.p_value if sequence else None))
    return tuple(points)


def _srm_summary(users: dict[str, int], shares: dict[str, float], policy: Policy) -> SrmSummary:
    result = srm_check(users, shares)
    status = HealthStatus.HEALTHY
    if result.p_value < policy.srm_blocked_p:
        status = HealthStatus.BLOCKED
    elif result.p_value < policy.srm_warning_p:
        status = HealthStatus.WARNING
    return SrmSummary(result, status)


def analyze_segments(segments: tuple[Segment, ...], shares: dict[str, float],
                     policy: Policy) -> tuple[tuple[SegmentResult, ...], tuple[str, ...]]:
    """Per segment value and treatment: the primary effect, a p-value adjusted across the
    segment column's values (Holm or Benjamini–Hochberg, ``policy.segment_correction``) and a
    per-segment SRM check; plus a flag for each column whose segments disagree in sign with
    significance. Segments inform; they never change the decision."""
    raw: list[tuple[Segment, str, EffectEstimate, SrmSummary]] = []
    for segment in segments:
        data = segment.data
        arm_shares = {v: shares[v] for v in data.variants if v in shares}
        srm = _srm_summary(dict(data.users), arm_shares, policy)
        for treatment in data.treatments:
            estimate, _ = metric_estimate(data.primary, data.control, treatment, policy)
            raw.append((segment, treatment, estimate, srm))
    adjust = holm_adjust if policy.segment_correction == "holm" else benjamini_hochberg_adjust
    results: list[SegmentResult] = []
    flags: list[str] = []
    groups = sorted({(s.column, t) for s, t, _, _ in raw})
    for column, treatment in groups:
        members = [item for item in raw if item[0].column == column and item[1] == treatment]
        adjusted = adjust([e.p_value for _, _, e, _ in members])
        rows = [SegmentResult(s.column, s.value, s.data.control, t, e, p, p < policy.alpha and e.standard_error > 0, srm)
                for (s, t, e, srm), p in zip(members, adjusted, strict=True)]
        results.extend(rows)
        up = [r.value for r in rows if r.significant and r.estimate.absolute_effect > 0]
        down = [r.value for r in rows if r.significant and r.estimate.absolute_effect < 0]
        if up and down:
            flags.append(f"Segments of {column} disagree for {treatment}: significantly better in {', '.join(up)} "
                         f"but significantly worse in {', '.join(down)}.")
        for row in rows:
            if row.srm.status is not HealthStatus.HEALTHY:
                flags.append(f"Sample ratio mismatch within {column} = {row.value} ({p_clause(row.srm.result.p_value)}).")
    return tuple(results), tuple(dict.fromkeys(flags))


def _improvement(comparison: Comparison) -> float:
    """How much better the arm is in the primary metric's declared direction (relative when defined)."""
    primary = comparison.primary
    estimate = primary.estimate
    value = estimate.relative_effect if estimate.relative_effect is not None else estimate.absolute_effect
    return value if primary.settings is None or primary.settings.better == "higher" else -value


def _overall(arms: list[ArmDecision], comparisons: list[Comparison], data: ExperimentData,
             policy: Policy) -> Decision:
    launch = [(arm, comp) for arm, comp in zip(arms, comparisons, strict=True) if arm.outcome is Outcome.LAUNCH]
    several = len(arms) > 1

    def tagged(arm: ArmDecision) -> tuple[str, ...]:
        return tuple(f"[{arm.treatment}] {r}" for r in arm.reasons) if several else arm.reasons

    if launch:
        ranked = sorted(launch, key=lambda item: _improvement(item[1]), reverse=True)
        best, _ = ranked[0]
        reasons = tagged(best)
        if several:
            others = [a.treatment for a in arms if a is not best]
            lead = [f"Ship {best.treatment}: it is the best arm that passes rule 6."]
            if len(ranked) > 1:
                runner, _ = ranked[1]
                between, _ = metric_estimate(data.primary, runner.treatment, best.treatment, policy)
                if between.p_value >= policy.alpha or between.standard_error == 0:
                    lead.append(
                        f"{best.treatment} and {runner.treatment} both pass and are indistinguishable: the difference "
                        f"between them is {format_amount(between.absolute_effect, between.metric_type)} ("
                        f"{p_clause(between.p_value)}), so the choice of {best.treatment} rests on the point estimate alone.")
                else:
                    lead.append(f"{best.treatment} is significantly better than the runner-up {runner.treatment} "
                                f"({format_amount(between.absolute_effect, between.metric_type)}, "
                                f"{p_clause(between.p_value)}).")
            reasons = (*lead, *reasons, f"Other arms ({', '.join(others)}) are not shipped.")
        return Decision(Outcome.LAUNCH, "primary_better", reasons, best.treatment, tuple(arms))
    if all(arm.outcome is Outcome.ROLLBACK for arm in arms):
        reasons = tuple(r for arm in arms for r in tagged(arm))
        return Decision(Outcome.ROLLBACK, arms[0].rule, reasons, None, tuple(arms))
    # The arm closest to launch explains the Hold best: one held only for an unproven guardrail,
    # then a worsened guardrail, then an inconclusive primary.
    preference = {"guardrail_unproven": 0, "guardrail_worsened": 1, "inconclusive": 2}
    hold = min((arm for arm in arms if arm.outcome is Outcome.HOLD), key=lambda arm: preference.get(arm.rule, 3))
    reasons = tuple(r for arm in [hold, *(a for a in arms if a is not hold)] for r in tagged(arm))
    return Decision(Outcome.HOLD, hold.rule, reasons, None, tuple(arms))


def _risks(comparisons: list[Comparison], policy: Policy) -> tuple[str, ...]:
    """What a careful reader must know beside the decision: harms not ruled out, significant
    harms within the margin, and effects smaller than the planned MDE."""
    risks: list[str] = []
    several = len(comparisons) > 1
    for comparison in comparisons:
        tag = f" ({comparison.treatment})" if several else ""
        for g in comparison.guardrails:
            a = g.assessment
            if a is None:
                continue
            kind = a.estimate.metric_type
            margin = describe_margin(a.settings.margin, kind, a.margin)
            if a.status is GuardrailStatus.INCONCLUSIVE:
                risks.append(f"Guardrail {a.name}{tag} is inconclusive: a harm up to {format_amount(a.harm_ci.high, kind)} "
                             f"cannot be ruled out (margin {margin}).")
            elif a.status is GuardrailStatus.MINOR:
                risks.append(f"Guardrail {a.name}{tag} worsened significantly by {format_amount(a.harm, kind)}, with the "
                             f"whole CI (up to {format_amount(a.harm_ci.high, kind)}) within its margin of {margin}.")
        primary = comparison.primary
        planned = _planned_target(policy, primary.estimate.control_value)
        if primary.significant and planned is not None and abs(primary.estimate.absolute_effect) < planned:
            effect = format_amount(primary.estimate.absolute_effect, primary.estimate.metric_type)
            risks.append(f"The effect on {primary.metric}{tag} ({effect}) is below the planned MDE of "
                         f"{_describe_planned(policy, planned, primary.estimate.metric_type)}.")
    return tuple(risks)


def analyze(
    data: ExperimentData | None,
    issues: tuple[Issue, ...],
    *,
    policy: Policy,
    experiment: ExperimentInfo,
    input_info: InputInfo,
    analytics_version: str,
    segments: tuple[Segment, ...] = (),
    days: tuple[tuple[str, ExperimentData], ...] = (),
    new_users: tuple[tuple[str, Mapping[str, int]], ...] = (),
    planned_sample: int | None = None,
) -> Report:
    """Run the SRM check, every comparison and the decision rules.

    ``data`` is ``None`` when validation found a Blocked issue: the report then has
    no comparisons and the decision is Hold by rule 1. ``days`` (each date's cumulative data) and
    ``new_users`` (each date's new users per arm) come from a daily export (SPEC §3.1): they add
    the timeline and the per-day SRM check. ``planned_sample`` (the charter's total users) is the
    default tuning of sequential inference, and without it an analysis below that sample is a
    Warning ``interim_look``: peeking early at fixed-horizon p-values inflates false positives.
    """
    all_issues = list(issues)
    if planned_sample is not None and planned_sample > 0 and policy.sequential and policy.sequential_tuning is None:
        policy = replace(policy, sequential_tuning=float(planned_sample))
    if planned_sample is not None and data is not None and not policy.sequential:
        total = sum(data.users.values())
        if total < planned_sample:
            all_issues.append(Issue(IssueCode.INTERIM_LOOK, "warning", (
                f"This is an interim look: {format_count(total)} users of the {format_count(planned_sample)} planned "
                f"({total / planned_sample:.0%}). Fixed-horizon p-values read before the planned sample inflate false "
                "positives; wait for the planned sample, or turn on sequential inference (sequential = true) to look "
                "as often as you like.")))
    srm_summary: SrmSummary | None = None
    shares: dict[str, float] = {}
    if data is not None:
        resolved = policy.expected_split.resolve(data.variants)
        if isinstance(resolved, SplitMismatch):
            all_issues.append(Issue(IssueCode.SPLIT_MISMATCH, "blocked", resolved.message))
            data = None
        else:
            shares = resolved
            srm_summary = _srm_summary(dict(data.users), shares, policy)
            srm, status = srm_summary.result, srm_summary.status
            if status is not HealthStatus.HEALTHY:
                observed = ", ".join(f"{v} {n:,} ({n / sum(data.users.values()):.2%})" for v, n in data.users.items())
                expected = ", ".join(f"{v} {s:.2%}" for v, s in shares.items())
                limit = policy.srm_blocked_p if status is HealthStatus.BLOCKED else policy.srm_warning_p
                all_issues.append(Issue(
                    IssueCode.SRM, "blocked" if status is HealthStatus.BLOCKED else "warning",
                    f"Sample ratio mismatch: users are split {observed} but the expected split is {expected} "
                    f"(chi-square {srm.chi2:.2f}, {p_clause(srm.p_value)} < {limit:g}). Check assignment, "
                    "bucketing and logging before trusting any effect, or correct the expected split if it is wrong."))
    srm_days: tuple[DailySrm, ...] = ()
    if data is not None and shares and new_users:
        srm_days = daily_srm(new_users, shares, policy)
        broken = [d for d in srm_days if d.broken]
        if broken:
            shown = ", ".join(f"{d.date} ({p_clause(d.p_value)})" for d in broken[:5])
            more = f" and {len(broken) - 5} more" if len(broken) > 5 else ""
            all_issues.append(Issue(IssueCode.SRM_DAILY, "warning", (
                f"The split of new users broke on {len(broken)} day(s): {shown}{more}. Check assignment and logging "
                "on those days; a broken day can bias the cumulative effect.")))
    if data is not None:
        known = [m.name for m in data.metrics]
        message = unknown_metric_message(policy.declared_names(), known, where="[metrics.<name>] / harm_directions")
        if message is not None:
            all_issues.append(Issue(IssueCode.UNKNOWN_POLICY_METRIC, "blocked", message))
        elif data.primary.metric_type == "proportion":
            sparse = sparse_arms(data.primary)
            if sparse:
                all_issues.append(Issue(IssueCode.SPARSE_COUNTS, "warning", (
                    f"The primary rate has fewer than {SPARSE_COUNT} conversions or non-conversions in "
                    f"{', '.join(sparse)}: the Wald test is unreliable this sparse, so Fisher's exact test is reported "
                    "and must agree before the result counts as significant. Collect more users to decide on it.")))
    health = Health(overall_status(all_issues), tuple(all_issues), srm_summary)
    non_srm_blocked = [i for i in all_issues if i.severity == "blocked" and i.code is not IssueCode.SRM]
    if data is None or non_srm_blocked:
        messages = tuple(i.message for i in non_srm_blocked) or ("The data could not be analysed.",)
        decision = Decision(Outcome.HOLD, "data_blocked", ("Fix the data before deciding: " + messages[0], *messages[1:]),
                            None, ())
        return Report(experiment, input_info, health, (), decision, policy, analytics_version, shares)

    treatments = data.treatments
    primary = data.primary
    estimates = [metric_estimate(primary, data.control, t, policy) for t in treatments]
    raw = [decision_view(estimate, policy)[0].p_value for estimate, _ in estimates]
    adjusted = holm_adjust(raw) if len(raw) > 1 else raw
    exact = [_exact_p(primary, data.control, t) for t in treatments]
    if any(p is not None for p in exact) and len(exact) > 1:
        present = [i for i, p in enumerate(exact) if p is not None]
        corrected = holm_adjust([exact[i] or 0.0 for i in present])
        for i, value in zip(present, corrected, strict=True):
            exact[i] = value
    comparisons = [_compare(data, t, policy, estimate, p, e, len(treatments))
                   for t, estimate, p, e in zip(treatments, estimates, adjusted, exact, strict=True)]
    if srm_summary is not None and srm_summary.status is not HealthStatus.HEALTHY:
        decision = Decision(Outcome.HOLD, "srm", (
            f"Sample ratio mismatch ({p_clause(srm_summary.result.p_value)}): the assignment may be broken, so the "
            "effects cannot be trusted. Investigate assignment before deciding.",), None, ())
        return Report(experiment, input_info, health, tuple(comparisons), decision, policy, analytics_version, shares,
                      risks=_risks(comparisons, policy), timeline=build_timeline(days, policy), srm_daily=srm_days)
    arms = []
    for comparison in comparisons:
        p = comparison.primary
        arms.append(decide_arm(
            comparison.treatment,
            primary_metric=p.metric,
            primary=p.estimate,
            better=p.settings.better if p.settings is not None else "higher",
            primary_significant=p.significant,
            primary_p=p.p_value_adjusted,
            exact_p=p.p_value_exact,
            guardrails=[g.assessment for g in comparison.guardrails if g.assessment is not None],
            policy=policy,
            inconclusive_hint=_inconclusive_hint(primary, data.control, comparison.treatment, p.estimate, policy),
        ))
    decision = _overall(arms, comparisons, data, policy)
    segment_results, segment_flags = analyze_segments(segments, shares, policy)
    return Report(experiment, input_info, health, tuple(comparisons), decision, policy, analytics_version, shares,
                  segments=segment_results, segment_flags=segment_flags, risks=_risks(comparisons, policy),
                  timeline=build_timeline(days, policy), srm_daily=srm_days)


def _number(value: float | None) -> float | None:
    """JSON-safe number: infinities and NaN become ``None`` (never reached in practice)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _interval(interval: Any) -> list[float | None] | None:
    return None if interval is None else [_number(interval.low), _number(interval.high)]


def _estimate_fields(estimate: EffectEstimate) -> dict[str, Any]:
    return {
        "type": estimate.metric_type,
        "control": {"n": estimate.control_n, "value": _number(estimate.control_value),
                    "std": _number(estimate.control_std)},
        "treatment": {"n": estimate.treatment_n, "value": _number(estimate.treatment_value),
                      "std": _number(estimate.treatment_std)},
        "absolute_effect": _number(estimate.absolute_effect),
        "absolute_ci": _interval(estimate.absolute_ci),
        "relative_effect": _number(estimate.relative_effect),
        "relative_ci": _interval(estimate.relative_ci),
        "relative_ci_method": estimate.relative_ci_method,
        "p_value": _number(estimate.p_value),
        "standard_error": _number(estimate.standard_error),
        "degrees_of_freedom": _number(estimate.degrees_of_freedom),
        "note": estimate.note,
    }


def _margin_dict(margin: Margin, control_value: float, default: bool) -> dict[str, Any]:
    return {"value": margin.to_json(), "absolute": _number(margin.absolute(control_value)), "relative": margin.relative,
            "default": default}


def _settings_fields(settings: MetricSettings | None, control_value: float) -> dict[str, Any]:
    """The direction and margins used for a metric, each marked when it is a default (SPEC §4.1)."""
    if settings is None:
        return {}
    return {"better": settings.better, "better_default": settings.better_default,
            "margin": _margin_dict(settings.margin, control_value, settings.margin_default),
            "severe_margin": _margin_dict(settings.severe_margin, control_value, settings.severe_margin_default)}


def _cuped_dict(cuped: CupedResult | None, applied: bool) -> dict[str, Any] | None:
    if cuped is None:
        return None
    return {"covariate": cuped.covariate, "theta": _number(cuped.theta),
            "variance_reduction": _number(cuped.variance_reduction), "applied": applied,
            "adjusted": _estimate_fields(cuped.adjusted), "unadjusted": _estimate_fields(cuped.unadjusted)}


def _metric_dict(result: MetricResult, applied: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"metric": result.metric, **_estimate_fields(result.estimate)}
    body["cuped"] = _cuped_dict(result.cuped, applied)
    body["p_value_adjusted"] = _number(result.p_value_adjusted)
    body["significant"] = result.significant
    body["direction"] = result.direction
    body.update(_settings_fields(result.settings, result.estimate.control_value))
    body["ci_simultaneous"] = _interval(result.ci_simultaneous)
    body["p_value_exact"] = _number(result.p_value_exact)
    body["sequential"] = _sequential_dict(result.sequential)
    if result.bayesian is not None:
        b = result.bayesian
        body["bayesian"] = {
            "prob_treatment_better": _number(b.prob_treatment_better),
            "expected_loss_treatment": _number(b.expected_loss_treatment),
            "expected_loss_control": _number(b.expected_loss_control),
            "relative_credible_interval": _interval(b.relative_credible_interval),
            "posterior": {"control": posterior_to_dict(b.control_posterior),
                          "treatment": posterior_to_dict(b.treatment_posterior)},
        }
    return body


def _guardrail_dict(g: GuardrailResult, applied: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"metric": g.metric, **_estimate_fields(g.estimate), "harm_direction": g.harm_direction,
                            "status": g.status.value, "cuped": _cuped_dict(g.cuped, applied)}
    a = g.assessment
    if a is not None:
        body.update(_settings_fields(a.settings, a.estimate.control_value))
        body["p_value_adjusted"] = _number(a.p_value_adjusted)
        body["harm"] = _number(a.harm)
        body["harm_ci"] = _interval(a.harm_ci)
    body["sequential"] = _sequential_dict(g.sequential)
    return body


def _sequential_dict(sequence: SequentialResult | None) -> dict[str, Any] | None:
    if sequence is None:
        return None
    return {"ci": _interval(sequence.ci), "p_value": _number(sequence.p_value), "tuning": _number(sequence.tuning)}


def report_to_dict(report: Report) -> dict[str, Any]:
    """The JSON contract of SPEC §5 (plus documented additive fields)."""
    srm = report.health.srm
    policy = report.policy
    return {
        "schema_version": report.schema_version,
        "rules_version": report.rules_version,
        "analytics_version": report.analytics_version,
        "experiment": {
            "name": report.experiment.name,
            "hypothesis": report.experiment.hypothesis,
            "primary_metric": report.experiment.primary_metric,
        },
        "input": {"kind": report.input.kind, "rows": report.input.rows, "sha256": report.input.sha256},
        "health": {
            "status": report.health.status.value,
            "issues": [{"code": i.code, "severity": i.severity, "message": i.message} for i in report.health.issues],
            "srm": None if srm is None else {
                "chi2": _number(srm.result.chi2),
                "p_value": _number(srm.result.p_value),
                "status": srm.status.value,
                "observed": dict(srm.result.observed),
                "expected_share": dict(srm.result.expected_share),
            },
        },
        "comparisons": [
            {
                "control": c.control,
                "treatment": c.treatment,
                "primary": _metric_dict(c.primary, policy.use_cuped),
                "guardrails": [_guardrail_dict(g, policy.use_cuped) for g in c.guardrails],
                "secondary": [_metric_dict(s, policy.use_cuped) for s in c.secondary],
            }
            for c in report.comparisons
        ],
        "decision": {
            "outcome": report.decision.outcome.value,
            "rule": report.decision.rule,
            "rule_number": RULE_NUMBERS[report.decision.rule],
            "reasons": list(report.decision.reasons),
            "winner": report.decision.winner,
            "arms": [
                {"treatment": a.treatment, "outcome": a.outcome.value, "rule": a.rule, "reasons": list(a.reasons)}
                for a in report.decision.arms
            ],
        },
        "policy": {
            "alpha": policy.alpha,
            "srm_warning_p": policy.srm_warning_p,
            "srm_blocked_p": policy.srm_blocked_p,
            "guardrail_worsened": policy.guardrail_worsened,
            "guardrail_severe": policy.guardrail_severe,
            "expected_split": dict(report.expected_share) or policy.expected_split.describe(),
            "power": policy.power,
            "harm_directions": dict(policy.harm_directions),
            "planned_mde": policy.planned_mde,
            "planned_mde_relative": policy.planned_mde_relative,
            "use_cuped": policy.use_cuped,
            "segment_correction": policy.segment_correction,
            "require_non_inferiority": policy.require_non_inferiority,
            "guardrail_correction": policy.guardrail_correction,
            "sequential": policy.sequential,
            "sequential_tuning": policy.tuning if policy.sequential else policy.sequential_tuning,
            "metrics": {m.name: m.to_json() for m in policy.metrics},
        },
        "segments": [
            {"column": r.column, "value": r.value, "control_variant": r.control, "variant": r.treatment,
             "metric": report.experiment.primary_metric, **_estimate_fields(r.estimate),
             "p_value_adjusted": _number(r.p_value_adjusted), "significant": r.significant,
             "srm": {"chi2": _number(r.srm.result.chi2), "p_value": _number(r.srm.result.p_value),
                     "status": r.srm.status.value}}
            for r in report.segments
        ],
        "segment_flags": list(report.segment_flags),
        "risks": list(report.risks),
        "timeline": [
            {"date": t.date, "treatment": t.treatment, "control": {"n": t.control_n, "value": _number(t.control_value)},
             "treatment_arm": {"n": t.treatment_n, "value": _number(t.treatment_value)},
             "absolute_effect": _number(t.absolute_effect), "absolute_ci": _interval(t.absolute_ci),
             "p_value": _number(t.p_value),
             "sequential": None if t.sequential_ci is None else {"ci": _interval(t.sequential_ci),
                                                                  "p_value": _number(t.sequential_p_value)}}
            for t in report.timeline
        ],
        "srm_daily": [{"date": d.date, "chi2": _number(d.chi2), "p_value": _number(d.p_value), "broken": d.broken}
                      for d in report.srm_daily],
    }
