"""Glue between ingest, analytics and storage: one function per thing a user does."""

from __future__ import annotations

from dataclasses import dataclass, field
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


def analyze_loaded(loaded: LoadedFile, request: AnalysisRequest) -> Report:
    """Validate a read file and analyse it; bad data gives a Blocked report, never an exception."""
    name = request.name or Path(loaded.path).stem or "experiment"
    issues = loaded.issues
    data = None
    rows = 0
    if loaded.table is not None:
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
        input_info=InputInfo(kind="aggregated", rows=rows, sha256=loaded.sha256),
        analytics_version=analytics.__version__,
    )


def analyze_path(path: str | Path, request: AnalysisRequest, *, reader: FileReader | None = None) -> Report:
    """Read and analyse one file. Raises :class:`storage.InputFileError` if it cannot be opened."""
    if reader is not None:
        return analyze_loaded(reader.read_path(path), request)
    with FileReader() as own:
        return analyze_loaded(own.read_path(path), request)


def report_json(report: Report) -> dict[str, Any]:
    return analytics.report_to_dict(report)


# -- storage -------------------------------------------------------------------------------------


def request_to_mapping(request: AnalysisRequest, report: Report) -> dict[str, Any]:
    """What replay needs besides the file and the policy (the resolved name included)."""
    return {"name": report.experiment.name, "hypothesis": request.hypothesis, "control": request.control,
            "primary": request.primary}


def save_report(database: ExperimentDatabase, report: Report, request: AnalysisRequest, *, content: bytes,
                filename: str, charter: NewExperiment | None = None) -> tuple[int, int]:
    """Store a new experiment with this analysis and its input bytes; returns (experiment id, analysis id)."""
    return database.save_analysis(*prepare_save(report, request, content=content, filename=filename, charter=charter))


def prepare_save(report: Report, request: AnalysisRequest, *, content: bytes, filename: str,
                 charter: NewExperiment | None = None) -> tuple[NewExperiment, NewAnalysis]:
    """The records that :func:`save_report` stores (for bulk saving many reports at once)."""
    body = report_json(report)
    experiment = charter or NewExperiment(name=report.experiment.name,
                                          primary_metric=report.experiment.primary_metric,
                                          hypothesis=report.experiment.hypothesis)
    analysis = NewAnalysis(report=body, request=request_to_mapping(request, report),
                           policy=analytics.policy_to_mapping(request.policy), filename=filename, content=content)
    return experiment, analysis


@dataclass(frozen=True)
class ReplayResult:
    analysis_id: int
    identical: bool
    differences: tuple[str, ...]
    replayed: dict[str, Any]


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
    return [] if stored == fresh else [f"{path}: stored {stored!r}, replayed {fresh!r}"]


def replay_analysis(database: ExperimentDatabase, analysis_id: int) -> ReplayResult:
    """Re-run a stored analysis from its stored input bytes and policy and compare the reports.

    Every field is compared, the analytics version included, so a changed method is never
    hidden; the report carries no timestamps.
    """
    record = database.analysis(analysis_id)
    content = database.input_content(record.input_sha256)
    stored_request = record.request
    request = AnalysisRequest(name=stored_request.get("name"), hypothesis=stored_request.get("hypothesis"),
                              control=stored_request.get("control"), primary=stored_request.get("primary"),
                              policy=analytics.policy_from_mapping(record.policy))
    with FileReader() as reader:
        loaded = reader.read_bytes(content, record.filename)
    fresh = report_json(analyze_loaded(loaded, request))
    differences = tuple(_differences(record.report, fresh))
    return ReplayResult(analysis_id, not differences, differences, fresh)
