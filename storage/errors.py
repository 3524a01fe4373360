"""Exceptions raised by :mod:`storage`.

Exception tree::

    StorageError                 base of everything storage raises on purpose
    ├── InputFileError           a result file cannot be used at all (missing, a directory, unreadable)
    └── DatabaseError            the experiment database cannot be used
        ├── DatabaseLockedError  another process held the write lock for too long
        ├── DatabaseCorruptError the file at the database path is not a usable DuckDB database
        └── SchemaTooNewError    the database was written by a newer ExperimentOS
    NotFoundError                a requested experiment or analysis does not exist (also a StorageError)

Every message is one sentence a user can act on.
"""

from __future__ import annotations

__all__ = [
    "DatabaseCorruptError",
    "DatabaseError",
    "DatabaseLockedError",
    "InputFileError",
    "NotFoundError",
    "SchemaTooNewError",
    "StorageError",
]


class StorageError(Exception):
    """Base class of the errors :mod:`storage` raises on purpose."""


class InputFileError(StorageError):
    """The input file cannot be used at all: missing, a directory, or not readable."""


class DatabaseError(StorageError):
    """The experiment database cannot be opened or written."""


class DatabaseLockedError(DatabaseError):
    """Another process kept the database's write lock longer than the retry budget."""


class DatabaseCorruptError(DatabaseError):
    """The file at the database path is not a DuckDB database this version can open."""


class SchemaTooNewError(DatabaseError):
    """The database was migrated by a newer ExperimentOS than this one."""


class NotFoundError(StorageError):
    """A requested experiment or analysis id does not exist."""
