"""Glue between ingest, analytics and storage: one function per thing a user does."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import analytics
from analytics import DEFAULT_POLICY, ExperimentInfo, InputInfo, Policy, Report
from storage.ingest import FileReader, LoadedFile

__all__ = ["AnalysisRequest", "analyze_loaded", "analyze_path", "report_json"]


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
