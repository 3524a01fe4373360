"""New Experiment: name and charter, power calculator, split, upload or sample, health check at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dash_bootstrap_components as dbc
from dash import ALL, MATCH, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from analytics.power import MAX_PLANNED_LOOKS
from analytics.wording import format_count, format_number, rule_title
from dashapp import ids, spark_panel
from dashapp.components import decision_label, default_mark, health_badge, health_panel, upload_outcome
from dashapp.errors import UploadRejectedError
from dashapp.formatting import format_margin
from dashapp.pages import context
from dashapp.services import sample_files
from dashapp.state import (
    FormValues,
    MetricEdit,
    PlanInputs,
    analyze_staged_session,
    draft,
    edit_metric,
    metric_rows,
    metrics_from_table,
    metrics_into_session,
    plan_answer,
    plan_into_session,
    reanalyze_session,
    sample_content,
    sample_into_session,
    upload_into_session,
    upload_size,
)
from storage.errors import InputFileError

__all__ = [
    "FIELD_IDS",
    "HINT_IDS",
    "PLAN_DEFAULTS",
    "ROLE_COLOURS",
    "AnalysisSettings",
    "Outcome",
    "Progress",
    "analyse_sample",
    "analyse_staged",
    "analyse_upload",
    "analysis_settings",
    "apply_metric_edit",
    "collect_metric_edits",
    "form_values",
    "health_view",
    "layout",
    "metric_hints",
    "metrics_decision",
    "metrics_editor",
    "metrics_table_view",
    "outcome_bar",
    "plan_view",
    "register_callbacks",
    "rerun",
    "rerun_for_switches",
    "start_over",
    "switches_changed",
    "switches_view",
]


def _field(label: str, component: Any, help_text: str | None = None) -> html.Div:
    children = [dbc.Label(label, html_for=getattr(component, "id", None)), component]
    if help_text:
        children.append(dbc.FormText(help_text))
    return html.Div(children, className="mb-2")


def _charter_card() -> dbc.Card:
    return dbc.Card([
        dbc.CardHeader("1 · Experiment and charter"),
        dbc.CardBody([
            _field("Experiment name", dbc.Input(id=ids.EXPERIMENT_NAME, placeholder="e.g. 홈화면 배너 A/B 테스트",
                                                maxLength=200, debounce=True)),
            _field("Hypothesis", dbc.Textarea(id=ids.HYPOTHESIS, placeholder="A bigger banner raises sign-ups",
                                              maxLength=300, rows=2)),
            dbc.Row([
                dbc.Col(_field("Primary metric", dbc.Input(id=ids.PRIMARY_METRIC, placeholder="conversions",
                                                           maxLength=100), "conversions or a <metric>_mean column")),
                dbc.Col(_field("Control variant", dbc.Input(id=ids.CONTROL_NAME, placeholder="control",
                                                            maxLength=100))),
            ]),
            dbc.Row([
                dbc.Col(_field("Expected split", dbc.Input(id=ids.EXPECTED_SPLIT, placeholder="equal shares",
                                                           maxLength=200),
                               "empty = equal; file order (30,70) or by name (control=30,treatment=70)")),
                dbc.Col(_field("Planned MDE", dbc.Input(id=ids.PLANNED_MDE, placeholder="+5% relative",
                                                        maxLength=100))),
            ]),
            dbc.Row([
                dbc.Col(_field("Owner", dbc.Input(id=ids.OWNER, maxLength=100))),
                dbc.Col(_field("Tags", dbc.Input(id=ids.TAGS, placeholder="home, banner", maxLength=200))),
            ]),
            _field("Segment columns (user-level files)", dbc.Input(id=ids.SEGMENTS, placeholder="country, platform",
                                                                   maxLength=300),
                   "segment_* columns are always used; name others here, separated by commas"),
            html.Div([
                dbc.Switch(id=ids.SEQUENTIAL, value=False, className="mb-0",
                           label="Always-valid (sequential) inference"),
                html.Small("For experiments you look at more than once: every decision uses a confidence "
                           "sequence that stays valid however often you peek (wider than the fixed-horizon CI).",
                           className="text-muted d-block mb-2"),
                dbc.Switch(id=ids.CUMULATIVE, value=False, className="mb-0",
                           label="Daily rows are running totals"),
                html.Small("For files with a date column whose rows hold totals so far rather than each day's "
                           "new users.", className="text-muted d-block"),
            ], className="mt-1"),
        ]),
    ], className="mb-3")


# The calculator's values are the user's own across pages (kept for the browser tab's session).
_KEEP: dict[str, Any] = {"persistence": True, "persistence_type": "session"}
PLAN_DEFAULTS: dict[str, Any] = {ids.PLAN_METRIC_TYPE: "proportion", ids.PLAN_BASELINE: 0.12, ids.PLAN_MEAN: None,
                                 ids.PLAN_STD: None, ids.PLAN_MDE: 0.05, ids.PLAN_RELATIVE: ["relative"],
                                 ids.PLAN_DAILY_USERS: 5000, ids.PLAN_ALPHA: 0.05, ids.PLAN_POWER: 0.8,
                                 ids.PLAN_USE: False, ids.PLAN_SEQUENTIAL: False, ids.PLAN_LOOKS: 20}


def _plan_card() -> dbc.Card:
    return dbc.Card([
        dbc.CardHeader("Power calculator"),
        dbc.CardBody([
            dbc.RadioItems(id=ids.PLAN_METRIC_TYPE, inline=True, value=PLAN_DEFAULTS[ids.PLAN_METRIC_TYPE],
                           className="mb-2", **_KEEP,
                           options=[{"label": "Conversion rate", "value": "proportion"},
                                    {"label": "Mean (e.g. revenue)", "value": "mean"}]),
            dbc.Row([
                dbc.Col(_field("Baseline rate", dbc.Input(id=ids.PLAN_BASELINE, type="number",
                                                          value=PLAN_DEFAULTS[ids.PLAN_BASELINE], min=0, max=100,
                                                          step="any", **_KEEP), "0–1, or a percentage"),
                        id=ids.PLAN_BASELINE_BOX),
                dbc.Col(_field("Mean", dbc.Input(id=ids.PLAN_MEAN, type="number", step="any", placeholder="12.4",
                                                 **_KEEP)), id=ids.PLAN_MEAN_BOX, style={"display": "none"}),
                dbc.Col(_field("Std dev", dbc.Input(id=ids.PLAN_STD, type="number", min=0, step="any",
                                                    placeholder="30", **_KEEP)),
                        id=ids.PLAN_STD_BOX, style={"display": "none"}),
            ]),
            dbc.Row([
                dbc.Col(_field("MDE", dbc.Input(id=ids.PLAN_MDE, type="number", value=PLAN_DEFAULTS[ids.PLAN_MDE],
                                                min=0, step="any", **_KEEP))),
                dbc.Col(dbc.Checklist(id=ids.PLAN_RELATIVE, options=[{"label": "relative", "value": "relative"}],
                                      value=PLAN_DEFAULTS[ids.PLAN_RELATIVE], switch=True, className="mt-4",
                                      **_KEEP)),
                dbc.Col(_field("Daily users", dbc.Input(id=ids.PLAN_DAILY_USERS, type="number", min=1, step=1,
                                                        value=PLAN_DEFAULTS[ids.PLAN_DAILY_USERS], **_KEEP))),
            ]),
            dbc.Row([
                dbc.Col(_field("α", dbc.Input(id=ids.PLAN_ALPHA, type="number", value=PLAN_DEFAULTS[ids.PLAN_ALPHA],
                                              min=0, max=100, step="any", **_KEEP), "0–1, e.g. 0.05, or 5 (%)")),
                dbc.Col(_field("Power", dbc.Input(id=ids.PLAN_POWER, type="number", value=PLAN_DEFAULTS[ids.PLAN_POWER],
                                                  min=0, max=100, step="any", **_KEEP), "0–1, e.g. 0.8, or 80 (%)")),
            ]),
            dbc.Row([
                dbc.Col(dbc.Switch(id=ids.PLAN_SEQUENTIAL, value=PLAN_DEFAULTS[ids.PLAN_SEQUENTIAL], **_KEEP,
                                   label="Size for sequential inference (daily looks)"), className="pt-1"),
                dbc.Col(_field("Looks", dbc.Input(id=ids.PLAN_LOOKS, type="number", min=1, max=MAX_PLANNED_LOOKS,
                                                  step=1, value=PLAN_DEFAULTS[ids.PLAN_LOOKS], **_KEEP),
                               "equally spaced, e.g. one a day"),
                        id=ids.PLAN_LOOKS_BOX, width=4, style={"display": "none"}),
            ]),
            dbc.Alert(id=ids.PLAN_RESULT, color="light", className="mb-2"),
            dbc.Switch(id=ids.PLAN_USE, value=PLAN_DEFAULTS[ids.PLAN_USE], **_KEEP,
                       label="Record this as the planned sample in the charter"),
            html.Div(id=ids.PLAN_CONFIRM, className="small", role="status"),
            dcc.Store(id=ids.PLAN_STORE),
        ]),
    ], className="mb-3")


def plan_view(metric_type: str | None, baseline: Any, mean: Any, std: Any, mde: Any, relative: list[str] | None,
              alpha: Any, power: Any, split: str | None, daily: Any, use: bool | None,
              sequential: bool | None = False, looks: Any = 20) -> tuple[Any, ...]:
    """The calculator callback as a plain function: (answer, its colour, planned total to record,
    the record's confirmation, the styles of the baseline, mean, std and looks fields)."""
    kind = metric_type or "proportion"
    # A whole number typed as 20.0 is 20; anything else reaches the planner, which names the problem.
    looks_count = int(looks) if isinstance(looks, float) and looks.is_integer() else looks
    answer = plan_answer(PlanInputs(metric_type=kind, baseline=baseline, mean=mean, std=std,
                                    mde=mde, relative=bool(relative), split=split or "50,50",
                                    daily_users=int(daily) if daily else None, sequential=bool(sequential),
                                    looks=20 if looks_count is None else looks_count), alpha=alpha, power=power)
    shown, hidden = {}, {"display": "none"}
    text: Any = answer.text
    if answer.notes:
        text = [answer.text, *[html.Small(note, className="d-block text-muted plan-note") for note in answer.notes]]
    confirm: Any = None
    if use and answer.total is not None:
        confirm = html.Span(["✓ Recorded: ", html.B(f"{format_count(answer.total)} users"),
                             " is the planned sample in the charter and the memo."], className="text-success")
    elif use:
        confirm = html.Span("Nothing recorded: the calculator has no answer to record.", className="text-danger")
    return (text, "light" if answer.ok else "danger", answer.total if use else None, confirm,
            shown if kind == "proportion" else hidden, hidden if kind == "proportion" else shown,
            hidden if kind == "proportion" else shown, shown if sequential else hidden)


_SENDING = "Sending the file to the server…"


def _large_upload() -> html.Div:
    """A button that streams a big user-level file to the server (assets/large_upload.js)."""
    limit = context.large_upload_limit()
    return html.Div([
        html.Span(f"Larger file (up to {format_number(limit / 2**30)} GB)? ", className="text-muted small"),
        # The file input itself is created by the script outside React (it must outlive page changes).
        html.Button("Send it as a stream", id=ids.LARGE_UPLOAD_BUTTON, type="button",
                    className="btn btn-link btn-sm p-0 align-baseline", **{"data-limit": str(limit)}),
        html.Div([
            dbc.Progress(id=ids.LARGE_UPLOAD_PROGRESS, value=0, className="mt-1"),
            html.Small(id=ids.LARGE_UPLOAD_TEXT, className="text-muted"),
        ], id=ids.LARGE_UPLOAD_BOX, style={"display": "none"}),
        html.Div(id=ids.LARGE_UPLOAD_MESSAGE, className="text-danger small"),
        dcc.Store(id=ids.LARGE_UPLOAD_STAGED),
    ])


def _data_card() -> dbc.Card:
    samples = [{"label": p.name, "value": p.name} for p in sample_files()]
    return dbc.Card([
        dbc.CardHeader("2 · Result data"),
        dbc.CardBody([
            dcc.Upload(
                id=ids.UPLOAD_DATA,
                children=html.Div(["Drop a CSV or Parquet file here, or ", html.A("choose one", href="#")]),
                className="upload-zone", multiple=False,
            ),
            dbc.FormText(f"One row per variant (variant, users, conversions, guardrail_*, …) or one row per user "
                         f"(variant and metric columns); CSV or Parquet up to "
                         f"{format_number(context.upload_limit() / 2**20)} MB."),
            html.Div(id=ids.UPLOAD_LIMIT_MESSAGE, className="text-danger small mt-1"),
            dcc.Store(id=ids.UPLOAD_CHECKED),
            dcc.Store(id=ids.UPLOAD_LIMIT, data=context.upload_limit()),
            _large_upload(),
            dbc.InputGroup([
                dbc.Select(id=ids.SAMPLE_SELECT, options=samples, value=samples[0]["value"] if samples else None),
                dbc.Button("Load sample", id=ids.LOAD_SAMPLE, color="secondary"),
            ], className="mt-2"),
            spark_panel.panel(),  # "Spark table or SQL", when serve has a Spark remote
            dbc.Button("Re-run with these settings", id=ids.REANALYZE, color="link", className="px-0 mt-1"),
            # Whichever way the data came, the analysis's progress and outcome show here.
            html.Div([
                dbc.Progress(id=ids.ANALYSIS_PROGRESS, value=0, striped=True, animated=True, className="mt-1"),
                html.Small(_SENDING, id=ids.ANALYSIS_PROGRESS_TEXT, className="text-muted"),
            ], id=ids.ANALYSIS_PROGRESS_BOX, style={"display": "none"}),
            html.Div(id=ids.UPLOAD_MESSAGE, className="mt-2"),
        ]),
    ], className="mb-3")


# -- each metric's direction and margins ----------------------------------------------------------

ROLE_COLOURS = {"primary": "primary", "guardrail": "warning", "secondary": "secondary"}
FIELD_IDS = {"better": ids.METRIC_BETTER, "margin": ids.METRIC_MARGIN, "severe_margin": ids.METRIC_SEVERE_MARGIN}
HINT_IDS = {"better": ids.METRIC_BETTER_HINT, "margin": ids.METRIC_MARGIN_HINT,
            "severe_margin": ids.METRIC_SEVERE_MARGIN_HINT}


def _metric_id(kind: str, metric: Any) -> dict[str, Any]:
    return {"type": kind, "metric": metric}


def _margin_size(row: dict[str, Any], margin: Any) -> str:
    """``0.10 pp`` or ``1% (0.124)``: the margin in the metric's unit, from the control's value."""
    return format_margin({"type": row["type"]}, {"value": margin.to_json(), "relative": margin.relative,
                                                 "absolute": margin.absolute(float(row.get("control") or 0.0))})


def metric_hints(row: dict[str, Any], edit: MetricEdit) -> tuple[Any, Any, Any]:
    """What each field of a row means: the margin in the metric's unit, and whether it is the
    default (or the default it replaces); a field that cannot be read shows why instead."""
    default = row["default"]

    def note(field: str, size: str | None) -> Any:
        if field in edit.errors:
            return html.Span(edit.errors[field], className="text-danger")
        parts: list[Any] = [size] if size else []
        if edit.changed(field):
            parts.append(html.Span(f"{' · ' if size else ''}default {default[field]}", className="text-body-tertiary"))
        else:
            parts.append(default_mark(True))
        return html.Span(parts)

    return (note("better", None),
            note("margin", _margin_size(row, edit.margin) if edit.margin else None),
            note("severe_margin", _margin_size(row, edit.severe_margin) if edit.severe_margin else None))


def metrics_editor(rows: Sequence[dict[str, Any]]) -> Any:
    """The metrics table: one row per metric of the file, its direction and margins editable."""
    if not rows:
        return html.P("No metric could be analysed in this file: fix the data issues in the health check.",
                      className="text-muted mb-0")
    header = html.Thead(html.Tr([html.Th("Metric"), html.Th("Role"), html.Th("Better", style={"width": "17%"}),
                                 html.Th("Margin", style={"width": "27%"}),
                                 html.Th("Severe margin", style={"width": "27%"})]))
    body = []
    for row in rows:
        name = row["metric"]
        hints = dict(zip(FIELD_IDS, metric_hints(row, edit_metric(row, row["better"], row["margin"],
                                                                  row["severe_margin"])), strict=True))
        controls = {
            "better": dbc.Select(id=_metric_id(ids.METRIC_BETTER, name), value=row["better"], size="sm",
                                 options=[{"label": "higher", "value": "higher"}, {"label": "lower", "value": "lower"}]),
            **{field: dbc.Input(id=_metric_id(FIELD_IDS[field], name), value=row[field], size="sm", debounce=True,
                                maxLength=20, placeholder=row["default"][field])
               for field in ("margin", "severe_margin")},
        }
        body.append(html.Tr([
            html.Td([html.Code(name), html.Small(row["type"], className="d-block text-muted"),
                     dcc.Store(id=_metric_id(ids.METRIC_DEFAULTS, name), data=row)]),
            html.Td(dbc.Badge(row["role"], color=ROLE_COLOURS.get(row["role"], "secondary"))),
            *[html.Td([controls[field], html.Small(hints[field], id=_metric_id(HINT_IDS[field], name),
                                                   className="d-block text-muted metric-hint")])
              for field in FIELD_IDS],
        ]))
    return dbc.Table([header, html.Tbody(body)], size="sm", className="mb-0 align-top metrics-editor")


def _metrics_card() -> dbc.Card:
    return dbc.Card([
        dbc.CardHeader(["4 · Metrics: direction and margins",
                        html.Small(" re-running…", id=ids.METRICS_RUNNING, className="text-muted",
                                   style={"display": "none"})]),
        dbc.CardBody([
            html.P(["Which way each metric is better, and how large a harm counts: a guardrail worsens beyond its ",
                    html.Em("margin"), " and is severe beyond its ", html.Em("severe margin"),
                    ". Enter a number in the metric's unit (0.002, or 0.2 pp for a rate) or a percentage of the "
                    "control (1%). Changing a value re-runs the analysis; only changed values are stored."],
                   className="text-muted small"),
            html.Div(id=ids.METRICS_TABLE, children=html.P("Load a file to set each metric's direction and margins.",
                                                           className="text-muted mb-0")),
            html.Div(id=ids.METRICS_MESSAGE, className="mt-2"),
            html.Div(id=ids.METRICS_DECISION, className="mt-2"),
            dcc.Store(id=ids.METRICS_EDIT),
        ]),
    ], className="mb-3", id=ids.METRICS_CARD)


def _shown_matches(rows: Sequence[dict[str, Any]], shown: Sequence[dict[str, Any]], betters: Sequence[Any],
                   margins: Sequence[Any], severes: Sequence[Any]) -> bool:
    """Whether the table on the page already shows these rows with these settings (so that it is
    not rebuilt under the user's cursor after each edit)."""
    keys = ("metric", "role", "type", "default", "control")
    if [tuple(r[k] for k in keys) for r in rows] != [tuple(r.get(k) for k in keys) for r in shown]:
        return False
    for row, better, margin, severe in zip(rows, betters, margins, severes, strict=False):
        wanted = edit_metric(row, row["better"], row["margin"], row["severe_margin"])
        typed = edit_metric(row, better, margin, severe)
        if (typed.better, typed.margin, typed.severe_margin) != (wanted.better, wanted.margin, wanted.severe_margin):
            return False
    return len(betters) == len(margins) == len(severes) == len(rows)


def metrics_table_view(state: dict[str, Any] | None, shown: Sequence[dict[str, Any]] = (),
                       betters: Sequence[Any] = (), margins: Sequence[Any] = (), severes: Sequence[Any] = ()) -> Any:
    """The metrics table for the session, or ``no_update`` when the page already shows it."""
    if not state or "report" not in state:
        return html.P("Load a file to set each metric's direction and margins.", className="text-muted mb-0")
    rows = metric_rows(state["report"])
    if rows and _shown_matches(rows, shown, betters, margins, severes):
        return no_update
    return metrics_editor(rows)


def metrics_decision(state: dict[str, Any] | None) -> Any:
    """The decision under the settings in the table, next to it."""
    if not state or "report" not in state or not state["report"].get("comparisons"):
        return None
    text, colour = decision_label(state["report"])
    return html.Div([
        html.Span("Decision with these settings: ", className="me-1"),
        dbc.Badge(text, color=colour, className="me-2"),
        html.Span(rule_title(state["report"]["decision"]["rule"]), className="text-muted small"),
    ], className="d-flex align-items-center flex-wrap")


def outcome_bar(state: dict[str, Any] | None) -> Any:
    """The outcome of the loaded file, pinned to the bottom of the window (at 1366×768 the health
    check is below the fold): health, decision and the way to the results."""
    current = draft(state)
    if current is None:
        return None
    report = current["report"]
    text, colour = decision_label(report)
    return html.Div([
        html.Span("Health", className="small text-muted me-1"), health_badge(report["health"]["status"], element_id=None),
        html.Span("Decision", className="small text-muted ms-2 me-1"), dbc.Badge(text, color=colour, className="fs-6 me-2"),
        html.Span("always-valid inference", className="badge text-bg-info me-2",
                  title="Sequential inference: every decision uses the confidence sequence")
        if report["policy"].get("sequential") else None,
        html.Span(current["input"]["filename"], className="small text-muted text-truncate me-auto outcome-file"),
        dcc.Link(dbc.Button("See results →", color="primary", className="me-2"), href="/results"),
        dcc.Link(dbc.Button("Decision memo", color="outline-primary"), href="/memo"),
    ], className="d-flex align-items-center flex-wrap gap-1")


def start_over() -> tuple[Any, ...]:
    """"Start a new experiment" as a plain function: an empty session, an empty form, the
    calculator back to its defaults and no upload message."""
    form = (None,) * 9
    plan = tuple(PLAN_DEFAULTS[key] for key in _PLAN_RESET)
    return (None, *form, *plan, None)


_PLAN_RESET = (ids.PLAN_METRIC_TYPE, ids.PLAN_BASELINE, ids.PLAN_MEAN, ids.PLAN_STD, ids.PLAN_MDE, ids.PLAN_RELATIVE,
               ids.PLAN_DAILY_USERS, ids.PLAN_ALPHA, ids.PLAN_POWER, ids.PLAN_USE, ids.PLAN_SEQUENTIAL, ids.PLAN_LOOKS)
# The form's text fields by their FormValues name (the order of the "Start a new experiment" outputs).
_FORM_TEXT = {"name": ids.EXPERIMENT_NAME, "hypothesis": ids.HYPOTHESIS, "primary": ids.PRIMARY_METRIC,
              "control": ids.CONTROL_NAME, "split": ids.EXPECTED_SPLIT, "owner": ids.OWNER, "tags": ids.TAGS,
              "mde": ids.PLANNED_MDE, "segments": ids.SEGMENTS}
_FORM_FIELDS = tuple(_FORM_TEXT.values())
_SWITCHES = {"sequential": ids.SEQUENTIAL, "cumulative": ids.CUMULATIVE}


def collect_metric_edits(state: dict[str, Any] | None, shown: Sequence[dict[str, Any]], betters: Sequence[Any],
                         margins: Sequence[Any], severes: Sequence[Any]) -> tuple[Any, Any]:
    """The edit callback as a plain function: (the new ``[metrics]`` table for the analysis, or
    ``no_update`` when nothing changed or a value cannot be read; the message)."""
    if not state or "report" not in state:
        raise PreventUpdate
    current = (state.get("form") or {}).get("metrics") or {}
    if [r["metric"] for r in shown] != [r["metric"] for r in metric_rows(state["report"])]:
        raise PreventUpdate  # a table left from another file, about to be replaced
    try:
        table = metrics_from_table(shown, betters, margins, severes, existing=current)
    except ValueError as error:
        return no_update, dbc.Alert(f"Not applied — {error}.", color="danger", className="mb-0 py-2 small")
    if table == current:
        return no_update, None
    return {"metrics": table}, None


def switches_changed(state: dict[str, Any] | None, *, sequential: bool, cumulative: bool) -> bool:
    """Whether the sequential and running-totals switches differ from the settings the draft's
    analysis used (``False`` when there is no draft to re-run)."""
    form = (state or {}).get("form") or {}
    return bool(state) and (bool(form.get("sequential")) != sequential or bool(form.get("cumulative")) != cumulative)


def switches_view(state: dict[str, Any] | None, sequential: bool | None, cumulative: bool | None) -> tuple[Any, Any]:
    """The sequential and running-totals switches as the draft's analysis used them (left alone
    when they already agree, so that setting them does not re-run the analysis)."""
    form = ((draft(state) or {}).get("form") or {})
    wanted = bool(form.get("sequential")), bool(form.get("cumulative"))
    return (no_update if wanted[0] == bool(sequential) else wanted[0],
            no_update if wanted[1] == bool(cumulative) else wanted[1])


def layout(**_: Any) -> html.Div:
    return html.Div([
        html.Div([
            html.H2("New experiment", className="mb-0 me-auto"),
            dbc.Button("Start a new experiment", id=ids.NEW_EXPERIMENT, color="outline-secondary", size="sm",
                       style={"display": "none"}, title="Clear this form and the loaded file (saved experiments "
                                                         "stay in History)"),
        ], className="d-flex align-items-center mb-2"),
        html.P("Describe the experiment, size it, then upload the exported results: the health check runs at once.",
               className="text-muted"),
        html.Div(id=ids.LAST_SAVED),
        dbc.Row([
            dbc.Col([_charter_card(), _data_card()], lg=7),
            dbc.Col(_plan_card(), lg=5),
        ]),
        dbc.Card([dbc.CardHeader("3 · Health check"),
                  dbc.CardBody(dcc.Loading(html.Div(id=ids.HEALTH_PANEL, children=html.P(
                      "No data yet.", className="text-muted mb-0"))))], className="mb-3"),
        _metrics_card(),
        html.Div(id=ids.NEXT_STEP, className="outcome-bar"),
    ])


_CHECK_UPLOAD_SIZE = """
function(contents, filename, limit) {
    const noUpdate = window.dash_clientside.no_update;
    if (!contents) { return [noUpdate, noUpdate, ""]; }
    const size = Math.floor((contents.length - contents.indexOf(",") - 1) * 3 / 4);
    if (size > limit) {
        return [null, null, filename + " is " + (size / 1048576).toFixed(1) + " MB, above the upload limit of " +
                (limit / 1048576).toFixed(0) + " MB: aggregate it first, or raise EXPERIMENTOS_UPLOAD_LIMIT_MB."];
    }
    return [{contents: contents, filename: filename}, null, ""];
}
"""


Progress = Callable[[float, str], None]


def _scanning(progress: Progress | None, name: str, size: int) -> Callable[[float], None] | None:
    """DuckDB's percentage done, reported with what is being scanned and for how long."""
    if progress is None:
        return None
    started = time.monotonic()

    sized = f" ({format_number(size / 2**20)} MB)" if size else ""

    def report(done: float) -> None:
        progress(done, f"Scanning {name}{sized} with DuckDB… {time.monotonic() - started:.1f} s")

    return report


@dataclass(frozen=True)
class AnalysisSettings:
    """The running app's settings an analysis on this page uses (from its Flask config)."""

    staging: Path  # where uploads are kept for re-runs and saving
    upload_limit: int  # bytes a file sent through the page may hold


def analysis_settings() -> AnalysisSettings:
    """The settings of the app serving the callback (read inside a request or a background job)."""
    return AnalysisSettings(staging=context.staging_dir(), upload_limit=context.upload_limit())


Outcome = tuple[Any, Any]  # (the new session state or no_update, the message under the upload)


def _outcome(analyse: Callable[[AnalysisSettings], dict[str, Any]]) -> Outcome:
    """Run one analysis with the app's settings; a refused file or a bad form value becomes the message."""
    try:
        state = analyse(analysis_settings())
    except (UploadRejectedError, InputFileError) as error:
        return no_update, dbc.Alert(f"Upload refused: {error}.", color="danger", className="mb-0")
    except ValueError as error:
        return no_update, dbc.Alert(f"Check the form: {error}.", color="danger", className="mb-0")
    return state, upload_outcome(state["report"], state["input"]["filename"])


def analyse_upload(contents: str | None, filename: str | None, form: FormValues,
                   progress: Progress | None = None) -> Outcome:
    """A file sent through the upload control (a data URL), analysed with the form: returns (new
    session state or no_update, message). A new file starts from the default metric settings.
    ``progress(percent, what)`` is told what is happening while the file is read and scanned."""
    if not contents:
        raise PreventUpdate
    name = filename or "upload.csv"

    def analyse(settings: AnalysisSettings) -> dict[str, Any]:
        if progress is not None:
            progress(0.0, f"Decoding {name}…")
        return upload_into_session(contents, name, form, staging=settings.staging, limit_bytes=settings.upload_limit,
                                   on_progress=_scanning(progress, name, upload_size(contents)))

    return _outcome(analyse)


def analyse_sample(sample: str | None, form: FormValues, progress: Progress | None = None) -> Outcome:
    """A sample file analysed with the form (its own primary metric and policy fill the gaps)."""
    if not sample:
        raise PreventUpdate
    return _outcome(lambda settings: sample_into_session(
        sample, form, staging=settings.staging, limit_bytes=settings.upload_limit,
        on_progress=_scanning(progress, sample, len(sample_content(sample)))))


def analyse_staged(staged: dict[str, Any] | None, form: FormValues, progress: Progress | None = None) -> Outcome:
    """A large file already streamed to the server (``staged``: what the large-file upload
    returned, {sha256, filename, size}), analysed with the form."""
    if not staged or not staged.get("sha256"):
        raise PreventUpdate
    name = str(staged.get("filename") or "upload.csv")
    return _outcome(lambda settings: analyze_staged_session(
        str(staged["sha256"]), name, form, staging=settings.staging,
        on_progress=_scanning(progress, name, int(staged.get("size") or 0))))


def rerun(state: dict[str, Any] | None, form: FormValues, progress: Progress | None = None) -> Outcome:
    """The draft's file re-run with the form's values (its metric settings kept). A saved analysis
    is not re-run from here: the form has started a new one."""
    current = draft(state)
    if not current or "input" not in current:
        return no_update, dbc.Alert("Upload a file or load a sample first.", color="info")
    return _outcome(lambda settings: reanalyze_session(
        current, form, staging=settings.staging,
        on_progress=_scanning(progress, current["input"]["filename"], 0)))


def rerun_for_switches(state: dict[str, Any] | None, form: FormValues, progress: Progress | None = None) -> Outcome:
    """The sequential or running-totals switch was flipped: the draft's file re-runs with the
    form, unless the draft already has those settings (the switches are set from the session
    when a sample brings its own, which must not run the analysis twice)."""
    if not switches_changed(draft(state), sequential=bool(form.sequential), cumulative=bool(form.cumulative)):
        raise PreventUpdate
    return rerun(state, form, progress)


def apply_metric_edit(state: dict[str, Any] | None, metrics_edit: dict[str, Any] | None,
                      progress: Progress | None = None) -> Outcome:
    """The draft's file and form re-run with the metric settings the metrics table sent ({metrics})."""
    current = draft(state)
    if not current or "input" not in current or metrics_edit is None:
        raise PreventUpdate
    return _outcome(lambda settings: metrics_into_session(
        current, metrics_edit.get("metrics") or {}, staging=settings.staging,
        on_progress=_scanning(progress, current["input"]["filename"], 0)))


def health_view(state: dict[str, Any] | None) -> tuple[Any, ...]:
    """The health check, the outcome bar, the note on the last saved experiment and the style of
    "Start a new experiment", for a session."""
    current = draft(state)
    saved = (state or {}).get("saved") if state and state.get("closed") else None
    last = None
    if saved:
        name = state["report"]["experiment"]["name"] if state else ""
        last = dbc.Alert([f"“{name}” is saved as ", dcc.Link(f"experiment {saved['experiment_id']}",
                                                             href=f"/experiments/{saved['experiment_id']}"),
                          ". This form starts a new experiment."], color="info", className="py-2 small",
                         dismissable=True)
    if current is None:
        return (html.P("No data yet: upload a file or load a sample.", className="text-muted mb-0"), None, last,
                {"display": "none"})
    return health_panel(current["report"]), outcome_bar(current), last, {}


def _form_group(switched: str | None = None) -> dict[str, Any]:
    """The form as one argument of an analysis callback: its fields by :class:`FormValues` name,
    read as ``State`` except ``switched``, the switch whose change triggers the callback.
    (A new dict each time: Dash merges a callback's inputs into its state dict.)"""
    group: dict[str, Any] = {field: State(element, "value") for field, element in _FORM_TEXT.items()}
    group["planned_sample"] = State(ids.PLAN_STORE, "data")
    for field, element in _SWITCHES.items():
        group[field] = Input(element, "value") if element == switched else State(element, "value")
    return group


def form_values(group: dict[str, Any]) -> FormValues:
    """:class:`FormValues` from the values of :func:`_form_group` (a switch never set is off)."""
    return FormValues(**{**group, **{field: bool(group.get(field)) for field in _SWITCHES}})


def _analysis_outputs() -> list[Output]:
    """What every analysis callback writes: the session (shared with the app's other writers) and
    the message under the upload."""
    return [Output(ids.SESSION_STORE, "data", allow_duplicate=True),
            Output(ids.UPLOAD_MESSAGE, "children", allow_duplicate=True)]


def _background() -> dict[str, Any]:
    """The options of an analysis callback: it runs as a background job whose progress the page
    shows, and the ways to start another are disabled while it runs."""
    return {
        "prevent_initial_call": True,
        "background": True,
        "interval": 100,  # the first poll comes after this: small files show at once
        "progress": [Output(ids.ANALYSIS_PROGRESS, "value"), Output(ids.ANALYSIS_PROGRESS, "label"),
                     Output(ids.ANALYSIS_PROGRESS_TEXT, "children")],
        "progress_default": [0, "", _SENDING],  # shown while the file travels to the server, before the job reports
        "running": [(Output(ids.ANALYSIS_PROGRESS_BOX, "style"), {"display": "block"}, {"display": "none"}),
                    (Output(ids.LOAD_SAMPLE, "disabled"), True, False),
                    (Output(ids.REANALYZE, "disabled"), True, False),
                    (Output(ids.UPLOAD_DATA, "disabled"), True, False),
                    (Output(ids.METRICS_RUNNING, "style"), {"display": "inline"}, {"display": "none"})],
    }


def register_callbacks(app: Dash) -> None:
    spark_panel.register_callbacks(app)
    # The size check runs in the browser first so that an oversized file is never sent;
    # analyse_upload checks again on the server.
    app.clientside_callback(
        _CHECK_UPLOAD_SIZE,
        Output(ids.UPLOAD_CHECKED, "data"), Output(ids.UPLOAD_DATA, "contents"),
        Output(ids.UPLOAD_LIMIT_MESSAGE, "children"),
        Input(ids.UPLOAD_DATA, "contents"), State(ids.UPLOAD_DATA, "filename"), State(ids.UPLOAD_LIMIT, "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.PLAN_RESULT, "children"), Output(ids.PLAN_RESULT, "color"), Output(ids.PLAN_STORE, "data"),
        Output(ids.PLAN_CONFIRM, "children"), Output(ids.PLAN_BASELINE_BOX, "style"),
        Output(ids.PLAN_MEAN_BOX, "style"), Output(ids.PLAN_STD_BOX, "style"), Output(ids.PLAN_LOOKS_BOX, "style"),
        Input(ids.PLAN_METRIC_TYPE, "value"), Input(ids.PLAN_BASELINE, "value"), Input(ids.PLAN_MEAN, "value"),
        Input(ids.PLAN_STD, "value"), Input(ids.PLAN_MDE, "value"), Input(ids.PLAN_RELATIVE, "value"),
        Input(ids.PLAN_ALPHA, "value"), Input(ids.PLAN_POWER, "value"), Input(ids.EXPECTED_SPLIT, "value"),
        Input(ids.PLAN_DAILY_USERS, "value"), Input(ids.PLAN_USE, "value"), Input(ids.PLAN_SEQUENTIAL, "value"),
        Input(ids.PLAN_LOOKS, "value"),
    )
    def update_plan(metric_type: str, baseline: float | None, mean: float | None, std: float | None,
                    mde: float | None, relative: list[str] | None, alpha: float | None, power: float | None,
                    split: str | None, daily: int | None, use: bool | None, sequential: bool | None,
                    looks: float | None) -> tuple[Any, ...]:
        return plan_view(metric_type, baseline, mean, std, mde, relative, alpha, power, split, daily, use,
                         sequential, looks)

    @app.callback(
        Output(ids.SESSION_STORE, "data", allow_duplicate=True),
        Input(ids.PLAN_STORE, "data"), Input(ids.PLAN_USE, "value"), State(ids.SESSION_STORE, "data"),
        prevent_initial_call=True,
    )
    def record_plan(planned: int | None, use: bool | None, state: dict[str, Any] | None) -> Any:
        """The recorded planned sample goes into the loaded draft at once (the memo shows it)."""
        switched_off = not use and f"{ids.PLAN_USE}.value" in ctx.triggered_prop_ids
        updated = plan_into_session(state, planned, switched_off=switched_off)
        if updated is None:
            raise PreventUpdate
        return updated

    @app.callback(
        Output(ids.SESSION_STORE, "data", allow_duplicate=True),
        *[Output(field, "value", allow_duplicate=True) for field in _FORM_FIELDS],
        *[Output(field, "value", allow_duplicate=True) for field in _PLAN_RESET],
        Output(ids.UPLOAD_MESSAGE, "children", allow_duplicate=True),
        Input(ids.NEW_EXPERIMENT, "n_clicks"), prevent_initial_call=True,
    )
    def new_experiment(clicks: int | None) -> tuple[Any, ...]:
        if not clicks:
            raise PreventUpdate
        return start_over()

    # Each way an analysis starts is its own background callback (on a server thread, see
    # dashapp.jobs): the page stays responsive and shows DuckDB's progress while a large
    # user-level file is scanned. Each unpacks its inputs and calls one plain function above.
    def report_to(set_progress: Callable[[tuple[float, str, str]], None]) -> Progress:
        return lambda done, what: set_progress((round(done, 1), f"{done:.0f}%", what))

    @app.callback(output=_analysis_outputs(), inputs={"upload": Input(ids.UPLOAD_CHECKED, "data")},
                  state={"form": _form_group()}, **_background())
    def analyze_upload(set_progress: Callable[[tuple[float, str, str]], None], upload: dict[str, str] | None,
                       form: dict[str, Any]) -> Outcome:
        upload = upload or {}
        return analyse_upload(upload.get("contents"), upload.get("filename"), form_values(form),
                              report_to(set_progress))

    @app.callback(output=_analysis_outputs(), inputs={"clicks": Input(ids.LOAD_SAMPLE, "n_clicks")},
                  state={"sample": State(ids.SAMPLE_SELECT, "value"), "form": _form_group()}, **_background())
    def analyze_sample(set_progress: Callable[[tuple[float, str, str]], None], clicks: int | None,
                       sample: str | None, form: dict[str, Any]) -> Outcome:
        if not clicks:  # Dash also calls click callbacks when a page inserts the buttons (n_clicks None)
            raise PreventUpdate
        return analyse_sample(sample, form_values(form), report_to(set_progress))

    @app.callback(output=_analysis_outputs(), inputs={"staged": Input(ids.LARGE_UPLOAD_STAGED, "data")},
                  state={"form": _form_group()}, **_background())
    def analyze_staged(set_progress: Callable[[tuple[float, str, str]], None], staged: dict[str, Any] | None,
                       form: dict[str, Any]) -> Outcome:
        return analyse_staged(staged, form_values(form), report_to(set_progress))

    @app.callback(output=_analysis_outputs(), inputs={"clicks": Input(ids.REANALYZE, "n_clicks")},
                  state={"form": _form_group(), "state": State(ids.SESSION_STORE, "data")}, **_background())
    def analyze_again(set_progress: Callable[[tuple[float, str, str]], None], clicks: int | None,
                      form: dict[str, Any], state: dict[str, Any] | None) -> Outcome:
        if not clicks:
            raise PreventUpdate
        return rerun(state, form_values(form), report_to(set_progress))

    # One callback per switch: the switch that changed is the trigger, the other is read as it is.
    @app.callback(output=_analysis_outputs(), inputs={"form": _form_group(switched=ids.SEQUENTIAL)},
                  state={"state": State(ids.SESSION_STORE, "data")}, **_background())
    def analyze_sequential(set_progress: Callable[[tuple[float, str, str]], None], form: dict[str, Any],
                           state: dict[str, Any] | None) -> Outcome:
        return rerun_for_switches(state, form_values(form), report_to(set_progress))

    @app.callback(output=_analysis_outputs(), inputs={"form": _form_group(switched=ids.CUMULATIVE)},
                  state={"state": State(ids.SESSION_STORE, "data")}, **_background())
    def analyze_cumulative(set_progress: Callable[[tuple[float, str, str]], None], form: dict[str, Any],
                           state: dict[str, Any] | None) -> Outcome:
        return rerun_for_switches(state, form_values(form), report_to(set_progress))

    @app.callback(output=_analysis_outputs(), inputs={"edit": Input(ids.METRICS_EDIT, "data")},
                  state={"state": State(ids.SESSION_STORE, "data")}, **_background())
    def analyze_metrics(set_progress: Callable[[tuple[float, str, str]], None], edit: dict[str, Any] | None,
                        state: dict[str, Any] | None) -> Outcome:
        return apply_metric_edit(state, edit, report_to(set_progress))

    @app.callback(
        Output(ids.METRICS_TABLE, "children"), Output(ids.METRICS_DECISION, "children"),
        Input(ids.SESSION_STORE, "data"),
        State(_metric_id(ids.METRIC_DEFAULTS, ALL), "data"), State(_metric_id(ids.METRIC_BETTER, ALL), "value"),
        State(_metric_id(ids.METRIC_MARGIN, ALL), "value"), State(_metric_id(ids.METRIC_SEVERE_MARGIN, ALL), "value"),
    )
    def show_metrics(state: dict[str, Any] | None, shown: list[dict[str, Any]], betters: list[Any],
                     margins: list[Any], severes: list[Any]) -> tuple[Any, Any]:
        current = draft(state)
        return metrics_table_view(current, shown, betters, margins, severes), metrics_decision(current)

    @app.callback(
        Output(_metric_id(ids.METRIC_BETTER_HINT, MATCH), "children"),
        Output(_metric_id(ids.METRIC_MARGIN_HINT, MATCH), "children"),
        Output(_metric_id(ids.METRIC_SEVERE_MARGIN_HINT, MATCH), "children"),
        Output(_metric_id(ids.METRIC_MARGIN, MATCH), "invalid"),
        Output(_metric_id(ids.METRIC_SEVERE_MARGIN, MATCH), "invalid"),
        Input(_metric_id(ids.METRIC_BETTER, MATCH), "value"), Input(_metric_id(ids.METRIC_MARGIN, MATCH), "value"),
        Input(_metric_id(ids.METRIC_SEVERE_MARGIN, MATCH), "value"),
        State(_metric_id(ids.METRIC_DEFAULTS, MATCH), "data"),
        prevent_initial_call=True,
    )
    def check_metric(better: str | None, margin: str | None, severe: str | None,
                     row: dict[str, Any] | None) -> tuple[Any, ...]:
        if not row:
            raise PreventUpdate
        edit = edit_metric(row, better, margin, severe)
        return (*metric_hints(row, edit), "margin" in edit.errors, "severe_margin" in edit.errors)

    @app.callback(
        Output(ids.METRICS_EDIT, "data"), Output(ids.METRICS_MESSAGE, "children"),
        Input(_metric_id(ids.METRIC_BETTER, ALL), "value"), Input(_metric_id(ids.METRIC_MARGIN, ALL), "value"),
        Input(_metric_id(ids.METRIC_SEVERE_MARGIN, ALL), "value"),
        State(_metric_id(ids.METRIC_DEFAULTS, ALL), "data"), State(ids.SESSION_STORE, "data"),
        prevent_initial_call=True,
    )
    def edit_metrics(betters: list[Any], margins: list[Any], severes: list[Any], shown: list[dict[str, Any]],
                     state: dict[str, Any] | None) -> tuple[Any, Any]:
        return collect_metric_edits(draft(state), shown, betters, margins, severes)

    @app.callback(
        Output(ids.HEALTH_PANEL, "children"), Output(ids.NEXT_STEP, "children"), Output(ids.LAST_SAVED, "children"),
        Output(ids.NEW_EXPERIMENT, "style"),
        Input(ids.SESSION_STORE, "data"),
    )
    def show_health(state: dict[str, Any] | None) -> tuple[Any, ...]:
        return health_view(state)

    @app.callback(
        Output(ids.SEQUENTIAL, "value"), Output(ids.CUMULATIVE, "value"),
        Input(ids.SESSION_STORE, "data"), State(ids.SEQUENTIAL, "value"), State(ids.CUMULATIVE, "value"),
    )
    def show_switches(state: dict[str, Any] | None, sequential: bool | None, cumulative: bool | None) -> tuple[Any, Any]:
        return switches_view(state, sequential, cumulative)

    @app.callback(
        Output(ids.EXPERIMENT_NAME, "value"), Output(ids.HYPOTHESIS, "value"), Output(ids.PRIMARY_METRIC, "value"),
        Output(ids.CONTROL_NAME, "value"), Output(ids.EXPECTED_SPLIT, "value"), Output(ids.OWNER, "value"),
        Output(ids.TAGS, "value"), Output(ids.PLANNED_MDE, "value"), Output(ids.SEGMENTS, "value"),
        Input(ids.HEALTH_PANEL, "id"), State(ids.SESSION_STORE, "data"),
    )
    def restore_form(_: str, state: dict[str, Any] | None) -> tuple[Any, ...]:
        """Refill the form from the draft when the page is opened again (never from a saved analysis)."""
        state = draft(state)
        if not state or "form" not in state:
            raise PreventUpdate
        form = state["form"]
        name = form.get("name") or state["report"]["experiment"]["name"]
        return (name, form.get("hypothesis"), form.get("primary"), form.get("control"), form.get("split"),
                form.get("owner"), form.get("tags"), form.get("mde"), form.get("segments"))
