"""Looks: further analyses of a stored experiment, added and shown on its page (plain functions)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from dash.exceptions import PreventUpdate

from analytics import Charter
from dashapp import ids
from dashapp.app import create_app
from dashapp.errors import LookBlockedError, UploadRejectedError
from dashapp.figures import looks_figure
from dashapp.pages import context, experiment, history
from dashapp.services import AnalysisRequest, analyze_path, report_json, save_report
from dashapp.workspace import add_look, look_request
from storage.database import NewExperiment
from storage.errors import NotFoundError
from tests.conftest import DATA


@pytest.fixture
def app_context(tmp_path: Path) -> Any:
    app = create_app(db=tmp_path / "looks.duckdb", upload_limit_bytes=200_000)
    with app.server.app_context():
        yield app


def _text(component: Any) -> str:
    return json.dumps(component, default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


def _data_url(content: bytes) -> str:
    return "data:text/csv;base64," + base64.b64encode(content).decode()


def _id_of(name: str) -> int:
    rows, _ = history.history_rows(name, None, None, None)
    return int(next(r["id"] for r in rows if r["name"] == name))


def _days(path: Path, count: int) -> bytes:
    """The first ``count`` dates of a daily export: the same experiment seen earlier."""
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    dates = sorted({row.split(",", 1)[0] for row in rows})[:count]
    return "\n".join([header, *(row for row in rows if row.split(",", 1)[0] in dates)]).encode() + b"\n"


def _add(experiment_id: int, content: bytes, filename: str) -> tuple[int, Any]:
    limit = context.upload_limit()
    return add_look(context.database(), experiment_id, content, filename, staging=context.staging_dir(),
                    limit_bytes=limit)


def test_a_look_is_analysed_with_the_stored_request_and_the_charter_plan(app_context: Any) -> None:
    database = context.database()
    early = _days(DATA / "sample_daily.csv", 10)
    staged = Path(context.staging_dir()) / "early.csv"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(early)
    request = AnalysisRequest(charter=Charter(name="Checkout button", primary_metric="conversions"), control="control")
    experiment_id, first = save_report(database, analyze_path(staged, request), request, content=early,
                                       filename="early.csv",
                                       charter=NewExperiment(name="Checkout button", planned_sample=60_000))
    look_id, report = _add(experiment_id, (DATA / "sample_daily.csv").read_bytes(), "today.csv")
    looks = database.analyses(experiment_id)
    assert [a.id for a in looks] == [first, look_id]
    stored = looks[-1]
    assert stored.request["primary"] == "conversions" and stored.request["control"] == "control"
    assert stored.request["planned_sample"] == 60_000 and stored.policy == looks[0].policy
    assert report.experiment.name == "Checkout button"
    # 42,000 users of a planned 60,000, fixed-horizon: an interim look (SPEC §3.1)
    assert "interim_look" in {issue.code for issue in report.health.issues}
    assert stored.report["timeline"] and len(stored.report["timeline"]) > len(looks[0].report["timeline"])


def test_a_cumulative_experiment_keeps_reading_running_totals(app_context: Any) -> None:
    experiment_id = _id_of("sample_daily_cumulative")
    database = context.database()
    first = database.latest_analysis(experiment_id)
    assert first.request.get("cumulative") is True
    _, report = _add(experiment_id, (DATA / "sample_daily_cumulative.csv").read_bytes(), "again.csv")
    # read as daily new counts, the running totals would add up to far more users
    assert report_json(report)["comparisons"][0]["primary"] == first.report["comparisons"][0]["primary"]


def test_look_request_prefers_the_charter_plan() -> None:
    request = look_request({"primary": "revenue", "cumulative": True, "planned_sample": 10}, {"alpha": 0.01},
                           planned_sample=500)
    assert (request.charter.primary_metric, request.cumulative, request.charter.planned_sample,
            request.policy.alpha) == ("revenue", True, 500, 0.01)
    assert look_request({"planned_sample": 10}, {}).charter.planned_sample == 10


def test_a_blocked_look_is_refused_and_nothing_is_stored(app_context: Any) -> None:
    experiment_id = _id_of("sample_daily")
    database = context.database()
    before = len(database.analyses(experiment_id))
    broken = b"date,variant,users,conversions\n2026-11-02,control,1000,100\nnot-a-date,treatment,1000,96\n"
    with pytest.raises(LookBlockedError) as refused:
        _add(experiment_id, broken, "broken.csv")
    assert refused.value.report.health.status == "blocked" and "not stored" in str(refused.value)
    assert len(database.analyses(experiment_id)) == before
    message, body = experiment.add_look_from_upload(_data_url(broken), "broken.csv", experiment_id)
    assert body is experiment.no_update
    assert "Blocked" in _text(message) and "not stored" in _text(message)
    assert len(database.analyses(experiment_id)) == before


def test_too_large_or_unknown_targets_give_messages(app_context: Any) -> None:
    experiment_id = _id_of("sample_daily")
    with pytest.raises(UploadRejectedError, match="upload limit"):
        _add(experiment_id, b"x" * 300_000, "big.csv")
    with pytest.raises(NotFoundError):
        _add(9999, (DATA / "sample_daily.csv").read_bytes(), "today.csv")
    message, body = experiment.add_look_from_upload(_data_url(b"x" * 300_000), "big.csv", experiment_id)
    assert "was not added" in _text(message) and body is experiment.no_update
    message, _ = experiment.add_look_from_upload(_data_url(b"a,b\n"), "x.csv", "not a number")
    assert "was not added" in _text(message)
    with pytest.raises(PreventUpdate):
        experiment.add_look_from_upload(None, None, experiment_id)


def test_the_page_lists_every_look_with_the_effect_chart_and_the_timeline(app_context: Any) -> None:
    experiment_id = _id_of("sample_daily")
    page = _text(experiment.layout(str(experiment_id)))
    assert "1 look" in page and ids.EXPERIMENT_ADD_LOOK in page and "Add a look" in page
    assert f'"{ids.EXPERIMENT_TIMELINE_CHART}"' in page
    more = _days(DATA / "sample_daily.csv", 21)
    message, body = experiment.add_look_from_upload(_data_url(more.replace(b"2026-11-02,control,1000,100",
                                                                           b"2026-11-02,control,1000,101")),
                                                    "day21.csv", experiment_id)
    assert "as look 2" in _text(message)
    redrawn = _text(body)
    assert "2 looks" in redrawn and f'"{ids.EXPERIMENT_LOOKS_CHART}"' in redrawn
    page = _text(experiment.layout(str(experiment_id)))
    assert "2 looks" in page and "day21.csv" in page and "sample_daily.csv" in page
    figure = looks_figure([(f"Look {n} · {a.created_at.date().isoformat()}", a.report)
                           for n, a in enumerate(context.database().analyses(experiment_id), start=1)])
    assert list(figure.data[0].x) == [f"Look {n} · {a.created_at.date().isoformat()}" for n, a in
                                      enumerate(context.database().analyses(experiment_id), start=1)]
    assert len(figure.data[0].error_y.array) == 2


def test_an_experiment_without_a_daily_input_has_no_timeline_card(app_context: Any) -> None:
    page = _text(experiment.layout(str(_id_of("sample_launch"))))
    assert "1 look" in page and f'"{ids.EXPERIMENT_TIMELINE_CHART}"' not in page
