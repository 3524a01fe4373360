"""Result rows mapped by column name, as sqlite-utils' ``query()`` yields them: a mapper reads
``row["decision"]``, never ``row[8]``, so reordering a SELECT list cannot shift a field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

__all__ = ["Row", "named_row", "named_rows"]

#: A result row keyed by column name (the name DuckDB reports, i.e. the ``AS`` alias if any).
Row = Mapping[str, Any]


def named_rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The rows of the statement ``cursor`` just ran, each a dict keyed by column name (as
    sqlite-utils' ``query()`` yields them), so mappers read ``row["decision"]``, never ``row[8]``.

    Raises :class:`AssertionError` when two columns share a name (``e.id, l.id``): alias them."""
    if cursor.description is None:
        raise AssertionError("the statement returned no rows to map")
    names = [column[0] for column in cursor.description]
    if len(set(names)) != len(names):
        raise AssertionError(f"columns need distinct names to be mapped by name, got {names}")
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def named_row(cursor: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The first row of :func:`named_rows`, or ``None`` when there is none."""
    rows = named_rows(cursor)
    return rows[0] if rows else None
