"""History: every saved experiment, searchable and filterable; compare several on one chart."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashapp import ids
from dashapp.figures import compare_figure
from dashapp.pages import context
from storage.database import HistoryQuery
from storage.errors import StorageError

__all__ = ["compare_rows", "history_rows", "layout", "register_callbacks"]

COLUMNS = [
    {"field": "id", "headerName": "ID", "maxWidth": 90, "sort": "desc"},
    {"field": "name", "headerName": "Experiment", "flex": 3, "minWidth": 220},
    {"field": "decision", "headerName": "Decision", "maxWidth": 120,
     "cellClassRules": {"text-success fw-bold": "params.value == 'launch'",
                        "text-warning fw-bold": "params.value == 'hold'",
                        "text-danger fw-bold": "params.value == 'rollback'"}},
    {"field": "lift", "headerName": "Relative lift [95% CI]", "flex": 2, "minWidth": 200},
    {"field": "health", "headerName": "Health", "maxWidth": 120},
    {"field": "tags", "headerName": "Tags", "flex": 1},
    {"field": "created", "headerName": "Saved", "maxWidth": 170},
    {"field": "open", "headerName": "", "maxWidth": 90, "cellRenderer": "markdown", "sortable": False},
]


def history_rows(text: str | None, decision: str | None, since: str | None,
                 until: str | None) -> tuple[list[dict[str, Any]], str]:
    """Rows for the grid and a count line, from the filters."""
    query = HistoryQuery(decision=decision if decision in ("launch", "hold", "rollback") else None, text=text or None, limit=1000,
                         since=dt.date.fromisoformat(since[:10]) if since else None,
                         until=dt.date.fromisoformat(until[:10]) if until else None)
    page = context.database().history(query)
    rows = []
    for r in page.rows:
        lift = "n/a"
        if r.relative_effect is not None and r.relative_ci_low is not None and r.relative_ci_high is not None:
            lift = f"{r.relative_effect:+.2%} [{r.relative_ci_low:+.2%}, {r.relative_ci_high:+.2%}]"
        rows.append({"id": r.experiment_id, "name": r.name, "decision": r.decision or "—", "lift": lift,
                     "health": r.health or "—", "tags": ", ".join(r.tags),
                     "created": f"{r.created_at:%Y-%m-%d %H:%M}", "open": f"[open](/experiments/{r.experiment_id})"})
    shown = f"{len(rows)} of {page.total} experiment(s)" if page.total > len(rows) else f"{page.total} experiment(s)"
    return rows, shown


def compare_rows(selected: list[dict[str, Any]] | None) -> tuple[Any, str]:
    chosen = [int(row["id"]) for row in selected or []]
    if len(chosen) < 1:
        return compare_figure([]), "Select one or more experiments (tick the boxes), then press Compare."
    try:
        rows = context.database().compare(chosen)
    except StorageError as error:
        return compare_figure([]), str(error)
    return compare_figure(rows), f"Comparing {len(rows)} experiment(s)."


def layout(**_: Any) -> html.Div:
    return html.Div([
        html.H2("History"),
        dbc.Row([
            dbc.Col(dbc.Input(id=ids.HISTORY_SEARCH, placeholder="Search name, hypothesis or tags", type="search",
                              debounce=True), md=5),
            dbc.Col(dbc.Select(id=ids.HISTORY_DECISION, value="all", options=[
                {"label": "All decisions", "value": "all"}, {"label": "Launch", "value": "launch"},
                {"label": "Hold", "value": "hold"}, {"label": "Rollback", "value": "rollback"}]), md=2),
            dbc.Col(dcc.DatePickerRange(id=ids.HISTORY_DATES, clearable=True, display_format="YYYY-MM-DD",
                                        start_date_placeholder_text="From", end_date_placeholder_text="To"), md=3),
            dbc.Col(dbc.Button("Compare selected", id=ids.COMPARE_BUTTON, color="primary"), md=2),
        ], className="g-2 mb-2 align-items-center"),
        html.Div(id=ids.HISTORY_COUNT, className="text-muted small mb-1"),
        dag.AgGrid(id=ids.HISTORY_TABLE, columnDefs=COLUMNS, rowData=[], getRowId="params.data.id",
                   defaultColDef={"sortable": True, "filter": True, "resizable": True},
                   dashGridOptions={"rowSelection": {"mode": "multiRow"}, "animateRows": False,
                                    "domLayout": "autoHeight", "pagination": True, "paginationPageSize": 20},
                   className="ag-theme-alpine", style={"width": "100%"}),
        html.Div(id=ids.COMPARE_MESSAGE, className="text-muted small mt-2"),
        dcc.Graph(id=ids.COMPARE_CHART, figure=compare_figure([]), config={"displaylogo": False}),
    ])


def register_callbacks(app: Dash) -> None:
    @app.callback(Output(ids.HISTORY_TABLE, "rowData"), Output(ids.HISTORY_COUNT, "children"),
                  Input(ids.HISTORY_SEARCH, "value"), Input(ids.HISTORY_DECISION, "value"),
                  Input(ids.HISTORY_DATES, "start_date"), Input(ids.HISTORY_DATES, "end_date"))
    def filter_history(text: str | None, decision: str | None, since: str | None,
                       until: str | None) -> tuple[list[dict[str, Any]], Any]:
        try:
            return history_rows(text, decision, since, until)
        except StorageError as error:
            return [], dbc.Alert(str(error), color="danger")

    @app.callback(Output(ids.COMPARE_CHART, "figure"), Output(ids.COMPARE_MESSAGE, "children"),
                  Input(ids.COMPARE_BUTTON, "n_clicks"), State(ids.HISTORY_TABLE, "selectedRows"),
                  prevent_initial_call=True)
    def compare(clicks: int | None, selected: list[dict[str, Any]] | None) -> tuple[Any, str]:
        if not clicks:
            raise PreventUpdate
        return compare_rows(selected)
