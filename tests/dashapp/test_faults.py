"""Database faults as the dashboard and the CLI show them, reads that do not queue behind a
writer, staging quotas, periodic pruning and the report size cap."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dash import Input, Output, no_update

from dashapp import faults, ids
from dashapp.app import create_app
from dashapp.errors import QuotaExceededError
from dashapp.pages import history, new, results
from dashapp.staging import StagingArea, staging_area
from dashapp.state import FormValues
from storage.database import ExperimentDatabase
from storage.errors import DiskFullError
from tests.conftest import DATA, press, run_cli
from tests.storage.test_faults import _hold_lock_file, fill, small_disk_at

SAMPLES = 14  # the sample experiments a new database is given


def _text(component: Any) -> str:
    return json.dumps(component, default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


def _route(client: Any, path: str) -> tuple[int, float, str]:
    """Ask the pages router for ``path`` as the browser does: (status, seconds, response body)."""
    body = {"output": ".._pages_content.children..._pages_store.data..",
            "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": path},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "changedPropIds": ["_pages_location.pathname"], "state": []}
    started = time.monotonic()
    response = client.post("/_dash-update-component", json=body)
    return response.status_code, time.monotonic() - started, response.get_data(as_text=True)


def _one_line(stderr: str) -> None:
    assert stderr.count("\n") == 1 and stderr.startswith("experimentos: error:") and "Traceback" not in stderr, stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk_at(tmp_path / "disk", 24) as folder:
        yield folder


# -- a full disk ---------------------------------------------------------------------------------


def test_a_full_disk_shows_one_clear_message_and_loses_nothing(small_disk: Path) -> None:
    db = small_disk / "db.duckdb"
    app = create_app(db=db)
    with app.server.test_request_context():
        state, _ = new.analyse_sample("sample_launch.csv", FormValues())
    filler = fill(small_disk)
    try:
        with app.server.test_request_context():
            saved, message = results.save_to_history(state)
        assert saved is no_update
        assert "Not saved" in _text(message) and "is full" in _text(message) and "free space" in _text(message)

        # Any callback that lets a DatabaseError through: the shell's banner, never a 500.
        @app.callback(Output("probe-out", "children"), Input("probe-in", "n_clicks"))
        def probe(_: Any) -> str:
            raise DiskFullError("the disk holding x is full; free space and try again")

        response = app.server.test_client().post("/_dash-update-component", json={
            "output": "probe-out.children", "outputs": {"id": "probe-out", "property": "children"},
            "inputs": [{"id": "probe-in", "property": "n_clicks", "value": 1}], "changedPropIds": ["probe-in.n_clicks"],
            "state": []})
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        banner = response.get_json()["sideUpdate"][ids.FAULT_BANNER]["children"]
        assert "The disk is full" in _text(banner) and "free space" in _text(banner)

        cli = run_cli("analyze", str(DATA / "sample_negative.csv"), "--save", "--db", str(db))
        assert cli.returncode == 2
        _one_line(cli.stderr)
        assert "is full" in cli.stderr
    finally:
        filler.unlink()
    database = ExperimentDatabase(db)
    assert database.count_experiments() == SAMPLES  # nothing committed was lost, nothing half-saved
    with app.server.test_request_context():
        saved, _ = results.save_to_history(state)
    assert saved["saved"]["experiment_id"] == SAMPLES + 1
    assert database.count_experiments() == SAMPLES + 1


# -- a damaged database --------------------------------------------------------------------------


def test_a_truncated_database_gives_a_card_on_every_page_and_one_cli_line(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    app = create_app(db=db)
    client = app.server.test_client()
    assert _route(client, "/experiments/1")[0] == 200
    ExperimentDatabase(db).checkpoint()
    with open(db, "r+b") as handle:
        handle.truncate(db.stat().st_size // 2)
    size = db.stat().st_size
    for path in ("/", "/history", "/experiments/1", "/experiments/5"):
        status, _, body = _route(client, path)
        assert status == 200, (path, body[:300])
    _, _, body = _route(client, "/experiments/1")
    page = json.loads(body)["response"]["_pages_content"]["children"]
    assert page["props"]["id"] == ids.DATABASE_FAULT
    assert "damaged" in _text(page) and "backup" in _text(page) and str(db) in _text(page)
    with app.server.test_request_context():
        rows, count, _, _ = history.history_view(None, None, None, None)
    assert rows == [] and "The experiment database is damaged" in _text(count) and "backup" in _text(count)
    cli = run_cli("history", "--db", str(db))
    assert cli.returncode == 2
    _one_line(cli.stderr)
    assert "backup" in cli.stderr
    assert db.stat().st_size == size  # left untouched


# -- a writer holding the database ---------------------------------------------------------------


def test_reads_answer_within_about_two_seconds_while_another_process_holds_the_database(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    app = create_app(db=db)
    client = app.server.test_client()
    with app.server.test_request_context():
        fresh, _, _, _ = history.history_view(None, None, None, None)  # read once: kept in the read cache
    assert len(fresh) == SAMPLES
    assert _route(client, "/experiments/1")[0] == 200
    holder = _hold_lock_file(db, 10)
    try:
        with app.server.test_request_context():
            started = time.monotonic()
            rows, count, summary, _ = history.history_view(None, None, None, None)
            elapsed = time.monotonic() - started
            since = faults.stale_since()
        assert elapsed < 2.5, elapsed
        assert rows == fresh and summary is not None  # the last answer, marked stale
        assert since is not None and "Showing data from" in _text(faults.busy_banner(since))

        with app.server.test_request_context():
            started = time.monotonic()
            rows, count, _, _ = history.history_view("never read before", None, None, None)
            elapsed = time.monotonic() - started
        assert elapsed < 2.5, elapsed
        assert rows == [] and "The database is busy" in _text(count) and "try again in a moment" in _text(count)

        status, elapsed, body = _route(client, "/experiments/1")  # five reads, one wait
        assert status == 200 and elapsed < 6, elapsed
        banner = json.loads(body)["sideUpdate"][ids.FAULT_BANNER]["children"]
        assert "Showing data from" in _text(banner) and "the database is busy" in _text(banner)
        assert "sample_" in body  # the experiment itself, from the cache
    finally:
        holder.kill()
        holder.wait()
    status, _, body = _route(client, "/experiments/1")
    assert status == 200 and json.loads(body)["sideUpdate"][ids.FAULT_BANNER]["children"] is None


# -- staging: quotas and pruning -----------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_pruning_runs_while_serving_without_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    app = create_app(db=db, load_sample_experiments=False)
    client = app.server.test_client()
    area = staging_area(app.server)
    staging, inputs = area.folder, ExperimentDatabase(db).inputs_dir
    staging.mkdir(parents=True, exist_ok=True)
    inputs.mkdir(parents=True, exist_ok=True)
    old, recent = staging / f"{'a' * 64}.bin", staging / f"{'b' * 64}.bin"
    orphan, active, orphan_input = staging / "incoming-1.part", staging / "incoming-2.part", inputs / "c.1.2.part"
    for path in (old, recent, orphan, active, orphan_input):
        path.write_bytes(b"x")
    area.record("alice", "a" * 64)
    _age(old, 8 * 86_400)
    _age(orphan, 2 * 3600)
    _age(orphan_input, 2 * 3600)
    _age(active, 60)
    client.get("/history")  # not due yet: pruned at start-up a moment ago
    assert old.exists() and orphan.exists()
    area.last_pruned = time.time() - area.prune_every_seconds - 1
    client.get("/history")
    assert not old.exists() and not orphan.exists() and not orphan_input.exists()
    assert recent.exists() and active.exists()
    assert area.staged_by("alice") == {} and not list((staging / ".owners").iterdir())


def test_a_user_over_the_staging_quota_is_refused_with_413(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERIMENTOS_STAGING_QUOTA_MB", "1")
    app = create_app(db=tmp_path / "db.duckdb", load_sample_experiments=False)
    client = app.server.test_client()

    def upload(content: bytes) -> Any:
        return client.post("/upload/large?name=big.csv", data=content, headers={"X-ExperimentOS-Upload": "1"})

    first = upload(os.urandom(600 * 1024))
    assert first.status_code == 200, first.get_json()
    assert upload(os.urandom(10)).status_code == 200
    refused = upload(os.urandom(600 * 1024))
    assert refused.status_code == 413
    message = refused.get_json()["error"]
    assert "quota" in message and "0.6 MB of 1.0 MB" in message and "EXPERIMENTOS_STAGING_QUOTA_MB" in message
    assert len(list(staging_area(app.server).folder.glob("*.bin"))) == 2
    # A normal upload (dcc.Upload, analysed in a callback) is charged to the same quota.
    contents = "data:text/csv;base64," + base64.b64encode(b"variant,users\n" + b"0" * 500_000).decode()
    with app.server.test_request_context():
        state, message = new.analyse_upload(contents, "other.csv", FormValues())
    assert state is no_update and "Upload refused" in _text(message) and "quota" in _text(message)


def test_quotas_are_per_user_and_a_file_is_charged_once(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    megabyte = 2**20
    area = StagingArea(staging, quota_bytes=10 * megabyte)
    with open(staging / f"{'a' * 64}.bin", "wb") as upload:
        upload.truncate(8 * megabyte)  # a sparse 8 MB upload
    area.admit("alice", 8 * megabyte, "a" * 64)
    area.admit("alice", 8 * megabyte, "a" * 64)  # the same file again costs nothing
    assert area.usage("alice") == 8 * megabyte
    with pytest.raises(QuotaExceededError, match=r"\(3\.0 MB\).*you hold 8\.0 MB of 10\.0 MB"):
        area.admit("alice", 3 * megabyte, "b" * 64)
    area.admit("bob", 8 * megabyte, "a" * 64)  # bob's quota is his own
    with area.reserve("bob", megabyte), pytest.raises(QuotaExceededError):
        area.admit("bob", megabyte + megabyte // 2)  # an upload still arriving counts
    area.admit("bob", megabyte + megabyte // 2)


def test_a_report_above_the_size_cap_is_not_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(db=tmp_path / "db.duckdb", load_sample_experiments=False)
    with app.server.test_request_context():
        state, _ = new.analyse_sample("sample_launch.csv", FormValues())
        monkeypatch.setenv("EXPERIMENTOS_REPORT_LIMIT_MB", "0.001")
        saved, message = results.save_to_history(state)
    assert saved is no_update
    assert "Not saved" in _text(message) and "EXPERIMENTOS_REPORT_LIMIT_MB" in _text(message)
    assert ExperimentDatabase(tmp_path / "db.duckdb").count_experiments() == 0
    shutil.rmtree(tmp_path / ".experimentos-uploads", ignore_errors=True)


# -- a PDF that cannot be rendered ---------------------------------------------------------------


def test_a_pdf_over_its_time_limit_shows_a_banner_not_an_error(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo's PDF download with a 10 ms limit: the render worker is killed
    and the shell's banner says what to do instead; the server answers 200 throughout."""
    monkeypatch.setenv("EXPERIMENTOS_PDF_TIMEOUT_SECONDS", "0.01")
    app = create_app(db=tmp_path / "db.duckdb", load_sample_experiments=False)
    with app.server.test_request_context():
        state, _ = new.analyse_sample("sample_launch.csv", FormValues())
    first = press(app.server.test_client(), f"{ids.DOWNLOAD_PDF_FILE}.data",
                  {f"{ids.DOWNLOAD_PDF}.n_clicks": 1, f"{ids.SESSION_STORE}.data": state}, f"{ids.DOWNLOAD_PDF}.n_clicks")
    assert first.status_code == 200, first.get_data(as_text=True)[:300]
    answer = first.get_json()
    banner = answer["sideUpdate"][ids.FAULT_BANNER]["children"]
    assert "The PDF could not be made" in _text(banner) and "HTML memo" in _text(banner)
    assert "data" not in (answer.get("response") or {}).get(ids.DOWNLOAD_PDF_FILE, {})
