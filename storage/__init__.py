"""Everything that touches disk through DuckDB: reading result files and the experiment database."""

from storage.errors import (
    DatabaseCorruptError,
    DatabaseError,
    DatabaseLockedError,
    InputFileError,
    NotFoundError,
    SchemaTooNewError,
    StorageError,
)
from storage.ingest import FileReader, LoadedFile, file_sha256

__all__ = [
    "DatabaseCorruptError",
    "DatabaseError",
    "DatabaseLockedError",
    "FileReader",
    "InputFileError",
    "LoadedFile",
    "NotFoundError",
    "SchemaTooNewError",
    "StorageError",
    "file_sha256",
]
