"""Spark as a data source: analyse a table, path or query, and replay it (issue 15).

The scan runs on Spark (:mod:`storage.spark`); only the sufficient statistics come back, and
they are analysed exactly as a user-level file's (:func:`dashapp.services.analyze_loaded`).
The stored input of a Spark analysis is the query text plus those statistics (JSON) and its
sha256, which is the report's ``input.sha256``. Replay checks two things: the stored report
still follows from the stored statistics (tampering or a version change, as for files), and the
query still gives those statistics — when it does not, the *data* changed, and replay says so
instead of calling it a mismatch.

The server keeps one Spark session for its life (:class:`SparkService`): a Spark Connect
session is cheap to share between threads, and starting a local one costs ~20 s.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dashapp.services import AnalysisRequest, ReplayResult, analyze_loaded, report_differences, report_json
from storage.files import LoadedFile
from storage.spark import (
    SPARK_REMOTE_ENV,
    SparkConnection,
    SparkInput,
    SparkRead,
    input_from_content,
    load_stored_input,
    open_session,
    read_spark,
    summary_to_mapping,
)

__all__ = [
    "SparkAnalysis",
    "SparkService",
    "analyze_spark",
    "loaded_of",
    "remote_from",
    "replay_spark",
]


def remote_from(option: str | None) -> str | None:
    """The Spark remote: the ``--spark-remote`` option, else ``SPARK_REMOTE``, else ``None``."""
    value = (option or os.environ.get(SPARK_REMOTE_ENV, "")).strip()
    return value or None


def loaded_of(read: SparkRead) -> LoadedFile:
    """A Spark scan as the :class:`LoadedFile` the analysis takes (user-level, no file)."""
    return LoadedFile(read.spark_input.name, None, (), read.sha256, len(read.content), "spark", read.summary)


@dataclass(frozen=True)
class SparkAnalysis:
    """The report JSON of a Spark input and what to store for it (``read.content``, ``read.sha256``)."""

    report: dict[str, Any]
    read: SparkRead

    @property
    def filename(self) -> str:
        """The stored input's name in the database (History shows it as the file)."""
        kind = self.read.spark_input.kind
        return f"spark-{kind}.json"


def analyze_spark(spark: SparkConnection, spark_input: SparkInput, request: AnalysisRequest, *,
                  on_progress: Callable[[float], None] | None = None) -> SparkAnalysis:
    """Scan ``spark_input`` on Spark and analyse it. Raises :class:`storage.errors.SparkError`
    (one line saying what to do) when Spark cannot read it."""
    read = read_spark(spark, spark_input, segments=request.segments, ratios=request.ratios, on_progress=on_progress)
    report = report_json(analyze_loaded(loaded_of(read), request))
    if request.charter.name is None:  # "SQL: SELECT ..." is no experiment name; a table's or path's last part is
        report["experiment"]["name"] = _default_name(spark_input)
    return SparkAnalysis(report, read)


def _default_name(spark_input: SparkInput) -> str:
    if spark_input.kind == "sql":
        return "Spark query"
    last = spark_input.text.strip().rstrip("/").split("/")[-1].split(".")[-1 if spark_input.kind == "table" else 0]
    return last or "Spark input"


class SparkService:
    """One Spark session shared by the server's jobs, opened on first use and closed with the server."""

    def __init__(self, remote: str) -> None:
        self.remote = remote
        self._connection: SparkConnection | None = None
        self._lock = threading.Lock()

    def connection(self) -> SparkConnection:
        """The open session (opened now if needed). Raises :class:`storage.errors.SparkError`."""
        with self._lock:
            if self._connection is None or self._connection.session is None:
                self._connection = open_session(self.remote)
            return self._connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _without_nan(value: Any) -> Any:
    """NaN as text, so that a column holding NaN compares equal to itself."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value


def _summary_differences(stored: Any, fresh: Any) -> list[str]:
    return report_differences(_without_nan(stored), _without_nan(fresh), "statistics")


def replay_spark(stored_report: dict[str, Any], content: bytes, request: AnalysisRequest, *,
                 remote: str | None, analysis_id: int) -> ReplayResult | None:
    """Replay a Spark analysis (``None`` when ``content`` is not a stored Spark input).

    The stored statistics are analysed again and compared with the stored report, as a file's
    would be; then, when a Spark ``remote`` is given, the query runs again: statistics that
    differ beyond rounding are reported in ``data_changed`` (the data moved on, the analysis did
    not). Raises :class:`storage.errors.SparkError` when Spark cannot run it."""
    found = input_from_content(content)
    if found is None:
        return None
    spark_input, summary = found
    loaded = load_stored_input(spark_input.name, content, hashlib.sha256(content).hexdigest(), request.segments,
                               request.ratios)
    assert loaded is not None  # input_from_content recognised it
    fresh = report_json(analyze_loaded(loaded, request))
    if request.charter.name is None and isinstance(stored_report.get("experiment"), dict):
        fresh["experiment"]["name"] = stored_report["experiment"].get("name")
    differences = tuple(report_differences(stored_report, fresh))
    versions = tuple(
        f"{key} {stored_report.get(key, '?')} → {fresh[key]}"
        for key in ("schema_version", "rules_version", "analytics_version") if stored_report.get(key) != fresh[key])
    data_changed: tuple[str, ...] = ()
    rerun = "the query was not run again (no Spark remote: give --spark-remote or set SPARK_REMOTE)"
    if remote is not None:
        with open_session(remote) as spark:
            now = read_spark(spark, spark_input, segments=request.segments, ratios=request.ratios)
        data_changed = tuple(_summary_differences(summary_to_mapping(summary), summary_to_mapping(now.summary)))
        rerun = "the query gives the same statistics" if not data_changed else \
            f"the query now gives different statistics ({len(data_changed)} difference(s))"
    return ReplayResult(analysis_id, not differences, differences, fresh,
                        versions if differences else (), data_changed=data_changed, data_note=rerun)
