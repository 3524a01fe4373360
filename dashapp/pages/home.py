"""Home: what is loaded now, a quick start, and the latest experiments."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html

from analytics.wording import format_count, format_date
from dashapp import ids
from dashapp.components import DECISION_COLOURS, decision_label, health_badge
from dashapp.pages import context
from storage.database import HistoryQuery
from storage.errors import StorageError

__all__ = ["current_view", "layout", "register_callbacks"]


def _latest() -> Any:
    try:
        page = context.database().history(HistoryQuery(limit=6))
    except StorageError as error:
        return dbc.Alert(str(error), color="danger")
    if not page.rows:
        return html.P("Nothing saved yet.", className="text-muted")
    items = [dbc.ListGroupItem([
        dbc.Badge((r.decision or "—").upper(), color=DECISION_COLOURS.get(r.decision or "", "secondary"),
                  className="me-2"),
        dcc.Link(r.name, href=f"/experiments/{r.experiment_id}", className="text-break"),
        html.Small(f" · {format_date(r.created_at.date())}", className="text-muted"),
    ]) for r in page.rows]
    return html.Div([dbc.ListGroup(items, id=ids.LATEST_EXPERIMENTS),
                     dcc.Link(f"All {format_count(page.total)} experiments →", href="/history", className="d-block mt-2")])


def current_view(state: dict[str, Any] | None) -> Any:
    if not state or "report" not in state:
        return html.Div([html.P("No experiment is loaded in this tab.", className="mb-2"),
                         dcc.Link(dbc.Button("Start a new experiment", color="primary"), href="/new")])
    report = state["report"]
    text, colour = decision_label(report)
    saved = state.get("saved")
    return html.Div([
        html.H5(report["experiment"]["name"], className="text-break"),
        html.Div([health_badge(report["health"]["status"], element_id=None),
                  dbc.Badge(text, color=colour, className="fs-6")], className="mb-2"),
        html.Small(f"Saved as experiment {saved['experiment_id']}" if saved else "Not saved yet",
                   className="d-block text-muted mb-2"),
        dcc.Link("Results", href="/results", className="me-3"), dcc.Link("Decision memo", href="/memo",
                                                                          className="me-3"),
        dcc.Link("Start a new experiment", href="/new") if state.get("closed") else None,
    ])


def layout(**_: Any) -> html.Div:
    steps = [
        ("Plan", "Write the hypothesis and size the test with the power calculator."),
        ("Upload", "Drop the exported result file (one row per variant) — the health check runs at once."),
        ("Decide", "Read the decision with its rule and reasons; guardrails and SRM are checked for you."),
        ("Share", "Download the one-page memo (PDF, HTML, Markdown) and save it to the team history."),
    ]
    return html.Div([
        html.Div([
            html.H1("Decide A/B tests you can trust", className="display-6"),
            html.P("ExperimentOS checks the data, analyses the primary metric and the guardrails, and writes a "
                   "Launch / Hold / Rollback memo.", className="lead"),
        ], className="py-3"),
        dbc.Row([
            dbc.Col(dbc.Card([dbc.CardHeader("Loaded now"), dbc.CardBody(html.Div(id=ids.CURRENT_EXPERIMENT))]), lg=4,
                    className="mb-3"),
            dbc.Col(dbc.Card([dbc.CardHeader("Quick start"), dbc.CardBody(html.Ol(
                [html.Li([html.B(title + ": "), text]) for title, text in steps], className="mb-0"))]), lg=4,
                className="mb-3"),
            dbc.Col(dbc.Card([dbc.CardHeader("Latest experiments"), dbc.CardBody(_latest())]), lg=4,
                    className="mb-3"),
        ]),
    ])


def register_callbacks(app: Dash) -> None:
    @app.callback(Output(ids.CURRENT_EXPERIMENT, "children"), Input(ids.SESSION_STORE, "data"))
    def show_current(state: dict[str, Any] | None) -> Any:
        return current_view(state)
