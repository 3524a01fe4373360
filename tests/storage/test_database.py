"""The experiment database: migrations, round-trips, history queries, replay, bad files."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
from pathlib import Path

import duckdb
import pytest

import analytics
from dashapp.services import AnalysisRequest, analyze_path, replay_analysis, report_json, sample_request, save_report
from storage import DatabaseCorruptError, DatabaseLockedError, NotFoundError, SchemaTooNewError
from storage.database import ExperimentDatabase, HistoryQuery, NewAnalysis, NewExperiment, untrustworthy_reason
from storage.migrations import MIGRATIONS
from tests.conftest import DATA


def _save(database: ExperimentDatabase, sample: str, **experiment: object) -> tuple[int, int]:
    request = sample_request(DATA / sample)
    report = analyze_path(DATA / sample, request)
    charter = NewExperiment(**{"name": report.experiment.name, **experiment}) if experiment else None  # type: ignore[arg-type]
    return save_report(database, report, request, content=(DATA / sample).read_bytes(), filename=sample, charter=charter)


def test_migrations_from_an_empty_file(tmp_path: Path) -> None:
    database = ExperimentDatabase(tmp_path / "new.duckdb")
    assert database.schema_version() == MIGRATIONS[-1].version
    with duckdb.connect(str(tmp_path / "new.duckdb")) as connection:
        recorded = connection.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [v for v, _ in recorded] == [m.version for m in MIGRATIONS]


def test_a_database_at_migration_1_upgrades_itself_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                           "applied_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp())")
        connection.execute(MIGRATIONS[0].sql)
        connection.execute("INSERT INTO schema_migrations (version, name) VALUES (1, 'old')")
        connection.execute("INSERT INTO experiments (name, primary_metric) VALUES ('kept', 'conversions')")
    database = ExperimentDatabase(path)
    assert database.schema_version() == MIGRATIONS[-1].version
    assert database.experiment(1).name == "kept"
    experiment_id, _ = _save(database, "sample_launch.csv")
    assert database.compare([experiment_id])[0].decision == "launch"


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    ExperimentDatabase(path).schema_version()
    with duckdb.connect(str(path)) as connection:
        connection.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')")
    with pytest.raises(SchemaTooNewError, match="upgrade ExperimentOS"):
        ExperimentDatabase(path).schema_version()


def test_round_trip_of_every_entity(tmp_path: Path) -> None:
    database = ExperimentDatabase(tmp_path / "db.duckdb")
    charter = dict(primary_metric="conversions", hypothesis="Bigger banner → more sign-ups", owner="정민",
                   tags=("home", "banner"), mde="+5% relative", planned_sample=200_000,
                   start_date=dt.date(2026, 11, 1), end_date=dt.date(2026, 11, 14))
    experiment_id, analysis_id = _save(database, "sample_launch.csv", **charter)
    experiment = database.experiment(experiment_id)
    for key, value in charter.items():
        assert getattr(experiment, key) == value
    analysis = database.analysis(analysis_id)
    fresh = report_json(analyze_path(DATA / "sample_launch.csv", AnalysisRequest()))
    assert analysis.report == fresh
    assert analysis.decision == "launch" and analysis.health == "healthy"
    assert analysis.policy["alpha"] == 0.05 and analysis.request["name"] == "sample_launch"
    assert database.input_content(analysis.input_sha256) == (DATA / "sample_launch.csv").read_bytes()
    first = database.save_memo(analysis_id, "# v1", notes="first", author="ana")
    second = database.save_memo(analysis_id, "# v2", notes="second")
    assert (first.version, second.version) == (1, 2)
    assert [m.notes for m in database.memos(analysis_id)] == ["first", "second"]
    updated = database.update_experiment(experiment_id, NewExperiment(name="renamed", tags=("x",)))
    assert updated.name == "renamed" and updated.tags == ("x",)
    second_analysis = database.add_analysis(experiment_id, NewAnalysis(
        analysis.report, analysis.request, analysis.policy, "again.csv", b"same"))
    assert database.latest_analysis(experiment_id).id == second_analysis
    with pytest.raises(NotFoundError):
        database.experiment(999)
    with pytest.raises(NotFoundError):
        database.save_memo(999, "x")


def test_history_filters_and_paging(tmp_path: Path) -> None:
    database = ExperimentDatabase(tmp_path / "db.duckdb")
    samples = sorted(p.name for p in DATA.glob("sample_*.csv"))
    for sample in samples:
        _save(database, sample, tags=("checkout",) if "negative" in sample else ("home",),
              hypothesis="Banner colour" if "launch" in sample else None)
    everything = database.history(HistoryQuery(limit=100))
    assert everything.total == len(samples) == len(everything.rows)
    assert [r.name for r in everything.rows] == [s.removesuffix(".csv") for s in reversed(samples)]
    launches = database.history(HistoryQuery(decision="launch"))
    assert {r.name for r in launches.rows} == {"sample_launch", "sample_continuous", "sample_multi_arm",
                                               "sample_lower_is_better", "sample_latency_guardrail", "sample_ratio"}
    assert database.history(HistoryQuery(text="checkout")).rows[0].name == "sample_negative"
    assert database.history(HistoryQuery(text="banner COLOUR")).rows[0].name == "sample_launch"
    assert database.history(HistoryQuery(text="100%_")).total == 0
    page = database.history(HistoryQuery(limit=3, offset=3))
    assert len(page.rows) == 3 and page.total == len(samples)
    assert database.history(HistoryQuery(limit=3, offset=100)).total == len(samples)
    today = dt.date.today()
    assert database.history(HistoryQuery(since=today, until=today)).total == len(samples)
    assert database.history(HistoryQuery(until=today - dt.timedelta(days=1))).total == 0
    with pytest.raises(ValueError, match="decision"):
        HistoryQuery(decision="ship")


def test_comparison_returns_primary_effects_in_order(tmp_path: Path) -> None:
    database = ExperimentDatabase(tmp_path / "db.duckdb")
    first, _ = _save(database, "sample_launch.csv")
    second, _ = _save(database, "sample_multi_arm.csv")
    rows = database.compare([second, first])
    assert [r.experiment_id for r in rows] == [second, first]
    multi = report_json(analyze_path(DATA / "sample_multi_arm.csv", AnalysisRequest()))
    winner = next(c for c in multi["comparisons"] if c["treatment"] == "treatment_b")["primary"]
    assert rows[0].treatment == "treatment_b"
    assert rows[0].relative_effect == pytest.approx(winner["relative_effect"])
    assert list(rows[0].relative_ci) == pytest.approx(winner["relative_ci"])
    with pytest.raises(NotFoundError):
        database.compare([first, 12345])


def test_replay_is_identical_and_a_tampered_report_is_reported(tmp_path: Path) -> None:
    database = ExperimentDatabase(tmp_path / "db.duckdb")
    for sample in sorted(p.name for p in DATA.glob("sample_*.csv")):
        _, analysis_id = _save(database, sample)
        result = replay_analysis(database, analysis_id)
        assert result.identical, (sample, result.differences)
    with duckdb.connect(str(tmp_path / "db.duckdb")) as connection:
        stored = json.loads(connection.execute("SELECT report_json FROM analyses WHERE id = 1").fetchone()[0])
        stored["comparisons"][0]["primary"]["p_value"] = 0.5
        connection.execute("UPDATE analyses SET report_json = ? WHERE id = 1", [json.dumps(stored)])
    result = replay_analysis(ExperimentDatabase(tmp_path / "db.duckdb"), 1)
    assert not result.identical and result.tampered and not result.version_change
    assert any("p_value" in d for d in result.differences)


def test_replaying_an_analysis_stored_under_rules_v1_reports_a_version_change(tmp_path: Path) -> None:
    """A v1 report (schema 1, no rules_version, the v1 status of a guardrail) of the same input is a
    version change — listed, not called tampering; a different input sha256 still is tampering."""
    database = ExperimentDatabase(tmp_path / "db.duckdb")
    _, analysis_id = _save(database, "sample_inconclusive.csv")
    with duckdb.connect(str(tmp_path / "db.duckdb")) as connection:
        stored = json.loads(connection.execute("SELECT report_json FROM analyses WHERE id = ?",
                                               [analysis_id]).fetchone()[0])
        stored["schema_version"], stored["analytics_version"] = 1, "1.0.0"
        del stored["rules_version"]
        stored["comparisons"][0]["guardrails"][0]["status"] = "ok"
        connection.execute("UPDATE analyses SET report_json = ? WHERE id = ?", [json.dumps(stored), analysis_id])
    result = replay_analysis(ExperimentDatabase(tmp_path / "db.duckdb"), analysis_id)
    assert not result.identical and not result.tampered
    assert result.version_change == ("schema_version 1 → 2", "rules_version 1 → 2",
                                     f"analytics_version 1.0.0 → {analytics.__version__}")
    assert any(d == ".comparisons[0].guardrails[0].status: stored 'ok', replayed 'inconclusive'"
               for d in result.differences)
    with duckdb.connect(str(tmp_path / "db.duckdb")) as connection:
        stored["input"]["sha256"] = "f" * 64
        connection.execute("UPDATE analyses SET report_json = ? WHERE id = ?", [json.dumps(stored), analysis_id])
    assert replay_analysis(ExperimentDatabase(tmp_path / "db.duckdb"), analysis_id).tampered


def test_an_analysis_stored_before_the_posterior_field_replays_as_a_version_change(tmp_path: Path) -> None:
    """analytics 2.1.0 added ``bayesian.posterior`` to the report: a 2.0.0 report without it is a
    version change (exit 0 in the CLI), not a mismatch, and its numbers still agree."""
    database = ExperimentDatabase(tmp_path / "db.duckdb")
    _, analysis_id = _save(database, "sample_launch.csv")
    with duckdb.connect(str(tmp_path / "db.duckdb")) as connection:
        stored = json.loads(connection.execute("SELECT report_json FROM analyses WHERE id = ?",
                                               [analysis_id]).fetchone()[0])
        stored["analytics_version"] = "2.0.0"
        del stored["comparisons"][0]["primary"]["bayesian"]["posterior"]
        connection.execute("UPDATE analyses SET report_json = ? WHERE id = ?", [json.dumps(stored), analysis_id])
    result = replay_analysis(ExperimentDatabase(tmp_path / "db.duckdb"), analysis_id)
    assert not result.identical and not result.tampered
    assert result.version_change == (f"analytics_version 2.0.0 → {analytics.__version__}",)
    assert result.differences == (f".analytics_version: stored '2.0.0', replayed '{analytics.__version__}'",
                                  ".comparisons[0].primary.bayesian.posterior: only in replayed report")


def test_a_non_duckdb_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    content = b"my precious notes, not a database\n" * 100
    path.write_bytes(content)
    with pytest.raises(DatabaseCorruptError, match="left untouched"):
        ExperimentDatabase(path).history()
    assert path.read_bytes() == content


def test_a_read_only_folder_gives_one_clear_error(tmp_path: Path) -> None:
    """Root can write anywhere, so the check runs the CLI as user nobody (setpriv) when we are root."""
    import shutil
    import subprocess
    import tempfile

    from tests.conftest import CLI, ROOT

    folder = Path(tempfile.mkdtemp(prefix="experimentos-ro-", dir="/tmp"))
    try:
        (folder / "ro").mkdir()
        folder.chmod(0o755)
        (folder / "ro").chmod(0o555)
        command = [*CLI, "history", "--db", str(folder / "ro" / "db.duckdb")]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("setpriv (util-linux) is needed to drop root privileges")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=folder,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        if "ModuleNotFoundError" in result.stderr or ("Permission denied" in result.stderr and "python" in result.stderr):
            pytest.skip("user nobody cannot read the checkout: " + result.stderr.splitlines()[-1])
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "not writable" in result.stderr
        assert not (folder / "ro" / "db.duckdb").exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_lock_held_too_long_gives_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    path = tmp_path / "db.duckdb"
    ExperimentDatabase(path).schema_version()
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}); "
                               "print('ready', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        started = time.monotonic()
        with pytest.raises(DatabaseLockedError, match="locked by another process"):
            ExperimentDatabase(path, lock_timeout=1.0).history()
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()
    assert ExperimentDatabase(path).history().total == 0


def test_large_inputs_are_kept_as_files_next_to_the_database_and_replay(tmp_path: Path) -> None:
    import hashlib

    from dashapp.services import prepare_save
    from storage.errors import DatabaseError

    database = ExperimentDatabase(tmp_path / "h.duckdb", inline_input_limit=1_000)
    users = tmp_path / "users.csv"
    users.write_text("user_id,variant,converted\n" + "".join(
        f"{i},{'control' if i % 2 else 'treatment'},{int(i % 5 == 0)}\n" for i in range(3_000)))
    request = AnalysisRequest()
    report = analyze_path(users, request)
    experiment_id, analysis_id = database.save_analysis(*prepare_save(report, request, source=users,
                                                                      filename="users.csv"))
    sha = hashlib.sha256(users.read_bytes()).hexdigest()
    stored = database.input_path(sha)
    assert stored == tmp_path / "h.duckdb.inputs" / f"{sha}.bin" and stored.read_bytes() == users.read_bytes()
    assert database.input_content(sha) == users.read_bytes()
    with duckdb.connect(str(database.path)) as connection:
        assert connection.execute("SELECT content IS NULL, size FROM inputs").fetchone() == (True, users.stat().st_size)
    assert replay_analysis(database, analysis_id).identical
    assert not list(database.inputs_dir.glob("*.part"))
    # A small input stays inside the database, so most history is one file.
    small_experiment, small_analysis = _save(database, "sample_launch.csv")
    small_sha = database.analysis(small_analysis).input_sha256
    assert database.input_path(small_sha) is None
    assert database.input_content(small_sha) == (DATA / "sample_launch.csv").read_bytes()
    # A file edited after it was analysed is refused, and nothing half-written is left.
    edited = tmp_path / "edited.csv"
    edited.write_text(users.read_text() + "9999,control,1\n")
    stale = analyze_path(users, request)
    stale_report = report_json(stale)
    stale_report["input"]["sha256"] = "f" * 64
    with pytest.raises(DatabaseError, match="changed since it was analysed"):
        database.save_analysis(NewExperiment(name="x", primary_metric="converted"),
                               NewAnalysis(stale_report, {}, {}, "edited.csv", source=edited))
    assert not list(database.inputs_dir.glob("*.part")) and database.history(HistoryQuery()).total == 2
    # The folder moved away: a clear message, not a traceback.
    stored.unlink()
    with pytest.raises(NotFoundError, match=r"keep the \.inputs folder next to the database"):
        replay_analysis(database, analysis_id)
    assert experiment_id != small_experiment


def test_replay_tolerates_only_summation_order_in_decimals() -> None:
    from dashapp.services import report_differences

    stored = {"n": 10_000_000, "mean": 8.435229173664784, "decision": "launch", "ci": [0.1, 0.2]}
    assert report_differences(stored, {**stored, "mean": 8.43522917366478}) == []  # last bits only
    assert report_differences(stored, {**stored, "mean": 8.4352292}) == [".mean: stored 8.435229173664784, replayed 8.4352292"]
    assert report_differences(stored, {**stored, "n": 10_000_001}) and report_differences(stored, {**stored, "decision": "hold"})
    assert report_differences(stored, {**stored, "ci": [0.1, 0.2000001]})


def test_portfolio_counts_decisions_and_the_median_lift_of_launches(tmp_path: Path) -> None:
    database = ExperimentDatabase(tmp_path / "db.duckdb")
    samples = sorted(p.name for p in DATA.glob("sample_*.csv"))
    reports = {}
    for sample in samples:
        _save(database, sample, tags=("checkout",) if "negative" in sample or "launch" in sample else ("home",))
        reports[sample] = report_json(analyze_path(DATA / sample, sample_request(DATA / sample)))
    outcomes = [r["decision"]["outcome"] for r in reports.values()]
    summary = database.portfolio()
    assert summary.experiments == len(samples) and summary.not_analysed == 0
    assert (summary.launched, summary.held, summary.rolled_back) == (
        outcomes.count("launch"), outcomes.count("hold"), outcomes.count("rollback")) == (6, 6, 2)

    # The median lift of launches, each signed so that better is positive (checkout time: lower is better).
    def improvement(report: dict[str, object]) -> float:
        decision = report["decision"]  # type: ignore[index]
        chosen = next(c for c in report["comparisons"] if c["treatment"] == decision["winner"])  # type: ignore[index]
        primary = chosen["primary"]
        return float(-primary["relative_effect"] if primary["better"] == "lower" else primary["relative_effect"])

    lifts = [improvement(r) for r in reports.values() if r["decision"]["outcome"] == "launch"]
    assert summary.launches_with_lift == 6 and all(lift > 0 for lift in lifts)
    assert summary.median_launch_lift == pytest.approx(statistics.median(lifts))
    assert [(c.day, c.decision, c.count) for c in summary.timeline] == [
        (dt.date.today(), "hold", 6), (dt.date.today(), "launch", 6), (dt.date.today(), "rollback", 2)]
    # The summary covers the filtered set, ignoring paging.
    checkout = database.portfolio(HistoryQuery(text="checkout", limit=1))
    assert (checkout.experiments, checkout.launched, checkout.rolled_back) == (2, 1, 1)
    assert checkout.median_launch_lift == pytest.approx(improvement(reports["sample_launch.csv"]))
    empty = database.portfolio(HistoryQuery(until=dt.date.today() - dt.timedelta(days=1)))
    assert (empty.experiments, empty.launched, empty.median_launch_lift, empty.timeline) == (0, 0, None, ())


def test_an_experiment_without_analysis_counts_as_not_analysed(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    database = ExperimentDatabase(path)
    _save(database, "sample_launch.csv")
    database.schema_version()
    with duckdb.connect(str(path)) as connection:
        connection.execute("INSERT INTO experiments (name, primary_metric) VALUES ('draft', 'conversions')")
    summary = database.portfolio()
    assert (summary.experiments, summary.launched, summary.not_analysed) == (2, 1, 1)
    draft = database.history(HistoryQuery(text="draft")).rows[0]
    assert draft.analysis_id is None and draft.untrustworthy is None


def test_history_and_compare_mark_an_srm_result_as_not_trustworthy(tmp_path: Path) -> None:
    database = ExperimentDatabase(tmp_path / "db.duckdb")
    srm, _ = _save(database, "sample_srm_warning.csv")
    launch, _ = _save(database, "sample_launch.csv")
    ratio, _ = _save(database, "sample_continuous.csv")
    rows = {r.experiment_id: r for r in database.history().rows}
    assert (rows[srm].rule, rows[srm].untrustworthy) == ("srm", "SRM")
    assert rows[srm].decision == "hold" and rows[srm].relative_effect is not None
    assert (rows[launch].rule, rows[launch].untrustworthy) == ("primary_better", None)
    assert rows[launch].primary_treatment == "treatment"
    compared = database.compare([srm, launch, ratio])
    assert [c.untrustworthy for c in compared] == ["SRM", None, None]
    assert [(c.primary_metric, c.metric_type, c.treatment, c.control) for c in compared] == [
        ("conversions", "proportion", "treatment", "control"), ("conversions", "proportion", "treatment", "control"),
        ("revenue", "mean", "treatment", "control")]
    assert untrustworthy_reason("data_blocked", "blocked") == "data blocked"
    assert untrustworthy_reason(None, "blocked") == "data blocked"
    assert untrustworthy_reason("inconclusive", "warning") is None
