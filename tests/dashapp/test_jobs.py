"""The thread-based background callback manager and the DuckDB progress it reports."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import flask
import pytest

from dashapp.jobs import ThreadJobManager
from storage import ingest
from storage.ingest import FileReader


def _wait(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_job_runs_on_a_thread_in_the_app_context_and_reports_progress() -> None:
    server = flask.Flask("jobs-test")
    server.config["SETTING"] = "from the app"
    manager = ThreadJobManager()
    manager.attach(server)
    release = threading.Event()

    def callback(set_progress: Any, value: int) -> dict[str, Any]:
        set_progress((42, "working"))
        release.wait(5)
        return {"value": value * 2, "setting": flask.current_app.config["SETTING"],
                "thread": threading.current_thread().name}

    job_fn = manager.make_job_fn(callback, progress=True)
    job = manager.call_job_fn("key-1", job_fn, [21], {"args": {}})
    _wait(lambda: manager.get_progress("key-1") == (42, "working"))
    assert manager.job_running(job) and manager.get_result("key-1", job) is manager.UNDEFINED
    release.set()
    _wait(lambda: manager.result_ready("key-1"))
    # Finished but not yet collected: still "running", so a poll cannot miss the result.
    assert manager.job_running(job)
    result = manager.get_result("key-1", job)
    assert result["value"] == 42 and result["setting"] == "from the app" and result["thread"].startswith("dash-job-")
    assert not manager.job_running(job) and manager.get_result("key-1", job) is manager.UNDEFINED


def test_an_error_in_a_job_is_stored_with_its_traceback_and_cancelled_jobs_stop_counting() -> None:
    manager = ThreadJobManager()

    def broken(value: int) -> None:
        raise ValueError(f"bad value {value}")

    job = manager.call_job_fn("key-2", manager.make_job_fn(broken, progress=False), [7], {"args": {}})
    _wait(lambda: manager.result_ready("key-2"))
    error = manager.get_result("key-2", job)["background_callback_error"]
    assert error["msg"] == "bad value 7" and "ValueError" in error["tb"]
    slow = manager.call_job_fn("key-3", manager.make_job_fn(lambda: time.sleep(0.3), progress=False), [], {"args": {}})
    assert manager.job_running(slow)
    manager.terminate_job(slow)
    assert not manager.job_running(slow)
    assert manager.get_or_create_signing_secret(lambda: b"first") == manager.get_or_create_signing_secret(lambda: b"x")


def test_results_nobody_collects_expire() -> None:
    manager = ThreadJobManager(ttl=0.05)
    job = manager.call_job_fn("old", manager.make_job_fn(lambda: 1, progress=False), [], {"args": {}})
    _wait(lambda: manager.result_ready("old"))
    manager.terminate_job(job)
    time.sleep(0.1)
    manager.call_job_fn("new", manager.make_job_fn(lambda: 2, progress=False), [], {"args": {}})
    _wait(lambda: manager.result_ready("new"))
    assert not manager.result_ready("old")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_reading_a_large_file_reports_duckdb_progress(tmp_path: Path, monkeypatch: Any, kind: str) -> None:
    monkeypatch.setattr(ingest, "PROGRESS_EVERY_SECONDS", 0.005)
    path = tmp_path / f"users.{kind}"
    options = "FORMAT csv, HEADER" if kind == "csv" else "FORMAT parquet, ROW_GROUP_SIZE 20000"
    with duckdb.connect() as connection:
        connection.execute(
            "COPY (SELECT CASE WHEN i % 2 = 0 THEN 'control' ELSE 'treatment' END AS variant, "
            "(hash(i) % 10 = 0)::INTEGER AS converted, (hash(i * 7) % 1000) / 10.0 AS revenue, "
            "['KR', 'JP'][1 + (i % 2)::INTEGER] AS segment_country "
            f"FROM range(3000000) t(i)) TO '{path}' ({options})")
    seen: list[float] = []
    with FileReader(on_progress=seen.append) as reader:
        watched = reader.read_path(path)
    with FileReader() as reader:
        plain = reader.read_path(path)
    # Watching changes nothing in what is read (up to DuckDB's parallel summation order).
    assert watched.user_level is not None and plain.user_level is not None
    for a, b in zip(watched.user_level.variants, plain.user_level.variants, strict=True):
        assert (a.label, a.n) == (b.label, b.n)
        for column in ("converted", "revenue"):
            assert a.columns[column].mean == pytest.approx(b.columns[column].mean, rel=1e-12)
            assert a.columns[column].variance == pytest.approx(b.columns[column].variance, rel=1e-12)
    assert seen, "no progress was reported"
    assert seen == sorted(seen) and all(0 <= done <= 100 for done in seen)


def test_finished_jobs_nobody_collects_are_forgotten() -> None:
    manager = ThreadJobManager(ttl=0.05)
    first = manager.call_job_fn("a", manager.make_job_fn(lambda: 1, progress=False), [], {"args": {}})
    _wait(lambda: manager.result_ready("a"))
    time.sleep(0.1)
    manager.call_job_fn("b", manager.make_job_fn(lambda: 2, progress=False), [], {"args": {}})
    _wait(lambda: manager.result_ready("b"))  # storing it drops the expired result of "a"
    manager.call_job_fn("c", manager.make_job_fn(lambda: 3, progress=False), [], {"args": {}})
    assert not manager.job_running(first) and first not in manager._jobs
