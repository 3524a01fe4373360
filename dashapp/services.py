"""Glue between ingest, analytics and storage: one function per thing a user does, shared by the
command line and the dashboard — analyse a file (in this process or an isolated worker), save a
report, replay a stored analysis, the sample files.

What only the dashboard does (uploads in the staging folder, sessions, looks) is in
:mod:`dashapp.workspace`, which this module never imports, so the CLI does not load it. DuckDB
(:mod:`storage.ingest`, :mod:`storage.database`) is imported where a file is read or a report
stored, not with this module: the CLI analyses in its own process what workers read, and never
loads DuckDB there unless it saves.
"""

from __future__ import annotations

import collections
import functools
import math
import os
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import analytics
from analytics import DEFAULT_POLICY, Charter, ExperimentInfo, InputInfo, Policy, Report
from analytics.distributions import special_functions
from dashapp.errors import (
    IsolationError,
    UnreadableFileError,
    WorkerCrashedError,
    WorkerOutOfMemoryError,
    WorkerTimeoutError,
)
from dashapp.isolation import Job, WorkerPool, default_pool
from storage.files import MAX_COLUMNS, LoadedFile

if TYPE_CHECKING:
    from storage.database import ExperimentDatabase, NewAnalysis, NewExperiment
    from storage.ingest import FileReader

T = TypeVar("T")

__all__ = [
    "BATCH_FILES",
    "BATCH_FILE_BYTES",
    "BATCH_FIRST_FILES",
    "REPLAY_ABSOLUTE_TOLERANCE",
    "REPLAY_RELATIVE_TOLERANCE",
    "SAMPLES_DIR",
    "SAMPLE_PRIMARY",
    "AnalysisRequest",
    "ReplayResult",
    "analyze_file",
    "analyze_file_report",
    "analyze_in_worker",
    "analyze_isolated",
    "analyze_isolated_batch",
    "analyze_loaded",
    "analyze_path",
    "load_samples",
    "prepare_save",
    "read_file",
    "read_files",
    "replay_analysis",
    "replay_report",
    "report_differences",
    "report_json",
    "request_from_mapping",
    "request_to_mapping",
    "sample_files",
    "sample_policy",
    "sample_request",
    "save_report",
    "unreadable_message",
]


@dataclass(frozen=True)
class AnalysisRequest:
    """What the user asked for besides the file: the experiment's ``charter`` (the analysis reads
    its name — ``None``: the file's stem —, hypothesis, primary metric — ``None``: the file's
    default — and planned sample, which places interim looks and tunes sequential inference) and
    how to analyse it."""

    charter: Charter = field(default_factory=Charter)
    control: str | None = None
    policy: Policy = field(default_factory=lambda: DEFAULT_POLICY)
    segments: tuple[str, ...] = ()
    cumulative: bool = False  # a daily export's rows are running totals, not each day's new counts

    @property
    def ratios(self) -> tuple[tuple[str, str], ...]:
        """(numerator, denominator) columns of the ratio metrics the policy declares for user-level files."""
        return tuple((m.numerator or "", m.denominator or "") for m in self.policy.ratio_metrics())


def analyze_loaded(loaded: LoadedFile, request: AnalysisRequest) -> Report:
    """Validate a read file and analyse it; bad data gives a Blocked report, never an exception."""
    if loaded.file_format != "spark":
        return _analyze_loaded(loaded, request)
    if loaded.user_level is not None and not _scan_could_give(loaded.user_level):
        return _refuse_spark_input(loaded, request)
    try:
        return _analyze_loaded(loaded, request)
    except (ArithmeticError, TypeError, ValueError):
        return _refuse_spark_input(loaded, request)


def _refuse_spark_input(loaded: LoadedFile, request: AnalysisRequest) -> Report:
    """Statistics ExperimentOS stored come out of its own scan; numbers no scan can give (a negative
    count, NaN sums, more conversions than users) mean the file was made or edited by hand: refused
    like any unusable input, never a traceback."""
    refused = replace(loaded, user_level=None, issues=(analytics.Issue(
        analytics.IssueCode.INVALID_SPARK_INPUT, "blocked",
        f"{Path(loaded.path).name} holds statistics no Spark scan gives (a negative count, a sum that is not "
        "a number or more successes than users); upload the exported CSV or Parquet file instead, or run the "
        "Spark query again."),))
    return _analyze_loaded(refused, request)


def _scan_could_give(summary: analytics.UserLevelSummary) -> bool:
    """Whether every column of a stored Spark input is what a scan gives: counts within the arm,
    finite moments, a variance ≥ 0, and a total equal to mean × count (to rounding). A column with
    NaN or infinite values is left to the analysis, which blocks it as ``non_finite``."""
    for variant in summary.variants:
        for column in variant.columns.values():
            if not 0 <= column.count <= variant.n or column.non_finite < 0:
                return False
            if column.non_finite:
                continue
            if not math.isfinite(column.total):
                return False
            if column.count and (column.mean is None or not math.isfinite(column.mean)):
                return False
            if column.variance is not None and not (math.isfinite(column.variance) and column.variance >= 0):
                return False
            if column.mean is not None and not math.isclose(column.mean * column.count, column.total, rel_tol=1e-9,
                                                            abs_tol=1e-9 * abs(column.total) + 1e-300):
                return False
    return True


def _analyze_loaded(loaded: LoadedFile, request: AnalysisRequest) -> Report:
    charter = request.charter
    name = charter.name or Path(loaded.path).stem or "experiment"
    issues = loaded.issues
    data = None
    rows = 0
    segments: tuple[analytics.Segment, ...] = ()
    days: tuple[tuple[str, analytics.ExperimentData], ...] = ()
    new_users: tuple[tuple[str, Any], ...] = ()
    if loaded.user_level is not None:
        validation = analytics.validate_user_level(
            loaded.user_level, policy=request.policy, control=request.control, primary=charter.primary_metric
        )
        data, issues = validation.data, (*issues, *validation.issues)
        rows = loaded.user_level.rows
        segments = validation.segments
        days, new_users = validation.days, validation.new_users
    elif loaded.table is not None and analytics.has_date_column(loaded.table):
        data, issues, days, new_users = _validate_daily(loaded.table, request, issues)
        rows = len(loaded.table.rows)
    elif loaded.table is not None:
        validation = analytics.validate_aggregated(
            loaded.table, policy=request.policy, control=request.control, primary=charter.primary_metric
        )
        data, issues = validation.data, (*issues, *validation.issues)
        rows = len(loaded.table.rows)
    primary = data.primary.name if data is not None else (charter.primary_metric or analytics.DEFAULT_PRIMARY_METRIC)
    return analytics.analyze(
        data,
        tuple(issues),
        policy=request.policy,
        experiment=ExperimentInfo(name=name, hypothesis=charter.hypothesis, primary_metric=primary),
        input_info=InputInfo(kind=loaded.kind, rows=rows, sha256=loaded.sha256),
        analytics_version=analytics.__version__,
        segments=segments,
        days=days,
        new_users=new_users,
        planned_sample=charter.planned_sample,
    )


def _validate_daily(table: analytics.RawTable, request: AnalysisRequest, issues: tuple[analytics.Issue, ...]
                    ) -> tuple[analytics.ExperimentData | None, tuple[analytics.Issue, ...],
                               tuple[tuple[str, analytics.ExperimentData], ...], tuple[tuple[str, Any], ...]]:
    """A daily export (SPEC §3.1): the totals are validated and analysed as any aggregated file; each
    date's cumulative table gives a point of the timeline (dates before every arm has users are left
    out of it)."""
    split = analytics.split_daily(table, cumulative=request.cumulative)
    if split.totals is None:
        if not split.issues:  # no variant / users column: the usual validation names what is missing
            validation = analytics.validate_aggregated(table, policy=request.policy, control=request.control,
                                                       primary=request.charter.primary_metric)
            return validation.data, (*issues, *validation.issues), (), ()
        return None, (*issues, *split.issues), (), ()
    validation = analytics.validate_aggregated(split.totals, policy=request.policy, control=request.control,
                                               primary=request.charter.primary_metric)
    days = []
    if validation.data is not None:
        for day, cumulative in split.days:
            found = analytics.validate_aggregated(cumulative, policy=request.policy, control=request.control,
                                                  primary=request.charter.primary_metric).data
            if found is not None and found.variants == validation.data.variants:
                days.append((day, found))
    return validation.data, (*issues, *split.issues, *validation.issues), tuple(days), split.new_users


def analyze_path(path: str | Path, request: AnalysisRequest, *, reader: FileReader | None = None) -> Report:
    """Read and analyse one file. Raises :class:`storage.InputFileError` if it cannot be opened."""
    if reader is not None:
        return analyze_loaded(reader.read_path(path, segments=request.segments, ratios=request.ratios), request)
    with _reader() as own:
        return analyze_loaded(own.read_path(path, segments=request.segments, ratios=request.ratios), request)


def _reader(*, on_progress: Callable[[float], None] | None = None) -> FileReader:
    """A :class:`storage.ingest.FileReader` (DuckDB imported here, at the first read)."""
    from storage.ingest import FileReader

    return FileReader(on_progress=on_progress)


def report_json(report: Report) -> dict[str, Any]:
    return analytics.report_to_dict(report)


# -- isolated analysis: untrusted files are read and analysed in a worker process ----------------


def read_file(path: str, filename: str, request: AnalysisRequest,
              on_progress: Callable[[float], None] | None = None) -> LoadedFile:
    """Read the file at ``path`` (``filename`` names it in messages) for ``request`` (its segment
    and ratio columns): what a worker runs for a file it reads alone. Raises
    :class:`storage.InputFileError` when the file cannot be opened."""
    with _reader(on_progress=on_progress) as reader:
        return reader.read_path(path, segments=request.segments, ratios=request.ratios, name=filename)


def read_files(paths: Sequence[str], request: AnalysisRequest) -> list[LoadedFile | Exception]:
    """:func:`read_file` of each path (named by its path), in order, with one DuckDB reader: what
    a worker runs for a batch of small files. A file that raises gives its exception in its
    place, so the caller raises them in the order a file-by-file run would have."""
    found: list[LoadedFile | Exception] = []
    with _reader() as reader:
        for path in paths:
            try:
                found.append(reader.read_path(path, segments=request.segments, ratios=request.ratios, name=path))
            except MemoryError:
                raise  # the worker answers "out of memory" for the batch
            except Exception as error:  # handed back in its place, raised by the caller in order
                found.append(error)
    return found


def analyze_file(path: str, filename: str, request: AnalysisRequest,
                 on_progress: Callable[[float], None] | None = None) -> Report:
    """Read and analyse the file at ``path`` (``filename`` names it in messages). What an isolated
    worker runs for :func:`analyze_staged`. Raises :class:`storage.InputFileError` when the file
    cannot be opened."""
    return analyze_loaded(read_file(path, filename, request, on_progress), request)


def analyze_file_report(path: str, filename: str, request: AnalysisRequest,
                        on_progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """:func:`analyze_file` as the report JSON: what an isolated worker runs for
    :func:`analyze_isolated` (plain data back to the server)."""
    return report_json(analyze_file(path, filename, request, on_progress))


#: Files up to this size are read together in one worker (a larger file gets a worker of its own,
#: with progress and the whole of the limits): the first BATCH_FIRST_FILES of a run of them, then
#: twice as many each time, up to BATCH_FILES — a small first batch so that analysing starts
#: early, larger ones later so that fewer workers start (each connects to DuckDB, ~20 ms).
BATCH_FILE_BYTES = 1 << 20
BATCH_FIRST_FILES = 16
BATCH_FILES = 256


def analyze_isolated_batch(paths: Sequence[str], request: AnalysisRequest, *, pool: WorkerPool,
                           on_progress: Callable[[int, float], None] | None = None) -> Iterator[dict[str, Any]]:
    """The report JSON of each path, in order (filename = path), each file read in a worker of
    ``pool`` and analysed in this process — what the CLI does.

    Consecutive small files (≤ :data:`BATCH_FILE_BYTES`) are read together in one worker
    (:data:`BATCH_FIRST_FILES`, then twice as many each time up to :data:`BATCH_FILES`); a larger
    file has a worker of its own, whose scan ``on_progress(index, percent)`` reports. The work is
    pipelined: the next worker reads while this process analyses what the last one read, and, at
    the start, imports ``scipy.special`` (~0.15 s) while the first one reads — so on two cores a
    folder costs about what reading it costs, and one file about what importing DuckDB and SciPy
    cost. When there is more than one worker's share, this process imports DuckDB too (once,
    while the first worker reads), so that the later workers, forked from it, need not.

    Raises :class:`UnreadableFileError` for the first file whose worker crashed or ran out of
    memory or time (a batch that fails is read again file by file, so the error names the file
    that caused it), and :class:`storage.InputFileError` for a file that cannot be opened."""
    jobs: collections.deque[tuple[int, list[str], Job[Any]]] = collections.deque()
    chunks = iter(_read_chunks(paths))

    def submit_next() -> None:
        chunk = next(chunks, None)
        if chunk is not None:
            start, batch = chunk
            job = (pool.submit(read_files, batch, request) if len(batch) > 1
                   else pool.submit(read_file, batch[0], batch[0], request, progress=on_progress is not None))
            jobs.append((start, batch, job))

    if not paths:
        return
    try:
        submit_next()
        special_functions()  # imported while the first worker reads
        if len(paths) > len(jobs[0][1]):  # more workers to come: fork them with DuckDB imported
            import storage.ingest  # noqa: F401
        while jobs:
            if pool.max_workers > 1:
                submit_next()  # the next worker reads while this process analyses
            start, batch, job = jobs.popleft()
            for loaded in _read_results(start, batch, job, request, pool, on_progress):
                yield report_json(analyze_loaded(loaded, request))
            if not jobs:  # a one-worker pool reads the next share only now
                submit_next()
    finally:
        for _, _, pending in jobs:
            pending.cancel()


def _read_chunks(paths: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """(index of the first, paths) of each worker's share: runs of small files (growing shares, see
    :func:`analyze_isolated_batch`), large files alone."""
    index, share = 0, BATCH_FIRST_FILES
    while index < len(paths):
        small = 0
        while small < share and index + small < len(paths) and _file_size(paths[index + small]) <= BATCH_FILE_BYTES:
            small += 1
        # After a large file (read alone), the next run of small ones starts small again.
        share = min(2 * share, BATCH_FILES) if small else BATCH_FIRST_FILES
        size = max(1, small)
        yield index, list(paths[index:index + size])
        index += size


def _read_results(start: int, batch: list[str], job: Job[Any], request: AnalysisRequest, pool: WorkerPool,
                  on_progress: Callable[[int, float], None] | None) -> Iterator[LoadedFile]:
    """What ``job`` read of ``batch`` (its first file is ``paths[start]``), in order; raises as
    :func:`analyze_isolated_batch` says."""
    if len(batch) == 1:
        progress = None if on_progress is None else functools.partial(on_progress, start)
        try:
            yield job.result(progress)
        except IsolationError as error:
            raise UnreadableFileError(unreadable_message(Path(batch[0]).name, error)) from None
        return
    try:
        results: list[LoadedFile | Exception] = job.result()
    except IsolationError:  # read them one by one, so the error names the file
        for path in batch:
            yield analyze_in_worker(read_file, path, path, request, None, pool)
        return
    for result in results:
        if isinstance(result, Exception):
            raise result
        yield result


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # missing or unreadable: the reader names the problem
        return 0


def analyze_isolated(path: str | Path, filename: str, request: AnalysisRequest, *,
                     on_progress: Callable[[float], None] | None = None,
                     pool: WorkerPool | None = None) -> dict[str, Any]:
    """:func:`analyze_file_report` in a worker process with memory, CPU and time limits
    (:mod:`dashapp.isolation`; ``pool`` default: the process's); returns the report JSON. Raises
    :class:`UnreadableFileError` when the worker crashed, ran out of memory or time, and
    :class:`storage.InputFileError` when the file cannot be opened."""
    return analyze_in_worker(analyze_file_report, path, filename, request, on_progress, pool)


def analyze_in_worker(target: Callable[..., T], path: str | Path, filename: str, request: AnalysisRequest,
                      on_progress: Callable[[float], None] | None, pool: WorkerPool | None = None) -> T:
    """``target(path, filename, request, on_progress=...)`` (:func:`analyze_file`,
    :func:`analyze_file_report` or :func:`read_file`) in an isolated worker of ``pool`` (default: the process's).
    Raises :class:`UnreadableFileError` (its message from :func:`unreadable_message`) when the
    worker gave no result."""
    try:
        return (pool or default_pool()).run(target, str(path), filename, request, on_progress=on_progress)
    except IsolationError as error:
        raise UnreadableFileError(unreadable_message(Path(filename).name, error)) from None


def unreadable_message(name: str, error: IsolationError) -> str:
    """What the user is told when the worker reading ``name`` gave no report (one line, no period)."""
    if isinstance(error, WorkerOutOfMemoryError):
        return (f"{name} could not be read: {error}; aggregate it or keep only the columns the analysis needs "
                "(the limit is EXPERIMENTOS_WORKER_MEMORY_MB)")
    if isinstance(error, WorkerTimeoutError):
        return (f"{name} could not be read: {error}; aggregate it or keep only the columns the analysis needs "
                "(the limit is EXPERIMENTOS_WORKER_TIMEOUT_SECONDS)")
    reason = str(error) if isinstance(error, WorkerCrashedError) else f"the reader failed ({error})"
    return (f"{name} could not be read: {reason}; export it again as a CSV (UTF-8) or Parquet file with one "
            f"header row and at most {MAX_COLUMNS} columns")


# -- storage -------------------------------------------------------------------------------------


def request_to_mapping(request: AnalysisRequest, name: str) -> dict[str, Any]:
    """What replay needs besides the file and the policy (``name``: the resolved experiment name),
    as stored with each analysis: ``name, hypothesis, control, primary, segments`` and, when set,
    ``cumulative`` and ``planned_sample`` (the keys every stored analysis has; read back by
    :func:`request_from_mapping`)."""
    charter = request.charter
    values: dict[str, Any] = {"name": name, "hypothesis": charter.hypothesis, "control": request.control,
                              "primary": charter.primary_metric, "segments": list(request.segments)}
    if request.cumulative:
        values["cumulative"] = True
    if charter.planned_sample is not None:
        values["planned_sample"] = charter.planned_sample
    return values


def request_from_mapping(stored_request: dict[str, Any], stored_policy: dict[str, Any]) -> AnalysisRequest:
    """The request a stored analysis was made with, from the mappings stored beside it
    (:func:`request_to_mapping` and :func:`analytics.policy_to_mapping`); keys an older version
    did not write take their defaults. Raises ``ValueError`` when the stored policy no longer parses."""
    charter = Charter(name=stored_request.get("name"), hypothesis=stored_request.get("hypothesis"),
                      primary_metric=stored_request.get("primary"), planned_sample=stored_request.get("planned_sample"))
    return AnalysisRequest(charter=charter, control=stored_request.get("control"),
                           policy=analytics.policy_from_mapping(stored_policy),
                           segments=tuple(stored_request.get("segments") or ()),
                           cumulative=bool(stored_request.get("cumulative", False)))


def save_report(database: ExperimentDatabase, report: Report, request: AnalysisRequest, *, content: bytes,
                filename: str, charter: NewExperiment | None = None) -> tuple[int, int]:
    """Store a new experiment with this analysis and its input bytes; returns (experiment id, analysis id)."""
    return database.save_analysis(*prepare_save(report, request, content=content, filename=filename, charter=charter))


def prepare_save(report: Report | dict[str, Any], request: AnalysisRequest, *, filename: str, content: bytes | None = None,
                 source: Path | None = None, charter: NewExperiment | None = None,
                 author: str | None = None) -> tuple[NewExperiment, NewAnalysis]:
    """The records that :func:`save_report` stores (for bulk saving many reports at once); the
    input is given as its bytes or, so that a large file is never read into memory, its path.
    ``author``: the signed-in user who stores it (recorded on the analysis and in the audit log).
    ``report`` may be the report JSON an isolated worker returned (:func:`analyze_isolated`)."""
    from storage.database import NewAnalysis

    body = report if isinstance(report, dict) else report_json(report)
    named = body["experiment"]
    experiment = charter or Charter(name=named["name"], primary_metric=named["primary_metric"],
                                    hypothesis=named.get("hypothesis"))
    analysis = NewAnalysis(report=body, request=request_to_mapping(request, named["name"]),
                           policy=analytics.policy_to_mapping(request.policy), filename=filename, content=content,
                           source=source, author=author)
    return experiment, analysis


@dataclass(frozen=True)
class ReplayResult:
    """``version_change``: the stored report came from another schema / rules / analytics version and
    the same input (sha256 equal), so its ``differences`` are what today's version computes
    differently — not tampering. For a Spark input (:mod:`dashapp.spark_source`), ``data_changed``
    lists how the query's statistics differ today from the stored ones (the data moved on; the
    stored analysis is intact when ``identical``), and ``data_note`` says whether the query ran."""

    analysis_id: int
    identical: bool
    differences: tuple[str, ...]
    replayed: dict[str, Any]
    version_change: tuple[str, ...] = ()
    data_changed: tuple[str, ...] = ()
    data_note: str = ""

    @property
    def tampered(self) -> bool:
        return not self.identical and not self.version_change


def report_differences(stored: Any, fresh: Any, path: str = "") -> list[str]:
    """Where two report JSONs (or parts of them, at ``path``) differ, one line each ("<path>: stored
    …, replayed …"); empty when equal. Decimal numbers are equal within
    :data:`REPLAY_RELATIVE_TOLERANCE` (see ``replay`` in the README)."""
    if isinstance(stored, dict) and isinstance(fresh, dict):
        found = []
        for key in sorted(set(stored) | set(fresh)):
            if key not in stored or key not in fresh:
                found.append(f"{path}.{key}: only in {'stored' if key in stored else 'replayed'} report")
            else:
                found.extend(report_differences(stored[key], fresh[key], f"{path}.{key}"))
        return found
    if isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            return [f"{path}: {len(stored)} items stored, {len(fresh)} replayed"]
        return [d for i, (a, b) in enumerate(zip(stored, fresh, strict=True)) for d in report_differences(a, b, f"{path}[{i}]")]
    if isinstance(stored, float) and isinstance(fresh, float) and math.isclose(
            stored, fresh, rel_tol=REPLAY_RELATIVE_TOLERANCE, abs_tol=REPLAY_ABSOLUTE_TOLERANCE):
        return []
    return [] if stored == fresh else [f"{path}: stored {stored!r}, replayed {fresh!r}"]


# DuckDB sums floating-point columns of a large file on several threads, in whatever order
# they finish, so the last bits of a mean or variance can differ between two runs of the same
# file (integer columns are summed exactly). Replay therefore compares decimal numbers to
# 1e-9 relative; everything else — counts, decisions, rules, texts — must be equal.
REPLAY_RELATIVE_TOLERANCE = 1e-9
REPLAY_ABSOLUTE_TOLERANCE = 1e-12


def replay_report(path: str | None, content: bytes | None, filename: str, request: AnalysisRequest
                  ) -> dict[str, Any]:
    """The report JSON of a stored input: the file at ``path`` (a large input kept beside the
    database) or its ``content`` bytes. What a worker runs for :func:`replay_analysis`."""
    with _reader() as reader:
        if path is not None:
            loaded = reader.read_path(path, segments=request.segments, ratios=request.ratios, name=filename)
        else:
            loaded = reader.read_bytes(content or b"", filename, segments=request.segments, ratios=request.ratios)
    return report_json(analyze_loaded(loaded, request))


def replay_analysis(database: ExperimentDatabase, analysis_id: int, *, spark_remote: str | None = None,
                    pool: WorkerPool | None = None) -> ReplayResult:
    """Re-run a stored analysis from its stored input bytes and policy and compare the reports.

    Every field is compared, the analytics version included, so a changed method is never
    hidden; the report carries no timestamps.
    ``spark_remote``: where a Spark input's query is re-run (without it, only its stored
    statistics are re-analysed). ``pool``: read and analyse the stored input in one of its
    workers, as :func:`analyze_isolated` does (the CLI's ``replay``: a stored upload is as
    untrusted as it was); raises :class:`UnreadableFileError` when the worker gave no report.
    Without it the work runs in this process.
    """
    record = database.analysis(analysis_id)
    stored_path = database.input_path(record.input_sha256)
    request = request_from_mapping(record.request, record.policy)
    if stored_path is None and record.filename.startswith("spark-"):  # a Spark query and its statistics
        from dashapp.spark_source import replay_spark

        replayed = replay_spark(record.report if isinstance(record.report, dict) else {},
                                database.input_content(record.input_sha256), request, remote=spark_remote,
                                analysis_id=analysis_id)
        if replayed is not None:
            return replayed
    content = None if stored_path is not None else database.input_content(record.input_sha256)
    source = None if stored_path is None else str(stored_path)
    if pool is None:
        fresh = replay_report(source, content, record.filename, request)
    else:
        try:
            fresh = pool.run(replay_report, source, content, record.filename, request)
        except IsolationError as error:
            raise UnreadableFileError(unreadable_message(record.filename, error)) from None
    differences = tuple(report_differences(record.report, fresh))
    stored = record.report if isinstance(record.report, dict) else {}
    same_input = (stored.get("input") or {}).get("sha256") == fresh["input"]["sha256"]
    versions = tuple(
        f"{key} {stored.get(key, 1 if key != 'analytics_version' else '?')} → {fresh[key]}"
        for key in ("schema_version", "rules_version", "analytics_version")
        if stored.get(key, 1 if key != "analytics_version" else None) != fresh[key])
    return ReplayResult(analysis_id, not differences, differences, fresh,
                        versions if differences and same_input else ())



# -- the sample files --------------------------------------------------------------------------


SAMPLES_DIR = Path(__file__).resolve().parent.parent / "data"


def sample_files() -> list[Path]:
    return sorted(SAMPLES_DIR.glob("sample_*.csv"))


#: The primary metric of the samples whose primary is not ``conversions``.
SAMPLE_PRIMARY = {"sample_continuous.csv": "revenue", "sample_lower_is_better.csv": "checkout_seconds",
                  "sample_ratio.csv": "ctr"}


def sample_policy(path: Path) -> Policy:
    """The policy in the ``<stem>.toml`` beside a sample (the CLI takes it with ``--policy``)."""
    sidecar = path.with_suffix(".toml")
    if not sidecar.exists():
        return DEFAULT_POLICY
    with sidecar.open("rb") as handle:
        return analytics.policy_from_mapping(tomllib.load(handle))


def sample_request(path: Path) -> AnalysisRequest:
    """How each sample is meant to be analysed: its primary metric and its policy."""
    return AnalysisRequest(charter=Charter(primary_metric=SAMPLE_PRIMARY.get(path.name)), policy=sample_policy(path),
                           cumulative="cumulative" in path.stem)


def load_samples(database: ExperimentDatabase) -> int:
    """Save every sample file as an experiment when the database is empty; returns how many were added."""
    if database.count_experiments() > 0:
        return 0
    items = []
    with _reader() as reader:
        for path in sample_files():
            request = sample_request(path)
            report = analyze_loaded(reader.read_path(path), request)
            charter = Charter(name=report.experiment.name, primary_metric=report.experiment.primary_metric,
                              tags=("sample",))
            items.append(prepare_save(report, request, content=path.read_bytes(), filename=path.name, charter=charter))
    database.save_analyses(items)
    return len(items)
