"""Rows mapped by column name, typed decisions and health, and the one "latest analysis" query."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

import storage.database as database_module
from analytics import HealthStatus, Outcome
from storage import NotFoundError
from storage.database import (
    DecisionCount,
    ExperimentDatabase,
    HistoryQuery,
    NewAnalysis,
    NewExperiment,
    Unrecognised,
)
from storage.rows import named_rows
from storage.users import UserDirectory


def _analysis(outcome: str, *, health: str = "healthy", relative_effect: float = 0.1, tag: str = "") -> NewAnalysis:
    """A small stored analysis: the columns the database derives from a report, nothing more."""
    content = f"variant,users,conversions\ncontrol,100,10\ntreatment,100,{outcome}{tag}\n".encode()
    report = {
        "input": {"sha256": hashlib.sha256(content).hexdigest()},
        "analytics_version": "test",
        "decision": {"outcome": outcome, "rule": "primary_better", "winner": "treatment"},
        "health": {"status": health},
        "comparisons": [{"treatment": "treatment", "control": "control", "primary": {
            "metric": "conversions", "type": "proportion", "better": "higher", "absolute_effect": 0.01,
            "absolute_ci": [0.0, 0.02], "relative_effect": relative_effect,
            "relative_ci": [relative_effect - 0.05, relative_effect + 0.05], "p_value": 0.01}}],
    }
    return NewAnalysis(report=report, request={"name": "test"}, policy={"alpha": 0.05}, filename="test.csv",
                       content=content)


def _execute(path: Path, sql: str, parameters: list[Any] | None = None) -> None:
    """Change the file behind the repository's back (as another version or a hand edit would)."""
    with duckdb.connect(str(path)) as connection:
        connection.execute(sql, parameters or [])


def _reversed(columns: str) -> str:
    return ", ".join(reversed([column.strip() for column in columns.split(",")]))


CHARTER = NewExperiment(name="banner", primary_metric="signups", hypothesis="Bigger banner → more sign-ups",
                        owner="정민", tags=("home", "banner"), mde="+5% relative", planned_sample=200_000,
                        start_date=dt.date(2026, 11, 1), end_date=dt.date(2026, 11, 14))


def test_records_are_mapped_by_column_name_whatever_the_column_order(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    database = ExperimentDatabase(tmp_path / "db.duckdb")
    experiment_id, analysis_id = database.save_analysis(CHARTER, _analysis("launch"))
    database.save_memo(analysis_id, "# memo", notes="first", author="ana")
    as_declared = (database.experiment(experiment_id), database.analyses(experiment_id),
                   database.analysis(analysis_id), database.latest_analysis(experiment_id), database.memos(analysis_id))

    for name in ("_EXPERIMENT_COLUMNS", "_ANALYSIS_COLUMNS", "_MEMO_COLUMNS"):
        monkeypatch.setattr(database_module, name, _reversed(getattr(database_module, name)))
    reordered = (database.experiment(experiment_id), database.analyses(experiment_id),
                 database.analysis(analysis_id), database.latest_analysis(experiment_id), database.memos(analysis_id))
    assert reordered == as_declared

    experiment, analysis = as_declared[0], as_declared[2]
    assert (experiment.id, experiment.name, experiment.primary_metric, experiment.hypothesis, experiment.owner,
            experiment.tags, experiment.mde, experiment.planned_sample, experiment.start_date, experiment.end_date) == (
        experiment_id, "banner", "signups", "Bigger banner → more sign-ups", "정민", ("home", "banner"),
        "+5% relative", 200_000, dt.date(2026, 11, 1), dt.date(2026, 11, 14))
    assert (analysis.id, analysis.experiment_id, analysis.filename, analysis.request, analysis.policy,
            analysis.analytics_version, analysis.author) == (
        analysis_id, experiment_id, "test.csv", {"name": "test"}, {"alpha": 0.05}, "test", None)
    assert analysis.report["decision"]["outcome"] == "launch"

    # The RETURNING paths (an update, a new memo) map by name too.
    updated = database.update_experiment(experiment_id, NewExperiment(name="renamed", owner="kim", tags=("x",)))
    assert (updated.id, updated.name, updated.owner, updated.tags, updated.primary_metric, updated.hypothesis) == (
        experiment_id, "renamed", "kim", ("x",), "conversions", None)
    memo = database.save_memo(analysis_id, "# second", notes="again", author="bo")
    assert (memo.analysis_id, memo.version, memo.markdown, memo.notes, memo.author) == (
        analysis_id, 2, "# second", "again", "bo")


def test_rows_are_dicts_by_name_and_duplicate_names_are_refused() -> None:
    with duckdb.connect() as connection:
        assert named_rows(connection.execute("SELECT 2 AS b, 1 AS a UNION ALL SELECT 4, 3")) == [
            {"b": 2, "a": 1}, {"b": 4, "a": 3}]
        assert named_rows(connection.execute("SELECT 1 AS a WHERE false")) == []
        with pytest.raises(AssertionError, match="distinct names"):
            named_rows(connection.execute("SELECT 1 AS id, 2 AS id"))


def test_stored_decisions_and_health_are_read_as_members(tmp_path: Path) -> None:
    database = ExperimentDatabase(tmp_path / "db.duckdb")
    experiment_id, analysis_id = database.save_analysis(NewExperiment(name="a"), _analysis("rollback", health="warning"))
    analysis = database.analysis(analysis_id)
    assert analysis.decision is Outcome.ROLLBACK and analysis.health is HealthStatus.WARNING
    row = database.history().rows[0]
    assert row.decision is Outcome.ROLLBACK and row.health is HealthStatus.WARNING
    comparison = database.compare([experiment_id])[0]
    assert comparison.decision is Outcome.ROLLBACK and comparison.health is HealthStatus.WARNING
    assert database.portfolio().timeline[0].decision is Outcome.ROLLBACK


def test_a_decision_filter_takes_a_member_or_its_text_and_nothing_else() -> None:
    assert HistoryQuery(decision="hold").decision is Outcome.HOLD  # type: ignore[arg-type]
    assert HistoryQuery(decision=Outcome.HOLD).decision is Outcome.HOLD
    assert HistoryQuery().decision is None
    for wrong in ("ship", "Launch", ""):
        with pytest.raises(ValueError) as raised:
            HistoryQuery(decision=wrong)  # type: ignore[arg-type]
        assert str(raised.value) == f"decision must be launch, hold or rollback, got {wrong!r}"


def test_an_unknown_stored_decision_is_kept_as_unrecognised_and_counted_as_no_decision(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    database = ExperimentDatabase(path)
    (unknown_id, unknown_analysis), _ = database.save_analyses([(NewExperiment(name="legacy"), _analysis("launch")),
                                                                (NewExperiment(name="held"), _analysis("hold"))])
    _execute(path, "UPDATE analyses SET decision = 'ship', health = 'degraded' WHERE id = ?", [unknown_analysis])

    analysis = database.analysis(unknown_analysis)
    assert analysis.decision == "ship" and analysis.health == "degraded"
    assert type(analysis.decision) is Unrecognised and type(analysis.health) is Unrecognised
    assert not isinstance(analysis.decision, Outcome) and repr(analysis.decision) == "Unrecognised('ship')"
    assert database.latest_analysis(unknown_id) == analysis

    row = next(r for r in database.history().rows if r.name == "legacy")
    assert type(row.decision) is Unrecognised and row.untrustworthy is None
    # It prints and serialises exactly as stored.
    assert f"{row.decision:8}|" == "ship    |" and json.dumps({"decision": row.decision}) == '{"decision": "ship"}'
    for outcome in Outcome:
        assert "legacy" not in [r.name for r in database.history(HistoryQuery(decision=outcome)).rows]

    summary = database.portfolio()
    assert (summary.experiments, summary.launched, summary.held, summary.rolled_back, summary.not_analysed) == (
        2, 0, 1, 0, 0)
    assert summary.median_launch_lift is None and summary.launches_with_lift == 0
    assert sorted(count.decision for count in summary.timeline) == ["hold", "ship"]
    unknown_count = next(c for c in summary.timeline if c.decision == "ship")
    assert type(unknown_count.decision) is Unrecognised and unknown_count.count == 1
    assert isinstance(unknown_count, DecisionCount)

    comparison = database.compare([unknown_id])[0]
    assert type(comparison.decision) is Unrecognised and comparison.decision == "ship"


def test_the_latest_analysis_is_the_last_look_saved_even_with_tied_or_earlier_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    database = ExperimentDatabase(path)
    tied, tied_first = database.save_analysis(NewExperiment(name="tied"), _analysis("launch", tag="t1"))
    tied_looks = [tied_first] + [database.add_analysis(tied, _analysis(outcome, tag=f"t{i}"))
                                 for i, outcome in ((2, "rollback"), (3, "hold"))]
    back, back_first = database.save_analysis(NewExperiment(name="clock set back"), _analysis("hold", tag="b1"))
    back_second = database.add_analysis(back, _analysis("launch", relative_effect=0.2, tag="b2"))
    archived, archived_first = database.save_analysis(NewExperiment(name="archived"), _analysis("rollback", tag="a1"))
    archived_second = database.add_analysis(archived, _analysis("launch", relative_effect=0.4, tag="a2"))
    UserDirectory(database).set_archived(archived, True)
    _execute(path, "INSERT INTO experiments (name, primary_metric) VALUES ('draft', 'conversions')")
    draft = max(r.experiment_id for r in database.history(HistoryQuery(include_archived=True)).rows)

    # Three looks saved within one timestamp; a second look stamped before the first (clock set back).
    _execute(path, "UPDATE analyses SET created_at = TIMESTAMP '2026-01-10 12:00:00' WHERE experiment_id = ?", [tied])
    for analysis_id, stamp in ((back_first, "2026-01-12 09:00:00"), (back_second, "2026-01-11 09:00:00"),
                               (archived_first, "2026-01-05 09:00:00"), (archived_second, "2026-01-06 09:00:00")):
        _execute(path, "UPDATE analyses SET created_at = CAST(? AS TIMESTAMP) WHERE id = ?", [stamp, analysis_id])
    latest = {tied: (tied_looks[-1], Outcome.HOLD), back: (back_second, Outcome.LAUNCH),
              archived: (archived_second, Outcome.LAUNCH)}
    assert tied_looks == sorted(tied_looks) and back_second > back_first and archived_second > archived_first

    for experiment_id, (analysis_id, outcome) in latest.items():
        assert database.latest_analysis(experiment_id).id == analysis_id
        assert database.latest_analysis(experiment_id).decision is outcome
    shown = {r.experiment_id: (r.analysis_id, r.decision) for r in database.history().rows}
    assert shown == {tied: latest[tied], back: latest[back], draft: (None, None)}
    everything = {r.experiment_id: (r.analysis_id, r.decision)
                  for r in database.history(HistoryQuery(include_archived=True)).rows}
    assert everything == {**latest, draft: (None, None)}
    assert [(r.experiment_id, r.analysis_id, r.decision) for r in database.compare([archived, tied, back])] == [
        (archived, *latest[archived]), (tied, *latest[tied]), (back, *latest[back])]
    # Filters apply to the latest look only: "tied" once launched, but is held now.
    assert [r.experiment_id for r in database.history(HistoryQuery(decision=Outcome.LAUNCH)).rows] == [back]

    summary = database.portfolio(HistoryQuery(include_archived=True))
    assert (summary.experiments, summary.launched, summary.held, summary.rolled_back, summary.not_analysed) == (
        4, 2, 1, 0, 1)
    assert summary.median_launch_lift == pytest.approx((0.2 + 0.4) / 2) and summary.launches_with_lift == 2
    assert {(c.day, c.decision, c.count) for c in summary.timeline} == {
        (dt.date(2026, 1, 6), Outcome.LAUNCH, 1), (dt.date(2026, 1, 10), Outcome.HOLD, 1),
        (dt.date(2026, 1, 11), Outcome.LAUNCH, 1)}
    without_archived = database.portfolio()
    assert (without_archived.experiments, without_archived.launched, without_archived.held,
            without_archived.not_analysed) == (3, 1, 1, 1)

    with pytest.raises(NotFoundError, match="has no analysis"):
        database.latest_analysis(draft)
    with pytest.raises(NotFoundError, match=f"experiment\\(s\\) {draft} do not exist or have no analysis"):
        database.compare([tied, draft])
