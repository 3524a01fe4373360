"""One DuckDB scan of a user-level file (one row per user) into per-variant column summaries.

The scan groups at the finest grain — the raw variant label × every segment column — and
computes, per group, what each numeric column needs: exact integer sums and sums of squares
for integer columns (mean, variance and the 0/1 test follow exactly), DuckDB's numerically
stable ``avg`` / ``var_samp`` and a count of values other than 0/1 for floating-point ones,
and ``regr_sxy`` for every metric with a ``pre_<metric>`` CUPED covariate. When the data is
not clean (NaN or infinity, empty values in a CUPED pair, integers too large to square in 64
bits) an exact scan with explicit counts and pairwise ``regr_*`` co-moments runs instead.
Variants (labels trimmed, compared case-insensitively) and each segment's margins are merged
from those few groups with Chan's parallel formulas, which are exact up to rounding. One hash
aggregation per row keeps the scan close to a bare aggregate (GROUPING SETS would aggregate
every row once per set). Nothing is loaded into Python row by row. When a ``user_id`` column
exists, a second query counts users that appear in more than one variant: for integer ids a
bitmap of the ids seen proves in ~0.1 s that none repeats; otherwise (or when one does) the
ids are grouped.
"""

from __future__ import annotations

import math
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


INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "BOOLEAN")


class _NotCleanError(Exception):
    """The fast scan met data it cannot summarise exactly (NaN or infinity, an incomplete CUPED pair,
    integer squares beyond 64 bits); the exact scan is run instead."""


@dataclass(frozen=True)
class _Moments:
    """Count, mean and sum of squared deviations of one column (merged exactly across groups)."""

    n: int
    mean: float
    m2: float
    binary: bool
    non_finite: int

    @classmethod
    def of_integer_sums(cls, n: int, total: int | None, squares: int | None) -> _Moments:
        """From exact integer sums: for integers x² ≥ x with equality only at 0 and 1, so the column
        is 0/1 exactly when the sum of squares equals the sum."""
        total, squares = int(total or 0), int(squares or 0)
        if n == 0:
            return cls(0, 0.0, 0.0, True, 0)
        return cls(n, total / n, (n * squares - total * total) / n, squares == total, 0)

    def merge(self, other: _Moments) -> _Moments:
        n = self.n + other.n
        if n == 0:
            return self
        delta = other.mean - self.mean
        return _Moments(n, self.mean + delta * other.n / n, self.m2 + other.m2 + delta * delta * self.n * other.n / n,
                        self.binary and other.binary, self.non_finite + other.non_finite)


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

    def merge(self, other: _Cell) -> _Cell:
        return _Cell(self.n + other.n, tuple(a.merge(b) for a, b in zip(self.moments, other.moments, strict=True)),
                     tuple(a.merge(b) for a, b in zip(self.co_moments, other.co_moments, strict=True)))

    def columns(self, numeric: Sequence[str]) -> dict[str, ColumnSummary]:
        return {name: ColumnSummary(m.n, m.mean if m.n else None, m.m2 / (m.n - 1) if m.n > 1 else None,
                                    m.mean * m.n, m.binary, m.non_finite)
                for name, m in zip(numeric, self.moments, strict=True)}

    def covariates(self, pairs: Sequence[str]) -> dict[str, CovariateSummary]:
        return {name: CovariateSummary(c.mean_x if c.n else None, c.sxx / (c.n - 1) if c.n > 1 else None,
                                       c.sxy / (c.n - 1) if c.n > 1 else None)
                for name, c in zip(pairs, self.co_moments, strict=True)}


@dataclass(frozen=True)
class _Scan:
    """The aggregate expressions of one scan and how to read a result row back into a :class:`_Cell`.

    The *fast* scan is what clean data costs: exact integer sums and sums of squares for integer
    columns (mean, variance and the 0/1 test follow exactly), DuckDB's stable ``avg`` /
    ``var_samp`` plus a 0/1 count for floating-point columns, and only ``regr_sxy`` per CUPED pair
    (the pair's means and ``sxx`` are the columns' own when neither has empty values). Anything it
    cannot vouch for raises :class:`_NotCleanError`, and the *exact* scan — every statistic counted
    explicitly, NaN / infinity and pairwise-complete co-moments included — runs instead.
    """

    columns: tuple[tuple[str, str], ...]  # (quoted name, DuckDB type) of every numeric column
    pairs: tuple[tuple[int, int], ...]  # (metric index, covariate index) into columns
    exact: bool
    known_non_binary: frozenset[int] = frozenset()  # columns whose Parquet statistics go beyond [0, 1]

    def _integer(self, index: int) -> bool:
        return not self.exact and self.columns[index][1] in INTEGER_TYPES

    def _counts_binary(self, index: int) -> bool:
        return self.exact or index not in self.known_non_binary

    def aggregates(self) -> list[str]:
        parts = []
        for index, (name, kind) in enumerate(self.columns):
            if self._integer(index):
                value = f"CAST({name} AS BIGINT)"
                parts.append(f"count({value}), sum({value}), sum({value} * {value})")
                continue
            value = f"CAST({name} AS DOUBLE)"
            moments = f"count({value}), avg({value}), coalesce(var_samp({value}), 0)"
            if self._counts_binary(index):
                moments += f", count_if({value} NOT IN (0, 1))"
            floating = kind in ("FLOAT", "DOUBLE")  # NaN / infinity can only occur in these
            parts.append(moments + (f", count_if(NOT isfinite({value}))" if self.exact and floating else ""))
        for metric, covariate in self.pairs:
            y, x = (f"CAST({self.columns[i][0]} AS DOUBLE)" for i in (metric, covariate))
            if self.exact:
                parts.append(f"regr_count({y}, {x}), regr_avgy({y}, {x}), regr_avgx({y}, {x}), "
                             f"coalesce(regr_sxx({y}, {x}), 0), coalesce(regr_sxy({y}, {x}), 0)")
            else:
                parts.append(f"coalesce(regr_sxy({y}, {x}), 0)")
        return parts

    def cell(self, values: Sequence[Any]) -> _Cell:
        rows = int(values[0])
        position = 1
        moments = []
        for index in range(len(self.columns)):
            if self._integer(index):
                count, total, squares = values[position: position + 3]
                position += 3
                moments.append(_Moments.of_integer_sums(int(count), total, squares))
                continue
            width = 3 + self._counts_binary(index) + (self.exact and self.columns[index][1] in ("FLOAT", "DOUBLE"))
            count, mean, variance, *rest = values[position: position + width]
            position += width
            non_binary = rest.pop(0) if self._counts_binary(index) else 1
            non_finite = rest
            count = int(count)
            if not self.exact and ((mean is not None and not math.isfinite(mean)) or not math.isfinite(variance)):
                raise _NotCleanError
            moments.append(_Moments(count, float(mean) if mean is not None else 0.0,
                                    float(variance) * (count - 1) if count > 1 else 0.0, int(non_binary) == 0,
                                    int(non_finite[0]) if non_finite else 0))
        co_moments = []
        for metric, covariate in self.pairs:
            if self.exact:
                count, mean_y, mean_x, sxx, sxy = values[position: position + 5]
                position += 5
                co_moments.append(_CoMoments(int(count), float(mean_y or 0.0), float(mean_x or 0.0), float(sxx),
                                             float(sxy)))
                continue
            y, x = moments[metric], moments[covariate]
            if y.n != rows or x.n != rows:
                raise _NotCleanError  # empty values: the pairs are a subset; count them exactly
            co_moments.append(_CoMoments(rows, y.mean, x.mean, x.m2, float(values[position])))
            position += 1
        return _Cell(rows, tuple(moments), tuple(co_moments))


_ID_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
_MAX_BITMAP_IDS = 1 << 28  # a 32 MB bitmap


def _ids_unique(connection: duckdb.DuckDBPyConnection, source: str, path: str, user: str, low: int, high: int) -> bool:
    """True when no integer user id appears twice, so no user can be in two variants: one bit per
    possible id (DuckDB's ``bitstring_agg``) and a count, ~0.1 s for 10 million ids where grouping
    by the id takes ~1 s. Ids spread over more than 2^28 values are left to the grouping query."""
    if high - low >= _MAX_BITMAP_IDS:
        return False
    found = connection.execute(
        f"SELECT bit_count(bitstring_agg(CAST({user} AS BIGINT), {int(low)}, {int(high)})), count({user}) "
        f"FROM {source}", [path]).fetchone()
    return found is not None and found[0] == found[1]


def _beyond_zero_one(connection: duckdb.DuckDBPyConnection, path: str, names: Sequence[str]) -> frozenset[int]:
    """Indices of the columns that a Parquet file's own statistics (min / max per row group,
    read from the footer, not the data) show to hold a value outside [0, 1]: they cannot be 0/1,
    so the scan need not test each value. Columns without statistics are tested as usual."""
    try:
        found = connection.execute(
            "SELECT path_in_schema, min(TRY_CAST(stats_min_value AS DOUBLE)), max(TRY_CAST(stats_max_value AS DOUBLE)) "
            "FROM parquet_metadata(?) GROUP BY path_in_schema", [path]).fetchall()
    except duckdb.Error:
        return frozenset()
    bounds = {str(name): (low, high) for name, low, high in found}
    return frozenset(index for index, name in enumerate(names)
                     if name in bounds and ((bounds[name][0] is not None and bounds[name][0] < 0)
                                            or (bounds[name][1] is not None and bounds[name][1] > 1)))


def summarise_user_level(connection: duckdb.DuckDBPyConnection, source: str, path: str,
                         segments: Sequence[str] = (), ratios: Sequence[tuple[str, str]] = ()) -> UserLevelSummary:
    """Summarise ``source`` (``read_csv(?)`` or ``read_parquet(?)`` over ``path``) per variant and per
    variant within each value of every segment column (columns named ``segment_*`` plus
    ``segments``), from one scan grouped at the finest grain and merged exactly. ``ratios`` names
    (numerator, denominator) column pairs of ratio metrics: their co-moments come with the same scan."""
    described = connection.execute(f"DESCRIBE SELECT * FROM {source}", [path]).fetchall()
    columns = {str(name).replace("\ufeff", "").strip().casefold(): (str(name), str(kind)) for name, kind, *_ in described}
    variant = _quote(columns["variant"][0])
    wanted = [s.strip().casefold() for s in segments]
    unknown = [s for s in wanted if s not in columns]
    segment_keys = [k for k in columns if k.startswith("segment_") or k in wanted]
    numeric, ignored = [], []
    for key, (original, kind) in columns.items():
        if key in ("variant", "user_id", "first_exposure") or key in segment_keys:
            continue
        if kind.split("(")[0] in NUMERIC_TYPES:
            numeric.append(key)
        else:
            ignored.append(original)
    pairs = [key for key in numeric if f"pre_{key}" in numeric]
    ratio_pairs = list(dict.fromkeys((n.strip().casefold(), d.strip().casefold()) for n, d in ratios
                                     if n.strip().casefold() in numeric and d.strip().casefold() in numeric))
    segment_expressions = [f"CAST({_quote(columns[k][0])} AS VARCHAR)" for k in segment_keys]
    keys = [f"CAST({variant} AS VARCHAR)", *segment_expressions]
    # A first_exposure column (date or timestamp) gives the timeline (SPEC §3.1): its day is one
    # more grouping key, and each day's cumulative arms are merged from those groups below.
    exposure = _quote(columns["first_exposure"][0]) if "first_exposure" in columns else None
    if exposure is not None:
        keys.append(f"CAST(TRY_CAST({exposure} AS TIMESTAMP) AS DATE)")
    quoted = tuple((_quote(columns[key][0]), columns[key][1].split("(")[0]) for key in numeric)
    indexed = tuple((numeric.index(key), numeric.index("pre_" + key)) for key in pairs) + tuple(
        (numeric.index(numerator), numeric.index(denominator)) for numerator, denominator in ratio_pairs)

    known_non_binary = _beyond_zero_one(connection, path, [columns[key][0] for key in numeric]) \
        if source.startswith("read_parquet") else frozenset()

    user = _quote(columns["user_id"][0]) if "user_id" in columns else None
    integer_ids = user is not None and columns["user_id"][1].split("(")[0] in _ID_TYPES
    # Integer user ids: their range comes with the scan, for the bitmap duplicate check below.
    id_range = f", min(CAST({user} AS BIGINT)), max(CAST({user} AS BIGINT))" if integer_ids else ""
    trailing = 2 if integer_ids else 0

    def scan(exact: bool) -> tuple[list[Any], list[_Cell]]:
        # One scan, one hash aggregation at the finest grain (raw variant label × every segment
        # column); variants (trimmed, case-insensitive) and each segment's margins are then merged
        # exactly from these few groups with Chan's parallel formulas.
        plan = _Scan(quoted, indexed, exact, known_non_binary)
        sql = (f"SELECT {', '.join(keys)}, count(*)" + "".join(", " + part for part in plan.aggregates())
               + f"{id_range} FROM {source} GROUP BY ALL")
        found = connection.execute(sql, [path]).fetchall()
        return found, [plan.cell(row[len(keys): len(row) - trailing]) for row in found]

    try:
        rows, cells = scan(exact=False)
    except (_NotCleanError, duckdb.OutOfRangeException):
        rows, cells = scan(exact=True)
    overall: dict[str, _Cell] = {}
    spellings: dict[str, dict[str, int]] = {}
    by_segment: dict[tuple[str, str, str], _Cell] = {}
    by_day: dict[tuple[str, str], _Cell] = {}
    undated = 0
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
        if exposure is not None:
            day = row[1 + len(segment_keys)]
            if day is None:
                undated += cell.n
            else:
                slot_day = (str(day), label_key)
                by_day[slot_day] = by_day[slot_day].merge(cell) if slot_day in by_day else cell
        for index, segment in enumerate(segment_keys):
            value = "(missing)" if row[1 + index] is None else str(row[1 + index])
            slot = (columns[segment][0], value, label_key)
            by_segment[slot] = by_segment[slot].merge(cell) if slot in by_segment else cell

    def label_of(key: str) -> str:
        counts = spellings[key]
        return max(counts, key=lambda spelled: (counts[spelled], spelled)).strip()

    pair_names = [*pairs, *(f"{n}/{d}" for n, d in ratio_pairs)]

    def variant_summary(key: str, cell: _Cell) -> VariantSummary:
        found = cell.covariates(pair_names)
        return VariantSummary(label_of(key), tuple(sorted(spellings[key])), cell.n, cell.columns(numeric),
                              {name: found[name] for name in pairs},
                              {pair: found[f"{pair[0]}/{pair[1]}"] for pair in ratio_pairs})

    variants = [variant_summary(key, overall[key]) for key in sorted(overall)]
    grouped: dict[tuple[str, str], list[VariantSummary]] = {}
    for (column, value, key), cell in sorted(by_segment.items()):
        grouped.setdefault((column, value), []).append(variant_summary(key, cell))
    several, examples = 0, tuple[str, ...]()
    lows = [row[-2] for row in rows if integer_ids and row[-2] is not None]
    highs = [row[-1] for row in rows if integer_ids and row[-1] is not None]
    unique = bool(lows) and _ids_unique(connection, source, path, user or "", min(lows), max(highs))
    if user is not None and not unique and spellings:
        # Some id repeats (or ids are not small integers): find the users in more than one variant,
        # each spelling of a label mapped to its variant's number (cheaper than comparing strings).
        number = {raw: i for i, key in enumerate(sorted(spellings)) for raw in spellings[key]}
        arm = f"CASE CAST({variant} AS VARCHAR) " + " ".join(f"WHEN ? THEN {i}" for i in number.values()) + " END"
        found = connection.execute(
            f"WITH rows AS (SELECT {user} AS id, {arm} AS arm FROM {source} WHERE {user} IS NOT NULL) "
            "SELECT CAST(id AS VARCHAR) FROM rows GROUP BY id HAVING min(arm) <> max(arm)",
            [*number, path]).fetchall()
        several, examples = len(found), tuple(str(r[0]) for r in found[:3])
    days: list[tuple[str, tuple[VariantSummary, ...]]] = []
    new_users: list[tuple[str, dict[str, int]]] = []
    running: dict[str, _Cell] = {}
    for day in sorted({d for d, _ in by_day}):
        today = {key: cell for (d, key), cell in by_day.items() if d == day}
        for key, cell in today.items():
            running[key] = running[key].merge(cell) if key in running else cell
        new_users.append((day, {label_of(key): cell.n for key, cell in today.items()}))
        days.append((day, tuple(variant_summary(key, running[key]) for key in sorted(running))))
    return UserLevelSummary(rows=total, days=tuple(days), new_users=tuple(new_users), undated_rows=undated,
                            numeric=tuple(numeric), ignored=tuple(ignored), variants=tuple(variants),
                            missing_variant_rows=missing, users_in_several_variants=several, example_users=examples,
                            segments=tuple(SegmentSummary(column, value, tuple(found))
                                           for (column, value), found in sorted(grouped.items())),
                            unknown_segments=tuple(unknown))
