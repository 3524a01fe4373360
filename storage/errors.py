"""Exceptions raised by :mod:`storage`.

Exception tree::

    StorageError                 base of everything storage raises on purpose
    ├── InputFileError           a result file cannot be used at all (missing, a directory, unreadable)
    ├── SparkError               the Spark engine cannot run the scan (one line saying what to do)
    │   ├── SparkUnavailableError  no pyspark, no Java for local mode, or the Connect server unreachable
    │   └── SparkInputError      the table, path or a column is missing, access denied, the SQL is wrong
    └── DatabaseError            the experiment database cannot be used
        ├── DatabaseLockedError  another process held the write lock for too long
        │   └── DatabaseBusyError  a read gave up quickly (its short deadline) behind a writer
        ├── DatabaseCorruptError the file at the database path is not a usable DuckDB database
        │                        (not DuckDB, or damaged: truncated, unreadable blocks)
        ├── DiskFullError        the disk holding the database (or its inputs) has no space left
        └── SchemaTooNewError    the database was written by a newer ExperimentOS
    NotFoundError                a requested experiment or analysis does not exist (also a StorageError)
    ReportTooLargeError          a report is larger than the cap on stored reports (also a StorageError)

Every message is one sentence a user can act on.
"""

from __future__ import annotations

__all__ = [
    "DatabaseBusyError",
    "DatabaseCorruptError",
    "DatabaseError",
    "DatabaseLockedError",
    "DiskFullError",
    "InputFileError",
    "NotFoundError",
    "ReportTooLargeError",
    "SchemaTooNewError",
    "SparkError",
    "SparkInputError",
    "SparkUnavailableError",
    "StorageError",
]


class StorageError(Exception):
    """Base class of the errors :mod:`storage` raises on purpose."""


class InputFileError(StorageError):
    """The input file cannot be used at all: missing, a directory, or not readable."""


class SparkError(StorageError):
    """The Spark engine could not run the scan. ``code`` names the cause for programs (``no_java``,
    ``unreachable``, ``table_missing``, ...); the message is one sentence saying what to do."""

    def __init__(self, message: str, *, code: str = "spark_error") -> None:
        super().__init__(message)
        self.code = code


class SparkUnavailableError(SparkError):
    """Spark cannot be used at all: pyspark is not installed, local mode has no Java, or the Spark
    Connect server does not answer."""


class SparkInputError(SparkError):
    """Spark runs but the input cannot be read: a missing table, path or column, permission
    denied, or a query Spark rejects."""


class DatabaseError(StorageError):
    """The experiment database cannot be opened or written."""


class DatabaseLockedError(DatabaseError):
    """Another process kept the database's write lock longer than the retry budget."""


class DatabaseBusyError(DatabaseLockedError):
    """A read gave up after its short deadline (``read_timeout``) because a writer held the database.

    Raised instead of waiting the full ``lock_timeout``, so that a page can answer at once (from
    data it read earlier, or with "try again in a moment"); nothing is wrong with the database."""


class DatabaseCorruptError(DatabaseError):
    """The file at the database path is not a DuckDB database this version can open, or it is damaged
    (truncated, blocks that cannot be read). The message names the file; restore it from a backup."""


class DiskFullError(DatabaseError):
    """The disk holding the database (or its ``.inputs`` folder) ran out of space during a write.

    Raised when the commit, checkpoint or input file could not be written (``ENOSPC``, DuckDB's
    "No space left on device"). The write was rolled back: what was committed before is intact,
    and the same save succeeds once space is freed."""


class SchemaTooNewError(DatabaseError):
    """The database was migrated by a newer ExperimentOS than this one."""


class NotFoundError(StorageError):
    """A requested experiment or analysis id does not exist."""


class ReportTooLargeError(StorageError):
    """A report's JSON is larger than the database accepts (``report_limit``, 5 MB by default);
    nothing was stored."""
