"""Pure builders of dashboard components from report dicts (no callbacks, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from analytics import GuardrailStatus, HealthStatus, Outcome
from analytics.wording import format_count, format_number, format_p, format_probability, rule_title
from dashapp import ids
from dashapp.figures import guardrail_harm, untrusted_reason
from dashapp.formatting import (
    cuped_sentence,
    format_absolute,
    format_amount,
    format_interval,
    format_margin,
    format_relative,
    format_value,
)

__all__ = [
    "DATA_HOLDS",
    "DECISION_COLOURS",
    "HEALTH_COLOURS",
    "STATUS_COLOURS",
    "better_text",
    "data_guard",
    "decision_badge",
    "decision_label",
    "default_mark",
    "download_card",
    "guardrail_table",
    "health_badge",
    "health_panel",
    "issue_list",
    "metric_settings_table",
    "primary_card",
    "segment_table",
    "status_banner",
    "upload_outcome",
]

HEALTH_COLOURS = {HealthStatus.HEALTHY: "success", HealthStatus.WARNING: "warning", HealthStatus.BLOCKED: "danger"}
DECISION_COLOURS = {Outcome.LAUNCH: "success", Outcome.HOLD: "warning", Outcome.ROLLBACK: "danger"}
#: A hold because the data cannot be trusted is not an inconclusive test: it reads and looks different.
DATA_HOLDS = {"data_blocked": "HOLD — DATA BLOCKED", "srm": "HOLD — SAMPLE RATIO MISMATCH"}
STATUS_COLOURS = {GuardrailStatus.OK: "success", GuardrailStatus.MINOR: "info",
                  GuardrailStatus.INCONCLUSIVE: "secondary", GuardrailStatus.WORSENED: "warning",
                  GuardrailStatus.SEVERE: "danger"}


def health_badge(status: str, *, element_id: str | None = ids.HEALTH_STATUS) -> dbc.Badge:
    props: dict[str, Any] = {"id": element_id} if element_id else {}
    return dbc.Badge(status.capitalize(), color=HEALTH_COLOURS.get(status, "secondary"), className="fs-6 me-2",
                     **props)


def issue_list(issues: list[dict[str, str]]) -> html.Div:
    if not issues:
        return html.P("No data-quality issues found.", className="text-success mb-0")
    items = [
        dbc.ListGroupItem([
            dbc.Badge(issue["severity"].capitalize(), color="danger" if issue["severity"] == "blocked" else "warning",
                      className="me-2"),
            html.Code(issue["code"], className="me-2"),
            html.Span(issue["message"]),
        ], className="issue")
        for issue in issues
    ]
    return dbc.ListGroup(items, className="issue-list")


def health_panel(report: dict[str, Any]) -> html.Div:
    """The health badge, the SRM line and every issue."""
    health = report["health"]
    srm = health.get("srm")
    srm_line = None
    if srm:
        observed = ", ".join(f"{name}: {format_count(count)}" for name, count in srm["observed"].items())
        p_value = format_p(srm["p_value"])
        srm_line = html.Small(f"SRM χ² = {format_number(srm['chi2'])}, "
                              f"p {p_value if p_value.startswith('<') else '= ' + p_value} — users {observed}",
                              className="text-muted d-block mb-2")
    return html.Div([
        html.Div([html.Span("Health: ", className="fw-semibold me-1"), health_badge(health["status"]),
                  html.Span(f"{report['experiment']['name']} · {format_count(report['input']['rows'])} rows · "
                            f"sha256 {report['input']['sha256'][:12]}…", className="text-muted small")],
                 className="d-flex align-items-center mb-2 flex-wrap"),
        srm_line,
        issue_list(health["issues"]),
    ])


def status_banner(report: dict[str, Any]) -> html.Div:
    status = report["health"]["status"]
    if status == HealthStatus.HEALTHY:
        return html.Div(id=ids.STATUS_BANNER)
    problems = [i for i in report["health"]["issues"] if i["severity"] == status]
    heading = ("Blocked: these results cannot be used until the data is fixed." if status == HealthStatus.BLOCKED
               else "Warning: check these data-quality findings before acting on the results.")
    return html.Div(dbc.Alert([html.H5(heading, className="alert-heading"),
                               html.Ul([html.Li(i["message"]) for i in problems])],
                              color="danger" if status == HealthStatus.BLOCKED else "warning"), id=ids.STATUS_BANNER)


def decision_label(report: dict[str, Any]) -> tuple[str, str]:
    """The decision as a badge reads and its colour: ``LAUNCH treatment_b`` in green, ``HOLD`` in
    yellow for an inconclusive test, ``HOLD — DATA BLOCKED`` in grey when the data cannot be used."""
    decision = report["decision"]
    outcome = decision["outcome"]
    if decision.get("rule") in DATA_HOLDS:
        return DATA_HOLDS[decision["rule"]], "secondary"
    several = len(report.get("comparisons") or []) > 1
    winner = f" {decision['winner']}" if decision.get("winner") and several else ""
    return outcome.upper() + winner, DECISION_COLOURS.get(outcome, "secondary")


def decision_badge(report: dict[str, Any]) -> html.Div:
    decision = report["decision"]
    text, colour = decision_label(report)
    return html.Div([
        html.Div([
            dbc.Badge(text, color=colour, className="fs-4 me-3", id=ids.DECISION_BADGE),
            html.Span(rule_title(decision["rule"]), className="fw-semibold"),
        ], className="d-flex align-items-center mb-2 flex-wrap"),
        html.Ul([html.Li(reason) for reason in decision["reasons"]], className="mb-0"),
    ])


def upload_outcome(report: dict[str, Any], filename: str) -> dbc.Alert:
    """What happened to the file, in the colour of its health: never a green box beside a red badge."""
    status = report["health"]["status"]
    if status == HealthStatus.BLOCKED:
        return dbc.Alert([html.B(f"{filename}: blocked. "), "The data cannot be analysed — see the health check "
                          "for what to fix."], color="danger", className="mb-0 py-2")
    if status == HealthStatus.WARNING:
        return dbc.Alert([html.B(f"Analysed {filename}, with warnings. "),
                          "Read the health check before acting on the results."], color="warning",
                         className="mb-0 py-2")
    return dbc.Alert(f"Analysed {filename}: the data is healthy.", color="success", className="mb-0 py-2")

def default_mark(is_default: bool | None) -> Any:
    """The small "default" tag beside a setting nobody declared (nothing when it was declared)."""
    if not is_default:
        return None
    return html.Small("default", className="ms-1 px-1 border rounded text-secondary fw-normal default-mark")


def _better(metric: dict[str, Any]) -> str:
    """A v2 report says ``better``; a stored v1 guardrail only its harmful direction."""
    if metric.get("better"):
        return str(metric["better"])
    return "lower" if metric.get("harm_direction", "increase") == "increase" else "higher"


def better_text(metric: dict[str, Any]) -> list[Any]:
    """``higher is better`` with the default tag when the direction was not declared."""
    return [f"{_better(metric)} is better", default_mark(metric.get("better_default", True))]


def _margin_cell(metric: dict[str, Any], key: str) -> list[Any]:
    margin = metric.get(key)
    if not margin:
        return ["—"]
    return [format_margin(metric, margin), default_mark(margin.get("default"))]


def metric_settings_table(report: dict[str, Any]) -> html.Div:
    """Each metric's direction and margins as the analysis used them, defaults marked (read-only)."""
    comparisons = report.get("comparisons") or []
    if not comparisons:
        return html.Div(html.P("No metric could be analysed.", className="text-muted"), id=ids.STORED_METRICS)
    first = comparisons[0]
    metrics = [("primary", first["primary"])] + [("secondary", m) for m in first.get("secondary") or []] \
        + [("guardrail", m) for m in first["guardrails"]]
    header = html.Thead(html.Tr([html.Th(h) for h in ("Metric", "Role", "Better", "Margin", "Severe margin")]))
    body = [html.Tr([html.Td(html.Code(m["metric"])), html.Td(role), html.Td(better_text(m)),
                     html.Td(_margin_cell(m, "margin")), html.Td(_margin_cell(m, "severe_margin"))])
            for role, m in metrics]
    return html.Div(dbc.Table([header, html.Tbody(body)], size="sm", striped=True, className="mb-0"),
                    id=ids.STORED_METRICS)


def primary_card(report: dict[str, Any]) -> dbc.Card:
    """One row per arm: values, effects with CIs, p-values (raw and Holm-adjusted), P(better)."""
    comparisons = report["comparisons"]
    if not comparisons:
        return dbc.Card(dbc.CardBody("No comparison could be computed: fix the data issues above."),
                        id=ids.PRIMARY_CARD)
    reason = untrusted_reason(report)
    muted = "text-muted untrusted" if reason else None
    simultaneous = any(c["primary"].get("ci_simultaneous") for c in comparisons)
    titles = ["Arm", "Control", "Treatment", "Absolute [95% CI]", "Relative [95% CI]", "p", "p (Holm)"]
    titles += ["Simultaneous CI"] if simultaneous else []
    titles += ["P(better)"]
    header = html.Thead(html.Tr([html.Th(h) for h in titles]))
    columns = len(titles)
    rows = []
    for comparison in comparisons:
        metric = comparison["primary"]
        bayes = metric.get("bayesian") or {}
        significant = metric["significant"] and not reason
        rows.append(html.Tr([
            html.Td(comparison["treatment"]),
            html.Td(format_value(metric, metric["control"]["value"])),
            html.Td(format_value(metric, metric["treatment"]["value"])),
            html.Td(format_absolute(metric), className=muted or ("fw-semibold" if significant else None)),
            html.Td(format_relative(metric), className=muted),
            html.Td(format_p(metric["p_value"]), className=muted),
            html.Td(format_p(metric["p_value_adjusted"]), className=muted),
            *([html.Td(format_interval(metric, metric["ci_simultaneous"]) if metric.get("ci_simultaneous") else "—",
                       className=muted)] if simultaneous else []),
            html.Td(format_probability(bayes["prob_treatment_better"]) if bayes else "—", className=muted),
        ]))
        if metric.get("p_value_exact") is not None:
            rows.append(html.Tr(html.Td(f"Sparse counts: Fisher's exact p = {format_p(metric['p_value_exact'])} (the "
                                        "decision needs it to agree).", colSpan=columns, className="text-muted small")))
        if metric.get("note"):
            rows.append(html.Tr(html.Td(metric["note"], colSpan=columns, className="text-muted small")))
        cuped = metric.get("cuped")
        if cuped:
            rows.append(html.Tr(html.Td(cuped_sentence(cuped), colSpan=columns, className="text-muted small")))
    secondary = [(c["treatment"], s) for c in comparisons for s in c.get("secondary", [])]
    extra = []
    if secondary:
        extra = [html.H6("Secondary metrics", className="mt-3"), dbc.Table([
            html.Thead(html.Tr([html.Th(h) for h in ("Arm", "Metric", "Better", "Control", "Treatment",
                                                     "Absolute [95% CI]", "Relative [95% CI]", "p")])),
            html.Tbody([html.Tr([html.Td(t), html.Td(s["metric"]), html.Td(better_text(s)),
                                 html.Td(format_value(s, s["control"]["value"])),
                                 html.Td(format_value(s, s["treatment"]["value"])), html.Td(format_absolute(s)),
                                 html.Td(format_relative(s)), html.Td(format_p(s["p_value"]))]) for t, s in secondary]),
        ], size="sm", striped=True, className="mb-0")]
    metric_name = report["experiment"]["primary_metric"]
    first = comparisons[0]["primary"]
    warning = None
    if reason:
        warning = html.Div([dbc.Badge(f"not trustworthy: {reason}", color="danger", className="me-2"),
                            html.Small("The effects below come from broken data: they are shown for diagnosis, "
                                       "not for a decision.", className="text-muted")],
                           id=ids.UNTRUSTED_NOTE, className="mb-2")
    return dbc.Card([
        dbc.CardHeader([f"Primary metric: {metric_name} ({first['type']}) · ", *better_text(first)]),
        dbc.CardBody([warning, dbc.Table([header, html.Tbody(rows)], size="sm", striped=True, className="mb-0"),
                      *extra]),
    ], id=ids.PRIMARY_CARD, className="untrusted-card" if reason else None)


def guardrail_table(report: dict[str, Any]) -> html.Div:
    """Each guardrail of each arm: the change, its direction and margins (defaults marked), the
    upper bound of the harm against them, the harm p (Holm-adjusted across the arm's guardrails)
    and the status."""
    rows = [(c["treatment"], g) for c in report["comparisons"] for g in c["guardrails"]]
    if not rows:
        return html.Div(html.P("No guardrails were analysed.", className="text-muted"), id=ids.GUARDRAIL_TABLE)
    adjusted = (report.get("policy") or {}).get("guardrail_correction", "holm") == "holm"
    body = []
    for treatment, g in rows:
        _, _, harm_high = guardrail_harm(g)
        p_value = g.get("p_value_adjusted", g["p_value"]) if adjusted else g["p_value"]
        body.append(html.Tr([
            html.Td(treatment),
            html.Td([g["metric"], html.Small(better_text(g), className="d-block text-muted text-nowrap")]),
            html.Td(format_value(g, g["control"]["value"])), html.Td(format_value(g, g["treatment"]["value"])),
            html.Td(format_absolute(g), className="text-nowrap"),
            html.Td(_margin_cell(g, "margin"), className="text-nowrap"),
            html.Td(_margin_cell(g, "severe_margin"), className="text-nowrap"),
            html.Td(format_amount(g, harm_high), className="text-nowrap"), html.Td(format_p(p_value)),
            html.Td(dbc.Badge(g["status"].upper(), color=STATUS_COLOURS.get(g["status"], "secondary"))),
        ]))
    header = html.Thead(html.Tr([html.Th(h) for h in (
        "Arm", "Guardrail", "Control", "Treatment", "Change [95% CI]", "Margin", "Severe margin", "Harm ≤",
        "p (Holm)" if adjusted else "p", "Status")]))
    note = html.Small("Harm is the change in the worse direction and “Harm ≤” the upper end of its 95% CI: within "
                      "the margin, the guardrail is shown non-inferior.", className="text-muted")
    return html.Div([dbc.Table([header, html.Tbody(body)], size="sm", striped=True, hover=True, responsive=True,
                               className="mb-1 align-middle"), note], id=ids.GUARDRAIL_TABLE, className="mb-2")


def data_guard(page: str) -> dbc.Alert:
    """The friendly prompt shown on Results / Memo before any data is loaded."""
    return dbc.Alert([
        html.H4(f"No experiment loaded for the {page} yet", className="alert-heading"),
        html.P("Upload a result file or pick a sample on the New Experiment page; the results and the memo "
               "appear here as soon as the health check has run."),
        dcc.Link(dbc.Button("Go to New Experiment", color="primary"), href="/new"),
    ], color="info", className="data-guard")


def segment_table(report: dict[str, Any]) -> html.Div | None:
    """The primary effect per segment value (informative only; the decision does not use it)."""
    rows = report.get("segments") or []
    if not rows:
        return None
    header = html.Thead(html.Tr([html.Th(h) for h in ("Segment", "Value", "Arm", "Users (c / t)", "Absolute [95% CI]",
                                                      "Relative [95% CI]", "p (adj.)", "SRM p")]))
    body = [html.Tr([
        html.Td(r["column"]), html.Td(r["value"]), html.Td(r["variant"]),
        html.Td(f"{format_count(r['control']['n'])} / {format_count(r['treatment']['n'])}"),
        html.Td(format_absolute(r), className="fw-semibold" if r["significant"] else None),
        html.Td(format_relative(r)), html.Td(format_p(r["p_value_adjusted"])),
        html.Td(format_p(r["srm"]["p_value"]), className="text-danger" if r["srm"]["status"] != "healthy" else None),
    ]) for r in rows]
    flags = [dbc.Alert(flag, color="warning", className="py-1 mb-1") for flag in report.get("segment_flags") or []]
    correction = "Holm" if report["policy"].get("segment_correction", "holm") == "holm" else "Benjamini–Hochberg"
    return html.Div([html.H4("Segments", className="mt-3"), *flags,
                     dbc.Table([header, html.Tbody(body)], size="sm", striped=True),
                     html.Small(f"p-values adjusted across each segment's values ({correction}). Segments inform; "
                                "they do not change the decision.", className="text-muted")], id=ids.SEGMENT_TABLE)


def download_card(title: str, *, markdown: str, html_button: str, pdf: str, status: str,
                  downloads: Sequence[str]) -> dbc.Card:
    """Markdown / HTML / PDF buttons with the PDF's status line and the ``dcc.Download`` targets
    (ids given by the page: the memo page and the stored experiment page each have their own)."""
    return dbc.Card([
        dbc.CardHeader(title),
        dbc.CardBody([
            dbc.Button("Markdown", id=markdown, color="secondary", className="me-2 mb-2"),
            dbc.Button("HTML", id=html_button, color="secondary", className="me-2 mb-2"),
            dbc.Button("PDF", id=pdf, color="secondary", className="me-2 mb-2"),
            html.Div(id=status, className="small text-muted"),
            *(dcc.Download(id=target) for target in downloads),
        ]),
    ], className="mb-3")
