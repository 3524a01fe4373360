"""One DuckDB scan of a user-level file (one row per user) into per-variant column summaries.

The scan groups at the finest grain — the raw variant label × every segment column — and
computes, per group and numeric column, the count of values, mean and sample variance
(DuckDB's numerically stable ``avg`` / ``var_samp``), how many values are not 0/1 and how
many are NaN or infinite, plus, for every metric with a ``pre_<metric>`` column, the pair
count, means and co-moments (``regr_*``) for CUPED. Variants (labels trimmed, compared
case-insensitively) and each segment's margins are merged from those few groups with Chan's
parallel formulas, which are exact up to rounding. One hash aggregation per row keeps the
scan close to a bare aggregate (GROUPING SETS would aggregate every row once per set).
Nothing is loaded into Python row by row. When a ``user_id`` column exists, a second query
counts users that appear in more than one variant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from analytics import ColumnSummary, CovariateSummary, SegmentSummary, UserLevelSummary, VariantSummary

__all__ = ["NUMERIC_TYPES", "summarise_user_level"]

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL", "BOOLEAN")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Moments:
    """Count, mean and sum of squared deviations of one column (merged exactly across groups)."""

    n: int
    mean: float
    m2: float
    non_binary: int
    non_finite: int

    def merge(self, other: _Moments) -> _Moments:
        n = self.n + other.n
        if n == 0:
            return self
        delta = other.mean - self.mean
        return _Moments(n, self.mean + delta * other.n / n, self.m2 + other.m2 + delta * delta * self.n * other.n / n,
                        self.non_binary + other.non_binary, self.non_finite + other.non_finite)


@dataclass(frozen=True)
class _CoMoments:
    """Pair count, means and co-moments of a metric y and its covariate x."""

    n: int
    mean_y: float
    mean_x: float
    sxx: float
    sxy: float

    def merge(self, other: _CoMoments) -> _CoMoments:
        n = self.n + other.n
        if n == 0:
            return self
        dy, dx = other.mean_y - self.mean_y, other.mean_x - self.mean_x
        weight = self.n * other.n / n
        return _CoMoments(n, self.mean_y + dy * other.n / n, self.mean_x + dx * other.n / n,
                          self.sxx + other.sxx + dx * dx * weight, self.sxy + other.sxy + dx * dy * weight)


@dataclass(frozen=True)
class _Cell:
    """One group of the scan: its row count and the moments of every column and pair."""

    n: int
    moments: tuple[_Moments, ...]
    co_moments: tuple[_CoMoments, ...]

    @classmethod
    def of(cls, values: Sequence[Any], numeric: Sequence[str], pairs: Sequence[str]) -> _Cell:
        moments = []
        for index in range(len(numeric)):
            count, mean, variance, non_binary, non_finite = values[1 + 5 * index: 6 + 5 * index]
            count = int(count)
            moments.append(_Moments(count, float(mean) if mean is not None else 0.0,
                                    float(variance) * (count - 1) if count > 1 else 0.0, int(non_binary),
                                    int(non_finite)))
        offset = 1 + 5 * len(numeric)
        co_moments = []
        for index in range(len(pairs)):
            count, mean_y, mean_x, sxx, sxy = values[offset + 5 * index: offset + 5 * index + 5]
            co_moments.append(_CoMoments(int(count), float(mean_y or 0.0), float(mean_x or 0.0), float(sxx),
                                         float(sxy)))
        return cls(int(values[0]), tuple(moments), tuple(co_moments))

    def merge(self, other: _Cell) -> _Cell:
        return _Cell(self.n + other.n, tuple(a.merge(b) for a, b in zip(self.moments, other.moments, strict=True)),
                     tuple(a.merge(b) for a, b in zip(self.co_moments, other.co_moments, strict=True)))

    def columns(self, numeric: Sequence[str]) -> dict[str, ColumnSummary]:
        return {name: ColumnSummary(m.n, m.mean if m.n else None, m.m2 / (m.n - 1) if m.n > 1 else None,
                                    m.mean * m.n, m.non_binary, m.non_finite)
                for name, m in zip(numeric, self.moments, strict=True)}

    def covariates(self, pairs: Sequence[str]) -> dict[str, CovariateSummary]:
        return {name: CovariateSummary(c.mean_x if c.n else None, c.sxx / (c.n - 1) if c.n > 1 else None,
                                       c.sxy / (c.n - 1) if c.n > 1 else None)
                for name, c in zip(pairs, self.co_moments, strict=True)}


def summarise_user_level(connection: duckdb.DuckDBPyConnection, source: str, path: str,
                         segments: Sequence[str] = ()) -> UserLevelSummary:
    """Summarise ``source`` (``read_csv(?)`` or ``read_parquet(?)`` over ``path``) per variant and per
    variant within each value of every segment column (columns named ``segment_*`` plus
    ``segments``), from one scan grouped at the finest grain and merged exactly."""
    described = connection.execute(f"DESCRIBE SELECT * FROM {source}", [path]).fetchall()
    columns = {str(name).replace("\ufeff", "").strip().casefold(): (str(name), str(kind)) for name, kind, *_ in described}
    variant = _quote(columns["variant"][0])
    wanted = [s.strip().casefold() for s in segments]
    unknown = [s for s in wanted if s not in columns]
    segment_keys = [k for k in columns if k.startswith("segment_") or k in wanted]
    numeric, ignored = [], []
    for key, (original, kind) in columns.items():
        if key in ("variant", "user_id") or key in segment_keys:
            continue
        if kind.split("(")[0] in NUMERIC_TYPES:
            numeric.append(key)
        else:
            ignored.append(original)
    floating = {key for key in numeric if columns[key][1].split("(")[0] in ("FLOAT", "DOUBLE")}
    pairs = [key for key in numeric if f"pre_{key}" in numeric]
    selects = []
    for key in numeric:
        column = f"{_quote(columns[key][0])}::DOUBLE"
        # NaN / infinity can only occur in floating-point columns.
        non_finite = f"count_if(NOT isfinite({column}))" if key in floating else "0"
        selects.append(f"count({column}), avg({column}), coalesce(var_samp({column}), 0), "
                       f"count_if({column} NOT IN (0, 1)), {non_finite}")
    # CUPED: co-moments of each metric with its pre_<metric> covariate.
    for key in pairs:
        y = f"{_quote(columns[key][0])}::DOUBLE"
        x = f"{_quote(columns['pre_' + key][0])}::DOUBLE"
        selects.append(f"regr_count({y}, {x}), regr_avgy({y}, {x}), regr_avgx({y}, {x}), "
                       f"coalesce(regr_sxx({y}, {x}), 0), coalesce(regr_sxy({y}, {x}), 0)")
    segment_expressions = [f"CAST({_quote(columns[k][0])} AS VARCHAR)" for k in segment_keys]
    keys = [f"CAST({variant} AS VARCHAR)", *segment_expressions]
    # One scan, one hash aggregation at the finest grain (raw variant label × every segment
    # column); variants (trimmed, case-insensitive) and each segment's margins are then merged
    # exactly from these few groups with Chan's parallel formulas.
    sql = (f"SELECT {', '.join(keys)}, count(*)" + "".join(", " + part for part in selects)
           + f" FROM {source} GROUP BY ALL")
    rows = connection.execute(sql, [path]).fetchall()
    width = len(keys)
    cells = [_Cell.of(row[width:], numeric, pairs) for row in rows]
    overall: dict[str, _Cell] = {}
    spellings: dict[str, dict[str, int]] = {}
    by_segment: dict[tuple[str, str, str], _Cell] = {}
    missing = total = 0
    for row, cell in zip(rows, cells, strict=True):
        total += cell.n
        raw = row[0]
        label_key = raw.strip().casefold() if raw is not None else ""
        if not label_key:
            missing += cell.n
            continue
        overall[label_key] = overall[label_key].merge(cell) if label_key in overall else cell
        counts = spellings.setdefault(label_key, {})
        counts[raw] = counts.get(raw, 0) + cell.n
        for index, segment in enumerate(segment_keys):
            value = "(missing)" if row[1 + index] is None else str(row[1 + index])
            slot = (columns[segment][0], value, label_key)
            by_segment[slot] = by_segment[slot].merge(cell) if slot in by_segment else cell

    def label_of(key: str) -> str:
        counts = spellings[key]
        return max(counts, key=lambda spelled: (counts[spelled], spelled)).strip()

    def variant_summary(key: str, cell: _Cell) -> VariantSummary:
        return VariantSummary(label_of(key), tuple(sorted(spellings[key])), cell.n, cell.columns(numeric),
                              cell.covariates(pairs))

    variants = [variant_summary(key, overall[key]) for key in sorted(overall)]
    grouped: dict[tuple[str, str], list[VariantSummary]] = {}
    for (column, value, key), cell in sorted(by_segment.items()):
        grouped.setdefault((column, value), []).append(variant_summary(key, cell))
    label = f"lower(trim(CAST({variant} AS VARCHAR)))"
    several, examples = 0, tuple[str, ...]()
    if "user_id" in columns:
        user = _quote(columns["user_id"][0])
        found = connection.execute(
            f"SELECT CAST({user} AS VARCHAR) FROM {source} WHERE {user} IS NOT NULL GROUP BY {user} "
            f"HAVING count(DISTINCT {label}) > 1", [path]).fetchall()
        several, examples = len(found), tuple(str(r[0]) for r in found[:3])
    return UserLevelSummary(rows=total, numeric=tuple(numeric), ignored=tuple(ignored), variants=tuple(variants),
                            missing_variant_rows=missing, users_in_several_variants=several, example_users=examples,
                            segments=tuple(SegmentSummary(column, value, tuple(found))
                                           for (column, value), found in sorted(grouped.items())),
                            unknown_segments=tuple(unknown))
