"""Users, roles, the audit log and archiving in the experiment database (storage/users.py)."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest
from argon2 import PasswordHasher

from storage.database import ExperimentDatabase, HistoryQuery, NewAnalysis, NewExperiment
from storage.errors import NotFoundError
from storage.migrations import latest_version
from storage.users import (
    AUDIT_EVENTS,
    ROLES,
    AuditQuery,
    LastAdminError,
    UserDirectory,
    UserExistsError,
    role_allows,
)


@pytest.fixture
def database(tmp_path: Path) -> ExperimentDatabase:
    return ExperimentDatabase(tmp_path / "users.duckdb")


@pytest.fixture
def directory(database: ExperimentDatabase) -> UserDirectory:
    return UserDirectory(database)


def _report(sha: str = "a" * 64) -> dict:  # type: ignore[type-arg]
    return {"input": {"sha256": sha}, "decision": {"outcome": "hold", "winner": None}, "health": {"status": "ok"},
            "comparisons": [], "analytics_version": "test"}


def _analysis(author: str | None, sha: str = "a" * 64) -> NewAnalysis:
    return NewAnalysis(report=_report(sha), request={"name": "x"}, policy={}, filename="x.csv", content=b"x,y\n",
                       author=author)


def test_migration_creates_the_tables_and_is_recorded(database: ExperimentDatabase) -> None:
    assert database.schema_version() == latest_version() >= 4
    with duckdb.connect(str(database.path)) as connection:
        names = {r[0] for r in connection.execute("SELECT name FROM schema_migrations").fetchall()}
        columns = {r[0] for r in connection.execute("DESCRIBE experiments").fetchall()}
        analysis_columns = {r[0] for r in connection.execute("DESCRIBE analyses").fetchall()}
    assert "users, the audit log, archived experiments and analysis authors" in names
    assert "archived_at" in columns and "author" in analysis_columns


def test_passwords_are_stored_as_argon2id_hashes_never_in_clear(directory: UserDirectory,
                                                                database: ExperimentDatabase) -> None:
    directory.add("alice", "admin", "correct horse battery")
    with duckdb.connect(str(database.path)) as connection:
        stored = connection.execute("SELECT password_hash FROM users WHERE name = 'alice'").fetchone()[0]
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert PasswordHasher().verify(stored, "correct horse battery")  # an independent verifier agrees


def test_authenticate_accepts_the_password_and_refuses_anything_else(directory: UserDirectory) -> None:
    directory.add("alice", "analyst", "correct horse battery")
    user = directory.authenticate("alice", "correct horse battery")
    assert user is not None and (user.name, user.role) == ("alice", "analyst")
    assert directory.authenticate("alice", "correct horse batterY") is None
    assert directory.authenticate("ALICE", "correct horse battery") is None  # names are case-sensitive
    assert directory.authenticate("nobody", "correct horse battery") is None
    assert directory.authenticate("alice", "x" * 5000) is None  # too long to be checked, refused


def test_an_unknown_name_costs_as_much_as_a_wrong_password(directory: UserDirectory) -> None:
    """The dummy hash keeps the timing from telling which names exist (both do one argon2 verify)."""
    directory.add("alice", "viewer", "correct horse battery")
    directory.authenticate("nobody", "warm-up")  # builds the dummy hash once

    def elapsed(name: str) -> float:
        started = time.perf_counter()
        for _ in range(3):
            directory.authenticate(name, "wrong password!")
        return time.perf_counter() - started

    known, unknown = elapsed("alice"), elapsed("nobody")
    assert unknown > 0.4 * known  # same order: an unknown name is not a cheap early exit


@pytest.mark.parametrize(("name", "role", "password", "message"), [
    ("bad name", "viewer", "long enough", "user name"),
    ("", "viewer", "long enough", "user name"),
    ("x" * 65, "viewer", "long enough", "user name"),
    ("bob", "owner", "long enough", "role must be one of viewer, analyst, admin"),
    ("bob", "viewer", "short", "at least 8"),
])
def test_bad_arguments_are_refused_with_a_message(directory: UserDirectory, name: str, role: str, password: str,
                                                  message: str) -> None:
    with pytest.raises(ValueError, match=message):
        directory.add(name, role, password)
    assert directory.count() == 0


def test_users_list_change_role_and_remove_and_each_change_is_audited(directory: UserDirectory) -> None:
    directory.add("alice", "admin", "password-a", actor="cli:root")
    directory.add("bob", "viewer", "password-b", actor="alice")
    with pytest.raises(UserExistsError):
        directory.add("bob", "admin", "password-c")
    assert [(u.name, u.role) for u in directory.users()] == [("alice", "admin"), ("bob", "viewer")]
    assert directory.set_role("bob", "analyst", actor="alice").role == "analyst"
    directory.remove("bob", actor="alice")
    assert directory.find("bob") is None and directory.count() == 1
    with pytest.raises(NotFoundError):
        directory.remove("bob")
    events = [(r.event, r.actor, r.target_user, r.detail) for r in directory.audit_log().rows]
    assert events == [("user_removed", "alice", "bob", None), ("role_changed", "alice", "bob", "viewer -> analyst"),
                      ("user_added", "alice", "bob", "viewer"), ("user_added", "cli:root", "alice", "admin")]


def test_the_last_admin_cannot_be_removed_or_demoted_while_others_remain(directory: UserDirectory) -> None:
    directory.add("alice", "admin", "password-a")
    directory.add("bob", "viewer", "password-b")
    with pytest.raises(LastAdminError):
        directory.remove("alice")
    with pytest.raises(LastAdminError):
        directory.set_role("alice", "analyst")
    directory.set_role("bob", "admin")
    directory.set_role("alice", "viewer")  # another admin exists now
    assert directory.user("alice").role == "viewer"


def test_audit_log_filters_by_actor_and_event_newest_first(directory: UserDirectory) -> None:
    for actor in ("alice", "bob", "alice"):
        directory.record("signed_in", actor, detail="from 127.0.0.1")
    directory.record("sign_in_failed", "mallory", detail="from 10.0.0.9")
    assert [r.event for r in directory.audit_log().rows] == ["sign_in_failed", "signed_in", "signed_in", "signed_in"]
    alice = directory.audit_log(AuditQuery(actor="alice"))
    assert alice.total == 2 and all(r.actor == "alice" for r in alice.rows)
    failed = directory.audit_log(AuditQuery(event="sign_in_failed"))
    assert [(r.actor, r.detail) for r in failed.rows] == [("mallory", "from 10.0.0.9")]
    assert directory.audit_log(AuditQuery(actor="nobody")).total == 0
    with pytest.raises(ValueError, match="event must be one of"):
        AuditQuery(event="dropped_tables")


def test_saves_looks_and_memo_versions_carry_their_author_in_the_same_transaction(
        database: ExperimentDatabase, directory: UserDirectory) -> None:
    experiment_id, analysis_id = database.save_analysis(NewExperiment(name="checkout"), _analysis("ann"))
    look_id = database.add_analysis(experiment_id, _analysis("ann", sha="b" * 64))
    memo = database.save_memo(analysis_id, "# memo", notes="ship it", author="ann")
    database.save_analysis(NewExperiment(name="from the CLI"), _analysis(None, sha="c" * 64))
    with duckdb.connect(str(database.path)) as connection:
        authors = dict(connection.execute("SELECT id, author FROM analyses").fetchall())
    assert authors[analysis_id] == "ann" and authors[look_id] == "ann" and memo.author == "ann"
    assert database.analysis(look_id).author == "ann" and database.analyses(experiment_id)[0].author == "ann"
    events = [(r.event, r.actor, r.experiment_id, r.analysis_id) for r in directory.audit_log().rows]
    assert events == [("annotated", "ann", None, analysis_id), ("look_added", "ann", experiment_id, look_id),
                      ("saved", "ann", experiment_id, analysis_id)]  # no author, no event (samples, CLI)


def test_archived_experiments_leave_history_unless_asked_and_the_change_is_audited(
        database: ExperimentDatabase, directory: UserDirectory) -> None:
    kept, _ = database.save_analysis(NewExperiment(name="kept"), _analysis(None))
    gone, _ = database.save_analysis(NewExperiment(name="archived one"), _analysis(None, sha="d" * 64))
    assert directory.set_archived(gone, True, actor="root") is True
    assert directory.set_archived(gone, True, actor="root") is False  # already archived: nothing recorded
    assert directory.archived_at(gone) is not None and directory.archived_at(kept) is None
    assert [r.experiment_id for r in database.history().rows] == [kept]
    assert {r.experiment_id for r in database.history(HistoryQuery(include_archived=True)).rows} == {kept, gone}
    assert database.portfolio().experiments == 1
    assert database.analyses(gone)  # archiving deletes nothing
    directory.set_archived(gone, False, actor="root")
    assert {r.experiment_id for r in database.history().rows} == {kept, gone}
    assert [(r.event, r.experiment_id) for r in directory.audit_log().rows] == [("unarchived", gone),
                                                                                 ("archived", gone)]
    with pytest.raises(NotFoundError):
        directory.set_archived(999, True)


def test_role_order_and_vocabularies() -> None:
    assert ROLES == ("viewer", "analyst", "admin")
    assert role_allows("admin", "analyst") and role_allows("analyst", "viewer") and role_allows("viewer", "viewer")
    assert not role_allows("viewer", "analyst") and not role_allows("analyst", "admin")
    assert not role_allows(None, "viewer") and not role_allows("root", "viewer")
    assert {"signed_in", "sign_in_failed", "saved", "annotated", "archived", "unarchived", "user_added",
            "user_removed", "role_changed", "look_added"} == set(AUDIT_EVENTS)
