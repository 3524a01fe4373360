"""Decision Memo: the one-page preview, editable notes (saved as memo versions), downloads."""

from __future__ import annotations

import re
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashapp import ids
from dashapp.auth import acting_user_name, may, refusal_text
from dashapp.components import data_guard, download_card
from dashapp.errors import SessionRejectedError, UploadRejectedError
from dashapp.memo import (
    MAX_NOTES_CHARS,
    build_memo,
    experiment_charter,
    render_html,
    render_markdown,
    render_pdf,
)
from dashapp.pages import context
from dashapp.state import charter_of, save_session
from dashapp.workspace import report_problems, verify_saved
from storage.errors import StorageError

__all__ = ["PREVIEW_STYLE", "download_name", "layout", "memo_files", "memo_view", "register_callbacks", "save_notes"]

# The preview is one A4 page: as tall as the page is at the frame's width (the memo's own 190 mm
# column plus margins), not a fixed height that leaves a third of the frame empty.
PREVIEW_STYLE = {"height": "auto", "aspectRatio": "210 / 297", "maxHeight": "calc(100vh - 6rem)", "minHeight": "32rem"}


def layout(**_: Any) -> html.Div:
    return html.Div([html.H2("Decision memo"), html.Div(id=ids.MEMO_BODY)])


def download_name(state: dict[str, Any], extension: str) -> str:
    """A safe file name from the experiment name (letters of any script kept)."""
    base = re.sub(r"[^\w\-]+", "_", state["report"]["experiment"]["name"], flags=re.UNICODE).strip("_")[:80]
    return f"{base or 'experiment'}-memo.{extension}"


def _memo(state: dict[str, Any], notes: str | None) -> Any:
    return build_memo(state["report"], charter=charter_of(state), notes=(notes or "")[:MAX_NOTES_CHARS] or None)


def memo_files(state: dict[str, Any], notes: str | None, kind: str) -> dict[str, Any]:
    """``dcc.Download`` data for the memo as ``md``, ``html`` or ``pdf``."""
    memo = _memo(state, notes)
    policy = state["report"]["policy"]
    if kind == "md":
        return dcc.send_string(render_markdown(memo), download_name(state, "md"))  # type: ignore[no-any-return]
    if kind == "html":
        return dcc.send_string(render_html(memo, policy), download_name(state, "html"))  # type: ignore[no-any-return]
    pdf = render_pdf(memo, policy)
    return dcc.send_bytes(pdf, download_name(state, "pdf"))  # type: ignore[no-any-return]


def memo_view(state: dict[str, Any] | None) -> Any:
    if not state or "report" not in state:
        return data_guard("decision memo")
    notes = state.get("notes") or ""
    return dbc.Row([
        dbc.Col([
            dbc.Card([
                dbc.CardHeader("Analyst notes"),
                dbc.CardBody([
                    dbc.Textarea(id=ids.MEMO_NOTES, value=notes, rows=8, maxLength=MAX_NOTES_CHARS,
                                 placeholder="Context, caveats, follow-ups… (printed on the memo)", debounce=True),
                    dbc.FormText(f"Up to {MAX_NOTES_CHARS:,} characters. Saving stores a new memo version "
                                 "(and saves the experiment to history if it is not there yet)."),
                    html.Div([dbc.Button("Save notes as new memo version", id=ids.SAVE_NOTES, color="primary",
                                         className="mt-2")]) if may("analyst") else
                    html.Div(refusal_text("analyst"), id=ids.ROLE_NOTICE, className="small text-muted mt-2"),
                    html.Div(id=ids.NOTES_MESSAGE, className="mt-2"),
                ]),
            ], className="mb-3"),
            download_card("Download", markdown=ids.DOWNLOAD_MD, html_button=ids.DOWNLOAD_HTML, pdf=ids.DOWNLOAD_PDF,
                          status=ids.PDF_STATUS,
                          downloads=[ids.DOWNLOAD_MD_FILE, ids.DOWNLOAD_HTML_FILE, ids.DOWNLOAD_PDF_FILE]),
        ], lg=4),
        dbc.Col(dcc.Loading(html.Iframe(id=ids.MEMO_PREVIEW, sandbox="", className="memo-frame",
                                        title="Decision memo preview", style=PREVIEW_STYLE)), lg=8),
    ])


def save_notes(state: dict[str, Any] | None, notes: str | None) -> tuple[Any, Any]:
    """Store the notes as a new memo version (saving the experiment first when needed).

    Notes attach only to an analysis this server handed to the session (saved here or opened from
    History, its ids signed); the memo stored beside them is built from the *stored* analysis and
    charter, never from the browser's copy of the report."""
    if not state or "report" not in state:
        raise PreventUpdate
    notes = (notes or "").strip()
    if len(notes) > MAX_NOTES_CHARS:
        return no_update, dbc.Alert(f"Notes are limited to {MAX_NOTES_CHARS:,} characters.", color="danger")
    database = context.database()
    secret = context.session_secret()
    try:
        saved_state = save_session(state, database, staging=context.staging_dir(), secret=secret)
        experiment_id, analysis_id = verify_saved(secret, saved_state["saved"])
        record = database.analysis(analysis_id)
        if record.experiment_id != experiment_id:
            raise SessionRejectedError("this session's analysis does not belong to its experiment; reopen it")
        problems = report_problems(record.report)
        if problems:
            raise SessionRejectedError(f"the stored analysis cannot be shown: {problems[0]}")
        memo = build_memo(record.report, charter=experiment_charter(database.experiment(experiment_id)),
                          notes=notes[:MAX_NOTES_CHARS] or None)
        version = database.save_memo(analysis_id, render_markdown(memo), notes=notes or None,
                                     author=acting_user_name())
    except (StorageError, UploadRejectedError) as error:
        return no_update, dbc.Alert(f"Not saved: {error}", color="danger", className="mb-0 py-1")
    message = html.Span([f"Saved memo version {version.version} of ",
                         dcc.Link(f"experiment {experiment_id}", href=f"/experiments/{experiment_id}"), "."],
                        className="text-success")
    return {**saved_state, "notes": notes or None}, message


def register_callbacks(app: Dash) -> None:
    @app.callback(Output(ids.MEMO_BODY, "children"), Input(ids.MEMO_BODY, "id"), State(ids.SESSION_STORE, "data"))
    def render(_: str, state: dict[str, Any] | None) -> Any:
        return memo_view(state)

    @app.callback(Output(ids.MEMO_PREVIEW, "srcDoc"), Input(ids.MEMO_NOTES, "value"),
                  State(ids.SESSION_STORE, "data"))
    def preview(notes: str | None, state: dict[str, Any] | None) -> str:
        if not state or "report" not in state:
            raise PreventUpdate
        return render_html(_memo(state, notes), state["report"]["policy"])

    @app.callback(Output(ids.SESSION_STORE, "data", allow_duplicate=True), Output(ids.NOTES_MESSAGE, "children"),
                  Input(ids.SAVE_NOTES, "n_clicks"), State(ids.MEMO_NOTES, "value"), State(ids.SESSION_STORE, "data"),
                  prevent_initial_call=True, running=[(Output(ids.SAVE_NOTES, "disabled"), True, False)])
    def store_notes(clicks: int | None, notes: str | None, state: dict[str, Any] | None) -> tuple[Any, Any]:
        if not clicks:
            raise PreventUpdate
        return save_notes(state, notes)

    @app.callback(Output(ids.DOWNLOAD_MD_FILE, "data"), Input(ids.DOWNLOAD_MD, "n_clicks"),
                  State(ids.MEMO_NOTES, "value"), State(ids.SESSION_STORE, "data"), prevent_initial_call=True)
    def download_markdown(clicks: int | None, notes: str | None, state: dict[str, Any] | None) -> Any:
        if not clicks or not state or "report" not in state:
            raise PreventUpdate
        return memo_files(state, notes, "md")

    @app.callback(Output(ids.DOWNLOAD_HTML_FILE, "data"), Input(ids.DOWNLOAD_HTML, "n_clicks"),
                  State(ids.MEMO_NOTES, "value"), State(ids.SESSION_STORE, "data"), prevent_initial_call=True)
    def download_html(clicks: int | None, notes: str | None, state: dict[str, Any] | None) -> Any:
        if not clicks or not state or "report" not in state:
            raise PreventUpdate
        return memo_files(state, notes, "html")

    # The PDF is the slow one (≈ 0.5 s, more for large memos). It runs in its own request thread,
    # so the page stays responsive, and `running` disables the button and says that it is working.
    # Not a `background=True` callback: Dash's DiskcacheManager forks the threaded server process,
    # and WeasyPrint deadlocked in the forked child (seen in the browser tests).
    @app.callback(Output(ids.DOWNLOAD_PDF_FILE, "data"), Input(ids.DOWNLOAD_PDF, "n_clicks"),
                  State(ids.MEMO_NOTES, "value"), State(ids.SESSION_STORE, "data"), prevent_initial_call=True,
                  running=[(Output(ids.DOWNLOAD_PDF, "disabled"), True, False),
                           (Output(ids.PDF_STATUS, "children"), "Rendering the PDF…", "")])
    def download_pdf(clicks: int | None, notes: str | None, state: dict[str, Any] | None) -> Any:
        if not clicks or not state or "report" not in state:
            raise PreventUpdate
        return memo_files(state, notes, "pdf")
