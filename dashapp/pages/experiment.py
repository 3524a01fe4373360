"""One stored experiment: its analysis, charts and memo versions; open it in the workspace."""

from __future__ import annotations

import os
import shutil
import threading
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from dashapp import ids
from dashapp.components import decision_badge, download_card, guardrail_table, health_panel, metric_settings_table, primary_card
from dashapp.figures import effect_figure, effect_title, guardrail_figure, posterior_figure, posterior_title
from dashapp.formatting import format_count, format_date
from dashapp.memo import MemoModel, build_memo, render_html, render_markdown, render_pdf
from dashapp.pages import context
from dashapp.pages.memo import download_name, experiment_charter
from dashapp.services import SessionRejectedError, report_problems, staged_path
from dashapp.state import saved_entry
from storage.database import AnalysisRecord
from storage.errors import NotFoundError, StorageError

__all__ = ["broken_report_card", "layout", "open_in_workspace", "register_callbacks", "stored_memo_file",
           "stored_metrics"]

GRAPH_CONFIG = {"displaylogo": False}
_DOWNLOAD_KINDS = {ids.EXPERIMENT_DOWNLOAD_MD: "md", ids.EXPERIMENT_DOWNLOAD_HTML: "html",
                   ids.EXPERIMENT_DOWNLOAD_PDF: "pdf"}


def _missing(message: Any) -> dbc.Alert:
    return dbc.Alert([message, " ", dcc.Link("See every saved experiment in History", href="/history",
                                             className="alert-link"), "."], color="warning")


def broken_report_card(problems: Any) -> dbc.Alert:
    """What the page shows instead of a stored report it cannot draw (edited, damaged, or from an
    unknown schema): the first problems found, so an admin knows what to repair or replay."""
    listed = list(problems)[:5]
    return dbc.Alert([html.Strong("This stored analysis cannot be shown: "), listed[0] if listed else "unknown problem",
                      html.Ul([html.Li(p) for p in listed[1:]], className="mb-0 mt-1") if len(listed) > 1 else None,
                      html.Div("Check it with 'experimentos replay' or save the input again.", className="small mt-1")],
                     color="danger", id=ids.STORED_REPORT_ERROR, className="text-break")


def _checked(analysis: AnalysisRecord) -> dict[str, Any]:
    """The analysis's report when it keeps the report contract; raises :class:`SessionRejectedError`."""
    problems = report_problems(analysis.report)
    if problems:
        raise SessionRejectedError(f"this stored analysis cannot be shown: {problems[0]}")
    return analysis.report


def _stored_memo(experiment_id: int) -> tuple[Any, MemoModel, dict[str, Any]]:
    """The experiment, the memo of its latest analysis (with the latest notes) and the policy."""
    database = context.database()
    experiment = database.experiment(experiment_id)
    analysis = database.latest_analysis(experiment_id)
    _checked(analysis)
    memos = database.memos(analysis.id)
    memo = build_memo(analysis.report, charter=experiment_charter(experiment), notes=memos[-1].notes if memos else None,
                      date=analysis.created_at.date().isoformat())
    return experiment, memo, analysis.report["policy"]


def stored_memo_file(experiment_id: int, kind: str) -> dict[str, Any]:
    """``dcc.Download`` data for the stored memo (latest analysis and notes) as ``md``, ``html`` or ``pdf``."""
    experiment, memo, policy = _stored_memo(experiment_id)
    named = {"report": {"experiment": {"name": experiment.name}}}
    if kind == "md":
        return dcc.send_string(render_markdown(memo), download_name(named, "md"))  # type: ignore[no-any-return]
    if kind == "html":
        return dcc.send_string(render_html(memo, policy), download_name(named, "html"))  # type: ignore[no-any-return]
    if kind == "pdf":
        return dcc.send_bytes(render_pdf(memo, policy), download_name(named, "pdf"))  # type: ignore[no-any-return]
    raise ValueError(f"kind must be md, html or pdf, got {kind!r}")


def _chart_card(title: Any, figure: Any, element_id: str) -> dbc.Card:
    """A chart whose title sits in the card header, never under Plotly's tool bar."""
    return dbc.Card([dbc.CardHeader(title), dbc.CardBody(dcc.Graph(id=element_id, figure=figure, config=GRAPH_CONFIG),
                                                         className="p-1")], className="h-100")


def _versions(memos: tuple[Any, ...]) -> Any:
    if not memos:
        return html.P("No memo version saved yet: add notes on the Decision Memo page after opening this "
                      "experiment in the workspace.", className="text-muted")
    return dbc.Table([
        html.Thead(html.Tr([html.Th("Version"), html.Th("Saved"), html.Th("Author"), html.Th("Notes")])),
        html.Tbody([html.Tr([html.Td(m.version), html.Td(format_date(m.created_at)),
                             html.Td(m.author or html.Span("not recorded", className="text-muted")),
                             html.Td((m.notes or "")[:200], className="text-break", style={"whiteSpace": "pre-line"})])
                    for m in reversed(memos)]),
    ], size="sm")


def _downloads() -> dbc.Card:
    return download_card("Download the stored memo", markdown=ids.EXPERIMENT_DOWNLOAD_MD,
                         html_button=ids.EXPERIMENT_DOWNLOAD_HTML, pdf=ids.EXPERIMENT_DOWNLOAD_PDF,
                         status=ids.EXPERIMENT_PDF_STATUS, downloads=[ids.EXPERIMENT_DOWNLOAD_FILE])


def layout(experiment_id: str | None = None, **_: Any) -> html.Div:
    try:
        number = int(experiment_id or "")
    except ValueError:
        return _missing(f"{experiment_id!r} is not an experiment id.")
    try:
        database = context.database()
        experiment = database.experiment(number)
        analyses = database.analyses(number)
        latest = analyses[-1] if analyses else None
        memos = database.memos(latest.id) if latest else ()
    except NotFoundError:
        return _missing(f"Experiment {number} does not exist.")
    except StorageError as error:
        return _missing(str(error))
    header = html.Div([
        html.H2(experiment.name, className="text-break"),
        html.P([f"Experiment {experiment.id} · saved {format_date(experiment.created_at)}",
                f" · owner {experiment.owner}" if experiment.owner else "",
                *([" · tags "] + [dbc.Badge(tag, color="light", text_color="dark", className="border me-1")
                                  for tag in experiment.tags] if experiment.tags else [])], className="text-muted"),
        html.P(f"Hypothesis: {experiment.hypothesis}", className="text-break") if experiment.hypothesis else None,
    ])
    if latest is None:
        return html.Div([header, dbc.Alert("This experiment has no stored analysis.", color="info")])
    footer = html.P(f"{format_count(len(analyses))} analysis(es) · analytics {latest.analytics_version} · input "
                    f"{latest.filename} (sha256 {latest.input_sha256[:16]}…)", className="text-muted small mt-2")
    problems = report_problems(latest.report)
    if not problems:
        try:
            return html.Div([header, *_report_sections(experiment, latest, memos), footer])
        except Exception as error:  # a stored report the checks missed must still not 500 the page
            problems = (f"the page could not draw it ({type(error).__name__}: {str(error)[:200]})",)
    return html.Div([header, broken_report_card(problems), html.H4("Memo versions"), _versions(memos), footer])


def _report_sections(experiment: Any, latest: Any, memos: tuple[Any, ...]) -> list[Any]:
    """Everything the page shows of a stored report that passed :func:`report_problems`."""
    report = latest.report
    memo_html = render_html(build_memo(report, charter=experiment_charter(experiment),
                                       notes=memos[-1].notes if memos else None,
                                       date=latest.created_at.date().isoformat()), report["policy"])
    title, probability = posterior_title(report)
    return [
        dcc.Store(id=ids.EXPERIMENT_URL, data=experiment.id),
        dbc.Card(dbc.CardBody([decision_badge(report), html.Hr(), health_panel(report)]), className="mb-3"),
        primary_card(report),
        dbc.Row([
            dbc.Col(_chart_card(effect_title(report), effect_figure(report, titled=False), ids.EXPERIMENT_EFFECT_CHART),
                    lg=6),
            dbc.Col(_chart_card([html.Div(title), html.Div(probability, className="small text-muted")
                                 if probability else None],
                                posterior_figure(report, titled=False), ids.EXPERIMENT_POSTERIOR_CHART), lg=6),
        ], className="mt-3 g-3"),
        dbc.Row(dbc.Col(dcc.Graph(id=ids.EXPERIMENT_GUARDRAIL_CHART, figure=guardrail_figure(report),
                                  config=GRAPH_CONFIG)), className="mt-3"),
        html.H4("Metrics: direction and margins", className="mt-3"),
        metric_settings_table(report),
        html.H4("Guardrails", className="mt-3"),
        guardrail_table(report),
        html.Div([dbc.Button("Open in workspace (Results and Memo)", id=ids.OPEN_IN_WORKSPACE, color="primary"),
                  dcc.Location(id=ids.EXPERIMENT_REDIRECT, refresh="callback-nav")], className="my-3"),
        dbc.Row([
            dbc.Col([_downloads(), html.H4("Memo versions"), _versions(memos)], lg=4),
            dbc.Col(html.Iframe(srcDoc=memo_html, sandbox="", className="memo-frame", title="Stored memo"), lg=8),
        ], className="g-3"),
    ]


def stored_metrics(policy: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The ``[metrics]`` table of a stored policy, for re-runs in the workspace (a v1 policy's
    ``harm_directions`` become the ``better`` they stand for)."""
    metrics = {str(name): dict(entry) for name, entry in (policy.get("metrics") or {}).items()}
    for name, direction in (policy.get("harm_directions") or {}).items():
        stem = str(name).removeprefix("guardrail_")
        key = next((k for k in metrics if k.removeprefix("guardrail_").casefold() == stem.casefold()), stem)
        metrics.setdefault(key, {}).setdefault("better", "lower" if direction == "increase" else "higher")
    return metrics or None


def open_in_workspace(experiment_id: int) -> dict[str, Any]:
    """A session state for a stored experiment (its input bytes are staged so it can be re-run).

    The analysis ids are handed to the session signed, so notes can be added to it; a stored
    report that breaks the report contract is refused (:class:`SessionRejectedError`), never
    put in the workspace where every page would fail on it."""
    database = context.database()
    experiment = database.experiment(experiment_id)
    analysis = database.latest_analysis(experiment_id)
    report = _checked(analysis)
    memos = database.memos(analysis.id)
    staging = context.staging_dir()
    staging.mkdir(parents=True, exist_ok=True)
    target = staged_path(staging, analysis.input_sha256)
    if not target.exists():
        partial = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        stored = database.input_path(analysis.input_sha256)
        if stored is not None:  # a large input kept beside the database: copied, never loaded
            shutil.copyfile(stored, partial)
        else:
            partial.write_bytes(database.input_content(analysis.input_sha256))
        partial.replace(target)
    request = analysis.request
    form = {"name": experiment.name, "hypothesis": experiment.hypothesis, "primary": request.get("primary"),
            "control": request.get("control"), "split": None, "owner": experiment.owner,
            "tags": ", ".join(experiment.tags), "mde": experiment.mde, "planned_sample": experiment.planned_sample,
            "segments": ", ".join(request.get("segments") or ()), "metrics": stored_metrics(analysis.policy)}
    return {"report": report, "form": form,
            "input": {"filename": analysis.filename, "sha256": analysis.input_sha256},
            "saved": saved_entry(context.session_secret(), experiment.id, analysis.id),
            "notes": memos[-1].notes if memos else None}


def register_callbacks(app: Dash) -> None:
    @app.callback(Output(ids.SESSION_STORE, "data", allow_duplicate=True), Output(ids.EXPERIMENT_REDIRECT, "href"),
                  Input(ids.OPEN_IN_WORKSPACE, "n_clicks"), State(ids.EXPERIMENT_URL, "data"),
                  prevent_initial_call=True)
    def load(clicks: int | None, experiment_id: int | None) -> tuple[Any, str]:
        # Dash also calls click callbacks when a page inserts the button (n_clicks None).
        if not clicks or not experiment_id:
            raise PreventUpdate
        try:
            return open_in_workspace(int(experiment_id)), "/results"
        except (SessionRejectedError, StorageError):
            raise PreventUpdate from None  # the page shows why instead of this button

    # Rendering the PDF takes about half a second: `running` disables the buttons meanwhile.
    @app.callback(Output(ids.EXPERIMENT_DOWNLOAD_FILE, "data"), Input(ids.EXPERIMENT_DOWNLOAD_MD, "n_clicks"),
                  Input(ids.EXPERIMENT_DOWNLOAD_HTML, "n_clicks"), Input(ids.EXPERIMENT_DOWNLOAD_PDF, "n_clicks"),
                  State(ids.EXPERIMENT_URL, "data"), prevent_initial_call=True,
                  running=[(Output(ids.EXPERIMENT_DOWNLOAD_PDF, "disabled"), True, False),
                           (Output(ids.EXPERIMENT_PDF_STATUS, "children"), "Preparing the file…", "")])
    def download(md: int | None, html_clicks: int | None, pdf: int | None, experiment_id: int | None) -> Any:
        kind = _DOWNLOAD_KINDS.get(str(ctx.triggered_id))
        clicks = {"md": md, "html": html_clicks, "pdf": pdf}.get(kind or "")
        if not kind or not clicks or not experiment_id:
            raise PreventUpdate
        try:
            return stored_memo_file(int(experiment_id), kind)
        except (SessionRejectedError, StorageError):
            raise PreventUpdate from None  # the page shows why instead of these buttons
