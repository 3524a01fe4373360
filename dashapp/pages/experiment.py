"""One stored experiment: its analysis, charts and memo versions; open it in the workspace."""

from __future__ import annotations

import os
import shutil
import threading
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashapp import ids
from dashapp.components import decision_badge, guardrail_table, health_panel, metric_settings_table, primary_card
from dashapp.figures import effect_figure, guardrail_figure
from dashapp.memo import Charter, build_memo, render_html
from dashapp.pages import context
from storage.errors import StorageError

__all__ = ["layout", "open_in_workspace", "register_callbacks", "stored_metrics"]


def _charter(experiment: Any) -> Charter:
    return Charter(hypothesis=experiment.hypothesis, primary_metric=experiment.primary_metric, mde=experiment.mde,
                   planned_sample=experiment.planned_sample, owner=experiment.owner,
                   start_date=experiment.start_date.isoformat() if experiment.start_date else None,
                   end_date=experiment.end_date.isoformat() if experiment.end_date else None)


def layout(experiment_id: str | None = None, **_: Any) -> html.Div:
    try:
        number = int(experiment_id or "")
    except ValueError:
        return dbc.Alert([f"{experiment_id!r} is not an experiment id. ", dcc.Link("Back to history", href="/history")],
                         color="warning")
    try:
        database = context.database()
        experiment = database.experiment(number)
        analyses = database.analyses(number)
        latest = analyses[-1] if analyses else None
        memos = database.memos(latest.id) if latest else ()
    except StorageError as error:
        return dbc.Alert([str(error), " ", dcc.Link("Back to history", href="/history")], color="warning")
    header = html.Div([
        html.H2(experiment.name, className="text-break"),
        html.P([f"Experiment {experiment.id} · saved {experiment.created_at:%Y-%m-%d %H:%M}",
                f" · owner {experiment.owner}" if experiment.owner else "",
                f" · tags {', '.join(experiment.tags)}" if experiment.tags else ""], className="text-muted"),
        html.P(f"Hypothesis: {experiment.hypothesis}") if experiment.hypothesis else None,
    ])
    if latest is None:
        return html.Div([header, dbc.Alert("This experiment has no stored analysis.", color="info")])
    report = latest.report
    memo_html = render_html(build_memo(report, charter=_charter(experiment), notes=memos[-1].notes if memos else None,
                                       date=latest.created_at.date().isoformat()), report["policy"])
    versions = dbc.Table([
        html.Thead(html.Tr([html.Th("Version"), html.Th("Saved"), html.Th("Author"), html.Th("Notes")])),
        html.Tbody([html.Tr([html.Td(m.version), html.Td(f"{m.created_at:%Y-%m-%d %H:%M}"), html.Td(m.author or "—"),
                             html.Td((m.notes or "")[:200])]) for m in reversed(memos)]),
    ], size="sm") if memos else html.P("No memo version saved yet.", className="text-muted")
    return html.Div([
        header,
        dcc.Store(id=ids.EXPERIMENT_URL, data=experiment.id),
        dbc.Card(dbc.CardBody([decision_badge(report), html.Hr(), health_panel(report)]), className="mb-3"),
        primary_card(report),
        dbc.Row([
            dbc.Col(dcc.Graph(figure=effect_figure(report), config={"displaylogo": False}), lg=6),
            dbc.Col(dcc.Graph(figure=guardrail_figure(report), config={"displaylogo": False}), lg=6),
        ], className="mt-3"),
        html.H4("Metrics: direction and margins", className="mt-3"),
        metric_settings_table(report),
        html.H4("Guardrails", className="mt-3"),
        guardrail_table(report),
        html.Div([dbc.Button("Open in workspace (Results and Memo)", id=ids.OPEN_IN_WORKSPACE, color="primary"),
                  dcc.Location(id=ids.EXPERIMENT_REDIRECT, refresh="callback-nav")], className="my-3"),
        html.H4("Memo versions"),
        versions,
        html.Iframe(srcDoc=memo_html, sandbox="", className="memo-frame", title="Stored memo"),
        html.P(f"{len(analyses)} analysis(es) · analytics {latest.analytics_version} · input {latest.filename} "
               f"(sha256 {latest.input_sha256[:16]}…)", className="text-muted small mt-2"),
    ])


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
    """A session state for a stored experiment (its input bytes are staged so it can be re-run)."""
    from dashapp.services import staged_path

    database = context.database()
    experiment = database.experiment(experiment_id)
    analysis = database.latest_analysis(experiment_id)
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
    return {"report": analysis.report, "form": form,
            "input": {"filename": analysis.filename, "sha256": analysis.input_sha256},
            "saved": {"experiment_id": experiment.id, "analysis_id": analysis.id},
            "notes": memos[-1].notes if memos else None}


def register_callbacks(app: Dash) -> None:
    @app.callback(Output(ids.SESSION_STORE, "data", allow_duplicate=True), Output(ids.EXPERIMENT_REDIRECT, "href"),
                  Input(ids.OPEN_IN_WORKSPACE, "n_clicks"), State(ids.EXPERIMENT_URL, "data"),
                  prevent_initial_call=True)
    def load(clicks: int | None, experiment_id: int | None) -> tuple[Any, str]:
        # Dash also calls click callbacks when a page inserts the button (n_clicks None).
        if not clicks or not experiment_id:
            raise PreventUpdate
        return open_in_workspace(int(experiment_id)), "/results"
