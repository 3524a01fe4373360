"""Everything that touches disk through DuckDB (reading result files, the experiment database) or reads
through Spark (:mod:`storage.spark`)."""

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
from storage.ingest import FileReader, LoadedFile, file_sha256

__all__ = [
    "DatabaseBusyError",
    "DatabaseCorruptError",
    "DatabaseError",
    "DatabaseLockedError",
    "DiskFullError",
    "FileReader",
    "InputFileError",
    "LoadedFile",
    "NotFoundError",
    "ReportTooLargeError",
    "SchemaTooNewError",
    "SparkError",
    "SparkInputError",
    "SparkUnavailableError",
    "StorageError",
    "file_sha256",
]
