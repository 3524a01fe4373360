"""Isolated analysis (issue 12, item 4): native faults, runaway work and memory stay in the worker.

The worker targets live in :mod:`tests.dashapp.isolation_targets` (a worker imports its function by
name). Processes are watched with psutil: after every job, no process started by this test remains.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dash
import psutil
import pytest

from analytics import Charter
from dashapp import isolation, services, workspace
from dashapp.app import create_app
from dashapp.cli import main
from dashapp.errors import RenderTimeoutError, WorkerCrashedError, WorkerOutOfMemoryError, WorkerTimeoutError
from dashapp.isolation import Limits, WorkerPool
from dashapp.memo import build_memo, render
from dashapp.pages import new
from dashapp.state import FormValues
from storage import ingest
from storage.files import MAX_AGGREGATED_ROWS, MAX_COLUMNS
from storage.ingest import FileReader
from tests.conftest import DATA, run_cli, served_in_thread
from tests.dashapp import isolation_targets as targets

SETTLE_SECONDS = 2.0


@pytest.fixture(params=["interpreter", "fork server", "fork"])
def pool(request: pytest.FixtureRequest) -> Iterator[WorkerPool]:
    """Each way a pool starts workers, none kept warm, so every process a job leaves belongs to
    it: a fresh interpreter per job, a fork of the (already started) fork server, a fork of this
    process (the CLI's way)."""
    options = {"interpreter": {}, "fork server": {"fork_server": True}, "fork": {"fork": True}}[request.param]
    workers = WorkerPool(warm=0, max_workers=2, **options).start()
    try:
        yield workers
    finally:
        workers.close()


def test_the_fork_server_has_imported_what_an_analysis_needs() -> None:
    """services and analytics import DuckDB and SciPy at their first use; the fork server must
    import them itself, or every dashboard job pays them again (~0.2 s)."""
    with WorkerPool(warm=0, max_workers=1, fork_server=True).start() as server:
        assert server.run(targets.heavy_modules_loaded) == ["dashapp.services", "duckdb", "scipy.special",
                                                            "storage.ingest"]


@pytest.fixture
def cold_default_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's default pool without warm workers (so "no process left" means none at all)."""
    isolation.default_pool().close()
    isolation._default_pool.cache_clear()
    monkeypatch.setenv(isolation.WARM_ENV, "0")
    isolation.default_pool().start()  # its fork server (long-lived by design) exists before the test looks
    try:
        yield
    finally:
        isolation.default_pool().close()
        isolation._default_pool.cache_clear()


def _descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


def _assert_none_left(before: set[int], *also: int) -> None:
    """Within :data:`SETTLE_SECONDS`, no process this test started (nor ``also``) is alive."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        left = (_descendants() - before) | {pid for pid in also if _alive(pid)}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, [psutil.Process(pid).cmdline() for pid in left if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


# -- the worker and its outcomes ---------------------------------------------------------------


def test_a_result_and_progress_come_back(pool: WorkerPool) -> None:
    assert pool.run(targets.add, 2, 3) == 5
    seen: list[float] = []
    assert pool.run(targets.report_progress, 4, on_progress=seen.append) == "done"
    assert seen == [25.0, 50.0, 75.0, 100.0]


def test_the_worker_is_a_new_process_in_its_own_group(pool: WorkerPool) -> None:
    before = _descendants()
    worker = pool.run(targets.own_pid)
    assert worker != psutil.Process().pid
    _assert_none_left(before, worker)


def test_an_exception_of_the_function_is_raised_again_as_itself(pool: WorkerPool) -> None:
    with pytest.raises(ValueError, match="bad argument"):
        pool.run(targets.raise_value_error, "bad argument")


@pytest.mark.parametrize("number", [signal.SIGFPE, signal.SIGSEGV])
def test_a_native_fault_is_a_named_error_and_the_caller_lives_on(pool: WorkerPool, number: int) -> None:
    before = _descendants()
    with pytest.raises(WorkerCrashedError, match=f"signal {int(number)}") as crashed:
        pool.run(targets.raise_signal, int(number))
    assert crashed.value.signal_number == number
    assert pool.run(targets.add, 1, 1) == 2  # and the next job runs
    _assert_none_left(before)


def test_a_loop_is_killed_at_the_wall_limit_with_what_it_started(pool: WorkerPool, tmp_path: Path) -> None:
    before = _descendants()
    started = time.monotonic()
    with pytest.raises(WorkerTimeoutError, match="1 s"):
        pool.run(targets.loop_forever, limits=Limits(wall_seconds=1.0))
    assert time.monotonic() - started < 1.0 + SETTLE_SECONDS
    _assert_none_left(before)

    marker = tmp_path / "grandchild.pid"
    # The wall clock counts from the job's hand-over, a cold worker's imports included: on a loaded
    # machine those alone can take seconds, and the marker must be written before the kill.
    with pytest.raises(WorkerTimeoutError):
        pool.run(targets.sleep_with_grandchild, str(marker), limits=Limits(wall_seconds=4.0))
    _assert_none_left(before, int(marker.read_text()))


def test_cpu_time_is_limited_too(pool: WorkerPool) -> None:
    with pytest.raises(WorkerTimeoutError, match="CPU time") as stopped:
        pool.run(targets.loop_forever, limits=Limits(wall_seconds=30, cpu_seconds=1))
    assert stopped.value.cpu


def test_the_memory_limit_is_a_named_error(pool: WorkerPool) -> None:
    """A forked worker's limit counts beyond the heap it inherited (this test process's can be GBs)."""
    before = _descendants()
    with pytest.raises(WorkerOutOfMemoryError, match="256 MB"):
        pool.run(targets.allocate, 600, limits=Limits(memory_bytes=256 * 2**20))
    assert pool.run(targets.allocate, 32, limits=Limits(memory_bytes=256 * 2**20)) == 32
    _assert_none_left(before)


def test_duckdb_works_under_the_worker_limits_and_gets_its_own(pool: WorkerPool) -> None:
    memory, threads = pool.run(targets.duckdb_settings, limits=Limits(memory_bytes=1024 * 2**20, threads=1))
    assert memory.endswith("MiB") and 500 <= float(memory.split()[0]) <= 650  # 60 % of 1 GiB
    assert threads == "1"
    report = services.analyze_isolated(DATA / "sample_launch.csv", "sample_launch.csv",
                                       services.AnalysisRequest(), pool=pool)
    assert report["decision"]["outcome"] == "launch"
    assert report == services.report_json(services.analyze_path(DATA / "sample_launch.csv",
                                                                 services.AnalysisRequest(charter=Charter(name="sample_launch"))))


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(isolation.MEMORY_ENV, "512")
    monkeypatch.setenv(isolation.TIMEOUT_ENV, "30")
    monkeypatch.setenv(isolation.THREADS_ENV, "1")
    limits = Limits.from_environment()
    assert (limits.memory_bytes, limits.wall_seconds, limits.threads, limits.cpu_limit) == (512 * 2**20, 30, 1, 60)
    assert Limits.from_environment(wall_seconds=2).wall_seconds == 2
    monkeypatch.setenv(isolation.MEMORY_ENV, "lots")
    with pytest.raises(ValueError, match=isolation.MEMORY_ENV):
        Limits.from_environment()


def test_a_warm_worker_answers_at_once() -> None:
    with WorkerPool(warm=1).start() as warm:
        deadline = time.monotonic() + 20  # wait for its imports (about 0.5 s on an idle machine)
        while time.monotonic() < deadline and not _imported(warm):
            time.sleep(0.1)
        started = time.monotonic()
        assert warm.run(targets.add, 1, 2) == 3
        assert time.monotonic() - started < 0.5


def _imported(pool: WorkerPool) -> bool:
    """True once the idle worker waits for its job (asleep on its socket)."""
    pids = pool.idle_pids()
    return bool(pids) and all(psutil.Process(p).status() == psutil.STATUS_SLEEPING for p in pids)


# -- the dashboard: hostile files through the server -------------------------------------------


@pytest.fixture
def served(tmp_path: Path, cold_default_pool: None) -> Iterator[tuple[Any, int]]:
    """The real waitress server on 127.0.0.1 (:func:`tests.conftest.served_in_thread`)."""
    app = create_app(db=tmp_path / "isolation.duckdb", load_sample_experiments=False)
    with served_in_thread(app, "waitress-isolation") as port:
        yield app, port


def _answers(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20) as response:
        return int(response.status)


def _wide(path: Path, columns: int) -> Path:
    header = "variant," + ",".join(f"m{i}" for i in range(columns - 1))
    row = ",".join(str(i % 7) for i in range(columns - 1))
    path.write_text(header + "\n" + "".join(f"{arm},{row}\n" for arm in ("control", "treatment") * 2))
    return path


def _upload(app: Any, content: bytes, filename: str) -> tuple[Any, str]:
    """The New Experiment upload callback's work, as the server runs it for a request."""
    with app.server.app_context():
        state, message = new.analyse_upload("data:text/csv;base64," + base64.b64encode(content).decode(), filename,
                                            FormValues())
    return state, json.dumps(message.to_plotly_json() if hasattr(message, "to_plotly_json") else message,
                             default=lambda c: c.to_plotly_json())


@pytest.mark.parametrize("columns", [6_000, 20_000])
def test_a_very_wide_file_is_refused_and_the_server_answers_the_next_request(
        served: tuple[Any, int], tmp_path: Path, columns: int) -> None:
    app, port = served
    before = _descendants()
    content = _wide(tmp_path / f"wide{columns}.csv", columns).read_bytes()
    state, _ = _upload(app, content, f"wide{columns}.csv")
    issues = state["report"]["health"]["issues"]
    assert [i["code"] for i in issues] == ["too_many_columns"]
    assert f"at most {MAX_COLUMNS}" in issues[0]["message"]
    assert _answers(port) == 200
    _assert_none_left(before)


def test_a_reader_that_crashes_is_a_clear_refusal_and_the_server_stays_up(
        served: tuple[Any, int], monkeypatch: pytest.MonkeyPatch) -> None:
    app, port = served
    before = _descendants()
    monkeypatch.setattr(workspace, "analyze_file_report", targets.crashing_reader)
    state, message = _upload(app, (DATA / "sample_launch.csv").read_bytes(), "mine.csv")
    assert state is dash.no_update
    assert "mine.csv could not be read" in message and "SIGFPE" in message
    assert _answers(port) == 200
    _assert_none_left(before)


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_a_45_mb_file_without_a_variant_column_keeps_the_server_small(
        served: tuple[Any, int], tmp_path: Path) -> None:
    app, port = served
    lines = ["user_id,group,converted,revenue,country\n"]
    lines += [f"u{i:09d},{'ab'[i % 2]},{i % 3 == 0:d},{(i % 97) * 1.25:.2f},DE\n" for i in range(2_000_000)]
    content = "".join(lines).encode()
    del lines
    assert len(content) > 45 * 10**6
    baseline = peak = _rss_bytes()
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, _rss_bytes())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        state, _ = _upload(app, content, "users.csv")
    finally:
        done.set()
        watcher.join()
    growth = peak - baseline
    print(f"server RSS growth for a {len(content) / 1e6:.0f} MB variant-less CSV: {growth / 2**20:.0f} MB")
    assert growth < 300 * 2**20
    issues = state["report"]["health"]["issues"]
    assert [i["code"] for i in issues] == ["too_many_rows"]
    assert f"{MAX_AGGREGATED_ROWS:,}" in issues[0]["message"] and "variant" in issues[0]["message"]
    assert _answers(port) == 200


# -- the CLI -------------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [6_000, 20_000])
def test_the_cli_refuses_a_very_wide_file_in_one_line(tmp_path: Path, columns: int) -> None:
    wide = _wide(tmp_path / f"wide{columns}.csv", columns)
    out, err = io.StringIO(), io.StringIO()
    assert main(["analyze", str(wide)], stdout=out, stderr=err) == 2
    assert len(err.getvalue().splitlines()) == 1 and f"wide{columns}.csv has" in err.getvalue()
    assert out.getvalue() == ""


def test_the_cli_as_a_user_runs_it_refuses_in_exactly_one_line(tmp_path: Path) -> None:
    result = run_cli("analyze", str(_wide(tmp_path / "wide6000.csv", 6_000)))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()] and "6,000 columns" in result.stderr


def test_the_cli_reports_a_crashed_reader_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _descendants()
    monkeypatch.setattr(services, "read_file", targets.crashing_reader)
    err = io.StringIO()
    assert main(["analyze", str(DATA / "sample_launch.csv")], stdout=io.StringIO(), stderr=err) == 2
    line, = err.getvalue().splitlines()
    assert "sample_launch.csv could not be read" in line and "signal 8" in line and "export it again" in line
    _assert_none_left(before)


class _CrashOnNegative(FileReader):
    """A reader whose DuckDB dies of SIGFPE on sample_negative.csv (in the worker that reads it)."""

    def read_path(self, path: Any, **options: Any) -> Any:
        if "sample_negative" in str(path):
            os.kill(os.getpid(), signal.SIGFPE)
        return super().read_path(path, **options)

    def read_bytes(self, content: bytes, filename: str, **options: Any) -> Any:
        if "sample_negative" in filename:
            os.kill(os.getpid(), signal.SIGFPE)
        return super().read_bytes(content, filename, **options)


BATCH = [DATA / "sample_launch.csv", DATA / "sample_negative.csv", DATA / "sample_srm_warning.csv",
         DATA / "sample_multi_arm.csv"]


def test_a_batch_of_small_files_is_one_worker_and_the_same_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small files share a worker; each line of the JSON Lines is the file's report on its own."""
    jobs: list[Any] = []
    submit = WorkerPool.submit

    def counted(self: WorkerPool, function: Any, *args: Any, **kwargs: Any) -> Any:
        jobs.append(function.__name__)
        return submit(self, function, *args, **kwargs)

    monkeypatch.setattr(WorkerPool, "submit", counted)
    out = io.StringIO()
    assert main(["analyze", *map(str, BATCH), "--format", "json"], stdout=out, stderr=io.StringIO()) == 0
    assert jobs == ["read_files"]
    alone = []
    for path in BATCH:
        single = io.StringIO()
        assert main(["analyze", str(path), "--format", "json"], stdout=single, stderr=io.StringIO()) == 0
        alone.append(json.loads(single.getvalue()))
    assert [json.loads(line) for line in out.getvalue().splitlines()] == alone
    assert jobs[1:] == ["read_file"] * len(BATCH)  # one file: a worker of its own


def test_a_batch_whose_worker_crashes_names_the_file_that_crashed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch's worker dies; its files are read again one by one, and the one line names the culprit."""
    before = _descendants()
    monkeypatch.setattr(ingest, "FileReader", _CrashOnNegative)
    out, err = io.StringIO(), io.StringIO()
    assert main(["analyze", *map(str, BATCH), "--format", "json"], stdout=out, stderr=err) == 2
    line, = err.getvalue().splitlines()
    assert "sample_negative.csv could not be read" in line and "signal 8" in line
    assert out.getvalue() == ""
    _assert_none_left(before)


def test_no_paths_is_no_reports_and_no_worker() -> None:
    before = _descendants()
    with WorkerPool(warm=0, fork=True) as pool:
        assert list(services.analyze_isolated_batch([], services.AnalysisRequest(), pool=pool)) == []
    assert _descendants() == before


def test_growing_shares_keep_the_order_and_the_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nine files in shares of 2, 4 and 3 (the first share, then doubled up to the cap): one worker
    a share, read ahead while the CLI analyses, and the JSON Lines in the order given."""
    monkeypatch.setattr(services, "BATCH_FIRST_FILES", 2)
    monkeypatch.setattr(services, "BATCH_FILES", 4)
    jobs: list[int] = []
    submit = WorkerPool.submit

    def counted(self: WorkerPool, function: Any, *args: Any, **kwargs: Any) -> Any:
        jobs.append(len(args[0]) if function.__name__ == "read_files" else 1)
        return submit(self, function, *args, **kwargs)

    monkeypatch.setattr(WorkerPool, "submit", counted)
    files = [str(path) for path in (*BATCH, *BATCH, BATCH[2])]
    out = io.StringIO()
    assert main(["analyze", *files, "--format", "json"], stdout=out, stderr=io.StringIO()) == 0
    assert jobs == [2, 4, 3]
    names = [json.loads(line)["experiment"]["name"] for line in out.getvalue().splitlines()]
    assert names == [Path(f).stem for f in files]


class _SlowOnSlow(FileReader):
    """A reader that takes a minute over any file named slow*."""

    def read_path(self, path: Any, **options: Any) -> Any:
        if Path(str(path)).name.startswith("slow"):
            time.sleep(60)
        return super().read_path(path, **options)


def test_a_one_worker_pool_reads_its_shares_one_after_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """No read-ahead when the pool has one slot: the next share would wait for it forever."""
    monkeypatch.setattr(services, "BATCH_FIRST_FILES", 2)
    monkeypatch.setattr(services, "BATCH_FILES", 2)

    def stuck(*_: object) -> None:
        raise TimeoutError("the batch waited for a worker slot that never came free")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(60)
    try:
        with WorkerPool(warm=0, fork=True, max_workers=1) as pool:
            reports = list(services.analyze_isolated_batch([str(p) for p in BATCH[:3] + BATCH[:2]],
                                                           services.AnalysisRequest(), pool=pool))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert [r["experiment"]["name"] for r in reports] == [p.stem for p in BATCH[:3] + BATCH[:2]]


def test_a_refusal_in_the_first_share_stops_the_next_worker_too(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    """The second share is being read (slowly) when the first share's refused file ends the run:
    one line, exit 2, and its worker is killed, not left reading."""
    monkeypatch.setattr(ingest, "FileReader", _SlowOnSlow)
    wide = str(_wide(tmp_path / "wide.csv", 600))
    slow = tmp_path / "slow.csv"
    slow.write_bytes(BATCH[3].read_bytes())
    files = [str(BATCH[0]), wide, *[str(BATCH[3])] * (services.BATCH_FIRST_FILES - 2), str(slow)]
    before = _descendants()
    err = io.StringIO()
    assert main(["analyze", *files], stdout=io.StringIO(), stderr=err) == 2
    line, = err.getvalue().splitlines()
    assert "600 columns" in line
    _assert_none_left(before)


def test_a_missing_file_in_a_batch_is_the_same_one_line_as_alone(tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.csv")
    alone, batch = io.StringIO(), io.StringIO()
    assert main(["analyze", missing], stdout=io.StringIO(), stderr=alone) == 2
    assert main(["analyze", str(BATCH[0]), missing, str(BATCH[1])], stdout=io.StringIO(), stderr=batch) == 2
    assert batch.getvalue() == alone.getvalue() and len(alone.getvalue().splitlines()) == 1


def test_replay_reads_the_stored_input_in_a_worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A stored upload is as untrusted as it was: a reader that crashes on it is one line, exit 2."""
    db = str(tmp_path / "db.duckdb")
    assert main(["analyze", str(BATCH[1]), "--save", "--db", db], stdout=io.StringIO(), stderr=io.StringIO()) == 0
    out = io.StringIO()
    assert main(["replay", "1", "--db", db], stdout=out, stderr=io.StringIO()) == 0 and "replay identical" in out.getvalue()
    before = _descendants()
    monkeypatch.setattr(ingest, "FileReader", _CrashOnNegative)
    err = io.StringIO()
    assert main(["replay", "1", "--db", db], stdout=io.StringIO(), stderr=err) == 2
    line, = err.getvalue().splitlines()
    assert "sample_negative.csv could not be read" in line and "signal 8" in line
    _assert_none_left(before)


# -- PDF ----------------------------------------------------------------------------------------


def test_a_pdf_past_its_limit_leaves_no_busy_process(monkeypatch: pytest.MonkeyPatch, cold_default_pool: None,
                                                     tmp_path: Path) -> None:
    monkeypatch.setattr(render, "_pdf_job", targets.slow_pdf)
    monkeypatch.setenv(render.PDF_TIMEOUT_ENV, "0.5")
    report = services.report_json(services.analyze_path(DATA / "sample_launch.csv", services.AnalysisRequest()))
    before = _descendants()
    started = time.monotonic()
    with pytest.raises(RenderTimeoutError, match=r"0\.5 s"):
        render.render_pdf(build_memo(report))
    assert time.monotonic() - started < 0.5 + SETTLE_SECONDS
    _assert_none_left(before)

    err = io.StringIO()
    code = main(["analyze", str(DATA / "sample_launch.csv"), "--format", "pdf", "-o", str(tmp_path / "m.pdf")],
                stdout=io.StringIO(), stderr=err)
    assert code == 2
    line, = err.getvalue().splitlines()
    assert "took longer than 0.5 s" in line
    _assert_none_left(before)
