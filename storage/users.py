"""Users, roles, the audit log and archived experiments, kept in the experiment database.

Passwords are stored as argon2id hashes (``argon2-cffi``'s defaults: 64 MiB, 3 passes), never
in clear; :meth:`UserDirectory.authenticate` verifies an unknown name against a dummy hash so
that a wrong name costs as long as a wrong password and the timing does not tell which names
exist. Every change to users, every sign-in (and failed one) and every archive is recorded in
``audit_events`` in the same transaction as the change itself; saves, looks and memo versions
are recorded by :class:`storage.database.ExperimentDatabase` through :func:`insert_audit_event`.

Raises :class:`UserExistsError`, :class:`LastAdminError`, :class:`storage.errors.NotFoundError`
(an unknown user or experiment) and ``ValueError`` for a bad name, role or password.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import duckdb
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from storage.errors import NotFoundError, StorageError
from storage.rows import Row, named_row, named_rows

if TYPE_CHECKING:
    from storage.database import ExperimentDatabase

__all__ = [
    "AUDIT_EVENTS",
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "ROLES",
    "AuditEvent",
    "AuditPage",
    "AuditQuery",
    "AuditRecord",
    "LastAdminError",
    "Role",
    "User",
    "UserDirectory",
    "UserExistsError",
    "insert_audit_event",
    "role_allows",
    "row_to_audit",
    "row_to_user",
    "validate_password",
    "validate_role",
    "validate_user_name",
]

Role = Literal["viewer", "analyst", "admin"]
#: The roles from least to most allowed: each may do everything the ones before it may.
ROLES: tuple[Role, ...] = get_args(Role)

AuditEvent = Literal["signed_in", "sign_in_failed", "saved", "annotated", "archived", "unarchived", "user_added",
                     "user_removed", "role_changed", "look_added"]
AUDIT_EVENTS: tuple[AuditEvent, ...] = get_args(AuditEvent)

MIN_PASSWORD_CHARS = 8
# argon2 hashes any length, but a megabyte-long "password" is a denial of service, not a secret.
MAX_PASSWORD_CHARS = 1024
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_USER_COLUMNS = "name, role, created_at"
_AUDIT_COLUMNS = "id, occurred_at, actor, event, experiment_id, analysis_id, target_user, detail"


class UserExistsError(StorageError):
    """``users add`` named a user that already exists (change the role with ``users set-role``)."""


class LastAdminError(StorageError):
    """The change would leave users without any admin, so nobody could manage them from the dashboard."""


def validate_user_name(name: str) -> str:
    """``name`` if it is 1-64 letters, digits or ``. _ @ + -`` starting with a letter or digit,
    else ``ValueError``. Names are case-sensitive and printed in the audit log as given."""
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(f"user name must be 1-64 letters, digits or . _ @ + - (starting with a letter or digit), "
                         f"got {name!r}")
    return name


def validate_role(role: str) -> Role:
    """``role`` as a :data:`Role`, else ``ValueError`` naming the roles."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def validate_password(password: str) -> str:
    """``password`` if it has :data:`MIN_PASSWORD_CHARS` to :data:`MAX_PASSWORD_CHARS` characters."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"password must have at most {MAX_PASSWORD_CHARS} characters")
    return password


def role_allows(role: str | None, needed: Role) -> bool:
    """Whether ``role`` may do what ``needed`` may (``admin`` ⊇ ``analyst`` ⊇ ``viewer``); an
    unknown or missing role allows nothing."""
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One audit event: ``actor`` did ``event`` at ``occurred_at`` to the target ids given."""

    id: int
    occurred_at: dt.datetime
    actor: str | None
    event: str
    experiment_id: int | None
    analysis_id: int | None
    target_user: str | None
    detail: str | None


@dataclass(frozen=True)
class AuditQuery:
    """Filters for :meth:`UserDirectory.audit_log` (newest first)."""

    actor: str | None = None
    event: str | None = None
    limit: int = 200
    offset: int = 0

    def __post_init__(self) -> None:
        if self.event is not None and self.event not in AUDIT_EVENTS:
            raise ValueError(f"event must be one of {', '.join(AUDIT_EVENTS)}, got {self.event!r}")
        if not 1 <= self.limit <= 1000:
            raise ValueError(f"limit must be within 1..1000, got {self.limit}")
        if self.offset < 0:
            raise ValueError(f"offset must be >= 0, got {self.offset}")


@dataclass(frozen=True)
class AuditPage:
    rows: tuple[AuditRecord, ...]
    total: int


def row_to_user(row: Row) -> User:
    return User(str(row["name"]), validate_role(str(row["role"])), row["created_at"])


def row_to_audit(row: Row) -> AuditRecord:
    return AuditRecord(int(row["id"]), row["occurred_at"], row["actor"], str(row["event"]),
                       None if row["experiment_id"] is None else int(row["experiment_id"]),
                       None if row["analysis_id"] is None else int(row["analysis_id"]), row["target_user"],
                       row["detail"])


def insert_audit_event(connection: duckdb.DuckDBPyConnection, event: AuditEvent, actor: str | None, *,
                       experiment_id: int | None = None, analysis_id: int | None = None,
                       target_user: str | None = None, detail: str | None = None) -> None:
    """Append one event inside the caller's open transaction (so it commits or rolls back with it)."""
    if event not in AUDIT_EVENTS:
        raise ValueError(f"event must be one of {', '.join(AUDIT_EVENTS)}, got {event!r}")
    connection.execute(
        "INSERT INTO audit_events (actor, event, experiment_id, analysis_id, target_user, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)", [actor, event, experiment_id, analysis_id, target_user, detail])


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random string with the same parameters as real ones, verified for unknown names."""
    import secrets

    return _hasher().hash(secrets.token_urlsafe(24))


class UserDirectory:
    """Repository of users, the audit log and archived experiments over one experiment database.

    Cheap to create; every method opens its own short connection (see
    :class:`storage.database.ExperimentDatabase`)."""

    def __init__(self, database: ExperimentDatabase) -> None:
        self.database = database

    # -- users ---------------------------------------------------------------------------------
    def count(self) -> int:
        """How many users exist (0: the dashboard runs single-user on loopback)."""
        with self.database._connection(read=True) as connection:
            row = connection.execute("SELECT count(*) FROM users").fetchone()
        return int(row[0]) if row else 0

    def users(self) -> tuple[User, ...]:
        with self.database._connection(read=True) as connection:
            rows = named_rows(connection.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name"))
        return tuple(row_to_user(r) for r in rows)

    def user(self, name: str) -> User:
        """The user called ``name``; :class:`NotFoundError` when there is none."""
        with self.database._connection(read=True) as connection:
            row = named_row(connection.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", [name]))
        if row is None:
            raise NotFoundError(f"there is no user {name!r}; list them with 'experimentos users list'")
        return row_to_user(row)

    def find(self, name: str) -> User | None:
        try:
            return self.user(name)
        except NotFoundError:
            return None

    def add(self, name: str, role: str, password: str, *, actor: str | None = None) -> User:
        """Create a user (argon2id hash of ``password``); :class:`UserExistsError` when the name is taken."""
        validate_user_name(name)
        checked_role = validate_role(role)
        password_hash = _hasher().hash(validate_password(password))

        def work(connection: duckdb.DuckDBPyConnection) -> User:
            if connection.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone() is not None:
                raise UserExistsError(f"user {name!r} already exists; change the role with 'experimentos users "
                                      "set-role' or remove the user first")
            row = named_row(connection.execute(f"INSERT INTO users (name, role, password_hash) VALUES (?, ?, ?) "
                                               f"RETURNING {_USER_COLUMNS}", [name, checked_role, password_hash]))
            assert row is not None
            insert_audit_event(connection, "user_added", actor, target_user=name, detail=checked_role)
            return row_to_user(row)
        return self.database._transaction(work)

    def _refuse_losing_last_admin(self, connection: duckdb.DuckDBPyConnection, name: str) -> None:
        row = connection.execute(
            "SELECT count(*) FILTER (WHERE role = 'admin' AND name <> ?), count(*) FILTER (WHERE name <> ?) FROM users",
            [name, name]).fetchone()
        assert row is not None
        other_admins, other_users = int(row[0]), int(row[1])
        if other_admins == 0 and other_users > 0:
            raise LastAdminError(f"{name!r} is the last admin; make another user admin first "
                                 "('experimentos users set-role NAME --role admin')")

    def remove(self, name: str, *, actor: str | None = None) -> None:
        """Delete a user (their saves and notes keep their name as author)."""
        def work(connection: duckdb.DuckDBPyConnection) -> None:
            row = connection.execute("SELECT role FROM users WHERE name = ?", [name]).fetchone()
            if row is None:
                raise NotFoundError(f"there is no user {name!r}; list them with 'experimentos users list'")
            if row[0] == "admin":
                self._refuse_losing_last_admin(connection, name)
            connection.execute("DELETE FROM users WHERE name = ?", [name])
            insert_audit_event(connection, "user_removed", actor, target_user=name)
        self.database._transaction(work)

    def set_role(self, name: str, role: str, *, actor: str | None = None) -> User:
        """Change a user's role; the change applies to their next request."""
        checked_role = validate_role(role)

        def work(connection: duckdb.DuckDBPyConnection) -> User:
            row = connection.execute("SELECT role FROM users WHERE name = ?", [name]).fetchone()
            if row is None:
                raise NotFoundError(f"there is no user {name!r}; list them with 'experimentos users list'")
            previous = str(row[0])
            if previous == "admin" and checked_role != "admin":
                self._refuse_losing_last_admin(connection, name)
            updated = named_row(connection.execute(f"UPDATE users SET role = ? WHERE name = ? RETURNING {_USER_COLUMNS}",
                                                   [checked_role, name]))
            assert updated is not None
            if previous != checked_role:
                insert_audit_event(connection, "role_changed", actor, target_user=name,
                                   detail=f"{previous} -> {checked_role}")
            return row_to_user(updated)
        return self.database._transaction(work)

    def set_password(self, name: str, password: str) -> None:
        password_hash = _hasher().hash(validate_password(password))

        def work(connection: duckdb.DuckDBPyConnection) -> None:
            if connection.execute("UPDATE users SET password_hash = ? WHERE name = ? RETURNING name",
                                  [password_hash, name]).fetchone() is None:
                raise NotFoundError(f"there is no user {name!r}; list them with 'experimentos users list'")
        self.database._transaction(work)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs, else ``None`` (an unknown name, a wrong password or
        one outside the allowed length). An unknown name is verified against a dummy hash so the
        answer takes as long either way. Nothing is recorded: the caller audits the outcome."""
        with self.database._connection(read=True) as connection:
            row = named_row(connection.execute(f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE name = ?",
                                               [name]))
        stored = str(row["password_hash"]) if row is not None else _dummy_hash()
        candidate = password if isinstance(password, str) and len(password) <= MAX_PASSWORD_CHARS else ""
        matched: bool
        try:
            matched = _hasher().verify(stored, candidate)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            matched = False
        if row is None or not matched:
            return None
        if _hasher().check_needs_rehash(stored):  # parameters were raised since this hash was made
            self.set_password(name, candidate)
        return row_to_user(row)

    # -- audit -----------------------------------------------------------------------------------
    def record(self, event: AuditEvent, actor: str | None, *, experiment_id: int | None = None,
               analysis_id: int | None = None, target_user: str | None = None, detail: str | None = None) -> None:
        """Append one event in its own transaction (for events that change nothing else, e.g. sign-in)."""
        def work(connection: duckdb.DuckDBPyConnection) -> None:
            insert_audit_event(connection, event, actor, experiment_id=experiment_id, analysis_id=analysis_id,
                               target_user=target_user, detail=detail)
        self.database._transaction(work)

    def audit_log(self, query: AuditQuery = AuditQuery()) -> AuditPage:
        """Events newest first, filtered by actor and event, paged."""
        where: list[str] = ["1 = 1"]
        parameters: list[Any] = []
        if query.actor:
            where.append("actor = ?")
            parameters.append(query.actor)
        if query.event:
            where.append("event = ?")
            parameters.append(query.event)
        clause = " AND ".join(where)
        with self.database._connection(read=True) as connection:
            rows = named_rows(connection.execute(
                f"SELECT {_AUDIT_COLUMNS}, count(*) OVER () AS total FROM audit_events WHERE {clause} "
                "ORDER BY id DESC LIMIT ? OFFSET ?", [*parameters, query.limit, query.offset]))
            if rows:
                total = int(rows[0]["total"])
            else:
                counted = connection.execute(f"SELECT count(*) FROM audit_events WHERE {clause}", parameters).fetchone()
                total = int(counted[0]) if counted else 0
        return AuditPage(tuple(row_to_audit(r) for r in rows), total)

    # -- archive ---------------------------------------------------------------------------------
    def archived_at(self, experiment_id: int) -> dt.datetime | None:
        """When the experiment was archived (``None``: it is not); :class:`NotFoundError` for an unknown id."""
        with self.database._connection(read=True) as connection:
            row = connection.execute("SELECT archived_at FROM experiments WHERE id = ?", [experiment_id]).fetchone()
        if row is None:
            raise NotFoundError(f"experiment {experiment_id} does not exist; list them with 'experimentos history'")
        return cast("dt.datetime | None", row[0])

    def set_archived(self, experiment_id: int, archived: bool, *, actor: str | None = None) -> bool:
        """Archive (hidden from History unless asked for) or unarchive an experiment; returns whether
        anything changed. Archiving deletes nothing: analyses, inputs and memos stay."""
        def work(connection: duckdb.DuckDBPyConnection) -> bool:
            row = connection.execute("SELECT archived_at IS NOT NULL FROM experiments WHERE id = ?",
                                     [experiment_id]).fetchone()
            if row is None:
                raise NotFoundError(f"experiment {experiment_id} does not exist; list them with 'experimentos history'")
            if bool(row[0]) == archived:
                return False
            connection.execute("UPDATE experiments SET archived_at = CASE WHEN ? THEN current_localtimestamp() END "
                               "WHERE id = ?", [archived, experiment_id])
            insert_audit_event(connection, "archived" if archived else "unarchived", actor,
                               experiment_id=experiment_id)
            return True
        return self.database._transaction(work)
