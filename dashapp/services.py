"""Glue between ingest, analytics and storage: one function per thing a user does."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import analytics
from analytics import DEFAULT_POLICY, ExperimentInfo, InputInfo, Policy, Report
from analytics.decision import RULE_NUMBERS
from dashapp.isolation import (
    IsolationError,
    WorkerCrashedError,
    WorkerOutOfMemoryError,
    WorkerPool,
    WorkerTimeoutError,
    default_pool,
)
from storage.database import ExperimentDatabase, NewAnalysis, NewExperiment
from storage.ingest import MAX_COLUMNS, FileReader, LoadedFile

T = TypeVar("T")

__all__ = [
    "AnalysisRequest",
    "ReplayResult",
    "SessionRejectedError",
    "UnreadableFileError",
    "analyze_isolated",
    "analyze_loaded",
    "analyze_path",
    "prepare_save",
    "replay_analysis",
    "report_json",
    "report_problems",
    "request_to_mapping",
    "save_report",
    "sign_saved",
    "verify_saved",
]


@dataclass(frozen=True)
class AnalysisRequest:
    """What the user asked for besides the file."""

    name: str | None = None
    hypothesis: str | None = None
    control: str | None = None
    primary: str | None = None
    policy: Policy = field(default_factory=lambda: DEFAULT_POLICY)
    segments: tuple[str, ...] = ()
    cumulative: bool = False  # a daily export's rows are running totals, not each day's new counts
    planned_sample: int | None = None  # the charter's total users: interim looks and the sequential tuning

    @property
    def ratios(self) -> tuple[tuple[str, str], ...]:
        """(numerator, denominator) columns of the ratio metrics the policy declares for user-level files."""
        return tuple((m.numerator or "", m.denominator or "") for m in self.policy.ratio_metrics())


def analyze_loaded(loaded: LoadedFile, request: AnalysisRequest) -> Report:
    """Validate a read file and analyse it; bad data gives a Blocked report, never an exception."""
    if loaded.file_format != "spark":
        return _analyze_loaded(loaded, request)
    try:
        return _analyze_loaded(loaded, request)
    except (ArithmeticError, TypeError, ValueError):
        # Statistics ExperimentOS stored come out of its own scan; numbers no scan can give (a
        # negative count, NaN sums, more conversions than users) mean the file was made or edited
        # by hand: refused like any unusable input, never a traceback.
        refused = replace(loaded, user_level=None, issues=(analytics.Issue(
            "invalid_spark_input", "blocked",
            f"{Path(loaded.path).name} holds statistics no Spark scan gives (a negative count, a sum that is not "
            "a number or more successes than users); upload the exported CSV or Parquet file instead, or run the "
            "Spark query again."),))
        return _analyze_loaded(refused, request)


def _analyze_loaded(loaded: LoadedFile, request: AnalysisRequest) -> Report:
    name = request.name or Path(loaded.path).stem or "experiment"
    issues = loaded.issues
    data = None
    rows = 0
    segments: tuple[analytics.Segment, ...] = ()
    days: tuple[tuple[str, analytics.ExperimentData], ...] = ()
    new_users: tuple[tuple[str, Any], ...] = ()
    if loaded.user_level is not None:
        validation = analytics.validate_user_level(
            loaded.user_level, policy=request.policy, control=request.control, primary=request.primary
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
            loaded.table, policy=request.policy, control=request.control, primary=request.primary
        )
        data, issues = validation.data, (*issues, *validation.issues)
        rows = len(loaded.table.rows)
    primary = data.primary.name if data is not None else (request.primary or "conversions")
    return analytics.analyze(
        data,
        tuple(issues),
        policy=request.policy,
        experiment=ExperimentInfo(name=name, hypothesis=request.hypothesis, primary_metric=primary),
        input_info=InputInfo(kind=loaded.kind, rows=rows, sha256=loaded.sha256),
        analytics_version=analytics.__version__,
        segments=segments,
        days=days,
        new_users=new_users,
        planned_sample=request.planned_sample,
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
                                                       primary=request.primary)
            return validation.data, (*issues, *validation.issues), (), ()
        return None, (*issues, *split.issues), (), ()
    validation = analytics.validate_aggregated(split.totals, policy=request.policy, control=request.control,
                                               primary=request.primary)
    days = []
    if validation.data is not None:
        for day, cumulative in split.days:
            found = analytics.validate_aggregated(cumulative, policy=request.policy, control=request.control,
                                                  primary=request.primary).data
            if found is not None and found.variants == validation.data.variants:
                days.append((day, found))
    return validation.data, (*issues, *split.issues, *validation.issues), tuple(days), split.new_users


def analyze_path(path: str | Path, request: AnalysisRequest, *, reader: FileReader | None = None) -> Report:
    """Read and analyse one file. Raises :class:`storage.InputFileError` if it cannot be opened."""
    if reader is not None:
        return analyze_loaded(reader.read_path(path, segments=request.segments, ratios=request.ratios), request)
    with FileReader() as own:
        return analyze_loaded(own.read_path(path, segments=request.segments, ratios=request.ratios), request)


def report_json(report: Report) -> dict[str, Any]:
    return analytics.report_to_dict(report)


# -- isolated analysis: untrusted files are read and analysed in a worker process ----------------


def analyze_file(path: str, filename: str, request: AnalysisRequest,
                 on_progress: Callable[[float], None] | None = None) -> Report:
    """Read and analyse the file at ``path`` (``filename`` names it in messages). What an isolated
    worker runs for :func:`analyze_staged`. Raises :class:`storage.InputFileError` when the file
    cannot be opened."""
    with FileReader(on_progress=on_progress) as reader:
        loaded = reader.read_path(path, segments=request.segments, ratios=request.ratios, name=filename)
    return analyze_loaded(loaded, request)


def analyze_file_report(path: str, filename: str, request: AnalysisRequest,
                        on_progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """:func:`analyze_file` as the report JSON: what an isolated worker runs for
    :func:`analyze_isolated` (plain data back to the server)."""
    return report_json(analyze_file(path, filename, request, on_progress))


def analyze_isolated(path: str | Path, filename: str, request: AnalysisRequest, *,
                     on_progress: Callable[[float], None] | None = None,
                     pool: WorkerPool | None = None) -> dict[str, Any]:
    """:func:`analyze_file_report` in a worker process with memory, CPU and time limits
    (:mod:`dashapp.isolation`; ``pool`` default: the process's); returns the report JSON. Raises
    :class:`UnreadableFileError` when the worker crashed, ran out of memory or time, and
    :class:`storage.InputFileError` when the file cannot be opened."""
    return _isolated(analyze_file_report, path, filename, request, on_progress, pool)


def _isolated(target: Callable[..., T], path: str | Path, filename: str, request: AnalysisRequest,
              on_progress: Callable[[float], None] | None, pool: WorkerPool | None = None) -> T:
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
    """What replay needs besides the file and the policy (``name``: the resolved experiment name)."""
    values: dict[str, Any] = {"name": name, "hypothesis": request.hypothesis, "control": request.control,
                              "primary": request.primary, "segments": list(request.segments)}
    if request.cumulative:
        values["cumulative"] = True
    if request.planned_sample is not None:
        values["planned_sample"] = request.planned_sample
    return values


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
    body = report if isinstance(report, dict) else report_json(report)
    named = body["experiment"]
    experiment = charter or NewExperiment(name=named["name"], primary_metric=named["primary_metric"],
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


def _differences(stored: Any, fresh: Any, path: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(fresh, dict):
        found = []
        for key in sorted(set(stored) | set(fresh)):
            if key not in stored or key not in fresh:
                found.append(f"{path}.{key}: only in {'stored' if key in stored else 'replayed'} report")
            else:
                found.extend(_differences(stored[key], fresh[key], f"{path}.{key}"))
        return found
    if isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            return [f"{path}: {len(stored)} items stored, {len(fresh)} replayed"]
        return [d for i, (a, b) in enumerate(zip(stored, fresh, strict=True)) for d in _differences(a, b, f"{path}[{i}]")]
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


def replay_analysis(database: ExperimentDatabase, analysis_id: int, *, spark_remote: str | None = None
                    ) -> ReplayResult:
    """Re-run a stored analysis from its stored input bytes and policy and compare the reports.

    Every field is compared, the analytics version included, so a changed method is never
    hidden; the report carries no timestamps.
    ``spark_remote``: where a Spark input's query is re-run (without it, only its stored
    statistics are re-analysed).
    """
    record = database.analysis(analysis_id)
    stored_path = database.input_path(record.input_sha256)
    stored_request = record.request
    request = AnalysisRequest(name=stored_request.get("name"), hypothesis=stored_request.get("hypothesis"),
                              control=stored_request.get("control"), primary=stored_request.get("primary"),
                              policy=analytics.policy_from_mapping(record.policy),
                              segments=tuple(stored_request.get("segments") or ()),
                              cumulative=bool(stored_request.get("cumulative", False)),
                              planned_sample=stored_request.get("planned_sample"))
    if stored_path is None and record.filename.startswith("spark-"):  # a Spark query and its statistics
        from dashapp.spark_source import replay_spark

        replayed = replay_spark(record.report if isinstance(record.report, dict) else {},
                                database.input_content(record.input_sha256), request, remote=spark_remote,
                                analysis_id=analysis_id)
        if replayed is not None:
            return replayed
    with FileReader() as reader:
        if stored_path is not None:  # a large input kept as a file: read in place
            loaded = reader.read_path(stored_path, segments=request.segments, ratios=request.ratios, name=record.filename)
        else:
            loaded = reader.read_bytes(database.input_content(record.input_sha256), record.filename,
                                       segments=request.segments, ratios=request.ratios)
    fresh = report_json(analyze_loaded(loaded, request))
    differences = tuple(_differences(record.report, fresh))
    stored = record.report if isinstance(record.report, dict) else {}
    same_input = (stored.get("input") or {}).get("sha256") == fresh["input"]["sha256"]
    versions = tuple(
        f"{key} {stored.get(key, 1 if key != 'analytics_version' else '?')} → {fresh[key]}"
        for key in ("schema_version", "rules_version", "analytics_version")
        if stored.get(key, 1 if key != "analytics_version" else None) != fresh[key])
    return ReplayResult(analysis_id, not differences, differences, fresh,
                        versions if differences and same_input else ())


# -- dashboard sessions --------------------------------------------------------------------------

DEFAULT_UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024
DEFAULT_LARGE_UPLOAD_LIMIT_BYTES = 4 * 1024 * 1024 * 1024  # streamed to disk, never held in memory
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "data"


_SHA256 = re.compile(r"[0-9a-f]{64}")


class UploadRejectedError(ValueError):
    """An upload that is refused before analysis (too large, not decodable)."""


class UnreadableFileError(UploadRejectedError):
    """A file whose reading or analysis failed in its worker process (a native crash, more memory
    or time than a worker may use); the server or CLI process is unharmed. The message names the
    file and what to do."""


class SessionRejectedError(UploadRejectedError):
    """A session state from the browser that the server will not act on: a saved analysis it did
    not hand out, form values that do not validate, or an input that is no longer staged.

    A subclass of :class:`UploadRejectedError`, so every callback that shows an upload's refusal
    shows this one too, with its message."""


# -- saved analyses handed to a session ----------------------------------------------------------
# The session lives in the browser, so its ``saved`` ids are only references: the server signs
# the ids it hands out (after a save, or when a stored experiment is opened) and acts on a
# ``saved`` only when the signature is its own.

_SAVED_CONTEXT = b"experimentos-saved-analysis-v1"


def sign_saved(secret: bytes, experiment_id: int, analysis_id: int) -> str:
    """The token of a saved analysis handed to a session: HMAC-SHA256 over both ids under the
    app's secret (RFC 2104), hex. Raises ``ValueError`` for an empty ``secret``."""
    if not secret:
        raise ValueError("secret must be non-empty bytes")
    message = b"%s:%d:%d" % (_SAVED_CONTEXT, experiment_id, analysis_id)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_saved(secret: bytes, saved: Any) -> tuple[int, int]:
    """``(experiment_id, analysis_id)`` of a session's ``saved`` entry when the server signed it.

    Raises :class:`SessionRejectedError` for anything else (missing or wrong token, ids that are
    not integers), so nothing is stored against an analysis the session was never given."""
    refusal = SessionRejectedError("this session does not hold an analysis saved or opened here; "
                                   "open the experiment from History (or save it again) and retry")
    if not isinstance(saved, dict):
        raise refusal
    experiment_id, analysis_id, token = saved.get("experiment_id"), saved.get("analysis_id"), saved.get("token")
    if not (isinstance(experiment_id, int) and isinstance(analysis_id, int) and isinstance(token, str)) \
            or isinstance(experiment_id, bool) or isinstance(analysis_id, bool):
        raise refusal
    if not hmac.compare_digest(sign_saved(secret, experiment_id, analysis_id), token):
        raise refusal
    return experiment_id, analysis_id


# -- the report JSON contract, checked before a stored report is shown ---------------------------

_OUTCOMES = frozenset(o.value for o in analytics.Outcome)
_HEALTH_STATUSES = frozenset(s.value for s in analytics.HealthStatus)
_GUARDRAIL_STATUSES = frozenset(s.value for s in analytics.GuardrailStatus)
_RULES = frozenset(RULE_NUMBERS)
_SEVERITIES = frozenset({"warning", "blocked"})
_INPUT_KINDS = frozenset({"aggregated", "user_level"})
_METRIC_TYPES = frozenset({"proportion", "mean", "ratio"})
_DIRECTIONS = frozenset({"positive", "negative", "none"})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _optional_number(value: Any) -> bool:
    return value is None or _is_number(value)


def _interval_ok(value: Any) -> bool:
    return value is None or (isinstance(value, list) and len(value) == 2 and all(_optional_number(v) for v in value))


def _metric_problems(metric: Any, path: str, *, guardrail: bool = False) -> list[str]:
    if not isinstance(metric, dict):
        return [f"{path} is not an object"]
    problems = []
    if not isinstance(metric.get("metric"), str):
        problems.append(f"{path}.metric is not a text")
    if metric.get("type") not in _METRIC_TYPES:
        problems.append(f"{path}.type {metric.get('type')!r} is not one of {sorted(_METRIC_TYPES)}")
    for arm in ("control", "treatment"):
        side = metric.get(arm)
        if not isinstance(side, dict) or not _is_number(side.get("n")) or not _optional_number(side.get("value")):
            problems.append(f"{path}.{arm} needs a number n and a value")
    for key in ("absolute_effect", "relative_effect", "p_value"):
        if not _optional_number(metric.get(key)):
            problems.append(f"{path}.{key} is not a number")
    for key in ("absolute_ci", "relative_ci"):
        if not _interval_ok(metric.get(key)):
            problems.append(f"{path}.{key} is not an interval [low, high]")
    if guardrail:
        if metric.get("status") not in _GUARDRAIL_STATUSES:
            problems.append(f"{path}.status {metric.get('status')!r} is not one of {sorted(_GUARDRAIL_STATUSES)}")
    else:
        if not isinstance(metric.get("significant"), bool):
            problems.append(f"{path}.significant is not true or false")
        if metric.get("direction") not in _DIRECTIONS:
            problems.append(f"{path}.direction {metric.get('direction')!r} is not one of {sorted(_DIRECTIONS)}")
    return problems


def _decision_problems(decision: Any, treatments: set[str]) -> list[str]:
    if not isinstance(decision, dict):
        return ["decision is not an object"]
    problems = []
    outcome = decision.get("outcome")
    if outcome not in _OUTCOMES:
        problems.append(f"decision.outcome {outcome!r} is not one of launch, hold, rollback")
    if decision.get("rule") not in _RULES:
        problems.append(f"decision.rule {decision.get('rule')!r} is not a known rule")
    reasons = decision.get("reasons")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        problems.append("decision.reasons is not a list of texts")
    winner = decision.get("winner")
    if outcome == "launch" and (not isinstance(winner, str) or winner not in treatments):
        problems.append(f"decision.winner {winner!r} is not a treatment of the report, yet the outcome is launch")
    elif outcome in _OUTCOMES and outcome != "launch" and winner is not None:
        problems.append(f"decision.winner {winner!r} is set, yet the outcome is {outcome}")
    arms = decision.get("arms", [])
    if not isinstance(arms, list):
        return [*problems, "decision.arms is not a list"]
    for index, arm in enumerate(arms):
        if not isinstance(arm, dict) or arm.get("outcome") not in _OUTCOMES or arm.get("rule") not in _RULES \
                or not isinstance(arm.get("treatment"), str):
            problems.append(f"decision.arms[{index}] needs a treatment, an outcome and a known rule")
    return problems


def _health_problems(health: Any) -> list[str]:
    if not isinstance(health, dict):
        return ["health is not an object"]
    problems = []
    if health.get("status") not in _HEALTH_STATUSES:
        problems.append(f"health.status {health.get('status')!r} is not one of healthy, warning, blocked")
    issues = health.get("issues")
    if not isinstance(issues, list):
        problems.append("health.issues is not a list")
    else:
        for index, issue in enumerate(issues):
            if not isinstance(issue, dict) or not isinstance(issue.get("code"), str) \
                    or issue.get("severity") not in _SEVERITIES or not isinstance(issue.get("message"), str):
                problems.append(f"health.issues[{index}] needs a code, a severity (warning or blocked) and a message")
    srm = health.get("srm")
    if srm is not None and (not isinstance(srm, dict) or srm.get("status") not in _HEALTH_STATUSES
                            or not _optional_number(srm.get("p_value")) or not isinstance(srm.get("observed"), dict)
                            or not isinstance(srm.get("expected_share"), dict)):
        problems.append("health.srm needs a status, a p_value, observed counts and expected shares")
    return problems


def report_problems(report: Any) -> tuple[str, ...]:
    """What keeps a stored report from being shown: the required keys, types and closed
    vocabularies of the report JSON contract (SPEC §5, schema versions 1 and 2) — outcome in
    launch / hold / rollback with a winner exactly when it launches, health status in healthy /
    warning / blocked, guardrail statuses, rules, metric types. Empty when the report is fine.

    Fields added after schema 1 (``secondary``, ``arms``, ``segments``, ``risks``) are checked only
    when present. This is a check of shape, not of the numbers: ``replay`` compares those."""
    if not isinstance(report, dict):
        return ("the report is not an object",)
    version = report.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= analytics.SCHEMA_VERSION:
        return (f"schema_version {version!r} is not one this version reads (1 to {analytics.SCHEMA_VERSION})",)
    problems: list[str] = []
    experiment = report.get("experiment")
    if not isinstance(experiment, dict) or not isinstance(experiment.get("name"), str) \
            or not isinstance(experiment.get("primary_metric"), str) \
            or not isinstance(experiment.get("hypothesis"), str | None):
        problems.append("experiment needs a name and a primary_metric (texts)")
    input_info = report.get("input")
    if not isinstance(input_info, dict) or input_info.get("kind") not in _INPUT_KINDS \
            or not _is_number(input_info.get("rows")) or not isinstance(input_info.get("sha256"), str):
        problems.append("input needs a kind (aggregated or user_level), rows and a sha256")
    problems += _health_problems(report.get("health"))
    comparisons = report.get("comparisons")
    treatments: set[str] = set()
    if not isinstance(comparisons, list):
        problems.append("comparisons is not a list")
        comparisons = []
    for index, comparison in enumerate(comparisons):
        path = f"comparisons[{index}]"
        if not isinstance(comparison, dict) or not isinstance(comparison.get("control"), str) \
                or not isinstance(comparison.get("treatment"), str):
            problems.append(f"{path} needs a control and a treatment")
            continue
        treatments.add(comparison["treatment"])
        problems += _metric_problems(comparison.get("primary"), f"{path}.primary")
        for key, guardrail in (("guardrails", True), ("secondary", False)):
            entries = comparison.get(key, [] if key == "secondary" else None)
            if not isinstance(entries, list):
                problems.append(f"{path}.{key} is not a list")
                continue
            for position, entry in enumerate(entries):
                problems += _metric_problems(entry, f"{path}.{key}[{position}]", guardrail=guardrail)
    problems += _decision_problems(report.get("decision"), treatments)
    policy = report.get("policy")
    if not isinstance(policy, dict) or not _is_number(policy.get("alpha")):
        problems.append("policy needs a number alpha")
    for key in ("segments", "segment_flags", "risks"):
        if not isinstance(report.get(key, []), list):
            problems.append(f"{key} is not a list")
    segments = report.get("segments")
    if isinstance(segments, list) and not all(isinstance(row, dict) for row in segments):
        problems.append("segments holds something other than objects")
    return tuple(problems)


def request_from_form(*, name: str | None, hypothesis: str | None, control: str | None, primary: str | None,
                      split: str | None, alpha: float | None = None, planned_mde: float | None = None,
                      planned_mde_relative: bool = False, segments: str | None = None,
                      metrics: dict[str, dict[str, Any]] | None = None, mde_text: str | None = None,
                      require_non_inferiority: bool = False, cumulative: bool = False,
                      sequential: bool = False, planned_sample: int | None = None) -> AnalysisRequest:
    """Build a request from form fields. Raises ``ValueError`` with a message for the user.

    ``metrics`` is the policy's ``[metrics]`` table (name → ``{better, margin, severe_margin}``,
    margins as ``0.002`` or ``"1%"``), parsed as a policy file's would be. ``mde_text`` is the
    charter's planned MDE as typed (``5%``, ``0.5 pp``, ``0.005``): it becomes the numeric
    ``planned_mde`` that rule 7 sizes for.
    """
    changes: dict[str, Any] = {}
    if metrics:
        changes["metrics"] = analytics.policy_from_mapping({"metrics": metrics}).metrics
    if mde_text and mde_text.strip() and planned_mde is None:
        planned_mde, planned_mde_relative = analytics.parse_mde(mde_text)
    if require_non_inferiority:
        changes["require_non_inferiority"] = True
    if sequential:
        changes["sequential"] = True
    if split and split.strip():
        changes["expected_split"] = analytics.parse_split(split)
    if alpha is not None:
        changes["alpha"] = alpha
    if planned_mde is not None:
        changes["planned_mde"] = planned_mde
        changes["planned_mde_relative"] = planned_mde_relative
    policy = replace(DEFAULT_POLICY, **changes) if changes else DEFAULT_POLICY

    def clean(value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    segment_columns = tuple(part.strip() for part in (segments or "").split(",") if part.strip())
    return AnalysisRequest(name=clean(name), hypothesis=clean(hypothesis), control=clean(control),
                           primary=clean(primary), policy=policy, segments=segment_columns, cumulative=cumulative,
                           planned_sample=planned_sample if planned_sample and planned_sample > 0 else None)


def staged_path(staging: Path, sha256: str) -> Path:
    """Where the uploaded file with this sha256 is kept (the hash comes from the browser's
    session too, so anything but 64 hex digits is refused rather than joined to a path)."""
    if not _SHA256.fullmatch(sha256 or ""):
        raise UploadRejectedError("the session does not name a valid uploaded file; upload it again")
    return staging / f"{sha256}.bin"


def analyze_staged(staging: Path, sha256: str, filename: str, request: AnalysisRequest, *,
                   on_progress: Callable[[float], None] | None = None) -> Report:
    """Analyse an upload already kept in ``staging`` (large uploads, re-runs) from disk, without
    reading it into memory; ``filename`` names it in messages and the default experiment name."""
    # Read and analysed in an isolated worker process (dashapp.isolation), which returns the Report.
    return _staged_job(analyze_file, staging, sha256, filename, request, on_progress)


def _staged_job(target: Callable[..., T], staging: Path, sha256: str, filename: str, request: AnalysisRequest,
                on_progress: Callable[[float], None] | None) -> T:
    """``target`` (an analysis of a file) on the staged upload ``sha256``, in an isolated worker."""
    path = staged_path(staging, sha256)
    if not path.exists():
        raise UploadRejectedError(f"{filename} is no longer on the server; upload it again")
    return _isolated(target, path, filename, replace(request, name=request.name or Path(filename).stem), on_progress)


def analyze_upload(content: bytes, filename: str, request: AnalysisRequest, *, staging: Path,
                   limit_bytes: int = DEFAULT_UPLOAD_LIMIT_BYTES,
                   on_progress: Callable[[float], None] | None = None) -> Report:
    """Analyse uploaded bytes and keep them (content-addressed) so the analysis can be saved later.

    Raises :class:`UploadRejectedError` when the file is larger than ``limit_bytes``.
    ``on_progress`` receives DuckDB's percentage done while the file is scanned.
    """
    return analyze_staged(staging, _stage(content, filename, staging, limit_bytes), filename, request,
                          on_progress=on_progress)


def analyze_staged_report(staging: Path, sha256: str, filename: str, request: AnalysisRequest, *,
                          on_progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """:func:`analyze_staged` in an isolated worker (:func:`analyze_isolated`): the report JSON.
    Raises :class:`UploadRejectedError` (:class:`UnreadableFileError` when the worker failed)."""
    return _staged_job(analyze_file_report, staging, sha256, filename, request, on_progress)


def analyze_upload_report(content: bytes, filename: str, request: AnalysisRequest, *, staging: Path,
                          limit_bytes: int = DEFAULT_UPLOAD_LIMIT_BYTES,
                          on_progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """:func:`analyze_upload` in an isolated worker: the bytes are staged first (content-addressed,
    so the analysis can be saved later) and the worker reads them from there; returns the report
    JSON. Raises :class:`UploadRejectedError` (:class:`UnreadableFileError` when the worker failed)."""
    return analyze_staged_report(staging, _stage(content, filename, staging, limit_bytes), filename, request,
                                 on_progress=on_progress)


def _stage(content: bytes, filename: str, staging: Path, limit_bytes: int) -> str:
    """Keep uploaded bytes in ``staging`` under their sha256 (returned), for the worker to read and
    for a later save. Raises :class:`UploadRejectedError` when they are larger than ``limit_bytes``."""
    if len(content) > limit_bytes:
        raise UploadRejectedError(
            f"{filename} is {len(content) / 2**20:.1f} MB, above the upload limit of {limit_bytes / 2**20:.0f} MB; "
            "aggregate it first or raise the limit (EXPERIMENTOS_UPLOAD_LIMIT_MB)")
    staging.mkdir(parents=True, exist_ok=True)
    sha256 = hashlib.sha256(content).hexdigest()
    target = staged_path(staging, sha256)
    if not target.exists():
        with tempfile.NamedTemporaryFile(dir=staging, prefix=f"{sha256}.", suffix=".tmp", delete=False) as handle:
            handle.write(content)
        Path(handle.name).replace(target)
    return sha256


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
    return AnalysisRequest(primary=SAMPLE_PRIMARY.get(path.name), policy=sample_policy(path),
                           cumulative="cumulative" in path.stem)


def load_samples(database: ExperimentDatabase) -> int:
    """Save every sample file as an experiment when the database is empty; returns how many were added."""
    if database.count_experiments() > 0:
        return 0
    items = []
    with FileReader() as reader:
        for path in sample_files():
            request = sample_request(path)
            report = analyze_loaded(reader.read_path(path), request)
            charter = NewExperiment(name=report.experiment.name, primary_metric=report.experiment.primary_metric,
                                    tags=("sample",))
            items.append(prepare_save(report, request, content=path.read_bytes(), filename=path.name, charter=charter))
    database.save_analyses(items)
    return len(items)


# -- looks: further analyses of a stored experiment (SPEC §3.1) ----------------------------------


class LookBlockedError(UploadRejectedError):
    """A look whose data is Blocked: it is not stored (a look that cannot be analysed would only
    hide the previous one). ``report`` holds the analysis, so its health issues can be shown."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


def look_request(stored_request: dict[str, Any], stored_policy: dict[str, Any], *,
                 planned_sample: int | None = None) -> AnalysisRequest:
    """How a new look is analysed: as the experiment's stored analysis was (same name, primary,
    control, segments, policy and cumulative switch); ``planned_sample`` from the charter wins over
    the stored one. Raises ``ValueError`` when the stored policy no longer parses."""
    stored_sample = stored_request.get("planned_sample")
    return AnalysisRequest(name=stored_request.get("name"), hypothesis=stored_request.get("hypothesis"),
                           control=stored_request.get("control"), primary=stored_request.get("primary"),
                           policy=analytics.policy_from_mapping(stored_policy),
                           segments=tuple(stored_request.get("segments") or ()),
                           cumulative=bool(stored_request.get("cumulative", False)),
                           planned_sample=planned_sample if planned_sample is not None else stored_sample)


def add_look(database: ExperimentDatabase, experiment_id: int, content: bytes, filename: str, *, staging: Path,
             limit_bytes: int = DEFAULT_UPLOAD_LIMIT_BYTES, author: str | None = None) -> tuple[int, Report]:
    """Analyse an uploaded file as a new look at a stored experiment and store it; returns
    ``(analysis id, report)``.

    The file is analysed on the server with the request and policy of the experiment's latest
    analysis and the charter's planned sample (:func:`look_request`), never with anything the
    browser sends. Raises :class:`storage.errors.NotFoundError` for an unknown experiment or one
    without an analysis, :class:`UploadRejectedError` for a file above ``limit_bytes`` and
    :class:`LookBlockedError` (nothing stored) when the data is Blocked."""
    experiment = database.experiment(experiment_id)
    latest = database.latest_analysis(experiment_id)
    request = look_request(latest.request, latest.policy, planned_sample=experiment.planned_sample)
    report = analyze_upload(content, filename, request, staging=staging, limit_bytes=limit_bytes)
    if report.health.status == analytics.HealthStatus.BLOCKED:
        raise LookBlockedError(f"{filename} is Blocked, so it was not stored as a look: fix the data and upload it "
                               "again", report)
    _, analysis = prepare_save(report, request, filename=filename, content=content, author=author)
    return database.add_analysis(experiment_id, analysis), report
