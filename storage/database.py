"""The experiment database: one DuckDB file shared by the dashboard and CLI runs.

DuckDB lets one process at a time hold a database file open for writing. Every
operation here therefore opens a short-lived connection, does its work in one
transaction and closes it; when another process holds the file, the open is retried
with exponential backoff and jitter until ``lock_timeout`` seconds have passed
(:class:`DatabaseLockedError` after that; reads may be given a shorter ``read_timeout``, after
which they raise :class:`DatabaseBusyError` so a caller can answer from data it read before).
A write that finds the disk full is rolled back and raises :class:`DiskFullError`; a damaged
file found by any query raises :class:`DatabaseCorruptError`. Threads of one process share the process's
DuckDB instance and are serialised by a lock, so a save never sees a half-written
experiment.

Processes are also serialised by an advisory lock (``flock``) on ``<database>.lock``,
held from before DuckDB opens the file until after it has closed it (checkpointed).
DuckDB alone is not enough: ``duckdb.connect`` reads the file's headers *before* it
takes its own file lock and does not re-read them afterwards, so a process that read
the headers while another was committing and checkpointing opened a stale database —
the other process's last committed save vanished and its ids were handed out again.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from analytics import DEFAULT_PRIMARY_METRIC, Charter, HealthStatus, Outcome
from storage.errors import (
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseError,
    DatabaseLockedError,
    DiskFullError,
    NotFoundError,
    ReportTooLargeError,
    SchemaTooNewError,
)
from storage.migrations import MIGRATIONS, latest_version
from storage.rows import Row, named_row, named_rows
from storage.users import insert_audit_event

__all__ = [
    "DEFAULT_DB_PATH",
    "INLINE_INPUT_LIMIT",
    "REPORT_LIMIT_BYTES",
    "UNTRUSTWORTHY_RULES",
    "AnalysisRecord",
    "ComparisonRow",
    "DecisionCount",
    "ExperimentDatabase",
    "ExperimentRecord",
    "HistoryPage",
    "HistoryQuery",
    "HistoryRow",
    "MemoVersion",
    "NewAnalysis",
    "NewExperiment",
    "PortfolioSummary",
    "Unrecognised",
    "default_db_path",
    "default_report_limit",
    "row_to_analysis",
    "row_to_comparison",
    "row_to_decision_count",
    "row_to_experiment",
    "row_to_history",
    "row_to_memo",
    "row_to_portfolio",
    "untrustworthy_reason",
]

DEFAULT_DB_PATH = Path("data") / "experimentos.duckdb"
T = TypeVar("T")
Vocabulary = TypeVar("Vocabulary", bound=StrEnum)
_LOCK_MARKERS = ("could not set lock", "conflicting lock")
# DuckDB reports a full disk as an IO error, or — when the commit's WAL write fails — as a
# TransactionException ("Failed to commit: Could not write file ...: No space left on device"),
# the same class as a write-write conflict: the text tells them apart.
_DISK_FULL_MARKERS = ("no space left on device", "disk quota exceeded", "disk is full", "not enough space")
_CORRUPT_MARKERS = ("not a valid duckdb database", "serialization", "corrupt", "could not read enough bytes",
                    "checksum", "invalid block")
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
REPORT_LIMIT_BYTES = 5 * 1024 * 1024
_PROCESS_LOCKS: dict[str, threading.RLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def default_db_path() -> Path:
    """``$EXPERIMENTOS_DB`` or ``data/experimentos.duckdb`` under the current directory."""
    configured = os.environ.get("EXPERIMENTOS_DB")
    return Path(configured) if configured else Path.cwd() / DEFAULT_DB_PATH


def default_report_limit() -> int:
    """The largest report JSON stored, in bytes: ``$EXPERIMENTOS_REPORT_LIMIT_MB`` or 5 MB.

    A report grows with segments and metrics (tens of KB usually); the cap keeps one forged or
    runaway report from bloating every History query that reads ``report_json``."""
    configured = os.environ.get("EXPERIMENTOS_REPORT_LIMIT_MB")
    try:
        megabytes = float(configured) if configured else 0.0
    except ValueError:
        megabytes = 0.0
    return int(megabytes * 1024 * 1024) if megabytes > 0 else REPORT_LIMIT_BYTES


def _process_lock(path: Path) -> threading.RLock:
    key = str(path)
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(key, threading.RLock())


class Unrecognised(str):
    """A stored decision or health status that is not a member of :class:`analytics.Outcome` /
    :class:`analytics.HealthStatus`, kept as the text stored.

    ExperimentOS only ever stores members; another value can come only from a database written
    by a different version or edited by hand. Reading it must not fail (History, ``show`` and
    ``replay`` keep working), and must not pass it off as a member: the row mappers return the
    text as this type, so it prints and serialises exactly as stored, no decision filter
    matches it, the portfolio counts it among the experiments but in no launch / hold /
    rollback total, and code that branches on the vocabulary has to handle it
    (``decision: Outcome | Unrecognised``).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Unrecognised({str.__repr__(self)})"


def _member(vocabulary: type[Vocabulary], value: str) -> Vocabulary | Unrecognised:
    """``value`` as a member of ``vocabulary``, or :class:`Unrecognised` when it is none."""
    try:
        return vocabulary(value)
    except ValueError:
        return Unrecognised(value)


def _optional_member(vocabulary: type[Vocabulary], value: str | None) -> Vocabulary | Unrecognised | None:
    """:func:`_member`, with ``None`` (no analysis on a LEFT JOIN) kept as ``None``."""
    return None if value is None else _member(vocabulary, value)


def _spoken(vocabulary: type[StrEnum]) -> str:
    """``launch, hold or rollback``: the members' values as a sentence lists them."""
    values = [member.value for member in vocabulary]
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


#: An experiment to store is its charter (the one charter type every layer shares); its ``name``
#: is required here, and no primary metric means :data:`analytics.DEFAULT_PRIMARY_METRIC`.
NewExperiment = Charter


def _charter_values(experiment: NewExperiment) -> list[Any]:
    """The ``experiments`` columns from name to end_date, in the order the writes below list them.
    Raises ``ValueError`` when the charter has no name."""
    if not experiment.name:
        raise ValueError("experiment.name is required to store an experiment: give its charter a name")
    return [experiment.name, experiment.primary_metric or DEFAULT_PRIMARY_METRIC, experiment.hypothesis,
            experiment.owner, list(experiment.tags), experiment.mde, experiment.planned_sample, experiment.start_date,
            experiment.end_date]


@dataclass(frozen=True)
class ExperimentRecord:
    id: int
    name: str
    primary_metric: str
    hypothesis: str | None
    owner: str | None
    tags: tuple[str, ...]
    mde: str | None
    planned_sample: int | None
    start_date: dt.date | None
    end_date: dt.date | None
    created_at: dt.datetime


@dataclass(frozen=True)
class NewAnalysis:
    """One analysis to store: the report, how it was requested, and the input file itself —
    its bytes (``content``) or, for files too large to hold in memory, its path (``source``)."""

    report: dict[str, Any]
    request: dict[str, Any]
    policy: dict[str, Any]
    filename: str
    content: bytes | None = None
    source: Path | None = None
    #: Who stored it (the signed-in dashboard user); recorded on the analysis and in the audit log.
    author: str | None = None

    def size(self) -> int:
        if self.content is not None:
            return len(self.content)
        if self.source is None:
            raise ValueError("a NewAnalysis needs the input's content or its source path")
        return self.source.stat().st_size


@dataclass(frozen=True)
class AnalysisRecord:
    id: int
    experiment_id: int
    input_sha256: str
    filename: str
    request: dict[str, Any]
    policy: dict[str, Any]
    report: dict[str, Any]
    analytics_version: str
    decision: Outcome | Unrecognised
    health: HealthStatus | Unrecognised
    created_at: dt.datetime
    author: str | None = None  # the signed-in user who saved it (None: the CLI, samples, older saves)


@dataclass(frozen=True)
class MemoVersion:
    id: int
    analysis_id: int
    version: int
    markdown: str
    notes: str | None
    author: str | None
    created_at: dt.datetime


#: Decision rules under which the measured effect must not be read as a result: the data is
#: blocked, or the split is off (SRM), so the lift is an artefact of how users were assigned.
UNTRUSTWORTHY_RULES: dict[str, str] = {"data_blocked": "data blocked", "srm": "SRM"}


def untrustworthy_reason(rule: str | None, health: str | None) -> str | None:
    """Why an analysis's effect is not trustworthy (``"SRM"``, ``"data blocked"``), or ``None``."""
    if rule in UNTRUSTWORTHY_RULES:
        return UNTRUSTWORTHY_RULES[rule]
    return "data blocked" if health == HealthStatus.BLOCKED else None


@dataclass(frozen=True)
class HistoryRow:
    experiment_id: int
    name: str
    primary_metric: str
    tags: tuple[str, ...]
    owner: str | None
    analysis_id: int | None
    decision: Outcome | Unrecognised | None  # None: no analysis yet
    health: HealthStatus | Unrecognised | None
    relative_effect: float | None
    relative_ci_low: float | None
    relative_ci_high: float | None
    p_value: float | None
    created_at: dt.datetime
    rule: str | None = None
    primary_treatment: str | None = None

    @property
    def untrustworthy(self) -> str | None:
        """Why the lift must not be read as a result (``"SRM"``, ``"data blocked"``), else ``None``."""
        return untrustworthy_reason(self.rule, self.health) if self.analysis_id is not None else None


@dataclass(frozen=True)
class HistoryPage:
    rows: tuple[HistoryRow, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class HistoryQuery:
    """Filters for :meth:`ExperimentDatabase.history` (all optional).

    ``decision`` also takes a member's text (``"launch"``, as argparse and the History page give
    it) and holds the member; anything else raises :class:`ValueError`."""

    decision: Outcome | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    text: str | None = None
    limit: int = 50
    offset: int = 0
    #: Archived experiments (see :meth:`storage.users.UserDirectory.set_archived`) are left out unless set.
    include_archived: bool = False

    def __post_init__(self) -> None:
        if self.decision is not None:
            if self.decision not in {outcome.value for outcome in Outcome}:
                raise ValueError(f"decision must be {_spoken(Outcome)}, got {self.decision!r}")
            object.__setattr__(self, "decision", Outcome(self.decision))
        if not 1 <= self.limit <= 1000:
            raise ValueError(f"limit must be within 1..1000, got {self.limit}")
        if self.offset < 0:
            raise ValueError(f"offset must be >= 0, got {self.offset}")


@dataclass(frozen=True)
class ComparisonRow:
    experiment_id: int
    name: str
    analysis_id: int
    treatment: str | None
    primary_metric: str
    decision: Outcome | Unrecognised
    absolute_effect: float | None
    absolute_ci: tuple[float | None, float | None]
    relative_effect: float | None
    relative_ci: tuple[float | None, float | None]
    p_value: float | None
    health: HealthStatus | Unrecognised | None = None
    rule: str | None = None
    control: str | None = None
    metric_type: str | None = None

    @property
    def untrustworthy(self) -> str | None:
        """Why the effect must not be read as a result (``"SRM"``, ``"data blocked"``), else ``None``."""
        return untrustworthy_reason(self.rule, self.health)


@dataclass(frozen=True)
class DecisionCount:
    """How many experiments got ``decision`` on ``day`` (by the date of their latest analysis)."""

    day: dt.date
    decision: Outcome | Unrecognised
    count: int


@dataclass(frozen=True)
class PortfolioSummary:
    """What a leader asks of a set of experiments, each counted by its latest analysis.

    ``median_launch_lift`` is the median relative lift of the primary metric over the launches
    that have one, signed so that positive is better (a -9% checkout time counts as +9%);
    ``None`` when there are none. ``timeline`` counts decisions per day.
    """

    experiments: int
    launched: int
    held: int
    rolled_back: int
    not_analysed: int
    median_launch_lift: float | None
    launches_with_lift: int
    timeline: tuple[DecisionCount, ...]


#: The one definition of "an experiment's latest analysis", as the common table expression
#: ``latest`` (``WITH {_LATEST_ANALYSES} ... JOIN latest l ON l.experiment_id = e.id``): its
#: analysis with the highest id. Ids come from one sequence, so the last look saved wins even
#: when two share a ``created_at`` (saved within one clock tick, or after the clock was set
#: back). Archived experiments keep theirs: each query decides whether to show them.
_LATEST_ANALYSES = ("latest AS (SELECT * FROM analyses a "
                    "WHERE a.id = (SELECT max(b.id) FROM analyses b WHERE b.experiment_id = a.experiment_id))")


def _history_filters(query: HistoryQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (over ``experiments e`` joined to the latest analyses ``l``) and its parameters."""
    where: list[str] = ["1 = 1"]
    parameters: list[Any] = []
    if not query.include_archived:
        where.append("e.archived_at IS NULL")
    if query.decision:
        where.append("l.decision = ?")
        parameters.append(query.decision.value)
    if query.since:
        where.append("e.created_at >= ?")
        parameters.append(dt.datetime.combine(query.since, dt.time.min))
    if query.until:
        where.append("e.created_at < ?")
        parameters.append(dt.datetime.combine(query.until + dt.timedelta(days=1), dt.time.min))
    if query.text and query.text.strip():
        pattern = "%" + query.text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(e.name ILIKE ? ESCAPE '\\' OR coalesce(e.hypothesis, '') ILIKE ? ESCAPE '\\' "
                     "OR array_to_string(e.tags, ' ') ILIKE ? ESCAPE '\\')")
        parameters.extend([pattern, pattern, pattern])
    return " AND ".join(where), parameters


# Column lists of the mappers below; a mapper reads each column by its name, so the order here is free.
_EXPERIMENT_COLUMNS = ("id, name, primary_metric, hypothesis, owner, tags, mde, planned_sample, start_date, end_date, "
                       "created_at")
_ANALYSIS_COLUMNS = ("a.id, a.experiment_id, a.input_sha256, i.filename, a.request_json, a.policy_json, a.report_json, "
                     "a.analytics_version, a.decision, a.health, a.created_at, a.author")
#: An analysis with its input's file name; ``analyses`` is the table or the ``latest`` CTE.
_ANALYSIS_SELECT = f"SELECT {_ANALYSIS_COLUMNS} FROM {{analyses}} a JOIN inputs i ON i.sha256 = a.input_sha256"
_MEMO_COLUMNS = "id, analysis_id, version, markdown, notes, author, created_at"

def row_to_experiment(row: Row) -> ExperimentRecord:
    return ExperimentRecord(
        id=int(row["id"]), name=row["name"], primary_metric=row["primary_metric"], hypothesis=row["hypothesis"],
        owner=row["owner"], tags=tuple(row["tags"] or ()), mde=row["mde"], planned_sample=row["planned_sample"],
        start_date=row["start_date"], end_date=row["end_date"], created_at=row["created_at"])


def row_to_analysis(row: Row) -> AnalysisRecord:
    """An analysis row (:data:`_ANALYSIS_COLUMNS`); a decision or health status that is not a
    member becomes :class:`Unrecognised`."""
    return AnalysisRecord(
        id=int(row["id"]), experiment_id=int(row["experiment_id"]), input_sha256=row["input_sha256"],
        filename=row["filename"], request=json.loads(row["request_json"]), policy=json.loads(row["policy_json"]),
        report=json.loads(row["report_json"]), analytics_version=row["analytics_version"],
        decision=_member(Outcome, row["decision"]), health=_member(HealthStatus, row["health"]),
        created_at=row["created_at"], author=row["author"])


def row_to_memo(row: Row) -> MemoVersion:
    return MemoVersion(id=int(row["id"]), analysis_id=int(row["analysis_id"]), version=int(row["version"]),
                       markdown=row["markdown"], notes=row["notes"], author=row["author"], created_at=row["created_at"])


def row_to_history(row: Row) -> HistoryRow:
    """A row of :meth:`ExperimentDatabase.history`: an experiment and its latest analysis, if any."""
    return HistoryRow(
        experiment_id=int(row["experiment_id"]), name=row["name"], primary_metric=row["primary_metric"],
        tags=tuple(row["tags"] or ()), owner=row["owner"],
        analysis_id=None if row["analysis_id"] is None else int(row["analysis_id"]),
        decision=_optional_member(Outcome, row["decision"]), health=_optional_member(HealthStatus, row["health"]),
        relative_effect=row["relative_effect"], relative_ci_low=row["relative_ci_low"],
        relative_ci_high=row["relative_ci_high"], p_value=row["p_value"], created_at=row["created_at"],
        rule=row["rule"], primary_treatment=row["primary_treatment"])


def row_to_comparison(row: Row) -> ComparisonRow:
    """A row of :meth:`ExperimentDatabase.compare`."""
    return ComparisonRow(
        experiment_id=int(row["experiment_id"]), name=row["name"], analysis_id=int(row["analysis_id"]),
        treatment=row["treatment"],
        # The metric analysed (the report's) wins over the charter's, which may name another column.
        primary_metric=row["report_metric"] or row["charter_metric"],
        decision=_member(Outcome, row["decision"]), absolute_effect=row["absolute_effect"],
        absolute_ci=(row["absolute_ci_low"], row["absolute_ci_high"]), relative_effect=row["relative_effect"],
        relative_ci=(row["relative_ci_low"], row["relative_ci_high"]), p_value=row["p_value"],
        health=_optional_member(HealthStatus, row["health"]), rule=row["rule"], control=row["control"],
        metric_type=row["metric_type"])


def row_to_decision_count(row: Row) -> DecisionCount:
    return DecisionCount(day=row["day"], decision=_member(Outcome, row["decision"]), count=int(row["count"]))


def row_to_portfolio(totals: Row, timeline: Sequence[Row]) -> PortfolioSummary:
    """The totals row (with the launches' median lift and its count) and the per-day rows of
    :meth:`ExperimentDatabase.portfolio`."""
    median = totals["median_launch_lift"]
    return PortfolioSummary(
        experiments=int(totals["experiments"]), launched=int(totals["launched"]), held=int(totals["held"]),
        rolled_back=int(totals["rolled_back"]), not_analysed=int(totals["not_analysed"]),
        median_launch_lift=None if median is None else float(median),
        launches_with_lift=int(totals["launches_with_lift"]),
        timeline=tuple(row_to_decision_count(row) for row in timeline))


def _primary_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline comparison (the winner, else the first arm) as flat columns."""
    comparisons = report.get("comparisons") or []
    if not comparisons:
        return {"primary_treatment": None, "absolute_effect": None, "absolute_ci_low": None, "absolute_ci_high": None,
                "relative_effect": None, "relative_ci_low": None, "relative_ci_high": None, "p_value": None}
    winner = report["decision"].get("winner")
    chosen = next((c for c in comparisons if c["treatment"] == winner), comparisons[0])
    primary = chosen["primary"]
    relative_ci = primary.get("relative_ci") or [None, None]
    return {
        "primary_treatment": chosen["treatment"],
        "absolute_effect": primary["absolute_effect"],
        "absolute_ci_low": primary["absolute_ci"][0],
        "absolute_ci_high": primary["absolute_ci"][1],
        "relative_effect": primary.get("relative_effect"),
        "relative_ci_low": relative_ci[0],
        "relative_ci_high": relative_ci[1],
        "p_value": primary.get("p_value_adjusted", primary.get("p_value")),
    }


INLINE_INPUT_LIMIT = 32 * 1024 * 1024
_CHUNK = 1 << 20


def _chunks(analysis: NewAnalysis) -> Iterator[bytes]:
    if analysis.content is not None:
        yield analysis.content
        return
    assert analysis.source is not None
    with open(analysis.source, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _rollback(connection: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if any: after a failed COMMIT DuckDB has already ended it,
    and a second error here would hide the first."""
    with suppress(duckdb.Error):
        connection.execute("ROLLBACK")


def _read_verified(analysis: NewAnalysis, sha256: str) -> bytes:
    content = b"".join(_chunks(analysis))
    if hashlib.sha256(content).hexdigest() != sha256:
        raise DatabaseError(f"{analysis.filename} changed since it was analysed; analyse it again, then save")
    return content


class ExperimentDatabase:
    """Repository over one DuckDB file. Cheap to create; holds no open connection.

    Raises :class:`DatabaseCorruptError` for a file that is not a DuckDB database,
    :class:`SchemaTooNewError` for a database written by a newer ExperimentOS,
    :class:`DatabaseLockedError` when the file stays locked past ``lock_timeout`` (a read:
    :class:`DatabaseBusyError` past ``read_timeout``), :class:`DiskFullError` when a write finds
    no space left (rolled back: nothing committed before is lost), :class:`DatabaseCorruptError`
    also for a damaged (e.g. truncated) file found while reading it, and :class:`DatabaseError`
    for anything else that prevents using it (e.g. a read-only folder). The user's file is never
    overwritten or deleted.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, inline_input_limit: int = INLINE_INPUT_LIMIT,
                 read_timeout: float | None = None, report_limit: int | None = None) -> None:
        """``inline_input_limit``: input files up to this size are stored inside the database;
        larger ones in the folder ``<database file>.inputs/`` next to it, named by their sha256
        (DuckDB takes ~30 s and gigabytes of memory to write a 600 MB BLOB).

        ``read_timeout``: how long a read (history, experiment, analyses, compare, …) waits for a
        writer before :class:`DatabaseBusyError` (default: ``lock_timeout``; the dashboard uses
        2 s and answers from what it read before). ``report_limit``: the largest report JSON
        stored, in bytes (default :func:`default_report_limit`)."""
        self.path = Path(path) if path is not None else default_db_path()
        self.inline_input_limit = inline_input_limit
        self.inputs_dir = self.path.with_name(self.path.name + ".inputs")
        self.lock_timeout = lock_timeout
        self.read_timeout = lock_timeout if read_timeout is None else read_timeout
        self.report_limit = default_report_limit() if report_limit is None else report_limit
        self._clock = clock
        self._lock = _process_lock(self.path.resolve())
        self._ready = False

    # -- connections -------------------------------------------------------------------------
    def _locked_error(self) -> DatabaseLockedError:
        return DatabaseLockedError(
            f"{self.path} is locked by another process for more than {self.lock_timeout:g} s; stop the "
            "other writer (or raise the lock timeout) and try again")

    def _busy_error(self) -> DatabaseBusyError:
        return DatabaseBusyError(f"{self.path} is locked by another process writing to it (waited "
                                 f"{self.read_timeout:g} s to read it); try again in a moment")

    def _corrupt_error(self, detail: str) -> DatabaseCorruptError:
        return DatabaseCorruptError(
            f"{self.path} is not a usable DuckDB database, it may be damaged ({detail}); it was left untouched. "
            "Stop ExperimentOS and restore the file from a backup, or choose another file with --db / EXPERIMENTOS_DB")

    def _storage_error(self, error: BaseException) -> DatabaseError:
        """The :class:`DatabaseError` a DuckDB or OS error stands for: a full disk and a damaged
        file are told apart from everything else (shown with DuckDB's first line)."""
        text = str(error).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        lowered = text.lower()
        if (isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS) \
                or any(marker in lowered for marker in _DISK_FULL_MARKERS):
            return DiskFullError(
                f"the disk holding {self.path} is full, so this write was not saved (everything saved before is "
                f"intact); free space in {self.path.parent} (df -h shows how much is left) and try again")
        if any(marker in lowered for marker in _CORRUPT_MARKERS):
            return self._corrupt_error(first)
        if "invalidated" in lowered:
            return DatabaseError(f"{self.path} hit an earlier fatal error in this process ({first}); restart "
                                 "ExperimentOS")
        return DatabaseError(f"{self.path}: {first}")

    @contextmanager
    def _process_file_lock(self, deadline: float) -> Iterator[None]:
        """Hold the exclusive advisory lock on ``<database>.lock`` (see the module docstring).

        Without a usable lock file (a read-only folder holding an existing database) it goes
        on unlocked: DuckDB's own lock still keeps writers apart."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        descriptor = -1
        for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
            try:
                descriptor = os.open(lock_path, flags | os.O_CLOEXEC, 0o666)
                break
            except OSError:
                continue
        if descriptor < 0:
            yield
            return
        try:
            delay = 0.01
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as error:
                    if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                        break  # a file system without flock: DuckDB's own lock is all there is
                    if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise DatabaseError(f"cannot lock {lock_path}: {error.strerror or error}") from None
                    if self._clock() >= deadline:
                        raise self._locked_error() from None
                    time.sleep(min(delay * (0.5 + random.random()), max(deadline - self._clock(), 0.001)))
                    delay = min(delay * 2, 0.5)
            yield
        finally:
            os.close(descriptor)  # releases the flock

    def _open(self, deadline: float | None = None) -> duckdb.DuckDBPyConnection:
        if deadline is None:
            deadline = self._clock() + self.lock_timeout
        delay = 0.01
        while True:
            try:
                connection = duckdb.connect(str(self.path))
                connection.execute("SET enable_progress_bar = false")  # DuckDB would draw it on stdout
                return connection
            except duckdb.Error as error:
                text = str(error)
                lowered = text.lower()
                if any(marker in lowered for marker in _LOCK_MARKERS):
                    if self._clock() >= deadline:
                        raise self._locked_error() from None
                    time.sleep(min(delay * (0.5 + random.random()), max(deadline - self._clock(), 0.001)))
                    delay = min(delay * 2, 0.5)
                    continue
                if "version" in lowered and "storage" in lowered:
                    raise DatabaseCorruptError(f"{self.path} was written by an incompatible DuckDB version; export it "
                                               "with that version or use another file") from None
                if any(marker in lowered for marker in (*_CORRUPT_MARKERS, *_DISK_FULL_MARKERS)):
                    raise self._storage_error(error) from None
                raise DatabaseError(f"{self.path} cannot be opened: {text.splitlines()[0]}") from None

    @contextmanager
    def _thread_lock(self, timeout: float, *, read: bool) -> Iterator[None]:
        """Hold this process's lock on the file, waiting at most ``timeout`` seconds (another
        thread may be writing a large input for many seconds)."""
        if not self._lock.acquire(timeout=max(timeout, 0.0)):
            raise self._busy_error() if read else self._locked_error()
        try:
            yield
        finally:
            self._lock.release()

    @contextmanager
    def _connection(self, *, read: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one operation. ``read``: give up after ``read_timeout`` (not
        ``lock_timeout``) with :class:`DatabaseBusyError`, so a page never queues behind a long
        write. DuckDB errors raised inside become the :class:`DatabaseError` they stand for."""
        # A read with the writers' own deadline (the CLI) reports a lock held too long, as they do.
        quick = read and self.read_timeout < self.lock_timeout
        timeout = self.read_timeout if quick else self.lock_timeout
        try:
            with self._thread_lock(timeout, read=quick), self._connection_within(timeout) as connection:
                yield connection
        except DatabaseLockedError as error:
            if quick and not isinstance(error, DatabaseBusyError):
                raise self._busy_error() from None
            raise

    @contextmanager
    def _connection_within(self, timeout: float) -> Iterator[duckdb.DuckDBPyConnection]:
        """:meth:`_connection` once this thread holds the process lock."""
        if not self.path.parent.exists():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DatabaseError(f"cannot create the folder {self.path.parent}: "
                                    f"{error.strerror or error}") from None
        if not self.path.exists() and not os.access(self.path.parent, os.W_OK):
            raise DatabaseError(f"cannot create {self.path}: the folder {self.path.parent} is not writable; "
                                "choose another location with --db or EXPERIMENTOS_DB")
        deadline = self._clock() + timeout
        # The file lock is taken before DuckDB reads the headers and released only after
        # close() has checkpointed and released DuckDB's own lock.
        with self._process_file_lock(deadline):
            connection = self._open(deadline)
            try:
                if not self._ready:
                    self._migrate(connection)
                    self._ready = True
                yield connection
            except duckdb.Error as error:  # e.g. a truncated file is found only when a query reads it
                raise self._storage_error(error) from None
            finally:
                # A checkpoint on close that fails (a full disk) loses nothing: what was committed is
                # in the write-ahead log, which the next open replays, so the operation did succeed.
                with suppress(duckdb.Error):
                    connection.close()

    def _transaction(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with self._connection() as connection:
            for attempt in range(5):
                connection.execute("BEGIN TRANSACTION")
                try:
                    result = work(connection)
                    connection.execute("COMMIT")
                    return result
                except duckdb.TransactionException as error:
                    _rollback(connection)
                    # A commit that could not be written (a full disk) is a TransactionException
                    # too, but retrying it cannot help: only a write-write conflict is retried.
                    failure = self._storage_error(error)
                    if "failed to commit" in str(error).lower() or isinstance(failure, DiskFullError):
                        raise failure from None
                    if attempt == 4:
                        raise DatabaseError(f"{self.path}: too many write conflicts; try again") from None
                    time.sleep(0.01 * (attempt + 1))
                except duckdb.Error as error:
                    _rollback(connection)
                    raise self._storage_error(error) from None
                except OSError as error:  # writing a large input beside the database
                    _rollback(connection)
                    raise self._storage_error(error) from None
                except BaseException:
                    _rollback(connection)
                    raise
        raise AssertionError("unreachable")

    # -- schema ------------------------------------------------------------------------------
    def _migrate(self, connection: duckdb.DuckDBPyConnection) -> None:
        try:
            connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                               "name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp())")
        except duckdb.Error as error:
            if type(self._storage_error(error)) is not DatabaseError:  # a full disk, a damaged file
                raise self._storage_error(error) from None
            raise DatabaseError(f"{self.path} cannot be written: {str(error).splitlines()[0]}") from None
        row = connection.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        current = int(row[0]) if row else 0
        if current > latest_version():
            raise SchemaTooNewError(f"{self.path} has schema version {current}, but this ExperimentOS only knows up to "
                                    f"{latest_version()}; upgrade ExperimentOS to use it")
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            connection.execute("BEGIN TRANSACTION")
            try:
                connection.execute(migration.sql)
                connection.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                                   [migration.version, migration.name])
                connection.execute("COMMIT")
            except duckdb.Error as error:
                _rollback(connection)
                if "primary key" in str(error).lower() or "already exists" in str(error).lower():
                    continue  # another process applied it first
                if type(self._storage_error(error)) is not DatabaseError:  # a full disk, a damaged file
                    raise self._storage_error(error) from None
                raise DatabaseError(f"migration {migration.version} failed: {str(error).splitlines()[0]}") from None

    def schema_version(self) -> int:
        with self._connection() as connection:
            row = connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file (before copying it as a backup)."""
        with self._connection() as connection:
            connection.execute("CHECKPOINT")

    # -- writes ------------------------------------------------------------------------------
    def save_analysis(self, experiment: NewExperiment, analysis: NewAnalysis) -> tuple[int, int]:
        """Store a new experiment with its first analysis in one transaction; returns (experiment id, analysis id)."""
        return self.save_analyses([(experiment, analysis)])[0]

    def save_analyses(self, items: Sequence[tuple[NewExperiment, NewAnalysis]]) -> list[tuple[int, int]]:
        """Store many new experiments, each with its first analysis, in one transaction (all or nothing).

        A pipeline saving a folder of exports pays for one connection and one commit.
        """
        def work(connection: duckdb.DuckDBPyConnection) -> list[tuple[int, int]]:
            saved = []
            for experiment, analysis in items:
                row = connection.execute(
                    "INSERT INTO experiments (name, primary_metric, hypothesis, owner, tags, mde, planned_sample, "
                    "start_date, end_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    _charter_values(experiment)).fetchone()
                assert row is not None
                experiment_id = int(row[0])
                analysis_id = self._insert_analysis(connection, experiment_id, analysis)
                if analysis.author is not None:
                    insert_audit_event(connection, "saved", analysis.author, experiment_id=experiment_id,
                                       analysis_id=analysis_id)
                saved.append((experiment_id, analysis_id))
            return saved
        return self._transaction(work)

    def add_analysis(self, experiment_id: int, analysis: NewAnalysis) -> int:
        """Store another analysis of an existing experiment."""
        def work(connection: duckdb.DuckDBPyConnection) -> int:
            if connection.execute("SELECT 1 FROM experiments WHERE id = ?", [experiment_id]).fetchone() is None:
                raise NotFoundError(f"experiment {experiment_id} does not exist; list them with 'experimentos history'")
            analysis_id = self._insert_analysis(connection, experiment_id, analysis)
            if analysis.author is not None:
                insert_audit_event(connection, "look_added", analysis.author, experiment_id=experiment_id,
                                   analysis_id=analysis_id)
            return analysis_id
        return self._transaction(work)

    def _insert_analysis(self, connection: duckdb.DuckDBPyConnection, experiment_id: int, analysis: NewAnalysis) -> int:
        report = analysis.report
        report_text = json.dumps(report, allow_nan=False, ensure_ascii=False)
        report_size = len(report_text.encode())
        if report_size > self.report_limit:
            raise ReportTooLargeError(
                f"the report of {analysis.filename} is {report_size / 2**20:.1f} MB of JSON, above the "
                f"{self.report_limit / 2**20:,.1f} MB stored reports may take (EXPERIMENTOS_REPORT_LIMIT_MB); nothing was "
                "saved: analyse it with fewer segments or metrics")
        sha = report["input"]["sha256"]
        if connection.execute("SELECT 1 FROM inputs WHERE sha256 = ?", [sha]).fetchone() is None:
            size = analysis.size()
            content = None
            if size <= self.inline_input_limit:
                content = analysis.content if analysis.content is not None else _read_verified(analysis, sha)
            else:
                self._store_input_file(analysis, sha)
            connection.execute("INSERT INTO inputs (sha256, filename, size, content) VALUES (?, ?, ?, ?)",
                               [sha, analysis.filename, size, content])
        summary = _primary_summary(report)
        row = connection.execute(
            "INSERT INTO analyses (experiment_id, input_sha256, request_json, policy_json, report_json, "
            "analytics_version, decision, health, primary_treatment, absolute_effect, absolute_ci_low, "
            "absolute_ci_high, relative_effect, relative_ci_low, relative_ci_high, p_value, author) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [experiment_id, sha, json.dumps(analysis.request, sort_keys=True), json.dumps(analysis.policy, sort_keys=True),
             report_text, str(report.get("analytics_version", "")),
             report["decision"]["outcome"], report["health"]["status"], *summary.values(), analysis.author]).fetchone()
        assert row is not None
        return int(row[0])

    def save_memo(self, analysis_id: int, markdown: str, *, notes: str | None = None, author: str | None = None) -> MemoVersion:
        """Store a new memo version (1, 2, …) for an analysis."""
        def work(connection: duckdb.DuckDBPyConnection) -> MemoVersion:
            if connection.execute("SELECT 1 FROM analyses WHERE id = ?", [analysis_id]).fetchone() is None:
                raise NotFoundError(f"analysis {analysis_id} does not exist")
            row = named_row(connection.execute(
                "INSERT INTO memos (analysis_id, version, markdown, notes, author) "
                "SELECT ?, coalesce(max(version), 0) + 1, ?, ?, ? FROM memos WHERE analysis_id = ? "
                f"RETURNING {_MEMO_COLUMNS}",
                [analysis_id, markdown, notes, author, analysis_id]))
            assert row is not None
            memo = row_to_memo(row)
            if author is not None:
                insert_audit_event(connection, "annotated", author, analysis_id=analysis_id,
                                   detail=f"memo version {memo.version}")
            return memo
        return self._transaction(work)

    def update_experiment(self, experiment_id: int, experiment: NewExperiment) -> ExperimentRecord:
        def work(connection: duckdb.DuckDBPyConnection) -> ExperimentRecord:
            row = named_row(connection.execute(
                f"UPDATE experiments SET name = ?, primary_metric = ?, hypothesis = ?, owner = ?, tags = ?, mde = ?, "
                f"planned_sample = ?, start_date = ?, end_date = ? WHERE id = ? RETURNING {_EXPERIMENT_COLUMNS}",
                [*_charter_values(experiment), experiment_id]))
            if row is None:
                raise NotFoundError(f"experiment {experiment_id} does not exist; list them with 'experimentos history'")
            return row_to_experiment(row)
        return self._transaction(work)

    # -- reads -------------------------------------------------------------------------------
    def experiment(self, experiment_id: int) -> ExperimentRecord:
        with self._connection(read=True) as connection:
            row = named_row(connection.execute(f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?",
                                                [experiment_id]))
        if row is None:
            raise NotFoundError(f"experiment {experiment_id} does not exist; list them with 'experimentos history'")
        return row_to_experiment(row)

    def analyses(self, experiment_id: int) -> tuple[AnalysisRecord, ...]:
        with self._connection(read=True) as connection:
            rows = named_rows(connection.execute(
                _ANALYSIS_SELECT.format(analyses="analyses") + " WHERE a.experiment_id = ? ORDER BY a.id",
                [experiment_id]))
        return tuple(row_to_analysis(r) for r in rows)

    def analysis(self, analysis_id: int) -> AnalysisRecord:
        with self._connection(read=True) as connection:
            row = named_row(connection.execute(
                _ANALYSIS_SELECT.format(analyses="analyses") + " WHERE a.id = ?", [analysis_id]))
        if row is None:
            raise NotFoundError(f"analysis {analysis_id} does not exist")
        return row_to_analysis(row)

    def latest_analysis(self, experiment_id: int) -> AnalysisRecord:
        """The experiment's latest analysis (see :data:`_LATEST_ANALYSES`); :class:`NotFoundError` when it has none."""
        with self._connection(read=True) as connection:
            row = named_row(connection.execute(
                f"WITH {_LATEST_ANALYSES} " + _ANALYSIS_SELECT.format(analyses="latest") + " WHERE a.experiment_id = ?",
                [experiment_id]))
        if row is None:
            raise NotFoundError(f"experiment {experiment_id} has no analysis")
        return row_to_analysis(row)

    def input_content(self, sha256: str) -> bytes:
        """The stored input file's bytes (see :meth:`input_path` to avoid loading a large one)."""
        path = self.input_path(sha256)
        if path is not None:
            return path.read_bytes()
        with self._connection(read=True) as connection:
            row = connection.execute("SELECT content FROM inputs WHERE sha256 = ?", [sha256]).fetchone()
        assert row is not None and row[0] is not None
        return bytes(row[0])

    def input_path(self, sha256: str) -> Path | None:
        """Where a large stored input file is kept (``None`` for one stored inside the database).

        Raises :class:`NotFoundError` when there is no such input, or its file has gone missing."""
        with self._connection(read=True) as connection:
            row = connection.execute("SELECT content IS NULL FROM inputs WHERE sha256 = ?", [sha256]).fetchone()
        if row is None:
            raise NotFoundError(f"no stored input with sha256 {sha256}")
        if not row[0]:
            return None
        path = self.inputs_dir / f"{sha256}.bin"
        if not path.is_file():
            raise NotFoundError(f"the stored input file {path} is missing; it was moved or deleted "
                                "(keep the .inputs folder next to the database)")
        return path

    def _store_input_file(self, analysis: NewAnalysis, sha256: str) -> None:
        """Write a large input to ``inputs_dir`` (content-addressed, atomically, checking its sha256)."""
        target = self.inputs_dir / f"{sha256}.bin"
        if target.is_file():
            return
        partial = self.inputs_dir / f"{sha256}.{os.getpid()}.{threading.get_ident()}.part"
        try:
            self.inputs_dir.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with open(partial, "wb") as out:
                for chunk in _chunks(analysis):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha256:
                raise DatabaseError(f"{analysis.filename} changed since it was analysed; analyse it again, then save")
            partial.replace(target)
        except OSError as error:
            if error.errno in _DISK_FULL_ERRNOS:
                raise self._storage_error(error) from None
            raise DatabaseError(f"cannot store {analysis.filename} in {self.inputs_dir}: "
                                f"{error.strerror or error}") from None
        finally:
            partial.unlink(missing_ok=True)

    def memos(self, analysis_id: int) -> tuple[MemoVersion, ...]:
        with self._connection(read=True) as connection:
            rows = named_rows(connection.execute(f"SELECT {_MEMO_COLUMNS} FROM memos WHERE analysis_id = ? "
                                                  "ORDER BY version", [analysis_id]))
        return tuple(row_to_memo(r) for r in rows)

    def count_experiments(self) -> int:
        with self._connection(read=True) as connection:
            row = connection.execute("SELECT count(*) FROM experiments").fetchone()
        return int(row[0]) if row else 0

    def history(self, query: HistoryQuery = HistoryQuery()) -> HistoryPage:
        """Experiments with their latest analysis, newest first, filtered and paged."""
        where, parameters = _history_filters(query)
        # The rule is read from the report JSON of the page's rows only: read in the filtered
        # query it was parsed for every experiment (0.1 s of the 0.2 s at 10,000 experiments).
        sql = f"""
            WITH {_LATEST_ANALYSES}, page AS (
                SELECT e.id AS experiment_id, e.name, e.primary_metric, e.tags, e.owner, l.id AS analysis_id,
                       l.decision, l.health, l.relative_effect, l.relative_ci_low, l.relative_ci_high, l.p_value,
                       e.created_at, l.primary_treatment, count(*) OVER () AS total
                FROM experiments e LEFT JOIN latest l ON l.experiment_id = e.id
                WHERE {where}
                ORDER BY e.created_at DESC, e.id DESC
                LIMIT ? OFFSET ?)
            SELECT page.*, json_extract_string(a.report_json, '$.decision.rule') AS rule
            FROM page LEFT JOIN analyses a ON a.id = page.analysis_id
            ORDER BY page.created_at DESC, page.experiment_id DESC
        """
        with self._connection(read=True) as connection:
            rows = named_rows(connection.execute(sql, [*parameters, query.limit, query.offset]))
            total = int(rows[0]["total"]) if rows else 0
            if not rows and query.offset:
                counted = connection.execute(f"WITH {_LATEST_ANALYSES} SELECT count(*) FROM experiments e "
                                             f"LEFT JOIN latest l ON l.experiment_id = e.id WHERE {where}",
                                             parameters).fetchone()
                total = int(counted[0]) if counted else 0
        return HistoryPage(tuple(row_to_history(row) for row in rows), total, query.limit, query.offset)

    def portfolio(self, query: HistoryQuery = HistoryQuery()) -> PortfolioSummary:
        """Counts of launch / hold / rollback, the median relative lift of launches and the
        decisions per day, over every experiment the filters of ``query`` match (its limit and
        offset are ignored: the summary is of the whole filtered set)."""
        where, parameters = _history_filters(query)
        totals_sql = f"""
            WITH {_LATEST_ANALYSES}
            SELECT count(*) AS experiments,
                   count(*) FILTER (WHERE l.decision = ?) AS launched,
                   count(*) FILTER (WHERE l.decision = ?) AS held,
                   count(*) FILTER (WHERE l.decision = ?) AS rolled_back,
                   count(*) FILTER (WHERE l.id IS NULL) AS not_analysed
            FROM experiments e LEFT JOIN latest l ON l.experiment_id = e.id
            WHERE {where}
        """
        # A launch's lift is read in its metric's better direction, from the report JSON, in a
        # statement of its own whose WHERE keeps the launches only: as a FILTER clause of the
        # totals, every experiment's report was parsed (0.16 s at 10,000 experiments).
        launches_sql = f"""
            WITH {_LATEST_ANALYSES}
            SELECT median(CASE WHEN json_extract_string(l.report_json, '$.comparisons[0].primary.better') = 'lower'
                               THEN -l.relative_effect ELSE l.relative_effect END) AS median_launch_lift,
                   count(l.relative_effect) AS launches_with_lift
            FROM experiments e JOIN latest l ON l.experiment_id = e.id
            WHERE {where} AND l.decision = ?
        """
        decisions = [Outcome.LAUNCH.value, Outcome.HOLD.value, Outcome.ROLLBACK.value]
        timeline_sql = f"""
            WITH {_LATEST_ANALYSES}
            SELECT CAST(l.created_at AS DATE) AS day, l.decision, count(*) AS count
            FROM experiments e JOIN latest l ON l.experiment_id = e.id
            WHERE {where}
            GROUP BY day, l.decision
            ORDER BY day, l.decision
        """
        with self._connection(read=True) as connection:
            totals = named_row(connection.execute(totals_sql, [*decisions, *parameters]))
            launches = named_row(connection.execute(launches_sql, [*parameters, Outcome.LAUNCH.value]))
            timeline = named_rows(connection.execute(timeline_sql, parameters))
        assert totals is not None and launches is not None
        return row_to_portfolio({**totals, **launches}, timeline)

    def compare(self, experiment_ids: Sequence[int]) -> tuple[ComparisonRow, ...]:
        """The latest primary effect and CI of each experiment, in the order asked, with the arm
        (``treatment`` vs ``control``), the metric's type and whether the effect is trustworthy."""
        ids = list(dict.fromkeys(int(i) for i in experiment_ids))
        if not ids:
            return ()
        sql = f"""
            WITH {_LATEST_ANALYSES}
            SELECT e.id AS experiment_id, e.name, l.id AS analysis_id, l.primary_treatment AS treatment,
                   e.primary_metric AS charter_metric, l.decision, l.absolute_effect, l.absolute_ci_low,
                   l.absolute_ci_high, l.relative_effect, l.relative_ci_low, l.relative_ci_high, l.p_value, l.health,
                   json_extract_string(l.report_json, '$.decision.rule') AS rule,
                   json_extract_string(l.report_json, '$.comparisons[0].control') AS control,
                   json_extract_string(l.report_json, '$.comparisons[0].primary.type') AS metric_type,
                   json_extract_string(l.report_json, '$.comparisons[0].primary.metric') AS report_metric
            FROM experiments e JOIN latest l ON l.experiment_id = e.id
            WHERE e.id IN (SELECT unnest(?::BIGINT[]))
        """
        with self._connection(read=True) as connection:
            rows = {int(row["experiment_id"]): row for row in named_rows(connection.execute(sql, [ids]))}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise NotFoundError(f"experiment(s) {', '.join(map(str, missing))} do not exist or have no analysis")
        return tuple(row_to_comparison(rows[i]) for i in ids)
