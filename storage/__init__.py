"""Everything that touches disk through DuckDB (reading result files, the experiment database) or reads
through Spark (:mod:`storage.spark`).

Importing the package loads no DuckDB: the readers are in :mod:`storage.ingest` and the database
in :mod:`storage.database`, so a process that only analyses what a worker read (the CLI) can use
``storage.errors`` and ``storage.files`` without them.
"""

from storage.errors import (
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseError,
    DatabaseLockedError,
    DiskFullError,
    InputFileError,
    NotFoundError,
    ReportTooLargeError,
    SchemaTooNewError,
    SparkError,
    SparkInputError,
    SparkUnavailableError,
    StorageError,
)
from storage.files import LoadedFile

__all__ = [
    "DatabaseBusyError",
    "DatabaseCorruptError",
    "DatabaseError",
    "DatabaseLockedError",
    "DiskFullError",
    "InputFileError",
    "LoadedFile",
    "NotFoundError",
    "ReportTooLargeError",
    "SchemaTooNewError",
    "SparkError",
    "SparkInputError",
    "SparkUnavailableError",
    "StorageError",
]

