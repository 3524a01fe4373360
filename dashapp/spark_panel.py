"""New Experiment's third data source, "Spark table or SQL" (issue 15), shown when ``serve`` has a
Spark remote (``--spark-remote`` or ``SPARK_REMOTE``).

The scan runs on Spark as a background job with progress; what comes back — the query text and
its sufficient statistics — is kept on the server like an upload (content-addressed, by the
sha256 of that JSON) and analysed by the same isolated path as any file, so re-running with new
settings, saving and replay work unchanged. A Spark error is one banner saying what to do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import dash_bootstrap_components as dbc
import flask
from dash import Dash, Input, Output, State, html
from dash.exceptions import PreventUpdate

from dashapp import ids
from dashapp.components import upload_outcome
from dashapp.errors import UploadRejectedError
from dashapp.pages import context
from dashapp.spark_source import SparkService, analyze_spark
from dashapp.state import FormValues, analyze_staged_session
from dashapp.workspace import stage_upload
from storage.errors import SparkError
from storage.spark import SparkInput

__all__ = ["SPARK_SERVICE_KEY", "Progress", "panel", "register_callbacks", "run_spark_source", "spark_service"]

SPARK_SERVICE_KEY = "EXPERIMENTOS_SPARK"
Progress = Callable[[float, str], None]


def spark_service() -> SparkService | None:
    """The running app's Spark session holder, or ``None`` when ``serve`` has no Spark remote."""
    found = flask.current_app.config.get(SPARK_SERVICE_KEY)
    return found if isinstance(found, SparkService) else None


def panel() -> html.Div:
    """The Spark source on New Experiment (hidden, but present for the callback, without a remote)."""
    service = spark_service() if flask.has_app_context() else None
    return html.Div([
        html.Hr(className="my-2"),
        html.Strong("Spark table or SQL"),
        dbc.FormText(f" Scanned on Spark at {service.remote if service else '—'}; only sufficient statistics come "
                     "back. One row per user: a variant column and numeric metric columns."),
        dbc.RadioItems(id=ids.SPARK_KIND, inline=True, value="table",
                       options=[{"label": "Table", "value": "table"}, {"label": "SQL query", "value": "sql"}]),
        dbc.Textarea(id=ids.SPARK_QUERY, placeholder="analytics.checkout_users   or   SELECT user_id, variant, "
                     "converted, revenue FROM analytics.exposures WHERE experiment = 'checkout'", rows=2,
                     className="mt-1"),
        dbc.Button("Analyse on Spark", id=ids.SPARK_RUN, color="secondary", className="mt-1"),
        html.Div([
            dbc.Progress(id=ids.SPARK_PROGRESS, value=0, striped=True, animated=True, className="mt-1"),
            html.Small(id=ids.SPARK_PROGRESS_TEXT, className="text-muted"),
        ], id=ids.SPARK_PROGRESS_BOX, style={"display": "none"}),
        html.Div(id=ids.SPARK_MESSAGE, className="mt-2"),
    ], id=ids.SPARK_PANEL, style={} if service else {"display": "none"})


def _ticking(progress: Progress | None, what: str) -> tuple[Callable[[float], None], Callable[[], None]]:
    """Progress while Spark works: the stage and the seconds so far, every second; returns the
    callback for the scan's own stages and a function that stops the ticker."""
    started = time.monotonic()
    done = threading.Event()
    reached = [5.0]

    def report(percent: float) -> None:
        reached[0] = max(reached[0], min(percent, 95.0))
        if progress is not None:
            progress(reached[0], f"{what}… {time.monotonic() - started:.0f} s")

    def tick() -> None:
        while not done.wait(1.0):
            report(reached[0])

    threading.Thread(target=tick, name="spark-progress", daemon=True).start()
    return report, done.set


def run_spark_source(kind: str | None, text: str | None, form: FormValues, progress: Progress | None = None
                     ) -> tuple[Any, Any]:
    """The Spark callback as a plain function: (new session state or ``no_update``, message)."""
    from dash import no_update

    service = spark_service()
    if service is None or not (text or "").strip():
        raise PreventUpdate
    try:
        spark_input = SparkInput("sql" if kind == "sql" else "table", (text or "").strip())
        request = form.request()
    except ValueError as error:
        return no_update, dbc.Alert(f"Check the form: {error}.", color="danger", className="mb-0")
    report, stop = _ticking(progress, f"Scanning {spark_input.name} on Spark")
    try:
        report(5.0)
        analysis = analyze_spark(service.connection(), spark_input, request, on_progress=report)
        name = analysis.filename if spark_input.kind == "sql" else f"spark-{spark_input.text.strip()}.json"
        sha256 = stage_upload(analysis.read.content, name, context.staging_dir(), context.large_upload_limit())
        report(96.0)
        state = analyze_staged_session(sha256, name, form, staging=context.staging_dir())
    except SparkError as error:
        return no_update, dbc.Alert(f"Spark: {error}.", color="danger", className="mb-0")
    except UploadRejectedError as error:
        return no_update, dbc.Alert(f"Refused: {error}.", color="danger", className="mb-0")
    finally:
        stop()
    return state, upload_outcome(state["report"], spark_input.name)


def register_callbacks(app: Dash) -> None:
    @app.callback(
        Output(ids.SESSION_STORE, "data", allow_duplicate=True), Output(ids.SPARK_MESSAGE, "children"),
        Input(ids.SPARK_RUN, "n_clicks"),
        State(ids.SPARK_KIND, "value"), State(ids.SPARK_QUERY, "value"),
        State(ids.EXPERIMENT_NAME, "value"), State(ids.HYPOTHESIS, "value"), State(ids.PRIMARY_METRIC, "value"),
        State(ids.CONTROL_NAME, "value"), State(ids.EXPECTED_SPLIT, "value"), State(ids.OWNER, "value"),
        State(ids.TAGS, "value"), State(ids.PLANNED_MDE, "value"), State(ids.SEGMENTS, "value"),
        State(ids.PLAN_STORE, "data"), State(ids.SEQUENTIAL, "value"), State(ids.CUMULATIVE, "value"),
        prevent_initial_call=True,
        background=True,
        interval=500,
        progress=[Output(ids.SPARK_PROGRESS, "value"), Output(ids.SPARK_PROGRESS, "label"),
                  Output(ids.SPARK_PROGRESS_TEXT, "children")],
        progress_default=[0, "", "Starting the Spark job…"],
        running=[(Output(ids.SPARK_PROGRESS_BOX, "style"), {"display": "block"}, {"display": "none"}),
                 (Output(ids.SPARK_RUN, "disabled"), True, False)],
    )
    def analyse_on_spark(set_progress: Callable[[tuple[float, str, str]], None], clicks: int | None,
                         kind: str | None, text: str | None, name: str | None, hypothesis: str | None,
                         primary: str | None, control: str | None, split: str | None, owner: str | None,
                         tags: str | None, mde: str | None, segments: str | None, planned: int | None,
                         sequential: bool | None, cumulative: bool | None) -> tuple[Any, Any]:
        if not clicks:
            raise PreventUpdate
        form = FormValues(name=name, hypothesis=hypothesis, primary=primary, control=control, split=split,
                          owner=owner, tags=tags, mde=mde, planned_sample=planned, segments=segments,
                          sequential=bool(sequential), cumulative=bool(cumulative))
        return run_spark_source(kind, text, form,
                                lambda done, what: set_progress((round(done, 1), f"{done:.0f}%", what)))
