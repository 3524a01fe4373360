"""The memo model: everything the one-page memo says, built from a report's JSON.

Built from the JSON contract (not the live objects) so that a stored analysis renders
exactly like a fresh one. All wording that is not a number lives in the templates;
this module only decides *which* facts apply and formats numbers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from dashapp.formatting import format_absolute, format_p, format_probability, format_relative, format_value

__all__ = ["MAX_NOTES_CHARS", "MAX_TEXT_CHARS", "Charter", "MemoModel", "build_memo"]

MAX_NOTES_CHARS = 4000
MAX_TEXT_CHARS = 300

RULE_TITLES = {
    "data_blocked": "Rule 1 — the data is blocked",
    "srm": "Rule 2 — sample ratio mismatch",
    "guardrail_severe": "Rule 3 — a guardrail worsened severely",
    "primary_worse": "Rule 4 — the primary metric is significantly worse",
    "guardrail_worsened": "Rule 5 — a guardrail worsened",
    "primary_better": "Rule 6 — the primary metric is significantly better",
    "inconclusive": "Rule 7 — inconclusive",
}


@dataclass(frozen=True)
class Charter:
    """What the team planned before the experiment (all optional)."""

    hypothesis: str | None = None
    primary_metric: str | None = None
    mde: str | None = None
    planned_sample: int | None = None
    start_date: str | None = None
    end_date: str | None = None
    owner: str | None = None


@dataclass(frozen=True)
class EvidenceRow:
    treatment: str
    metric: str
    control_value: str
    treatment_value: str
    absolute: str
    relative: str
    p_value: str
    prob_better: str
    significant: bool


@dataclass(frozen=True)
class GuardrailRow:
    treatment: str
    metric: str
    control_value: str
    treatment_value: str
    change: str
    p_value: str
    status: str


@dataclass(frozen=True)
class ChartRow:
    label: str
    value: float
    low: float
    high: float
    kind: str  # "primary" or the guardrail status


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


def _clip(text: str | None, limit: int = MAX_TEXT_CHARS) -> str | None:
    if text is None:
        return None
    text = str(text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"










def _effect_phrase(metric: dict[str, Any], *, signed: bool = False) -> str:
    """The effect for a sentence: its size after a verb that gives the direction ("raised …
    by 0.31 pp"), or ``signed`` where nothing else does ("no significant change (−0.31 pp …)")."""
    effect = metric["absolute_effect"]
    if metric["type"] == "proportion":
        size = f"{effect * 100:+.2f} pp" if signed else f"{abs(effect) * 100:.2f} pp"
    else:
        size = f"{effect:+,.4g}" if signed else f"{abs(effect):,.4g}"
    if metric.get("relative_effect") is not None and metric.get("relative_ci") is not None:
        low, high = metric["relative_ci"]
        return f"{size} ({metric['relative_effect']:+.1%}, 95% CI {low:+.1%} to {high:+.1%})"
    low, high = metric["absolute_ci"]
    return f"{size} (95% CI {low:+.4g} to {high:+.4g})"


def _sentence_start(name: str) -> str:
    return name[:1].upper() + name[1:]




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
    if decision["outcome"] == "launch":
        primary = comparisons[decision["winner"]]["primary"]
        return f"{_sentence_start(decision['winner'])} raised {metric_name} by {_effect_phrase(primary)}; ship it."
    first = decision["arms"][0] if decision["arms"] else None
    arm = comparisons[first["treatment"]] if first else None
    if rule == "guardrail_severe" and arm:
        bad = [g for g in arm["guardrails"] if g["status"] == "severe"]
        names = ", ".join(g["metric"] for g in bad)
        return (f"{_sentence_start(arm['treatment'])} severely worsened the {names} guardrail "
                f"({_effect_phrase(bad[0], signed=True)}); roll it back.")
    if rule == "primary_worse" and arm:
        return f"{_sentence_start(arm['treatment'])} lowered {metric_name} by {_effect_phrase(arm['primary'])}; roll it back."
    if rule == "guardrail_worsened" and arm:
        bad = [g for g in arm["guardrails"] if g["status"] == "worsened"]
        names = ", ".join(g["metric"] for g in bad)
        return (f"The {names} guardrail worsened ({_effect_phrase(bad[0], signed=True)}); hold until the cause is "
                "understood.")
    if arm:
        return (f"No significant change in {metric_name} ({_effect_phrase(arm['primary'], signed=True)}); hold — the "
                "result is inconclusive.")
    return "Hold."


def _risks(report: dict[str, Any], charter: Charter, actual: int) -> list[str]:
    risks: list[str] = []
    for comparison in report["comparisons"]:
        inconclusive = [g["metric"] for g in comparison["guardrails"] if g["status"] == "inconclusive"]
        if inconclusive:
            risks.append(f"Guardrail {', '.join(inconclusive)} ({comparison['treatment']}) is inconclusive: a harm above "
                         f"{report['policy']['guardrail_worsened'] * 100:g} pp cannot be ruled out.")
        minor = [g["metric"] for g in comparison["guardrails"] if g["status"] == "minor"]
        if minor:
            risks.append(f"Guardrail {', '.join(minor)} ({comparison['treatment']}) worsened significantly but within "
                         "the tolerated threshold.")
        note = comparison["primary"].get("note")
        if note:
            risks.append(note)
    if charter.planned_sample and actual < charter.planned_sample:
        risks.append(f"Under-powered: {actual:,} users analysed vs {charter.planned_sample:,} planned in the charter "
                     f"({actual / charter.planned_sample:.0%}).")
    srm = report["health"]["srm"]
    if srm and srm["status"] == "healthy" and srm["p_value"] < 0.01:
        risks.append(f"The traffic split is close to the SRM limit (p = {format_p(srm['p_value'])}); check assignment.")
    risks.extend(report.get("segment_flags") or [])
    if len(report["comparisons"]) > 1:
        risks.append(f"{len(report['comparisons'])} treatment arms were compared; p-values are Holm-adjusted.")
    for issue in report["health"]["issues"]:
        if issue["severity"] == "warning" and issue["code"] != "srm":
            risks.append(issue["message"])
    return risks


def _next_actions(report: dict[str, Any]) -> list[str]:
    decision = report["decision"]
    rule = decision["rule"]
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
        "primary_better": [f"Ship {decision.get('winner') or 'the treatment'} with a staged rollout "
                           "(e.g. 10% → 50% → 100%), watching the guardrails at each step.",
                           "Roll back if any guardrail crosses the worsened threshold during rollout."],
        "inconclusive": ["Keep the experiment running, or stop it and keep the control.",
                         *[r for r in decision["reasons"] if "users" in r or "detect" in r][:1]],
    }
    return [a for a in actions.get(rule, []) if a]


def _thresholds(policy: dict[str, Any]) -> list[tuple[str, str]]:
    split = policy["expected_split"]
    split_text = ", ".join(f"{k} {v:.0%}" for k, v in split.items()) if isinstance(split, dict) else str(split)
    rows = [
        ("Significance level α (two-sided)", f"{policy['alpha']:g}"),
        ("SRM warning when p <", f"{policy['srm_warning_p']:g}"),
        ("SRM blocked when p <", f"{policy['srm_blocked_p']:g}"),
        ("Guardrail worsened above", f"{policy['guardrail_worsened'] * 100:g} pp"),
        ("Guardrail severe above", f"{policy['guardrail_severe'] * 100:g} pp"),
        ("Expected split", split_text),
        ("Power for sample sizes", f"{policy['power']:.0%}"),
    ]
    if policy.get("planned_mde") is not None:
        kind = "relative" if policy.get("planned_mde_relative") else "absolute"
        rows.append(("Planned MDE", f"{policy['planned_mde']:g} ({kind})"))
    for name, direction in (policy.get("harm_directions") or {}).items():
        rows.append((f"Guardrail {name} is harmful when it", "increases" if direction == "increase" else "decreases"))
    return rows


def build_memo(report: dict[str, Any], *, charter: Charter | None = None, notes: str | None = None,
               date: str | None = None) -> MemoModel:
    """Turn a report dict (the JSON contract) into the memo's content.

    ``notes`` longer than :data:`MAX_NOTES_CHARS` raise ``ValueError``.
    """
    if notes is not None and len(notes) > MAX_NOTES_CHARS:
        raise ValueError(f"notes are limited to {MAX_NOTES_CHARS} characters (got {len(notes)})")
    charter = charter or Charter()
    if charter.hypothesis is None and report["experiment"].get("hypothesis"):
        charter = Charter(**{**charter.__dict__, "hypothesis": report["experiment"]["hypothesis"]})
    charter = Charter(**{k: _clip(v) if isinstance(v, str) else v for k, v in charter.__dict__.items()})
    decision = report["decision"]
    srm = report["health"]["srm"]
    srm_line = None
    if srm:
        observed = ", ".join(f"{k} {v:,}" for k, v in srm["observed"].items())
        srm_line = f"χ² = {srm['chi2']:.2f}, p = {format_p(srm['p_value'])} ({srm['status']}); users: {observed}"
    evidence, guardrails, primary_chart, guardrail_chart = [], [], [], []
    for comparison in report["comparisons"]:
        treatment = comparison["treatment"]
        for metric in (comparison["primary"], *comparison.get("secondary", [])):
            bayes = metric.get("bayesian")
            evidence.append(EvidenceRow(
                treatment, metric["metric"], format_value(metric, metric["control"]["value"]),
                format_value(metric, metric["treatment"]["value"]), format_absolute(metric), format_relative(metric),
                format_p(metric.get("p_value_adjusted", metric["p_value"])),
                format_probability(bayes["prob_treatment_better"]) if bayes else "—", metric["significant"]))
        primary = comparison["primary"]
        if primary.get("relative_ci") is not None:
            low, high = primary["relative_ci"]
            primary_chart.append(ChartRow(f"{treatment}: {primary['metric']}", primary["relative_effect"] * 100,
                                          low * 100, high * 100, "primary"))
        for g in comparison["guardrails"]:
            guardrails.append(GuardrailRow(
                treatment, g["metric"], format_value(g, g["control"]["value"]), format_value(g, g["treatment"]["value"]),
                format_absolute(g), format_p(g["p_value"]), g["status"]))
            scale = 100.0 if g["type"] == "proportion" else 1.0
            low, high = g["absolute_ci"]
            label = g["metric"] if len(report["comparisons"]) == 1 else f"{treatment}: {g['metric']}"
            guardrail_chart.append(ChartRow(label, g["absolute_effect"] * scale, low * scale, high * scale, g["status"]))
    actual = sum(srm["observed"].values()) if srm else 0
    cuped_notes = []
    for comparison in report["comparisons"]:
        cuped = comparison["primary"].get("cuped")
        if cuped:
            state = "used for the decision" if cuped["applied"] else "reported only"
            cuped_notes.append(
                f"{comparison['treatment']}: CUPED with {cuped['covariate']} (θ = {cuped['theta']:.3g}, variance "
                f"−{cuped['variance_reduction']:.0%}, {state}); unadjusted change {format_absolute(cuped['unadjusted'])}.")
    assumptions = (
        "Users are independent and each saw one variant for the whole experiment.",
        "Conversion rates and count guardrails use the unpooled Wald z-test; continuous metrics use Welch's t-test.",
        f"Tests are two-sided at α = {report['policy']['alpha']:g}; treatment arms are Holm-adjusted against each other.",
        "Results were read once at the end (no optional stopping); Bayesian numbers (Beta(1,1) priors) are for "
        "reference and do not drive the decision.",
        "Guardrails are harmful when they increase unless stated otherwise below.",
        *cuped_notes,
    )
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
        thresholds=tuple(_thresholds(report["policy"])),
        analytics_version=str(report.get("analytics_version", "")),
        sha256=report["input"]["sha256"],
        input_kind=report["input"]["kind"],
        notes=notes.strip() if notes and notes.strip() else None,
        primary_chart=tuple(primary_chart),
        guardrail_chart=tuple(guardrail_chart),
    )
