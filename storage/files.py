"""What a read result file is (:class:`LoadedFile`) and the caps on what is read, without DuckDB.

:mod:`storage.ingest` reads files with DuckDB; a process that only analyses what a worker read
(the CLI, which reads every file in a worker) takes the :class:`LoadedFile` back and never loads
DuckDB (~50 ms and ~10 MB at start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from analytics import Issue, IssueCode, RawTable, UserLevelSummary

__all__ = [
    "INPUT_CAP_CODES",
    "MAX_AGGREGATED_ROWS",
    "MAX_COLUMNS",
    "MAX_LINE_BYTES",
    "FileFormat",
    "LoadedFile",
]

FileFormat = Literal["csv", "parquet", "spark"]  # "spark": a table or query scanned by Spark (storage.spark)

# -- input caps: what a file may hold before it is refused (Blocked) without being read ----------

#: More columns than any experiment export needs. Wider files are refused before DuckDB reads them:
#: a user-level file with 6,000 columns crashed DuckDB (SIGFPE) in one aggregate, taking the server
#: down, and 4,000 columns cost 7.7 s of CPU.
MAX_COLUMNS = 500
#: The longest line of a CSV file, in bytes: an export's line is a few hundred bytes; a longer one
#: is not an export, and DuckDB would hold it whole.
MAX_LINE_BYTES = 1 << 20
#: Rows of an aggregated file read into Python (one row per variant, or per date and variant). A
#: 45 MB file with one row per user but no ``variant`` column took 2.6 GB as Python rows.
MAX_AGGREGATED_ROWS = 100_000
#: The Blocked codes of the caps above: the file was refused unread (the CLI exits 2 on them).
INPUT_CAP_CODES = frozenset({IssueCode.TOO_MANY_COLUMNS, IssueCode.LINE_TOO_LONG, IssueCode.TOO_MANY_ROWS})


@dataclass(frozen=True)
class LoadedFile:
    """A result file as read: its table (``None`` when unreadable), read issues and identity."""

    path: str
    table: RawTable | None
    issues: tuple[Issue, ...]
    sha256: str
    size: int
    file_format: FileFormat
    user_level: UserLevelSummary | None = None

    @property
    def kind(self) -> Literal["aggregated", "user_level"]:
        return "user_level" if self.user_level is not None else "aggregated"
