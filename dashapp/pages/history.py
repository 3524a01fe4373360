"""History: every saved experiment, searchable and filterable as the user types; a portfolio
summary of what is shown; compare several side by side (one panel per metric)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from analytics import Outcome
from analytics.wording import format_count, format_date
from dashapp import ids
from dashapp.faults import fault_card
from dashapp.figures import HISTORY_DECISION_COLOURS, compare_figure, empty_figure, portfolio_timeline_figure
from dashapp.formatting import format_relative
from dashapp.pages import context
from storage.database import HistoryQuery, HistoryRow, PortfolioSummary
from storage.errors import DatabaseError, StorageError

__all__ = [
    "COLUMNS",
    "SEARCH_DEBOUNCE_MS",
    "compare_rows",
    "history_query",
    "history_rows",
    "history_view",
    "layout",
    "lift_text",
    "portfolio_cards",
    "register_callbacks",
]

#: Milliseconds after the last keystroke before the grid filters (fast enough to feel live,
#: slow enough not to query the database on every letter).
SEARCH_DEBOUNCE_MS = 300

COLUMNS = [
    {"field": "id", "headerName": "ID", "width": 100, "minWidth": 100, "maxWidth": 110, "sort": "desc"},
    {"field": "name", "headerName": "Experiment", "flex": 3, "minWidth": 220},
    {"field": "decision", "headerName": "Decision", "width": 120, "maxWidth": 130, "cellRenderer": "DecisionBadge"},
    {"field": "lift", "headerName": "Relative lift [95% CI]", "flex": 2, "minWidth": 210,
     "cellStyle": {"styleConditions": [{"condition": "params.data.untrusted",
                                        "style": {"color": "#6b7280", "fontStyle": "italic"}}]}},
    {"field": "health", "headerName": "Health", "maxWidth": 110},
    {"field": "tags", "headerName": "Tags", "flex": 1, "minWidth": 140, "cellRenderer": "TagBadges",
     "sortable": False, "filter": False},
    {"field": "created", "headerName": "Saved", "width": 150, "maxWidth": 160},
    {"field": "open", "headerName": "Details", "width": 100, "maxWidth": 110, "cellRenderer": "markdown",
     "sortable": False, "filter": False},
]

#: The decision filter's value that filters nothing.
_ALL_DECISIONS = "all"


def _decision_options() -> list[dict[str, str]]:
    """The decision filter's options: all, then one per :class:`analytics.Outcome` (``Launch``, …)."""
    return [{"label": "All decisions", "value": _ALL_DECISIONS},
            *({"label": outcome.value.capitalize(), "value": outcome.value} for outcome in Outcome)]


def _date(value: str | None) -> dt.date | None:
    """A typed or picked date (``YYYY-MM-DD``); anything else (half-typed) is no filter."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def history_query(text: str | None, decision: str | None, since: str | None, until: str | None,
                  show_archived: bool = False) -> HistoryQuery:
    """The database query for the filters as the page holds them (archived experiments only when
    ``show_archived``)."""
    chosen = next((outcome for outcome in Outcome if outcome.value == decision), None)  # "all" / None: no filter
    return HistoryQuery(decision=chosen,
                        text=(text or "").strip() or None, since=_date(since), until=_date(until), limit=1000,
                        include_archived=bool(show_archived))


def lift_text(row: HistoryRow) -> str:
    """The headline lift, or why it must not be read (an SRM or blocked result is not a lift)."""
    if row.analysis_id is None:
        return "—"
    if row.untrustworthy:
        return f"— not trustworthy ({row.untrustworthy})"
    if row.relative_effect is None or row.relative_ci_low is None or row.relative_ci_high is None:
        return "n/a (control is 0)"
    return format_relative({"relative_effect": row.relative_effect,
                            "relative_ci": (row.relative_ci_low, row.relative_ci_high)})


def history_rows(text: str | None, decision: str | None, since: str | None,
                 until: str | None, show_archived: bool = False) -> tuple[list[dict[str, Any]], str]:
    """Rows for the grid and a count line, from the filters."""
    page = context.database().history(history_query(text, decision, since, until, show_archived))
    # AG Grid wants string row ids (warning #25); ``id`` stays a number so it sorts as one.
    rows = [{"id": r.experiment_id, "row_id": str(r.experiment_id), "name": r.name, "decision": r.decision or "—",
             "lift": lift_text(r),
             "untrusted": bool(r.untrustworthy), "health": r.health or "—", "tags": list(r.tags),
             "created": format_date(r.created_at), "open": f"[Open →](/experiments/{r.experiment_id})"}
            for r in page.rows]
    if page.total > len(rows):
        shown = f"{format_count(len(rows))} of {format_count(page.total)} experiment(s)"
    else:
        shown = f"{format_count(page.total)} experiment(s)"
    return rows, shown


def _percent(value: float) -> str:
    # dashapp.formatting has no plain-percentage wrapper yet: format_relative's headline is one.
    return format_relative({"relative_effect": value, "relative_ci": (value, value)}).split(" [")[0]


def _stat(label: str, value: str, colour: str, element_id: str) -> dbc.Col:
    return dbc.Col(html.Div([html.Div(value, id=element_id, className="fs-4 fw-bold", style={"color": colour}),
                             html.Div(label, className="small text-muted")],
                            className="border rounded px-3 py-2 h-100 bg-white"), xs=6, md=3)


def portfolio_cards(summary: PortfolioSummary) -> list[Any]:
    """The counts a leader asks for, over the experiments the filters show."""
    median = "—"
    if summary.median_launch_lift is not None:
        median = _percent(summary.median_launch_lift)
    lift_label = (f"median lift of {format_count(summary.launches_with_lift)} launch(es)"
                  if summary.launches_with_lift else "median lift of launches")
    return [dbc.Row([
        _stat("launched", format_count(summary.launched), HISTORY_DECISION_COLOURS[Outcome.LAUNCH], ids.HISTORY_LAUNCHED),
        _stat("held", format_count(summary.held), HISTORY_DECISION_COLOURS[Outcome.HOLD], ids.HISTORY_HELD),
        _stat("rolled back", format_count(summary.rolled_back), HISTORY_DECISION_COLOURS[Outcome.ROLLBACK],
              ids.HISTORY_ROLLED_BACK),
        _stat(lift_label, median, "#111827", ids.HISTORY_MEDIAN_LIFT),
    ], className="g-2"),
        html.Div(f"of {format_count(summary.experiments)} experiment(s) shown"
                 + (f", {format_count(summary.not_analysed)} without an analysis" if summary.not_analysed else "")
                 + " · lift in the metric's better direction", className="small text-muted mt-1")]


def history_view(text: str | None, decision: str | None, since: str | None,
                 until: str | None, show_archived: bool = False) -> tuple[list[dict[str, Any]], Any, Any, Any]:
    """Grid rows, count line, portfolio cards and decisions-over-time chart for the filters."""
    try:
        rows, shown = history_rows(text, decision, since, until, show_archived)
        summary = context.database().portfolio(history_query(text, decision, since, until, show_archived))
    except StorageError as error:
        message = fault_card(error, element_id=None) if isinstance(error, DatabaseError) \
            else dbc.Alert(str(error), color="danger")
        return [], message, None, empty_figure("History is unavailable.")
    return rows, shown, portfolio_cards(summary), portfolio_timeline_figure(summary.timeline)


def compare_rows(selected: list[dict[str, Any]] | None) -> tuple[Any, str]:
    chosen = [int(row["id"]) for row in selected or []]
    if len(chosen) < 1:
        return compare_figure([]), "Select one or more experiments (tick the boxes), then press Compare."
    try:
        rows = context.database().compare(chosen)
    except StorageError as error:
        return compare_figure([]), str(error)
    return compare_figure(rows), f"Comparing {format_count(len(rows))} experiment(s)."


def layout(**_: Any) -> html.Div:
    return html.Div([
        html.H2("History"),
        dbc.Card([
            dbc.CardHeader("Portfolio: decisions of the experiments shown below"),
            dbc.CardBody(dbc.Row([
                dbc.Col(html.Div(id=ids.HISTORY_SUMMARY), lg=7),
                dbc.Col([html.Div("Decisions over time", className="small fw-semibold"),
                         dcc.Graph(id=ids.HISTORY_TIMELINE, figure=empty_figure(""), style={"height": "150px"},
                                   config={"displayModeBar": False})], lg=5),
            ], className="g-3 align-items-center"), className="py-2"),
        ], className="mb-3"),
        dbc.Row([
            # dcc.Input: Enter also sends what is in the box at once (dbc.Input with a delay does not).
            dbc.Col(dcc.Input(id=ids.HISTORY_SEARCH, placeholder="Search name, hypothesis or tags", type="search",
                              debounce=SEARCH_DEBOUNCE_MS / 1000, className="form-control"), md=3),
            dbc.Col(dbc.Select(id=ids.HISTORY_DECISION, value=_ALL_DECISIONS, options=_decision_options()), md=2),
            dbc.Col(dbc.InputGroup([dbc.InputGroupText("From"),
                                    dbc.Input(id=ids.HISTORY_SINCE, type="date", debounce=SEARCH_DEBOUNCE_MS)]), md=2),
            dbc.Col(dbc.InputGroup([dbc.InputGroupText("To"),
                                    dbc.Input(id=ids.HISTORY_UNTIL, type="date", debounce=SEARCH_DEBOUNCE_MS)]), md=2),
            dbc.Col(dbc.Button("Compare selected", id=ids.COMPARE_BUTTON, color="primary", className="w-100"), md=2),
            dbc.Col(dbc.Switch(id=ids.HISTORY_SHOW_ARCHIVED, label="Show archived", value=False), md=1),
        ], className="g-2 mb-2 align-items-center"),
        html.Div(id=ids.HISTORY_COUNT, className="text-muted small mb-1"),
        dag.AgGrid(id=ids.HISTORY_TABLE, columnDefs=COLUMNS, rowData=[], getRowId="params.data.row_id",
                   defaultColDef={"sortable": True, "filter": True, "resizable": True},
                   dashGridOptions={"rowSelection": {"mode": "multiRow"}, "animateRows": False,
                                    "domLayout": "autoHeight", "pagination": True, "paginationPageSize": 20},
                   className="ag-theme-alpine", style={"width": "100%"}),
        html.Div(id=ids.COMPARE_MESSAGE, className="text-muted small mt-2"),
        dcc.Graph(id=ids.COMPARE_CHART, figure=compare_figure([]), config={"displaylogo": False}),
    ])


def register_callbacks(app: Dash) -> None:
    @app.callback(Output(ids.HISTORY_TABLE, "rowData"), Output(ids.HISTORY_COUNT, "children"),
                  Output(ids.HISTORY_SUMMARY, "children"), Output(ids.HISTORY_TIMELINE, "figure"),
                  Input(ids.HISTORY_SEARCH, "value"), Input(ids.HISTORY_DECISION, "value"),
                  Input(ids.HISTORY_SINCE, "value"), Input(ids.HISTORY_UNTIL, "value"),
                  Input(ids.HISTORY_SHOW_ARCHIVED, "value"))
    def filter_history(text: str | None, decision: str | None, since: str | None,
                       until: str | None, show_archived: bool | None) -> tuple[list[dict[str, Any]], Any, Any, Any]:
        return history_view(text, decision, since, until, bool(show_archived))

    @app.callback(Output(ids.COMPARE_CHART, "figure"), Output(ids.COMPARE_MESSAGE, "children"),
                  Input(ids.COMPARE_BUTTON, "n_clicks"), State(ids.HISTORY_TABLE, "selectedRows"),
                  prevent_initial_call=True)
    def compare(clicks: int | None, selected: list[dict[str, Any]] | None) -> tuple[Any, str]:
        if not clicks:
            raise PreventUpdate
        return compare_rows(selected)
