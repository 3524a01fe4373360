"""One stored experiment: its analysis, charts and memo versions; open it in the workspace."""

from __future__ import annotations

import os
import shutil
import threading
from typing import Any

import dash_bootstrap_components as dbc
import flask
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from analytics import HealthStatus
from analytics.wording import format_count, format_date, format_p
from dashapp import auth, ids
from dashapp.components import (
    decision_badge,
    decision_label,
    download_card,
    guardrail_table,
    health_panel,
    issue_list,
    metric_settings_table,
    primary_card,
)
from dashapp.errors import LookBlockedError, SessionRejectedError
from dashapp.faults import ReadCache
from dashapp.figures import (
    decision_interval,
    effect_figure,
    effect_title,
    guardrail_figure,
    looks_figure,
    posterior_figure,
    posterior_title,
    primary_results,
    timeline_figure,
)
from dashapp.formatting import format_amount, format_interval
from dashapp.memo import MemoModel, build_memo, experiment_charter, render_html, render_markdown, render_pdf
from dashapp.pages import admin, context
from dashapp.pages.memo import download_name
from dashapp.services import report_json
from dashapp.staging import admit_upload
from dashapp.state import decode_upload, saved_entry
from dashapp.workspace import add_look, report_problems, staged_path
from storage.database import AnalysisRecord
from storage.errors import DatabaseError, NotFoundError, StorageError

__all__ = [
    "DRAWN_PAGES",
    "GRAPH_CONFIG",
    "add_look_from_upload",
    "broken_report_card",
    "experiment_body",
    "layout",
    "open_in_workspace",
    "register_callbacks",
    "stored_memo_file",
    "stored_metrics",
]

GRAPH_CONFIG = {"displaylogo": False}
DRAWN_PAGES = 64  # experiment pages kept drawn per server process
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
        experiment = context.database().experiment(number)
        body = experiment_body(number)
    except NotFoundError:
        return _missing(f"Experiment {number} does not exist.")
    except DatabaseError:
        raise  # one card on every page for a database fault (dashapp.faults.guard_layout)
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
    archive = admin.archive_control(experiment.id)
    if body is None:
        return html.Div([header, archive, dbc.Alert("This experiment has no stored analysis.", color="info")])
    # Viewers get no upload control: adding a look needs the analyst role (checked again on the server).
    add_look_card = _add_look_card(experiment.id) if auth.may("analyst") else \
        html.P(auth.refusal_text("analyst"), id=ids.ROLE_NOTICE, className="small text-muted")
    return html.Div([header, archive, add_look_card, html.Div(body, id=ids.EXPERIMENT_BODY)])


def experiment_body(experiment_id: int) -> list[Any] | None:
    """What the page shows under the header: the latest analysis, the looks across time and the
    memo versions (``None`` when the experiment has no analysis). Raises storage errors."""
    database = context.database()
    experiment = database.experiment(experiment_id)
    analyses = database.analyses(experiment_id)
    if not analyses:
        return None
    latest = analyses[-1]
    memos = database.memos(latest.id)
    # Drawing the page (figures, the memo preview with its chart) costs ~0.2 s of CPU, the reads
    # ~30 ms: the drawn body is kept per stored state, so a team opening the same experiment pays
    # it once. Any save, look, memo version or charter change makes a new key.
    key = ("experiment_body", str(database.path), repr(experiment), tuple(a.id for a in analyses),
           tuple(m.id for m in memos))
    cache = _drawn_pages()
    drawn = cache.get(key)
    if drawn is not None:
        return list(drawn.value)
    body = _draw_body(experiment, analyses, memos)
    cache.put(key, tuple(body))
    return body


def _drawn_pages() -> ReadCache:
    """The app's cache of drawn experiment pages (on the Flask app: no module state)."""
    extensions = flask.current_app.extensions
    cache = extensions.get("experimentos_drawn_pages")
    if cache is None:
        cache = extensions.setdefault("experimentos_drawn_pages", ReadCache(DRAWN_PAGES))
    assert isinstance(cache, ReadCache)
    return cache


def _draw_body(experiment: Any, analyses: tuple[AnalysisRecord, ...], memos: tuple[Any, ...]) -> list[Any]:
    latest = analyses[-1]
    footer = html.P(f"{format_count(len(analyses))} analysis(es) · analytics {latest.analytics_version} · input "
                    f"{latest.filename} (sha256 {latest.input_sha256[:16]}…)", className="text-muted small mt-2")
    looks = _looks_section(analyses)
    problems = report_problems(latest.report)
    if not problems:
        try:
            return [*_report_sections(experiment, latest, memos, looks), footer]
        except Exception as error:  # a stored report the checks missed must still not 500 the page
            problems = (f"the page could not draw it ({type(error).__name__}: {str(error)[:200]})",)
    return [broken_report_card(problems), *looks, html.H4("Memo versions"), _versions(memos), footer]


# -- looks across time -----------------------------------------------------------------------------


def _add_look_card(experiment_id: int) -> dbc.Card:
    """The upload of a further look; it is analysed on the server as the stored analysis was."""
    return dbc.Card(dbc.CardBody([
        dcc.Store(id=ids.EXPERIMENT_LOOK_TARGET, data=experiment_id),
        dcc.Upload(id=ids.EXPERIMENT_ADD_LOOK, multiple=False, className="upload-box",
                   children=html.Div(["Add a look: upload today's export ", html.A("(choose a CSV or Parquet file)")]),
                   style={"borderWidth": "1px", "borderStyle": "dashed", "borderRadius": "6px", "padding": "0.75rem",
                          "textAlign": "center", "cursor": "pointer"}),
        html.Div("The file is analysed with this experiment's stored settings (primary metric, control, policy, "
                 "running totals or daily counts) and the charter's planned sample.", className="small text-muted mt-1"),
        dcc.Loading(html.Div(id=ids.EXPERIMENT_LOOK_MESSAGE, className="mt-2"), type="dot"),
    ]), className="mb-3")


def _users(report: dict[str, Any]) -> int:
    pairs = primary_results(report)
    if not pairs:
        return 0
    return int(pairs[0][1]["control"]["n"] + sum(primary["treatment"]["n"] for _, primary in pairs))


def _look_row(number: int, analysis: AnalysisRecord) -> html.Tr:
    report = analysis.report
    cells: list[Any] = [html.Td(number), html.Td(format_date(analysis.created_at)),
                        html.Td(analysis.filename, className="text-break")]
    if report_problems(report):
        return html.Tr([*cells, html.Td("cannot be shown (damaged or unknown schema)", colSpan=4,
                                        className="text-muted")])
    text, colour = decision_label(report)
    effects = []
    for treatment, primary in primary_results(report):
        interval, p_value, sequential = decision_interval(primary)
        label = f"{treatment}: " if len(report["comparisons"]) > 1 else ""
        effects.append(html.Div([label, format_amount(primary, primary["absolute_effect"]), " ",
                                 html.Span(format_interval(primary, interval), className="text-muted"),
                                 html.Span(" always-valid", className="small text-muted") if sequential else None,
                                 html.Span(f" · p = {format_p(p_value)}" if p_value is not None else "",
                                           className="small")]))
    return html.Tr([*cells, html.Td(format_count(_users(report))),
                    html.Td(dbc.Badge(text, color=colour)), html.Td(effects)])


def _looks(analyses: tuple[AnalysisRecord, ...]) -> list[tuple[str, dict[str, Any]]]:
    """(label, report) of each look whose stored report keeps the contract, for the looks chart."""
    return [(f"Look {number} · {analysis.created_at.date().isoformat()}", analysis.report)
            for number, analysis in enumerate(analyses, start=1) if not report_problems(analysis.report)]


def _looks_section(analyses: tuple[AnalysisRecord, ...]) -> list[Any]:
    """Every analysis of the experiment as a look: a table and the primary effect across looks."""
    count = len(analyses)
    table = dbc.Table([
        html.Thead(html.Tr([html.Th("Look"), html.Th("Saved"), html.Th("Input"), html.Th("Users"),
                            html.Th("Decision"), html.Th("Primary effect, CI and p")])),
        html.Tbody([_look_row(number, analysis) for number, analysis in reversed(list(enumerate(analyses, start=1)))]),
    ], size="sm", hover=True, responsive=True, id=ids.EXPERIMENT_LOOKS_TABLE, className="mb-0")
    header = html.Div([html.Span("Looks across time", className="fw-semibold me-2"),
                       dbc.Badge(f"{count} look{'s' if count != 1 else ''}", color="light", text_color="dark",
                                 className="border", id=ids.EXPERIMENT_LOOKS_COUNT)])
    chart = dbc.Card([
        dbc.CardHeader("Primary effect at each look, with the 95% CI the decision used"),
        dbc.CardBody(dcc.Graph(id=ids.EXPERIMENT_LOOKS_CHART, figure=looks_figure(_looks(analyses)), config=GRAPH_CONFIG,
                               style={"height": "280px"}), className="p-1"),
    ], className="h-100")
    return [dbc.Card([dbc.CardHeader(header), dbc.CardBody(dbc.Row([dbc.Col(table, lg=6), dbc.Col(chart, lg=6)],
                                                                   className="g-3"))], className="mt-3")]


def _timeline_card(report: dict[str, Any]) -> dbc.Card | None:
    """The latest look's cumulative effect over time, when its input was a daily export."""
    if not report.get("timeline"):
        return None
    sequential = any(p.get("sequential") for p in report["timeline"])
    title = ("Latest look: cumulative effect over time, with its fixed-horizon"
             + (" and always-valid" if sequential else "") + " 95% band, and new users per day")
    return dbc.Card([dbc.CardHeader(html.Span(title, className="fw-semibold")),
                     dbc.CardBody(dcc.Graph(id=ids.EXPERIMENT_TIMELINE_CHART, figure=timeline_figure(report),
                                            config=GRAPH_CONFIG, style={"height": "420px"}), className="p-1")],
                    className="mt-3")


def add_look_from_upload(contents: str | None, filename: str | None, experiment_id: Any) -> tuple[Any, Any]:
    """The add-a-look callback's body: (message, the page body redrawn, or ``no_update``).

    The bytes are analysed and stored on the server (:func:`dashapp.workspace.add_look`); only the
    experiment id comes from the page, and the experiment's stored settings decide the analysis."""
    if not contents:
        raise PreventUpdate
    name = filename or "upload.csv"
    try:
        number = int(experiment_id)
        limit = context.upload_limit()
        content = decode_upload(contents, limit)
        admit_upload(content)  # the user's staging quota (QuotaExceededError is a ValueError)
        look_id, report = add_look(context.database(), number, content, name,
                                   staging=context.staging_dir(), limit_bytes=limit, author=auth.acting_user_name())
        body = experiment_body(number)
    except LookBlockedError as refused:
        issues = report_json(refused.report)["health"]["issues"]
        return dbc.Alert([html.B(str(refused)), html.Div(issue_list(issues), className="mt-2")],
                         color="danger"), no_update
    except (TypeError, ValueError, StorageError) as error:  # UploadRejectedError is a ValueError
        return dbc.Alert(f"{name} was not added as a look: {error}", color="danger"), no_update
    status = report.health.status
    looks = len(context.database().analyses(number))
    warning = " Check the data-quality warnings below before acting on it." if status == HealthStatus.WARNING else ""
    text, _ = decision_label(report_json(report))
    return dbc.Alert(f"Added {name} as look {looks} (analysis {look_id}): {text}.{warning}",
                     color="warning" if status == HealthStatus.WARNING else "success"), body


def _report_sections(experiment: Any, latest: Any, memos: tuple[Any, ...], looks: list[Any]) -> list[Any]:
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
        *looks,
        _timeline_card(report),
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
    # Resetting the upload's contents lets the same file name be picked again for tomorrow's look.
    @app.callback(Output(ids.EXPERIMENT_LOOK_MESSAGE, "children"), Output(ids.EXPERIMENT_BODY, "children"),
                  Output(ids.EXPERIMENT_ADD_LOOK, "contents"),
                  Input(ids.EXPERIMENT_ADD_LOOK, "contents"), State(ids.EXPERIMENT_ADD_LOOK, "filename"),
                  State(ids.EXPERIMENT_LOOK_TARGET, "data"), prevent_initial_call=True,
                  running=[(Output(ids.EXPERIMENT_ADD_LOOK, "disabled"), True, False)])
    def look(contents: str | None, filename: str | None, experiment_id: Any) -> tuple[Any, Any, None]:
        message, body = add_look_from_upload(contents, filename, experiment_id)
        return message, body, None

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
