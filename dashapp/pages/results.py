"""Results: status banner, decision, primary result with charts, guardrails, save to history."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashapp import ids
from dashapp.auth import may, refusal_text
from dashapp.components import data_guard, decision_badge, guardrail_table, primary_card, segment_table, status_banner
from dashapp.errors import UploadRejectedError
from dashapp.figures import effect_figure, effect_title, guardrail_figure, posterior_figure, posterior_title, timeline_figure
from dashapp.pages import context
from dashapp.state import save_session
from storage.errors import StorageError

__all__ = ["GRAPH_CONFIG", "layout", "register_callbacks", "results_view", "save_to_history", "saved_note"]

# The tool bar shows on hover only, and chart titles sit in the card headers: nothing hides under it.
GRAPH_CONFIG: Any = {"displaylogo": False, "responsive": True, "displayModeBar": "hover"}


def layout(**_: Any) -> html.Div:
    return html.Div([html.H2("Results"), html.Div(id=ids.RESULTS_BODY)])


def saved_note(state: dict[str, Any]) -> Any:
    saved = state.get("saved")
    if not saved:
        return None
    return html.Span([
        "Saved as ", dcc.Link(f"experiment {saved['experiment_id']}", href=f"/experiments/{saved['experiment_id']}"),
        ". ",
        dcc.Link(dbc.Button("Start a new experiment", color="success", size="sm", className="ms-2"), href="/new",
                 id=ids.RESULTS_NEW_EXPERIMENT),
    ])


def _guardrail_graph(report: dict[str, Any]) -> dcc.Graph:
    figure = guardrail_figure(report)
    return dcc.Graph(id=ids.GUARDRAIL_CHART, figure=figure, config=GRAPH_CONFIG,
                     style={"height": f"{figure.layout.height}px"})


def _charts(report: dict[str, Any]) -> dbc.Row:
    """The effect and posterior charts, each titled in its card header (never under the tool bar)."""
    title, subtitle = posterior_title(report)
    effect = dbc.Card([
        dbc.CardHeader(html.Div([
            html.Span(effect_title(report), id=ids.EFFECT_TITLE, className="fw-semibold me-3"),
            dbc.RadioItems(id=ids.EFFECT_SCALE, inline=True, value="relative", className="small",
                           options=[{"label": "Relative (%)", "value": "relative"},
                                    {"label": "Absolute", "value": "absolute"}]),
        ], className="d-flex flex-wrap align-items-center justify-content-between")),
        dbc.CardBody(dcc.Graph(id=ids.EFFECT_CHART, figure=effect_figure(report, titled=False), config=GRAPH_CONFIG,
                               style={"height": "300px"}), className="p-1"),
    ], className="h-100")
    posterior = dbc.Card([
        dbc.CardHeader([html.Span(title, className="fw-semibold"),
                        html.Small(subtitle, className="d-block text-muted") if subtitle else None],
                       id=ids.POSTERIOR_TITLE),
        dbc.CardBody(dcc.Graph(id=ids.POSTERIOR_CHART, figure=posterior_figure(report, titled=False),
                               config=GRAPH_CONFIG, style={"height": "300px"}), className="p-1"),
    ], className="h-100")
    return dbc.Row([dbc.Col(effect, lg=6, className="mb-3"), dbc.Col(posterior, lg=6, className="mb-3")],
                   className="mt-3")


def _timeline(report: dict[str, Any]) -> dbc.Card:
    sequential = any(p.get("sequential") for p in report["timeline"])
    title = "Cumulative effect over time, with its fixed-horizon" + (" and always-valid" if sequential else "") + " 95% band"
    return dbc.Card([
        dbc.CardHeader(html.Span(title, className="fw-semibold")),
        dbc.CardBody(dcc.Graph(id=ids.TIMELINE_CHART, figure=timeline_figure(report), config=GRAPH_CONFIG,
                               style={"height": "420px"}), className="p-1"),
    ], className="mb-3")


def results_view(state: dict[str, Any] | None) -> Any:
    """Everything on the page for a session (or the friendly guard when there is none)."""
    if not state or "report" not in state:
        return data_guard("results")
    report = state["report"]
    has_data = bool(report["comparisons"])
    return html.Div([
        status_banner(report),
        dbc.Card(dbc.CardBody([
            html.H4(report["experiment"]["name"], className="mb-3 text-break"),
            decision_badge(report),
        ]), className="mb-3"),
        primary_card(report),
        _charts(report) if has_data else None,
        _timeline(report) if has_data and report.get("timeline") else None,
        segment_table(report),
        html.H4("Guardrails", className="mt-3"),
        guardrail_table(report),
        _guardrail_graph(report) if any(c["guardrails"] for c in report["comparisons"]) else None,
        html.Div([
            # Viewers get no Save button at all (not a disabled one: Dash re-enables a button that
            # is a callback's `running` output), and the server refuses the callback anyway.
            dbc.Button("Save to history", id=ids.SAVE_EXPERIMENT, color="primary", className="me-3",
                       disabled=bool(state.get("saved"))) if may("analyst") else None,
            dcc.Link(dbc.Button("Decision memo →", color="outline-primary", className="me-3"), href="/memo"),
            html.Span(id=ids.SAVE_MESSAGE, children=saved_note(state) if may("analyst") or state.get("saved")
                      else html.Span(refusal_text("analyst"), id=ids.ROLE_NOTICE, className="small text-muted")),
        ], className="d-flex align-items-center mt-3"),
    ])


def save_to_history(state: dict[str, Any] | None) -> tuple[Any, Any]:
    """Save the session's analysis; returns (new state, message)."""
    if not state or "report" not in state:
        raise PreventUpdate
    try:
        new_state = save_session(state, context.database(), staging=context.staging_dir())
    except (StorageError, UploadRejectedError) as error:
        return no_update, dbc.Alert(f"Not saved: {error}", color="danger", className="mb-0 py-1")
    return new_state, saved_note(new_state)


def register_callbacks(app: Dash) -> None:
    @app.callback(Output(ids.RESULTS_BODY, "children"), Input(ids.SESSION_STORE, "data"))
    def render(state: dict[str, Any] | None) -> Any:
        return results_view(state)

    @app.callback(Output(ids.EFFECT_CHART, "figure"), Output(ids.EFFECT_TITLE, "children"),
                  Input(ids.EFFECT_SCALE, "value"), State(ids.SESSION_STORE, "data"), prevent_initial_call=True)
    def rescale(scale: str, state: dict[str, Any] | None) -> Any:
        if not state or "report" not in state:
            raise PreventUpdate
        return effect_figure(state["report"], scale=scale, titled=False), effect_title(state["report"], scale=scale)

    @app.callback(Output(ids.SESSION_STORE, "data", allow_duplicate=True), Output(ids.SAVE_MESSAGE, "children"),
                  Input(ids.SAVE_EXPERIMENT, "n_clicks"), State(ids.SESSION_STORE, "data"),
                  prevent_initial_call=True, running=[(Output(ids.SAVE_EXPERIMENT, "disabled"), True, False)])
    def save(clicks: int | None, state: dict[str, Any] | None) -> tuple[Any, Any]:
        if not clicks:
            raise PreventUpdate
        return save_to_history(state)
