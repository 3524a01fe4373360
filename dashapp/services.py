"""Glue between ingest, analytics and storage: one function per thing a user does."""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import analytics
from analytics import DEFAULT_POLICY, ExperimentInfo, InputInfo, Policy, Report
from storage.database import ExperimentDatabase, NewAnalysis, NewExperiment
from storage.ingest import FileReader, LoadedFile

__all__ = [
    "AnalysisRequest",
    "ReplayResult",
    "analyze_loaded",
    "analyze_path",
    "prepare_save",
    "replay_analysis",
    "report_json",
    "request_to_mapping",
    "save_report",
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

    @property
    def ratios(self) -> tuple[tuple[str, str], ...]:
        """(numerator, denominator) columns of the ratio metrics the policy declares for user-level files."""
        return tuple((m.numerator or "", m.denominator or "") for m in self.policy.ratio_metrics())


def analyze_loaded(loaded: LoadedFile, request: AnalysisRequest) -> Report:
    """Validate a read file and analyse it; bad data gives a Blocked report, never an exception."""
    name = request.name or Path(loaded.path).stem or "experiment"
    issues = loaded.issues
    data = None
    rows = 0
    segments: tuple[analytics.Segment, ...] = ()
    if loaded.user_level is not None:
        validation = analytics.validate_user_level(
            loaded.user_level, policy=request.policy, control=request.control, primary=request.primary
        )
        data, issues = validation.data, (*issues, *validation.issues)
        rows = loaded.user_level.rows
        segments = validation.segments
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
    )


def analyze_path(path: str | Path, request: AnalysisRequest, *, reader: FileReader | None = None) -> Report:
    """Read and analyse one file. Raises :class:`storage.InputFileError` if it cannot be opened."""
    if reader is not None:
        return analyze_loaded(reader.read_path(path, segments=request.segments, ratios=request.ratios), request)
    with FileReader() as own:
        return analyze_loaded(own.read_path(path, segments=request.segments, ratios=request.ratios), request)


def report_json(report: Report) -> dict[str, Any]:
    return analytics.report_to_dict(report)


# -- storage -------------------------------------------------------------------------------------


def request_to_mapping(request: AnalysisRequest, name: str) -> dict[str, Any]:
    """What replay needs besides the file and the policy (``name``: the resolved experiment name)."""
    return {"name": name, "hypothesis": request.hypothesis, "control": request.control,
            "primary": request.primary, "segments": list(request.segments)}


def save_report(database: ExperimentDatabase, report: Report, request: AnalysisRequest, *, content: bytes,
                filename: str, charter: NewExperiment | None = None) -> tuple[int, int]:
    """Store a new experiment with this analysis and its input bytes; returns (experiment id, analysis id)."""
    return database.save_analysis(*prepare_save(report, request, content=content, filename=filename, charter=charter))


def prepare_save(report: Report, request: AnalysisRequest, *, filename: str, content: bytes | None = None,
                 source: Path | None = None, charter: NewExperiment | None = None) -> tuple[NewExperiment, NewAnalysis]:
    """The records that :func:`save_report` stores (for bulk saving many reports at once); the
    input is given as its bytes or, so that a large file is never read into memory, its path."""
    body = report_json(report)
    experiment = charter or NewExperiment(name=report.experiment.name,
                                          primary_metric=report.experiment.primary_metric,
                                          hypothesis=report.experiment.hypothesis)
    analysis = NewAnalysis(report=body, request=request_to_mapping(request, report.experiment.name),
                           policy=analytics.policy_to_mapping(request.policy), filename=filename, content=content,
                           source=source)
    return experiment, analysis


@dataclass(frozen=True)
class ReplayResult:
    """``version_change``: the stored report came from another schema / rules / analytics version and
    the same input (sha256 equal), so its ``differences`` are what today's version computes
    differently — not tampering."""

    analysis_id: int
    identical: bool
    differences: tuple[str, ...]
    replayed: dict[str, Any]
    version_change: tuple[str, ...] = ()

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


def replay_analysis(database: ExperimentDatabase, analysis_id: int) -> ReplayResult:
    """Re-run a stored analysis from its stored input bytes and policy and compare the reports.

    Every field is compared, the analytics version included, so a changed method is never
    hidden; the report carries no timestamps.
    """
    record = database.analysis(analysis_id)
    stored_path = database.input_path(record.input_sha256)
    stored_request = record.request
    request = AnalysisRequest(name=stored_request.get("name"), hypothesis=stored_request.get("hypothesis"),
                              control=stored_request.get("control"), primary=stored_request.get("primary"),
                              policy=analytics.policy_from_mapping(record.policy),
                              segments=tuple(stored_request.get("segments") or ()))
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


def request_from_form(*, name: str | None, hypothesis: str | None, control: str | None, primary: str | None,
                      split: str | None, alpha: float | None = None, planned_mde: float | None = None,
                      planned_mde_relative: bool = False, segments: str | None = None,
                      metrics: dict[str, dict[str, Any]] | None = None, mde_text: str | None = None,
                      require_non_inferiority: bool = False) -> AnalysisRequest:
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
                           primary=clean(primary), policy=policy, segments=segment_columns)


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
    path = staged_path(staging, sha256)
    if not path.exists():
        raise UploadRejectedError(f"{filename} is no longer on the server; upload it again")
    with FileReader(on_progress=on_progress) as reader:
        loaded = reader.read_path(path, segments=request.segments, ratios=request.ratios, name=filename)
    return analyze_loaded(loaded, replace(request, name=request.name or Path(filename).stem))


def analyze_upload(content: bytes, filename: str, request: AnalysisRequest, *, staging: Path,
                   limit_bytes: int = DEFAULT_UPLOAD_LIMIT_BYTES,
                   on_progress: Callable[[float], None] | None = None) -> Report:
    """Analyse uploaded bytes and keep them (content-addressed) so the analysis can be saved later.

    Raises :class:`UploadRejectedError` when the file is larger than ``limit_bytes``.
    ``on_progress`` receives DuckDB's percentage done while the file is scanned.
    """
    if len(content) > limit_bytes:
        raise UploadRejectedError(
            f"{filename} is {len(content) / 2**20:.1f} MB, above the upload limit of {limit_bytes / 2**20:.0f} MB; "
            "aggregate it first or raise the limit (EXPERIMENTOS_UPLOAD_LIMIT_MB)")
    with FileReader(on_progress=on_progress) as reader:
        loaded = reader.read_bytes(content, filename, segments=request.segments, ratios=request.ratios)
    report = analyze_loaded(loaded, replace(request, name=request.name or Path(filename).stem))
    staging.mkdir(parents=True, exist_ok=True)
    target = staged_path(staging, loaded.sha256)
    if not target.exists():
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(content)
        temporary.replace(target)
    return report


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
    return AnalysisRequest(primary=SAMPLE_PRIMARY.get(path.name), policy=sample_policy(path))


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
