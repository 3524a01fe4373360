"""The memo model: everything the one-page memo says, built from a report's JSON.

Built from the JSON contract (not the live objects) so that a stored analysis renders
exactly like a fresh one. This module writes the memo's sentences (the conclusion, the
reasons, risks, next actions and the timeline summary, with numbers formatted by
:mod:`dashapp.formatting`); the templates only lay them out, with their headings and
table captions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analytics import Charter as Charter  # re-exported: the memo's charter is the analytics one
from analytics import GuardrailStatus, HealthStatus, IssueCode, Outcome
from analytics.wording import RULE_TITLES, format_count, format_number, format_p, format_percent, format_probability, rule_title
from dashapp.formatting import (
    cuped_sentence,
    format_absolute,
    format_amount,
    format_interval,
    format_margin,
    format_relative,
    format_value,
)

if TYPE_CHECKING:
    from storage.database import ExperimentRecord

__all__ = [
    "MAX_NOTES_CHARS",
    "MAX_TEXT_CHARS",
    "UNTRUSTED_RULES",
    "ChartRow",
    "Charter",
    "EvidenceRow",
    "GuardrailMatrixRow",
    "GuardrailRow",
    "MemoModel",
    "MetricThreshold",
    "TimelinePoint",
    "build_memo",
    "experiment_charter",
]

MAX_NOTES_CHARS = 4000
MAX_TEXT_CHARS = 300
#: Rules under which the effects are shown for investigation only, never as a result.
UNTRUSTED_RULES = {"srm": "not trustworthy: sample ratio mismatch",
                   "data_blocked": "not trustworthy: the data is blocked"}


@dataclass(frozen=True)
class EvidenceRow:
    """One primary or secondary metric of one arm. ``p_value`` is Holm-adjusted across arms;
    ``simultaneous`` is the Bonferroni CI (A/B/n only) and ``p_exact`` Fisher's p (sparse data)."""

    treatment: str
    metric: str
    control_value: str
    treatment_value: str
    absolute: str
    relative: str
    p_value: str
    prob_better: str
    significant: bool
    role: str = "primary"
    better: str | None = None
    simultaneous: str | None = None
    p_exact: str | None = None
    control_n: str = "—"
    treatment_n: str = "—"
    sequential: str | None = None  # the always-valid CI and p the decision used (sequential analyses)


@dataclass(frozen=True)
class TimelinePoint:
    """One date of the memo's timeline chart (one arm): the cumulative effect in the chart's unit
    (pp for rates) with its fixed-horizon and, when sequential, always-valid 95% intervals, and
    the users each arm gained that day."""

    date: str
    effect: float
    low: float
    high: float
    sequential_low: float | None
    sequential_high: float | None
    control_new: int
    treatment_new: int


@dataclass(frozen=True)
class GuardrailRow:
    """One guardrail of one arm: ``harm_upper`` is the harmful end of its CI (positive = worse),
    ``margin`` / ``severe`` the thresholds its status was judged against."""

    treatment: str
    metric: str
    control_value: str
    treatment_value: str
    change: str
    p_value: str
    status: str
    harm_upper: str = "—"
    margin: str = "—"
    severe: str = "—"


@dataclass(frozen=True)
class GuardrailMatrixRow:
    """One guardrail across every arm (memos with three or more treatment arms): the control value,
    the margins, and per arm (in :attr:`MemoModel.arms` order) its :class:`GuardrailRow` or ``None``."""

    metric: str
    control_value: str
    margin: str
    severe: str
    cells: tuple[GuardrailRow | None, ...]


@dataclass(frozen=True)
class MetricThreshold:
    """A metric's declared direction and margins; ``*_default`` when the policy did not set them."""

    metric: str
    role: str
    better: str
    better_default: bool
    margin: str
    margin_default: bool
    severe: str
    severe_default: bool


@dataclass(frozen=True)
class ChartRow:
    """One interval of the memo chart. Primary rows are % vs control; guardrail rows are the harm
    in multiples of the guardrail's own margin (1 = margin, ``severe`` = severe margin ÷ margin)."""

    label: str
    value: float
    low: float
    high: float
    kind: str  # "primary" or the guardrail status
    severe: float | None = None


@dataclass(frozen=True)
class MemoModel:
    title: str
    date: str
    outcome: str
    outcome_label: str
    rule: str
    rule_title: str
    conclusion: str
    reasons: tuple[str, ...]
    health_status: str
    srm_line: str | None
    issues: tuple[dict[str, str], ...]
    evidence: tuple[EvidenceRow, ...]
    guardrails: tuple[GuardrailRow, ...]
    risks: tuple[str, ...]
    next_actions: tuple[str, ...]
    charter: Charter
    actual_sample: int
    assumptions: tuple[str, ...]
    thresholds: tuple[tuple[str, str], ...]
    analytics_version: str
    sha256: str
    input_kind: str
    notes: str | None
    primary_chart: tuple[ChartRow, ...] = field(default_factory=tuple)
    guardrail_chart: tuple[ChartRow, ...] = field(default_factory=tuple)
    metric_thresholds: tuple[MetricThreshold, ...] = field(default_factory=tuple)
    primary_better: str | None = None
    arm_count: int = 1
    rules_version: int = 1
    why: tuple[str, ...] = ()
    badge: str = ""
    untrusted: str | None = None
    actual_sample_text: str = "0"
    planned_sample_text: str | None = None
    chart_arm: str | None = None
    arms: tuple[str, ...] = ()
    timeline: tuple[TimelinePoint, ...] = ()
    timeline_arm: str | None = None
    timeline_unit: str = ""
    timeline_summary: str | None = None
    sequential: bool = False

    @property
    def guardrail_matrix(self) -> tuple[GuardrailMatrixRow, ...]:
        """The guardrails with one column per arm: three arms of six guardrails read as six rows, not 18."""
        rows: dict[str, GuardrailMatrixRow] = {}
        for g in self.guardrails:
            if g.metric not in rows:
                rows[g.metric] = GuardrailMatrixRow(g.metric, g.control_value, g.margin, g.severe,
                                                    tuple(None for _ in self.arms))
            row = rows[g.metric]
            cells = list(row.cells)
            cells[self.arms.index(g.treatment)] = g
            rows[g.metric] = dataclasses.replace(row, cells=tuple(cells))
        return tuple(rows.values())

    @property
    def any_default(self) -> bool:
        """Whether the thresholds table needs the legend for default marks."""
        return any(t.better_default or t.margin_default or t.severe_default for t in self.metric_thresholds)

    @property
    def has_simultaneous(self) -> bool:
        return any(r.simultaneous for r in self.evidence)

    @property
    def has_exact(self) -> bool:
        return any(r.p_exact for r in self.evidence)

    @property
    def has_sequential(self) -> bool:
        return any(r.sequential for r in self.evidence)


def _clip(text: str | None, limit: int = MAX_TEXT_CHARS) -> str | None:
    if text is None:
        return None
    text = str(text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _effect_phrase(metric: dict[str, Any], *, signed: bool = False) -> str:
    """The effect for a sentence: its size after a verb that gives the direction ("raised …
    by 0.31 pp"), or ``signed`` where nothing else does ("no significant change (−0.31 pp …)")."""
    effect = metric["absolute_effect"]
    size = format_amount(metric, effect) if signed else format_amount(metric, abs(effect), signed=False)
    sequential = metric.get("sequential")
    if isinstance(sequential, dict) and sequential.get("ci"):  # the interval the decision used
        low, high = sequential["ci"]
        return f"{size} (always-valid 95% CI {format_amount(metric, low)} to {format_amount(metric, high)})"
    if metric.get("relative_effect") is not None and metric.get("relative_ci") is not None:
        low, high = metric["relative_ci"]
        return (f"{size} ({format_percent(metric['relative_effect'])}, 95% CI {format_percent(low)} to "
                f"{format_percent(high)})")
    low, high = metric["absolute_ci"]
    return f"{size} (95% CI {format_amount(metric, low)} to {format_amount(metric, high)})"


def _verb(metric: dict[str, Any]) -> str:
    """The verb for a change, from its sign: a lower-is-better metric that fell was "lowered"."""
    return "lowered" if metric["absolute_effect"] < 0 else "raised"


def _guardrails_phrase(guardrails: list[dict[str, Any]]) -> str:
    """``the cancel guardrail`` / ``the cancel and error guardrails``."""
    names = [g["metric"] for g in guardrails]
    if len(names) == 1:
        return f"the {names[0]} guardrail"
    return f"the {', '.join(names[:-1])} and {names[-1]} guardrails"


def _sentence_start(name: str) -> str:
    return name[:1].upper() + name[1:]


# --- schema-1 fallbacks: reports stored before rules v2 lack per-metric settings -------------

def _better(metric: dict[str, Any], role: str) -> tuple[str, bool]:
    """The declared direction and whether it is the default (v1: from ``harm_direction``)."""
    if metric.get("better") in ("higher", "lower"):
        return metric["better"], bool(metric.get("better_default", False))
    if role == "guardrail":
        return ("higher" if metric.get("harm_direction") == "decrease" else "lower"), metric.get("harm_direction") is None
    return "higher", True


def _margins(metric: dict[str, Any], role: str, policy: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The margins of a metric; v1 reports used the policy's two absolute thresholds for every guardrail."""
    if metric.get("margin") is not None:
        return metric["margin"], metric.get("severe_margin")
    if role != "guardrail" or policy.get("guardrail_worsened") is None:
        return None, None
    return ({"value": policy["guardrail_worsened"], "absolute": policy["guardrail_worsened"], "relative": False,
             "default": False},
            {"value": policy["guardrail_severe"], "absolute": policy["guardrail_severe"], "relative": False,
             "default": False})


def _harm(metric: dict[str, Any]) -> tuple[float, float, float]:
    """(harm, low, high) with positive = worse; v1 reports flip the change by ``harm_direction``."""
    if metric.get("harm") is not None and metric.get("harm_ci") is not None:
        low, high = metric["harm_ci"]
        return metric["harm"], low, high
    low, high = metric["absolute_ci"]
    if metric.get("harm_direction") == "decrease" or metric.get("better") == "higher":
        return -metric["absolute_effect"], -high, -low
    return metric["absolute_effect"], low, high


def _arm_for_rule(report: dict[str, Any], comparisons: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The comparison whose arm decided the outcome (the first arm with the decision's rule)."""
    arms = report["decision"].get("arms") or []
    chosen = next((a for a in arms if a["rule"] == report["decision"]["rule"]), arms[0] if arms else None)
    if chosen is not None:
        return comparisons.get(chosen["treatment"])
    return next(iter(comparisons.values()), None)


def _conclusion(report: dict[str, Any]) -> str:
    decision = report["decision"]
    rule = decision["rule"]
    comparisons = {c["treatment"]: c for c in report["comparisons"]}
    metric_name = report["experiment"]["primary_metric"]
    if rule == "data_blocked":
        return "The data cannot be analysed yet; fix the problems listed under Health and run the analysis again."
    if rule == "srm":
        p = report["health"]["srm"]["p_value"] if report["health"]["srm"] else None
        return (f"The traffic split does not match the expected split (SRM p = {format_p(p)}), so no effect can be trusted; "
                "hold until assignment is fixed.")
    if decision["outcome"] == Outcome.LAUNCH and decision.get("winner") in comparisons:
        primary = comparisons[decision["winner"]]["primary"]
        return (f"{_sentence_start(decision['winner'])} {_verb(primary)} {metric_name} by {_effect_phrase(primary)}; "
                "ship it.")
    arm = _arm_for_rule(report, comparisons)
    if rule == "guardrail_severe" and arm:
        bad = [g for g in arm["guardrails"] if g["status"] == GuardrailStatus.SEVERE]
        return (f"{_sentence_start(arm['treatment'])} severely worsened {_guardrails_phrase(bad)} "
                f"({_effect_phrase(bad[0], signed=True)}); roll it back.")
    if rule == "primary_worse" and arm:
        return (f"{_sentence_start(arm['treatment'])} {_verb(arm['primary'])} {metric_name} by "
                f"{_effect_phrase(arm['primary'])}, the wrong way ({_better(arm['primary'], 'primary')[0]} is "
                "better); roll it back.")
    if rule == "guardrail_worsened" and arm:
        bad = [g for g in arm["guardrails"] if g["status"] == GuardrailStatus.WORSENED]
        return (f"{_sentence_start(_guardrails_phrase(bad))} worsened ({_effect_phrase(bad[0], signed=True)}); hold "
                "until the cause is understood.")
    if rule == "guardrail_unproven" and arm:
        unproven = [g for g in arm["guardrails"] if g["status"] == GuardrailStatus.INCONCLUSIVE]
        detail = ""
        if unproven:
            first = unproven[0]
            detail = (f" ({first['metric']}: a harm up to {format_amount(first, _harm(first)[2])} is not ruled out, "
                      f"margin {format_margin(first, _margins(first, 'guardrail', report['policy'])[0])})")
        subject = _guardrails_phrase(unproven) if unproven else "a guardrail"
        return (f"{_sentence_start(arm['treatment'])} {_verb(arm['primary'])} {metric_name} by "
                f"{_effect_phrase(arm['primary'])}, but {subject} {'are' if len(unproven) > 1 else 'is'} not yet shown "
                f"non-inferior{detail}; hold until {'they are' if len(unproven) > 1 else 'it is'}.")
    if arm:
        return (f"No significant change in {metric_name} ({_effect_phrase(arm['primary'], signed=True)}); hold — the "
                "result is inconclusive.")
    return "Hold."


def _v1_guardrail_risks(report: dict[str, Any]) -> list[str]:
    """Risks of a report stored before rules v2, which has no ``risks`` of its own."""
    risks: list[str] = []
    several = len(report["comparisons"]) > 1
    worsened = report["policy"].get("guardrail_worsened")
    for comparison in report["comparisons"]:
        tag = f" ({comparison['treatment']})" if several else ""
        for g in comparison["guardrails"]:
            harm, _, high = _harm(g)
            threshold = format_margin(g, _margins(g, "guardrail", report["policy"])[0]) if worsened is not None else "—"
            if g["status"] == GuardrailStatus.INCONCLUSIVE:
                risks.append(f"Guardrail {g['metric']}{tag} is inconclusive: a harm up to {format_amount(g, high)} "
                             f"cannot be ruled out (threshold {threshold}).")
            elif g["status"] == "minor":
                risks.append(f"Guardrail {g['metric']}{tag} worsened significantly by {format_amount(g, harm)}, less "
                             f"than the worsened threshold of {threshold}.")
    return risks


def _risks(report: dict[str, Any], charter: Charter, actual: int) -> list[str]:
    # Guardrail and planned-MDE risks come from analytics (they need the margins and the CI);
    # the memo only adds what the report states elsewhere and what the charter knows.
    risks: list[str] = list(report["risks"]) if "risks" in report else _v1_guardrail_risks(report)
    for comparison in report["comparisons"]:
        note = comparison["primary"].get("note")
        if note:
            risks.append(note)
    if charter.planned_sample and actual < charter.planned_sample:
        risks.append(f"Under-powered: {format_count(actual)} users analysed vs {format_count(charter.planned_sample)} "
                     f"planned in the charter ({format_percent(actual / charter.planned_sample, signed=False, digits=0)}).")
    srm = report["health"]["srm"]
    if srm and srm["status"] == HealthStatus.HEALTHY and srm["p_value"] < 0.01:
        risks.append(f"The traffic split is close to the SRM limit (p = {format_p(srm['p_value'])}); check assignment.")
    risks.extend(report.get("segment_flags") or [])
    if len(report["comparisons"]) > 1:
        simultaneous = any(c["primary"].get("ci_simultaneous") for c in report["comparisons"])
        risks.append(f"{len(report['comparisons'])} treatment arms were compared; p-values are Holm-adjusted"
                     + (" and simultaneous (Bonferroni) CIs are shown." if simultaneous else "."))
    for issue in report["health"]["issues"]:
        if issue["severity"] == "warning" and issue["code"] != IssueCode.SRM:
            risks.append(issue["message"])
    return risks


_SAMPLE_NEEDED = re.compile(r"about ([\d,]+) users in total \([^)]*?([\d,]+) more than now\)")


def _unproven_action(report: dict[str, Any]) -> str | None:
    """The largest sample that rule 6b's reasons say would show every guardrail non-inferior."""
    found = [(int(total.replace(",", "")), int(more.replace(",", "")))
             for reason in report["decision"]["reasons"] for total, more in _SAMPLE_NEEDED.findall(reason)]
    if not found:
        return None
    total, more = max(found)
    return (f"About {format_count(total)} users in total ({format_count(more)} more than now) would show every "
            f"guardrail non-inferior at {format_percent(report['policy']['power'], signed=False, digits=0)} power if "
            "the true harms are 0.")


def _watch_phrase(names: list[str]) -> str:
    """The inconclusive guardrails by name, or by count when naming them all would be a paragraph."""
    if len(names) <= 2:
        return " and ".join(names)
    return f"the {len(names)} INCONCLUSIVE guardrails"


def _next_actions(report: dict[str, Any]) -> list[str]:
    decision = report["decision"]
    rule = decision["rule"]
    watch = sorted({g["metric"] for c in report["comparisons"] if c["treatment"] == decision.get("winner")
                    for g in c["guardrails"] if g["status"] == GuardrailStatus.INCONCLUSIVE})
    actions = {
        "data_blocked": ["Fix each Blocked issue under Health and re-export the results.",
                         "Re-run the analysis; no decision is possible until the data is valid."],
        "srm": ["Audit assignment: bucketing, redirects, bot filtering and logging by variant.",
                "Do not ship on these numbers; restart the experiment once the cause is fixed."],
        "guardrail_severe": ["Roll back the change now (turn the flag off for all users).",
                             "Investigate the guardrail regression before any new attempt."],
        "primary_worse": ["Roll back the change.", "Write down what was learned and revisit the hypothesis."],
        "guardrail_worsened": ["Keep the change off for new users while the guardrail regression is investigated.",
                               "Fix the regression and re-run, or accept the trade-off explicitly with the owner."],
        "guardrail_unproven": ["Keep the experiment running until every guardrail is shown non-inferior at its margin "
                               "(the policy requires it before a launch).",
                               _unproven_action(report) or ""],
        "primary_better": [f"Ship {decision.get('winner') or 'the treatment'} with a staged rollout "
                           "(e.g. 10% → 50% → 100%), watching the guardrails at each step.",
                           (f"Watch {_watch_phrase(watch)} closely: a harm beyond the margin is not ruled out. " if watch
                            else "") + "Roll back if any guardrail crosses its margin during rollout."],
        "inconclusive": ["Keep the experiment running, or stop it and keep the control.",
                         *[r for r in decision["reasons"] if "users" in r or "detect" in r][:1]],
    }
    return [a for a in actions.get(rule, []) if a]


def _split_text(split: Any) -> str:
    """``equal (3 arms)`` when every arm expects the same share, else ``control 50%, treatment 50%``."""
    if not isinstance(split, dict) or not split:
        return str(split)
    shares = list(split.values())
    if max(shares) - min(shares) < 1e-9:
        return f"equal ({len(shares)} arms)"
    return ", ".join(f"{arm} {format_percent(share, signed=False, digits=0)}" for arm, share in split.items())


def _why(report: dict[str, Any]) -> tuple[str, ...]:
    """The rule and its reasons, the rule's title said once.

    Analytics' first reason often restates the title ("Rule 6 — the primary metric is significantly
    better" / "The primary metric is significantly better in treatment: …"); then the title runs
    into that reason instead of being repeated, and that sentence leads.
    """
    rule = report["decision"]["rule"]
    title = rule_title(rule)
    label, _, phrase = title.partition(" — ")
    reasons = list(report["decision"]["reasons"])
    if phrase:
        for index, reason in enumerate(reasons):
            text = re.sub(r"^\[[^\]]*\] ", "", reason)
            if text.lower().startswith(phrase.lower()):
                merged = f"{label} — {phrase}{text[len(phrase):]}"
                return (merged, *reasons[:index], *reasons[index + 1:])
    return (title + ".", *reasons)


def _badge(report: dict[str, Any]) -> str:
    """The decision badge: a hold on untrustworthy data must not look like an inconclusive hold."""
    rule = report["decision"]["rule"]
    outcome = str(report["decision"]["outcome"]).upper()
    if rule == "data_blocked":
        return f"{outcome} — DATA BLOCKED"
    if rule == "srm":
        return f"{outcome} — SAMPLE RATIO MISMATCH"
    return outcome


def _thresholds(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The policy-wide thresholds; per-metric directions and margins are in :func:`_metric_thresholds`."""
    policy = report["policy"]
    split = policy["expected_split"]
    rows = [
        ("Significance level α (two-sided)", format_number(policy["alpha"])),
        ("SRM warning / blocked when p <",
         f"{format_number(policy['srm_warning_p'])} / {format_number(policy['srm_blocked_p'])}"),
        ("Expected split", _split_text(split)),
        ("Power for sample sizes", format_percent(policy["power"], signed=False, digits=0)),
    ]
    if policy.get("planned_mde") is not None:
        kind = "relative" if policy.get("planned_mde_relative") else "absolute"
        rows.append(("Planned MDE", f"{format_number(policy['planned_mde'])} ({kind})"))
    if "require_non_inferiority" in policy:
        rows.append(("Non-inferiority of guardrails for launch",
                     "required (rule 6b)" if policy["require_non_inferiority"] else "not required"))
    if "guardrail_correction" in policy:
        rows.append(("Guardrail harm p-values",
                     "Holm across an arm's guardrails" if policy["guardrail_correction"] == "holm" else "not adjusted"))
    if report.get("rules_version", 1) < 2 and policy.get("guardrail_worsened") is not None:
        rows.append(("Rules version", "1 (one margin for every guardrail)"))
    return rows


def _metric_thresholds(report: dict[str, Any]) -> list[MetricThreshold]:
    """One row per metric (the first arm's; margins relative to control are the same for every arm)."""
    rows: list[MetricThreshold] = []
    seen: set[str] = set()
    for comparison in report["comparisons"]:
        roles = [(comparison["primary"], "primary"), *((m, "secondary") for m in comparison.get("secondary", [])),
                 *((g, "guardrail") for g in comparison["guardrails"])]
        for metric, role in roles:
            if metric["metric"] in seen:
                continue
            seen.add(metric["metric"])
            better, better_default = _better(metric, role)
            margin, severe = _margins(metric, role, report["policy"])
            rows.append(MetricThreshold(
                metric["metric"], role, better, better_default,
                format_margin(metric, margin), bool(margin and margin.get("default")),
                format_margin(metric, severe), bool(severe and severe.get("default"))))
    return rows


def _count(group: dict[str, Any]) -> str:
    n = group.get("n")
    return format_count(int(n)) if n is not None else "—"


def _prob_better(metric: dict[str, Any]) -> str:
    """P(treatment better), already in the metric's declared direction in the report (rules v2)."""
    bayes = metric.get("bayesian")
    if not bayes or bayes.get("prob_treatment_better") is None:
        return "—"
    return format_probability(bayes["prob_treatment_better"])


def _guardrail_chart_row(g: dict[str, Any], label: str, policy: dict[str, Any]) -> ChartRow | None:
    """The harm CI in multiples of the guardrail's margin, so rates and ms latencies share one axis."""
    margin, severe = _margins(g, "guardrail", policy)
    if not margin or not margin.get("absolute"):
        return None  # no margin, or a relative margin on a control of 0: nothing to scale by
    unit = float(margin["absolute"])
    harm, low, high = _harm(g)
    ratio = float(severe["absolute"]) / unit if severe and severe.get("absolute") else None
    return ChartRow(label, harm / unit, low / unit, high / unit, g["status"], ratio)


def experiment_charter(experiment: ExperimentRecord) -> Charter:
    """The charter a stored experiment was saved with, as its memo prints it."""
    return Charter(**{field.name: getattr(experiment, field.name) for field in dataclasses.fields(Charter)})


def build_memo(report: dict[str, Any], *, charter: Charter | None = None, notes: str | None = None,
               date: str | None = None) -> MemoModel:
    """Turn a report dict (the JSON contract, schema 1 or 2) into the memo's content.

    ``notes`` longer than :data:`MAX_NOTES_CHARS` raise ``ValueError``.
    """
    if notes is not None and len(notes) > MAX_NOTES_CHARS:
        raise ValueError(f"notes are limited to {MAX_NOTES_CHARS} characters (got {len(notes)})")
    charter = charter or Charter()
    if charter.hypothesis is None and report["experiment"].get("hypothesis"):
        charter = dataclasses.replace(charter, hypothesis=report["experiment"]["hypothesis"])
    clipped: dict[str, Any] = {k: _clip(v) for k, v in vars(charter).items() if isinstance(v, str)}
    charter = dataclasses.replace(charter, **clipped)
    decision = report["decision"]
    policy = report["policy"]
    srm = report["health"]["srm"]
    srm_line = None
    if srm:
        observed = ", ".join(f"{k} {format_count(v)}" for k, v in srm["observed"].items())
        srm_line = (f"χ² = {format_number(srm['chi2'])}, p = {format_p(srm['p_value'])} ({srm['status']}); "
                    f"users: {observed}")
    several = len(report["comparisons"]) > 1
    by_arm = {c["treatment"]: c for c in report["comparisons"]}
    deciding = by_arm.get(decision.get("winner") or "") or _arm_for_rule(report, by_arm)
    chart_arm = deciding["treatment"] if several and deciding else None
    evidence: list[EvidenceRow] = []
    guardrails: list[GuardrailRow] = []
    primary_chart: list[ChartRow] = []
    guardrail_chart: list[ChartRow] = []
    for comparison in report["comparisons"]:
        treatment = comparison["treatment"]
        roles = [(comparison["primary"], "primary"), *((m, "secondary") for m in comparison.get("secondary", []))]
        for metric, role in roles:
            better = _better(metric, role)[0]
            simultaneous = metric.get("ci_simultaneous")
            evidence.append(EvidenceRow(
                treatment, metric["metric"], format_value(metric, metric["control"]["value"]),
                format_value(metric, metric["treatment"]["value"]), format_absolute(metric), format_relative(metric),
                # Sequential: the adjusted p is the always-valid one (its own column); this one is fixed-horizon.
                format_p(metric["p_value"] if _sequential_text(metric) else metric.get("p_value_adjusted",
                                                                                        metric["p_value"])),
                _prob_better(metric),
                metric["significant"], role=role, better=better,
                simultaneous=format_interval(metric, simultaneous) if simultaneous else None,
                p_exact=format_p(metric["p_value_exact"]) if metric.get("p_value_exact") is not None else None,
                control_n=_count(metric["control"]), treatment_n=_count(metric["treatment"]),
                sequential=_sequential_text(metric)))
        primary = comparison["primary"]
        if primary.get("relative_ci") is not None:
            low, high = primary["relative_ci"]
            primary_chart.append(ChartRow(treatment if several else primary["metric"], primary["relative_effect"] * 100,
                                          low * 100, high * 100, "primary"))
        for g in comparison["guardrails"]:
            margin, severe = _margins(g, "guardrail", policy)
            guardrails.append(GuardrailRow(
                treatment, g["metric"], format_value(g, g["control"]["value"]), format_value(g, g["treatment"]["value"]),
                format_absolute(g), format_p(g.get("p_value_adjusted", g["p_value"])), g["status"],
                harm_upper=format_amount(g, _harm(g)[2]), margin=format_margin(g, margin),
                severe=format_margin(g, severe)))
            row = _guardrail_chart_row(g, g["metric"], policy)
            if row is not None and treatment == (chart_arm or treatment):
                guardrail_chart.append(row)
    actual = sum(srm["observed"].values()) if srm else 0
    cuped_notes = []
    for comparison in report["comparisons"]:
        cuped = comparison["primary"].get("cuped")
        if cuped:
            cuped_notes.append(f"{comparison['treatment']}: {cuped_sentence(cuped)}")
    metrics = [m for c in report["comparisons"] for m in (c["primary"], *c.get("secondary", []), *c["guardrails"])]
    tests = "Rates use the unpooled Wald z-test; means use Welch's t-test"
    if any(m["type"] == "ratio" for m in metrics):
        tests += "; ratio metrics (Σnumerator / Σdenominator) use the delta method"
    if any(m.get("p_value_exact") is not None for m in metrics):
        tests += "; with sparse counts Fisher's exact test must agree"
    correction = "treatment arms are Holm-adjusted against each other"
    if policy.get("guardrail_correction") == "holm":
        correction += ", guardrail harms across an arm's guardrails"
    assumptions = (
        "Users are independent and each saw one variant for the whole experiment.",
        tests + ".",
        f"Tests are two-sided at α = {format_number(policy['alpha'])}; {correction}.",
        ("Decisions use always-valid (sequential) CIs and p-values, valid however often the results were "
         f"looked at (confidence sequence tuned for {format_count(_tuning(report))} users)"
         if policy.get("sequential") else "Results were read once at the end (no optional stopping)")
        + "; Bayesian numbers (flat priors) are for reference and do not drive the decision.",
        *cuped_notes,
    )
    primary_metric = report["comparisons"][0]["primary"] if report["comparisons"] else None
    return MemoModel(
        title=_clip(report["experiment"]["name"]) or "Experiment",
        date=date or dt.date.today().isoformat(),
        outcome=decision["outcome"],
        outcome_label=decision["outcome"].capitalize(),
        rule=decision["rule"],
        rule_title=RULE_TITLES.get(decision["rule"], decision["rule"]),
        conclusion=_conclusion(report),
        reasons=tuple(decision["reasons"]),
        health_status=report["health"]["status"],
        srm_line=srm_line,
        issues=tuple({"code": i["code"], "severity": i["severity"], "message": i["message"]}
                     for i in report["health"]["issues"]),
        evidence=tuple(evidence),
        guardrails=tuple(guardrails),
        risks=tuple(_risks(report, charter, actual)),
        next_actions=tuple(_next_actions(report)),
        charter=charter,
        actual_sample=actual,
        assumptions=assumptions,
        thresholds=tuple(_thresholds(report)),
        analytics_version=str(report.get("analytics_version", "")),
        sha256=report["input"]["sha256"],
        input_kind=report["input"]["kind"],
        notes=notes.strip() if notes and notes.strip() else None,
        primary_chart=tuple(primary_chart),
        guardrail_chart=tuple(guardrail_chart),
        metric_thresholds=tuple(_metric_thresholds(report)),
        primary_better=_better(primary_metric, "primary")[0] if primary_metric else None,
        arm_count=max(1, len(report["comparisons"])),
        rules_version=int(report.get("rules_version", 1)),
        why=_why(report),
        badge=_badge(report),
        untrusted=UNTRUSTED_RULES.get(decision["rule"]),
        actual_sample_text=format_count(actual),
        planned_sample_text=format_count(charter.planned_sample) if charter.planned_sample else None,
        chart_arm=chart_arm,
        arms=tuple(c["treatment"] for c in report["comparisons"]),
        sequential=bool(policy.get("sequential")),
        **_timeline(report, deciding["treatment"] if deciding else None),
    )


def _sequential_text(metric: dict[str, Any]) -> str | None:
    """``[+0.05, +1.05] pp (p = 0.0161)``: the always-valid CI and p of a sequential analysis."""
    sequential = metric.get("sequential")
    if not isinstance(sequential, dict) or not sequential.get("ci"):
        return None
    p_value = metric.get("p_value_adjusted", sequential["p_value"])  # the decision's p: always-valid, Holm-adjusted
    return f"{format_interval(metric, sequential['ci'])} (p = {format_p(p_value)})"


def _tuning(report: dict[str, Any]) -> float:
    for comparison in report["comparisons"]:
        sequential = comparison["primary"].get("sequential")
        if isinstance(sequential, dict) and sequential.get("tuning"):
            return float(sequential["tuning"])
    tuning = report["policy"].get("sequential_tuning")
    return float(tuning) if isinstance(tuning, int | float) else 5000.0


def _timeline(report: dict[str, Any], arm: str | None) -> dict[str, Any]:
    """The timeline chart's points for the deciding arm (the first when none decides) and a
    sentence on when each interval first excluded zero."""
    points = [p for p in report.get("timeline") or [] if isinstance(p, dict)]
    if not points or not report["comparisons"]:
        return {}
    arm = arm if any(p["treatment"] == arm for p in points) else points[0]["treatment"]
    rows = [p for p in points if p["treatment"] == arm]
    primary = next(c["primary"] for c in report["comparisons"] if c["treatment"] == arm)
    scale, unit = (100.0, "pp") if primary["type"] == "proportion" else (1.0, "")
    timeline, previous = [], (0, 0)
    for p in rows:
        sequential = p.get("sequential") or {}
        low, high = sequential.get("ci") or (None, None)
        counts = (int(p["control"]["n"]), int(p["treatment_arm"]["n"]))
        timeline.append(TimelinePoint(
            p["date"], p["absolute_effect"] * scale, p["absolute_ci"][0] * scale, p["absolute_ci"][1] * scale,
            None if low is None else low * scale, None if high is None else high * scale,
            counts[0] - previous[0], counts[1] - previous[1]))
        previous = counts

    def first(excludes: Any) -> str | None:
        return next((t.date for t in timeline if excludes(t)), None)

    fixed = first(lambda t: t.low > 0 or t.high < 0)
    sequential = any(t.sequential_low is not None for t in timeline)
    def amount(value: float) -> str:
        return f"{value:+.2f} pp" if unit else format_number(value, signed=True)

    summary = (f"Across {len(timeline)} days the cumulative effect moved from {amount(timeline[0].effect)} to "
               f"{amount(timeline[-1].effect)}. ")
    summary += (f"The fixed-horizon 95% CI first excluded 0 on {fixed}" if fixed
                else "The fixed-horizon 95% CI never excluded 0")
    if sequential:
        always = first(lambda t: (t.sequential_low or 0) > 0 or (t.sequential_high or 0) < 0)
        summary += (f"; the always-valid CI first did on {always}." if always
                    else "; the always-valid CI, valid at every look, never did.")
    else:
        summary += "." + (" Deciding at an interim look needs sequential inference: fixed-horizon CIs checked "
                          "daily exclude 0 by chance far more often than 5%." if fixed else "")
    return {"timeline": tuple(timeline), "timeline_arm": arm, "timeline_unit": unit, "timeline_summary": summary}
