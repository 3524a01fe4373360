"""Callback bodies as plain functions (no browser): inputs in, state and components out."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from dash import no_update
from dash.exceptions import PreventUpdate

from dashapp import ids
from dashapp.app import create_app
from dashapp.errors import UploadRejectedError
from dashapp.pages import experiment, history, memo, new, results
from dashapp.services import sample_files
from dashapp.state import FormValues, PlanInputs, decode_upload, plan_text
from tests.conftest import DATA, run_cli


@pytest.fixture
def app_context(tmp_path: Path) -> Any:
    app = create_app(db=tmp_path / "ui.duckdb", upload_limit_bytes=200_000)
    with app.server.app_context():
        yield app


NEW_ID = len(sample_files()) + 1  # a new database holds every sample; the first saved experiment follows


def _data_url(content: bytes) -> str:
    return "data:text/csv;base64," + base64.b64encode(content).decode()


def _text(component: Any) -> str:
    return json.dumps(component.to_plotly_json() if hasattr(component, "to_plotly_json") else component,
                      default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


def _assert_renderable(component: Any, path: str = "page") -> None:
    """React renders strings, numbers and components as children, never a plain object (a dict
    child breaks the page in the browser, React error #31)."""
    if isinstance(component, list | tuple):
        for index, child in enumerate(component):
            _assert_renderable(child, f"{path}[{index}]")
        return
    assert not isinstance(component, dict), f"{path} is a plain object: {str(component)[:120]}"
    children = getattr(component, "children", None)
    if children is not None:
        _assert_renderable(children, f"{path}.{type(component).__name__}")


def test_upload_analysis_stores_a_json_session(app_context: Any) -> None:
    content = (DATA / "sample_launch.csv").read_bytes()
    state, message = new.analyse_upload(_data_url(content), "mine.csv", FormValues(name="Banner", split="50,50"))
    assert json.loads(json.dumps(state)) == state  # only JSON goes into dcc.Store
    assert state["report"]["decision"]["outcome"] == "launch"
    assert state["report"]["experiment"]["name"] == "Banner"
    assert state["input"]["filename"] == "mine.csv" and state["saved"] is None
    assert "Analysed mine.csv" in _text(message)


def test_sample_and_rerun_with_new_settings(app_context: Any) -> None:
    state, _ = new.analyse_sample("sample_srm_warning.csv", FormValues())
    assert state["report"]["decision"]["rule"] == "srm"
    rerun, _ = new.rerun(state, FormValues(split="10000,10500"))
    assert rerun["report"]["health"]["status"] == "healthy"
    assert rerun["report"]["decision"]["rule"] != "srm"


def test_bad_form_values_and_oversized_uploads_give_messages(app_context: Any) -> None:
    state, message = new.analyse_sample("sample_launch.csv", FormValues(split="fifty"))
    assert state is no_update and "--split" in _text(message)
    big = b"variant,users,conversions\n" + b"control,100,10\n" * 20_000
    state, message = new.analyse_upload(_data_url(big), "big.csv", FormValues())
    assert state is no_update and "upload limit" in _text(message)
    state, message = new.rerun(None, FormValues())
    assert state is no_update and "Upload a file" in _text(message)
    # Nothing to analyse (an emptied upload, no sample chosen, no staged file, nothing loaded): no change.
    for nothing in (lambda: new.analyse_upload(None, None, FormValues()), lambda: new.analyse_sample(None, FormValues()),
                    lambda: new.analyse_staged(None, FormValues()), lambda: new.analyse_staged({"sha256": ""}, FormValues()),
                    lambda: new.apply_metric_edit(None, {"metrics": {}})):
        with pytest.raises(PreventUpdate):
            nothing()


def test_decode_upload_enforces_the_limit_on_the_server() -> None:
    assert decode_upload(_data_url(b"abc"), 10) == b"abc"
    with pytest.raises(UploadRejectedError, match="upload limit"):
        decode_upload(_data_url(b"x" * 100), 10)
    with pytest.raises(UploadRejectedError, match="decoded"):
        decode_upload("data:text/csv;base64,@@@@", 100)


def test_plan_text_matches_the_cli() -> None:
    text, total = plan_text(PlanInputs(baseline=0.12, mde=0.05, relative=True, daily_users=5000))
    cli = json.loads(run_cli("plan", "--baseline", "0.12", "--mde", "0.05", "--relative", "--daily-users", "5000",
                             "--format", "json").stdout)
    assert f"{cli['control_n']:,} users in control" in text and total == cli["total_n"]
    assert f"about {cli['duration_days']} day(s)" in text
    bad, total = plan_text(PlanInputs(baseline=1.5, mde=0.05))
    assert bad.startswith("Cannot plan") and total is None


def test_results_view_guard_and_content(app_context: Any) -> None:
    assert "No experiment loaded for the results yet" in _text(results.results_view(None))
    state, _ = new.analyse_sample("sample_guardrail_worsened.csv", FormValues())
    view = _text(results.results_view(state))
    assert "HOLD" in view and "WORSENED" in view and "Rule 5" in view


def test_save_then_notes_become_memo_versions(app_context: Any) -> None:
    state, _ = new.analyse_sample("sample_negative.csv", FormValues(tags="checkout, q4"))
    saved, message = results.save_to_history(state)
    experiment_id = saved["saved"]["experiment_id"]
    assert experiment_id == NEW_ID and f"experiment {NEW_ID}" in _text(message)
    again, _ = results.save_to_history(saved)
    assert again["saved"] == saved["saved"]  # saving twice does not duplicate
    noted, message = memo.save_notes(saved, "First review.")
    assert "memo version 1" in _text(message) and noted["notes"] == "First review."
    _, message = memo.save_notes(noted, "Second review.")
    assert "memo version 2" in _text(message)
    too_long, message = memo.save_notes(noted, "x" * 5000)
    assert too_long is no_update and "limited" in _text(message)
    rows, count = history.history_rows("q4", None, None, None)
    assert [r["id"] for r in rows] == [experiment_id] and count == "1 experiment(s)"
    workspace = experiment.open_in_workspace(experiment_id)
    assert workspace["saved"] == saved["saved"] and workspace["notes"] == "Second review."


def test_memo_downloads(app_context: Any) -> None:
    state, _ = new.analyse_sample("sample_launch.csv", FormValues(name="홈화면 배너/테스트"))
    markdown = memo.memo_files(state, "note", "md")
    assert markdown["filename"] == "홈화면_배너_테스트-memo.md" and "Decision: LAUNCH" in markdown["content"]
    pdf = memo.memo_files(state, None, "pdf")
    assert base64.b64decode(pdf["content"]).startswith(b"%PDF") and pdf["base64"]


def test_history_filters_and_compare(app_context: Any) -> None:
    rows, _ = history.history_rows(None, "rollback", None, None)
    assert {r["name"] for r in rows} == {"sample_negative", "sample_guardrail_severe"}
    assert history.history_rows(None, "all", "2000-01-01", "2000-01-02")[0] == []
    figure, message = history.compare_rows(rows)
    assert message == "Comparing 2 experiment(s)." and len(figure.data[0].y) == 2
    figure, message = history.compare_rows([])
    assert "Select" in message


def test_an_empty_split_means_equal_shares_for_any_number_of_arms(app_context: Any) -> None:
    state, _ = new.analyse_sample("sample_multi_arm.csv", FormValues(split=None))
    assert state["report"]["health"]["status"] == "healthy"
    assert state["report"]["health"]["srm"]["expected_share"] == pytest.approx(
        {"control": 1 / 3, "treatment_a": 1 / 3, "treatment_b": 1 / 3})


def test_parquet_upload(app_context: Any, tmp_path: Path) -> None:
    import duckdb

    target = tmp_path / "export.parquet"
    with duckdb.connect() as connection:
        connection.execute(f"COPY (SELECT * FROM read_csv('{DATA / 'sample_negative.csv'}')) TO '{target}' "
                           "(FORMAT parquet)")
    state, _ = new.analyse_upload("data:application/octet-stream;base64,"
                                + base64.b64encode(target.read_bytes()).decode(), "export.parquet", FormValues())
    assert state["report"]["decision"]["rule"] == "primary_worse"
    saved, _ = results.save_to_history(state)
    assert saved["saved"]["experiment_id"] == NEW_ID


def test_user_level_upload(app_context: Any) -> None:
    rows = ["user_id,variant,converted,revenue"] + [
        f"{i},{'control' if i % 2 else 'treatment'},{int(i % 7 == 0)},{(i % 13) * 1.5}" for i in range(2_000)]
    state, _ = new.analyse_upload(_data_url(("\n".join(rows) + "\n").encode()), "users.csv", FormValues())
    assert state["report"]["input"]["kind"] == "user_level"
    assert state["report"]["experiment"]["primary_metric"] == "converted"
    assert state["report"]["comparisons"][0]["primary"]["control"]["n"] == 1_000


def test_user_level_upload_with_named_segments_and_cuped(app_context: Any) -> None:
    rows = ["variant,converted,revenue,pre_revenue,country"] + [
        f"{'control' if i % 2 else 'treatment'},{int(i % 7 == 0)},{(i % 13) * 1.5 + (i % 5)},{i % 5},"
        f"{'KR' if i % 3 else 'JP'}" for i in range(3_000)]
    content = ("\n".join(rows) + "\n").encode()
    state, _ = new.analyse_upload(_data_url(content), "users.csv", FormValues(primary="revenue", segments="country"))
    report = state["report"]
    assert {r["value"] for r in report["segments"]} == {"KR", "JP"}
    assert report["comparisons"][0]["primary"]["cuped"]["covariate"] == "pre_revenue"
    assert "Segments" in _text(results.results_view(state)) and "CUPED" in _text(results.results_view(state))
    from dashapp.formatting import cuped_sentence
    from dashapp.memo import build_memo, render_markdown

    sentence = cuped_sentence(report["comparisons"][0]["primary"]["cuped"])  # one wording on Results and in the memo
    assert sentence in _text(results.results_view(state)).replace("\u2212", "−")
    assert sentence in " ".join(build_memo(report).assumptions)
    assert "unadjusted change" in render_markdown(build_memo(report))
    _assert_renderable(results.results_view(state))
    _assert_renderable(memo.memo_view(state))
    saved, _ = results.save_to_history(state)
    from dashapp.pages import context
    from dashapp.services import replay_analysis

    assert replay_analysis(context.database(), saved["saved"]["analysis_id"]).identical


def _users_csv(n: int = 4_000) -> bytes:
    rows = ["user_id,variant,converted,revenue,segment_country"] + [
        f"{i},{'control' if i % 2 else 'treatment'},{int(i % 9 == 0)},{(i % 17) * 1.25},{'KR' if i % 3 else 'JP'}"
        for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


def test_large_upload_streams_to_the_staging_folder_and_is_analysed_from_disk(app_context: Any) -> None:
    import hashlib

    from dashapp.uploads import LARGE_UPLOAD_HEADER, LARGE_UPLOAD_ROUTE
    from dashapp.workspace import staged_path

    content = _users_csv()
    client = app_context.server.test_client()
    answer = client.post(f"{LARGE_UPLOAD_ROUTE}?name=../../users.csv", data=content,
                         headers={LARGE_UPLOAD_HEADER: "1", "Content-Type": "application/octet-stream"})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body == {"sha256": hashlib.sha256(content).hexdigest(), "filename": "users.csv", "size": len(content)}
    from dashapp.pages import context

    assert staged_path(context.staging_dir(), body["sha256"]).read_bytes() == content
    assert not list(context.staging_dir().glob("*.part"))
    seen: list[tuple[float, str]] = []
    state, message = new.analyse_staged({**body, "at": 1}, FormValues(),
                                        lambda done, what: seen.append((done, what)))
    assert state["input"] == {"filename": "users.csv", "sha256": body["sha256"]}
    report = state["report"]
    assert report["input"]["kind"] == "user_level" and report["input"]["sha256"] == body["sha256"]
    assert report["experiment"]["name"] == "users" and {r["value"] for r in report["segments"]} == {"KR", "JP"}
    assert "Analysed users.csv" in _text(message)
    # The same bytes through the upload control give the same report.
    same, _ = new.analyse_upload(_data_url(content), "users.csv", FormValues())
    assert same["report"]["comparisons"] == report["comparisons"]
    # Re-running with other settings reads the staged file again.
    rerun, _ = new.rerun(state, FormValues(primary="revenue"))
    assert rerun["report"]["experiment"]["primary_metric"] == "revenue"
    # Saving copies the staged file into history (read in chunks, its sha256 checked).
    saved, _ = results.save_to_history(rerun)
    assert context.database().input_content(body["sha256"]) == content
    from dashapp.services import replay_analysis

    assert replay_analysis(context.database(), saved["saved"]["analysis_id"]).identical


def test_large_upload_refusals_name_the_problem(app_context: Any, tmp_path: Path) -> None:
    from dashapp.app import create_app
    from dashapp.uploads import LARGE_UPLOAD_HEADER, LARGE_UPLOAD_ROUTE

    client = app_context.server.test_client()
    content = _users_csv(200)
    forged = client.post(LARGE_UPLOAD_ROUTE, data=content)  # another site's form cannot set the header
    assert forged.status_code == 403
    small = create_app(db=tmp_path / "small.duckdb", load_sample_experiments=False, large_upload_limit_bytes=1_000)
    refused = small.server.test_client().post(f"{LARGE_UPLOAD_ROUTE}?name=big.csv", data=content,
                                              headers={LARGE_UPLOAD_HEADER: "1"})
    assert refused.status_code == 413 and "big.csv" in refused.get_json()["error"]
    assert "EXPERIMENTOS_LARGE_UPLOAD_LIMIT_MB" in refused.get_json()["error"]
    cut = client.post(f"{LARGE_UPLOAD_ROUTE}?name=cut.csv", data=content, headers={LARGE_UPLOAD_HEADER: "1"},
                      environ_overrides={"CONTENT_LENGTH": str(len(content) + 1000)})  # the connection drops
    assert cut.status_code == 400 and "interrupted" in cut.get_json()["error"]
    from dashapp.pages import context

    assert not list(context.staging_dir().glob("*.part"))  # nothing half-written is left behind
    # A session naming a file that is not there (or not a hash at all) gets a message, not a traceback.
    for sha in ("0" * 64, "../../etc/passwd"):
        state, message = new.analyse_staged({"sha256": sha, "filename": "gone.csv", "size": 10}, FormValues())
        assert state is no_update and "Upload refused" in _text(message) and "upload it again" in _text(message)


def test_a_large_stored_input_opens_in_the_workspace_and_reruns(app_context: Any, tmp_path: Path) -> None:
    from dashapp.pages import context
    from dashapp.services import AnalysisRequest, analyze_path, prepare_save
    from dashapp.workspace import staged_path
    from storage.database import ExperimentDatabase

    path = tmp_path / "users.csv"
    path.write_bytes(_users_csv())
    request = AnalysisRequest(segments=("segment_country",))
    report = analyze_path(path, request)
    large = ExperimentDatabase(context.database().path, inline_input_limit=1_000)  # kept beside the database
    experiment_id, _ = large.save_analysis(*prepare_save(report, request, source=path, filename="users.csv"))
    assert large.input_path(report.input.sha256) is not None
    state = experiment.open_in_workspace(experiment_id)
    assert staged_path(context.staging_dir(), report.input.sha256).read_bytes() == path.read_bytes()
    assert state["form"]["segments"] == "segment_country"
    rerun, _ = new.rerun(state, FormValues(**state["form"]))
    assert rerun["report"]["comparisons"] == state["report"]["comparisons"]


def test_old_uploads_are_pruned_and_recent_ones_kept(tmp_path: Path) -> None:
    import os

    from dashapp.staging import prune_staging

    staging = tmp_path / "staging"
    staging.mkdir()
    day = 86_400.0
    now = 1_000 * day
    files = {"old.bin": 8, "recent.bin": 2, "stale.part": 1.5, "fresh.part": 0.5}
    for name, age in files.items():
        (staging / name).write_bytes(b"x")
        os.utime(staging / name, (now - age * day, now - age * day))
    assert prune_staging(staging, days=7, now=now) == 2
    assert sorted(p.name for p in staging.iterdir()) == ["fresh.part", "recent.bin"]
    assert prune_staging(tmp_path / "missing", days=7) == 0


# -- each metric's direction and margins (SPEC §4.1, dashboard) -----------------------------------


def _table(rows: list[dict[str, Any]], **changes: dict[str, str]) -> tuple[list[Any], list[Any], list[Any]]:
    """The values the metrics table shows, with ``changes`` (metric → {field: text}) typed in."""
    columns: dict[str, list[Any]] = {"better": [], "margin": [], "severe_margin": []}
    for row in rows:
        for field, values in columns.items():
            values.append(changes.get(row["metric"], {}).get(field, row[field]))
    return columns["better"], columns["margin"], columns["severe_margin"]


def test_the_metrics_table_shows_each_metric_with_the_spec_defaults(app_context: Any) -> None:
    from dashapp.state import metric_rows

    state, _ = new.analyse_sample("sample_launch.csv", FormValues())
    rows = {r["metric"]: r for r in metric_rows(state["report"])}
    assert list(rows) == ["conversions", "revenue", "cancel", "error"]
    # SPEC §4.1: higher is better except for guardrails; rates 0.001 / 0.003, means 1% / 3% of control.
    assert {n: (r["role"], r["better"], r["margin"], r["severe_margin"]) for n, r in rows.items()} == {
        "conversions": ("primary", "higher", "0.001", "0.003"), "revenue": ("secondary", "higher", "1%", "3%"),
        "cancel": ("guardrail", "lower", "0.001", "0.003"), "error": ("guardrail", "lower", "0.001", "0.003")}
    assert all(r["default"] == {k: r[k] for k in ("better", "margin", "severe_margin")} for r in rows.values())
    editor = new.metrics_editor(list(rows.values()))
    _assert_renderable(editor)
    text = _text(editor)
    assert text.count('"default"') >= 12 and ids.METRIC_MARGIN in text  # every value marked as the default
    assert "Load a file" in _text(new.metrics_table_view(None))


def test_editing_a_guardrail_margin_reruns_the_analysis_saves_and_replays(app_context: Any) -> None:
    from dashapp.pages import context
    from dashapp.services import replay_analysis
    from dashapp.state import metric_rows

    state, _ = new.analyse_sample("sample_guardrail_worsened.csv", FormValues())
    assert state["report"]["decision"]["rule"] == "guardrail_worsened"
    rows = metric_rows(state["report"])
    unchanged = _table(rows)
    assert new.metrics_table_view(state, rows, *unchanged) is no_update  # not rebuilt under the cursor
    assert new.collect_metric_edits(state, rows, *unchanged) == (no_update, None)
    typed = _table(rows, cancel={"margin": "0.005", "severe_margin": "0.01"})
    edit, message = new.collect_metric_edits(state, rows, *typed)
    assert edit == {"metrics": {"cancel": {"margin": 0.005, "severe_margin": 0.01}}} and message is None
    rerun, _ = new.apply_metric_edit(state, edit)
    report = rerun["report"]
    cancel = report["comparisons"][0]["guardrails"][0]
    # +0.20 pp [+0.10, +0.30] is significant but within a 0.5 pp margin: minor, and rule 6 launches.
    assert cancel["margin"] == {"value": 0.005, "absolute": 0.005, "relative": False, "default": False}
    assert cancel["status"] == "minor" and report["decision"]["outcome"] == "launch"
    assert report["policy"]["metrics"] == {"cancel": {"margin": 0.005, "severe_margin": 0.01}}
    assert "LAUNCH" in _text(new.metrics_decision(rerun))
    assert new.metrics_table_view(rerun, rows, *typed) is no_update
    assert new.collect_metric_edits(rerun, rows, *typed) == (no_update, None)
    # Re-running with other form values keeps the settings; a new file starts from the defaults.
    again, _ = new.rerun(rerun, FormValues(name="Cancel margin"))
    assert again["report"]["decision"]["outcome"] == "launch" and again["form"]["metrics"] == edit["metrics"]
    fresh, _ = new.analyse_sample("sample_guardrail_worsened.csv", FormValues())
    assert fresh["report"]["decision"]["outcome"] == "hold" and not fresh["form"]["metrics"]
    # Saved with the analysis's policy, replayed identically, shown on the stored page and reopened.
    saved, _ = results.save_to_history(again)
    record = context.database().analysis(saved["saved"]["analysis_id"])
    assert record.policy["metrics"] == edit["metrics"]
    assert replay_analysis(context.database(), record.id).identical
    page = _text(experiment.layout(str(saved["saved"]["experiment_id"])))
    assert ids.STORED_METRICS in page and "0.5" in page and "LAUNCH" in page
    workspace = experiment.open_in_workspace(saved["saved"]["experiment_id"])
    assert workspace["form"]["metrics"] == edit["metrics"]
    assert [r["margin"] for r in metric_rows(workspace["report"])] == ["0.001", "0.005", "0.001"]


def test_primary_direction_lower_turns_a_significant_drop_into_a_launch(app_context: Any) -> None:
    from dashapp.state import metric_rows

    state, _ = new.analyse_sample("sample_negative.csv", FormValues())
    assert state["report"]["decision"]["rule"] == "primary_worse"
    rows = metric_rows(state["report"])
    edit, _ = new.collect_metric_edits(state, rows, *_table(rows, conversions={"better": "lower"}))
    assert edit == {"metrics": {"conversions": {"better": "lower"}}}
    rerun, _ = new.apply_metric_edit(state, edit)
    primary = rerun["report"]["comparisons"][0]["primary"]
    assert primary["better"] == "lower" and primary["better_default"] is False
    assert rerun["report"]["decision"]["rule"] == "primary_better"
    view = _text(results.results_view(rerun))
    assert "lower is better" in view and "LAUNCH" in view
    # Back to the default: the [metrics] table is empty again.
    back, _ = new.collect_metric_edits(rerun, rows, *_table(rows))
    assert back == {"metrics": {}}


def test_unreadable_margins_give_inline_messages_not_tracebacks(app_context: Any) -> None:
    from dashapp.state import edit_metric, metric_rows

    state, _ = new.analyse_sample("sample_launch.csv", FormValues())
    rows = metric_rows(state["report"])
    cancel = rows[2]
    edit = edit_metric(cancel, "lower", "abc", "0.003")
    assert "'abc' is not a margin" in edit.errors["margin"] and edit.margin is None
    assert "'abc' is not a margin" in _text(new.metric_hints(cancel, edit)[1])
    for typed in ("-1%", "1 %%", "0,1", "0.1 pp pp"):
        assert "is not a margin" in edit_metric(cancel, "lower", typed, None).errors["margin"]
    # Percentage points are read for rates only (0.2 pp = 0.002); a mean has no pp.
    assert edit_metric(cancel, "lower", "0.2 pp", "0.5PP").entry == {"margin": 0.002, "severe_margin": 0.005}
    assert "0.002 or 0.2 pp" in edit_metric(cancel, "lower", "x", None).errors["margin"]
    assert "is not a margin" in edit_metric(rows[1], "higher", "2 pp", None).errors["margin"]
    too_small = edit_metric(cancel, "lower", "0.005", "0.003")
    assert "must not be smaller than the margin" in too_small.errors["severe_margin"]
    # Relative and absolute margins are compared in the metric's unit: 50% of 1.2% = 0.6 pp > 0.3 pp.
    assert "severe_margin" in edit_metric(cancel, "lower", "50%", "0.003").errors
    assert not edit_metric(cancel, "lower", "20%", "0.003").errors
    blank = edit_metric(cancel, None, "", " ")  # emptied fields mean the defaults
    assert not blank.errors and not blank.entry and blank.better == "lower"
    edit_data, message = new.collect_metric_edits(state, rows, *_table(rows, cancel={"margin": "abc"}))
    assert edit_data is no_update and "cancel margin" in _text(message) and "Not applied" in _text(message)
    # The service refuses bad values with a message too (a stale browser could send them).
    state, message = new.apply_metric_edit(state, {"metrics": {"cancel": {"margin": "lots"}}})
    assert state is no_update and "metrics.cancel.margin" in _text(message)


def test_a_relative_margin_on_a_mean_guardrail_and_the_chart_in_margin_units(app_context: Any) -> None:
    from dashapp.figures import guardrail_figure
    from dashapp.state import metric_rows

    content = (b"variant,users,conversions,guardrail_cancel,guardrail_load_ms_mean,guardrail_load_ms_std\n"
               b"control,100000,12000,1200,850.0,300.0\ntreatment,100400,12600,1190,862.0,310.0\n")
    state, _ = new.analyse_upload(_data_url(content), "mixed.csv", FormValues())
    report = state["report"]
    assert report["decision"]["rule"] == "guardrail_worsened"
    load = report["comparisons"][0]["guardrails"][1]
    assert load["metric"] == "load_ms" and load["margin"]["value"] == "1%"
    figure = guardrail_figure(report)
    points = {trace.y[0]: trace for trace in figure.data if trace.mode == "markers" and trace.name != "severe margin"}
    # Harm of a mean: +12 ms [z CI] against 1% of 850 ms = 8.5 ms; of a rate: against 0.1 pp.
    se = (300.0**2 / 100_000 + 310.0**2 / 100_400) ** 0.5
    assert points["load_ms"].x[0] == pytest.approx(12.0 / 8.5)
    assert points["load_ms"].error_x.array[0] == pytest.approx(1.959964 * se / 8.5, rel=1e-4)
    cancel_harm = 1190 / 100_400 - 1200 / 100_000
    assert points["cancel"].x[0] == pytest.approx(cancel_harm / 0.001)
    lines = sorted(shape.x0 for shape in figure.layout.shapes)
    assert lines == pytest.approx([0.0, 1.0, 3.0])  # no change, the margin, the severe margin (3× for both)
    assert "margin" in figure.layout.xaxis.title.text and "pp" not in figure.layout.xaxis.title.text
    rows = metric_rows(report)
    edit, _ = new.collect_metric_edits(state, rows, *_table(rows, load_ms={"margin": "2%", "severe_margin": "5%"}))
    assert edit == {"metrics": {"load_ms": {"margin": "2%", "severe_margin": "5%"}}}
    rerun, _ = new.apply_metric_edit(state, edit)
    load = rerun["report"]["comparisons"][0]["guardrails"][1]
    assert load["margin"]["absolute"] == pytest.approx(17.0) and load["status"] == "minor"  # +12 [9.3, 14.7] ≤ 17
    figure = guardrail_figure(rerun["report"])
    severe = next(trace for trace in figure.data if trace.name == "severe margin")  # 3× and 2.5×: one tick each
    assert list(severe.x) == pytest.approx([3.0, 2.5])
    view = results.results_view(rerun)
    _assert_renderable(view)
    assert "2% (" in _text(view) and "higher is better" in _text(view)


def test_old_reports_without_margins_still_render(app_context: Any) -> None:
    from dashapp.components import guardrail_table, metric_settings_table, primary_card
    from dashapp.figures import guardrail_figure

    state, _ = new.analyse_sample("sample_guardrail_worsened.csv", FormValues())
    report = json.loads(json.dumps(state["report"]))
    v2_keys = ("better", "better_default", "margin", "severe_margin", "harm", "harm_ci", "ci_simultaneous",
               "p_value_exact", "relative_ci_method")
    for comparison in report["comparisons"]:
        for metric in [comparison["primary"], *comparison["guardrails"]]:
            for key in v2_keys:
                metric.pop(key, None)
        for guardrail in comparison["guardrails"]:
            guardrail.pop("p_value_adjusted")
    figure = guardrail_figure(report)
    cancel = next(t for t in figure.data if t.y[0] == "cancel")
    assert cancel.x[0] == pytest.approx((1400 / 100_200 - 0.012) / 0.001)  # v1: harm in the policy's 0.1 pp
    for component in (guardrail_table(report), metric_settings_table(report), primary_card(report)):
        _assert_renderable(component)
    assert "lower" in _text(guardrail_table(report))


@pytest.mark.parametrize(("sample", "outcome", "rule"), [
    ("sample_lower_is_better.csv", "launch", "primary_better"),
    ("sample_latency_guardrail.csv", "launch", "primary_better"),
    ("sample_ratio.csv", "launch", "primary_better"),
    ("sample_non_inferiority.csv", "hold", "guardrail_unproven"),
])
def test_samples_with_a_policy_decide_in_the_dashboard_as_on_the_cli(app_context: Any, sample: str, outcome: str,
                                                                     rule: str) -> None:
    state, _ = new.analyse_sample(sample, FormValues())
    decision = state["report"]["decision"]
    assert (decision["outcome"], decision["rule"]) == (outcome, rule)
    # the page shows the session's form again (the sample's primary included); a re-run keeps the policy
    rerun, _ = new.rerun(state, FormValues(primary=state["form"]["primary"]))
    assert (rerun["report"]["decision"]["outcome"], rerun["report"]["decision"]["rule"]) == (outcome, rule)


def test_the_charters_planned_mde_is_a_number_that_sizes_rule_7(app_context: Any) -> None:
    state, _ = new.analyse_sample("sample_inconclusive.csv", FormValues(mde="+5% relative"))
    policy = state["report"]["policy"]
    assert policy["planned_mde"] == pytest.approx(0.05) and policy["planned_mde_relative"] is True
    assert "the planned MDE of 5% (0.60 pp)" in state["report"]["decision"]["reasons"][-1]
    _, message = new.analyse_sample("sample_inconclusive.csv", FormValues(mde="big"))
    assert "planned MDE must be a positive number" in str(message)


# -- issue 11: a fresh form after a save, trust signals, the posterior title, the calculator ----------

def test_after_a_save_new_experiment_starts_empty_and_start_over_clears_everything(app_context: Any) -> None:
    from dashapp.state import draft

    form = FormValues(name="Banner", hypothesis="Bigger wins", owner="kim", tags="home", mde="+5%")
    state, _ = new.analyse_sample("sample_launch.csv", form)
    assert draft(state) is state  # an unsaved analysis is what New Experiment goes on editing
    panel, bar, last, button = new.health_view(state)
    assert "See results" in _text(bar) and "LAUNCH" in _text(bar) and last is None and button == {}
    saved, message = results.save_to_history(state)
    assert "Start a new experiment" in _text(message)
    assert draft(saved) is None  # the form, the health check and the metrics table start empty
    panel, bar, last, button = new.health_view(saved)
    assert "No data yet" in _text(panel) and bar is None and button == {"display": "none"}
    assert "is saved as" in _text(last) and f"experiment {NEW_ID}" in _text(last)
    assert "Load a file" in _text(new.metrics_table_view(draft(saved)))
    # Re-run cannot reach the saved analysis with an empty form
    state_after, message = new.rerun(draft(saved), FormValues())
    assert state_after is no_update and "Upload a file" in _text(message)
    # Opened again from History, an experiment is a draft again (its form refills)
    assert draft(experiment.open_in_workspace(NEW_ID)) is not None
    cleared = new.start_over()
    assert cleared[0] is None and all(value is None for value in cleared[1:10]) and cleared[-1] is None
    assert cleared[10:-1] == tuple(new.PLAN_DEFAULTS[key] for key in new._PLAN_RESET)


def test_upload_outcome_takes_the_colour_of_the_health(app_context: Any) -> None:
    _healthy, message = new.analyse_sample("sample_launch.csv", FormValues())
    assert message.color == "success"
    _srm, message = new.analyse_sample("sample_srm_warning.csv", FormValues())
    assert message.color == "warning" and "with warnings" in _text(message)
    blocked_csv = b"variant,users,conversions\ncontrol,1000,abc\ntreatment,1000,12\n"
    blocked, message = new.analyse_upload(_data_url(blocked_csv), "bad.csv", FormValues())
    assert blocked["report"]["health"]["status"] == "blocked"
    assert message.color == "danger" and "Analysed" not in _text(message) and "blocked" in _text(message)


def test_a_data_hold_does_not_look_like_an_inconclusive_hold(app_context: Any) -> None:
    from dashapp.components import decision_label

    inconclusive, _ = new.analyse_sample("sample_inconclusive.csv", FormValues())
    assert decision_label(inconclusive["report"]) == ("HOLD", "warning")
    blocked_csv = b"variant,users,conversions\ncontrol,1000,abc\ntreatment,1000,12\n"
    blocked, _ = new.analyse_upload(_data_url(blocked_csv), "bad.csv", FormValues())
    assert decision_label(blocked["report"]) == ("HOLD — DATA BLOCKED", "secondary")
    srm, _ = new.analyse_sample("sample_srm_warning.csv", FormValues())
    assert decision_label(srm["report"]) == ("HOLD — SAMPLE RATIO MISMATCH", "secondary")


def test_an_srm_result_is_muted_and_labelled_untrustworthy(app_context: Any) -> None:
    from dashapp.components import primary_card
    from dashapp.figures import effect_figure, posterior_figure

    srm, _ = new.analyse_sample("sample_srm_warning.csv", FormValues())
    card = primary_card(srm["report"])
    text = _text(card)
    assert "not trustworthy: sample ratio mismatch" in text and "fw-semibold" not in text
    assert text.count("text-muted untrusted") >= 5  # effects, p-values and P(better)
    for figure in (effect_figure(srm["report"]), posterior_figure(srm["report"])):
        assert any("not trustworthy" in a.text for a in figure.layout.annotations)
    healthy, _ = new.analyse_sample("sample_launch.csv", FormValues())
    assert "not trustworthy" not in _text(primary_card(healthy["report"]))


def test_the_posterior_title_names_the_winner_first_and_every_arm(app_context: Any) -> None:
    from dashapp.figures import posterior_figure, posterior_title

    state, _ = new.analyse_sample("sample_multi_arm.csv", FormValues())
    assert state["report"]["decision"]["winner"] == "treatment_b"
    _title, subtitle = posterior_title(state["report"])
    assert subtitle is not None and subtitle.startswith("P(better than control): treatment_b > 99.9%")
    assert "treatment_a 92.4%" in subtitle and "100.0%" not in subtitle
    assert not posterior_figure(state["report"], titled=False).layout.title.text
    view = _text(results.results_view(state))
    assert "treatment_b > 99.9%" in view and '"displayModeBar": "hover"' in view
    two, _ = new.analyse_sample("sample_launch.csv", FormValues())
    assert posterior_title(two["report"])[1].startswith("P(treatment better than control) = ")


def test_pages_spell_p_values_through_the_formatting_module(app_context: Any) -> None:
    from analytics.wording import format_p

    state, _ = new.analyse_sample("sample_guardrail_worsened.csv", FormValues())
    view = _text(results.results_view(state))
    primary = state["report"]["comparisons"][0]["primary"]
    assert format_p(primary["p_value"]) in view and f"{primary['p_value']:.4g}" not in view


@pytest.mark.parametrize(("power", "shown", "note"), [
    (0.8, None, None), (80, 0.8, "read as 80%"), (1.5, 0.015, "read as 1.5%"),
])
def test_the_calculator_reads_power_as_a_share_or_a_percentage(power: float, shown: float | None,
                                                               note: str | None) -> None:
    from dashapp.state import read_share

    value, message, error = read_share(power, "power")
    assert error is None and value == pytest.approx(shown or power)
    assert (message is None) if note is None else (note in message)


def test_the_calculator_refuses_what_it_cannot_read_instead_of_keeping_a_stale_answer() -> None:
    args = dict(metric_type="proportion", baseline=0.12, mean=None, std=None, mde=0.05, relative=["relative"],
                alpha=0.05, split=None, daily=5000, use=True)
    good = new.plan_view(**args, power=0.8)
    percent = new.plan_view(**args, power=80)
    assert good[0] == percent[0][0] and good[2] == percent[2]  # 80 means 80%, with a visible note
    assert "read as 80%" in _text(percent[0]) and percent[1] == "light"
    for bad in (None, 0, 100, 250, -1):
        text, colour, planned, confirm, *_ = new.plan_view(**args, power=bad)
        assert _text(text).startswith('"Cannot plan') and colour == "danger" and planned is None
        assert "Nothing recorded" in _text(confirm)
    assert "Recorded" in _text(good[3]) and f"{good[2]:,} users" in _text(good[3])


def test_mean_mode_hides_the_baseline_rate_and_rate_mode_hides_mean_and_std() -> None:
    hidden = {"display": "none"}
    rate = new.plan_view("proportion", 0.12, None, None, 0.05, ["relative"], 0.05, 0.8, None, 5000, False)
    assert rate[4] == {} and rate[5] == hidden and rate[6] == hidden
    mean = new.plan_view("mean", 0.12, 12.4, 30.0, 0.05, ["relative"], 0.05, 0.8, None, 5000, False)
    assert mean[4] == hidden and mean[5] == {} and mean[6] == {}
    assert "users in control" in mean[0] and mean[2] is None  # not recorded: the switch is off
    missing = new.plan_view("mean", 0.12, None, None, 0.05, ["relative"], 0.05, 0.8, None, 5000, False)
    assert "mean and the standard deviation" in missing[0]


def test_recording_the_plan_updates_the_draft_not_a_saved_analysis(app_context: Any) -> None:
    from dashapp.state import plan_into_session

    state, _ = new.analyse_sample("sample_launch.csv", FormValues())
    recorded = plan_into_session(state, 31_000, switched_off=False)
    assert recorded is not None and recorded["form"]["planned_sample"] == 31_000
    assert plan_into_session(recorded, 31_000, switched_off=False) is None  # nothing changes
    assert plan_into_session(recorded, None, switched_off=False) is None  # page load with the switch off
    assert plan_into_session(recorded, None, switched_off=True)["form"]["planned_sample"] is None
    saved, _ = results.save_to_history(recorded)
    assert plan_into_session(saved, 40_000, switched_off=False) is None


@pytest.mark.parametrize("sample", ["sample_launch.csv", "sample_multi_arm.csv", "sample_latency_guardrail.csv"])
def test_the_same_report_reads_the_same_everywhere(app_context: Any, sample: str) -> None:
    """One spelling per number (issue 11): the p-values, effects and guardrail changes of one report
    appear character for character on Results, in the memo's Markdown and HTML, and in History."""
    from analytics.wording import format_p, rule_title
    from dashapp.formatting import format_absolute, format_relative
    from dashapp.memo import build_memo, render_html, render_markdown

    state, _ = new.analyse_sample(sample, FormValues())
    report = state["report"]
    page = _text(results.results_view(state))
    memo = build_memo(report)
    markdown, html_text = render_markdown(memo), render_html(memo)
    expected = [rule_title(report["decision"]["rule"]).split(" — ")[0]]
    for comparison in report["comparisons"]:
        primary = comparison["primary"]
        expected += [format_p(primary["p_value_adjusted"]), format_absolute(primary), format_relative(primary)]
        expected += [format_absolute(g) for g in comparison["guardrails"]]
    for text in expected:
        assert text in page, (text, "results")
        assert text.replace("<", "&lt;") in html_text, (text, "memo html")
        assert text.replace("<", "\\<") in markdown or text in markdown, (text, "memo markdown")
    saved = results.save_to_history(state)
    assert saved is not None
    rows, _ = history.history_rows(report["experiment"]["name"], None, None, None)
    winner = next((c for c in report["comparisons"] if c["treatment"] == report["decision"].get("winner")),
                  report["comparisons"][0])
    assert any(format_relative(winner["primary"]).split(" [")[0] in json.dumps(row, ensure_ascii=False) for row in rows)


def test_a_variant_named_like_a_link_is_text_in_every_chart(app_context: Any) -> None:
    """Plotly renders a subset of HTML in labels: an <a href> variant must not become a link."""
    from dashapp.figures import effect_figure, guardrail_figure, posterior_figure

    link = '<a href="https://x.example">x</a>'
    content = (f"variant,users,conversions,guardrail_cancel\ncontrol,10000,1200,100\n\"{link.replace(chr(34), chr(34) * 2)}\","
               "10000,1300,100\n").encode()
    state, message = new.analyse_upload(_data_url(content), "links.csv", FormValues())
    assert state["report"]["comparisons"], message
    for figure in (effect_figure(state["report"]), posterior_figure(state["report"]), guardrail_figure(state["report"])):
        text = json.dumps(figure.to_plotly_json(), default=str)
        assert "<a href" not in text
    assert "&lt;a href=" in json.dumps(effect_figure(state["report"]).to_plotly_json(), default=str)


def test_a_daily_export_shows_its_timeline_with_both_bands(app_context: Any) -> None:
    from dashapp.figures import timeline_figure

    state, _ = new.analyse_sample("sample_daily_cumulative.csv", FormValues())
    report = state["report"]
    assert len(report["timeline"]) == 21 and report["health"]["status"] == "healthy"  # loaded as running totals
    assert ids.TIMELINE_CHART in _text(results.results_view(state))
    figure = timeline_figure({**report, "timeline": [{**p, "sequential": {"ci": [-1.0, 1.0], "p_value": 1.0}}
                                                     for p in report["timeline"]]})
    names = [trace.name for trace in figure.data]
    assert "treatment: always-valid 95%" in names and "treatment: fixed-horizon 95%" in names
    effect = next(t for t in figure.data if t.name == "treatment: effect")
    assert list(effect.y) == pytest.approx([p["absolute_effect"] * 100 for p in report["timeline"]])
    bars = next(t for t in figure.data if t.name == "control: new users")
    assert set(bars.y) == {1000}
