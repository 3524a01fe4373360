"""One DuckDB scan of a user-level file (one row per user) into per-variant column summaries.

The scan groups at the finest grain — the raw variant label × every segment column — and
computes, per group, what each numeric column needs: exact integer sums and sums of squares
for integer columns (mean, variance and the 0/1 test follow exactly); for floating-point ones,
compensated (Kahan) sums of ``x − c`` and ``(x − c)²`` around a per-column pivot ``c`` (the mean
of the file's first rows) with counts of values other than 0/1 and of ones (a 0/1 group is then
summarised exactly from its counts); and the shifted cross-product sum for every metric with a
``pre_<metric>`` CUPED covariate (and every declared ratio pair). Shifted sums are as cheap as
bare sums; each carries a rounding-error bound, and when the bound of any reported variance or
co-moment is not below 1e-11 of its value (catastrophic cancellation: values far from the pivot
relative to their spread, e.g. a group whose every value is the same non-0/1 number) the
result is not trusted. Then, and when the data is not clean (NaN or infinity, empty values in a
CUPED pair, integers too large to square in 64 bits), an exact scan with DuckDB's stable
``avg`` / ``var_samp``, explicit counts and pairwise ``regr_*`` co-moments runs instead.
Variants (labels trimmed, compared case-insensitively) and each segment's margins are merged
from those few groups with Chan's parallel formulas, which are exact up to rounding. One hash
aggregation per row keeps the scan close to a bare aggregate (GROUPING SETS would aggregate
every row once per set). Nothing is loaded into Python row by row. When a ``user_id`` column
exists, a second query counts users that appear in more than one variant: for integer ids a
bitmap of the ids seen proves in ~0.1 s that none repeats; otherwise (or when one does) the
ids are grouped. (Folding that check into the main scan was measured on 10 million users and
is dearer: a bitmap per group costs ~0.87 s of CPU and 330 MB against 0.43 s + 0.24 s and
120 MB for the scan plus an id-only bitmap pass; ``count(DISTINCT user_id)`` per group 7.5 s
and 1.2 GB. A Parquet file's bitmap pass reads only the id column.)
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


#: Unit roundoff of IEEE doubles.
_UNIT_ROUNDOFF = 2.0**-53
#: Rounding-error bound of a compensated sum of shifted squares, in units of roundoff times the sum:
#: ≈ 3u per term ((x − c) rounded, then squared), 2u for the Kahan sum, 6u from the squared shifted
#: sum over n and u for the subtraction, first order; 32 leaves room for DuckDB's merge of partial sums.
_SHIFTED_BOUND = 32.0 * _UNIT_ROUNDOFF
#: A pivoted variance or co-moment is trusted when its error bound is at most this share of its
#: value (the precision tests ask 1e-9 of numpy; a hundredfold margin).
_TRUSTED = 1e-11
#: Rows whose mean is each floating-point column's pivot.
_PIVOT_ROWS = 2048


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
    mean_error: float = 0.0  # bounds on the rounding error of mean and m2 (0: exact, or DuckDB's own)
    m2_error: float = 0.0
    shifted_sum: float = 0.0  # the fast scan's Σ(x − c) and Σ(x − c)² of this group (for co-moments)
    shifted_squares: float = 0.0

    @classmethod
    def of_integer_sums(cls, n: int, total: int | None, squares: int | None, pivot: int = 0) -> _Moments:
        """From exact integer sums: for integers x² ≥ x with equality only at 0 and 1, so the column
        is 0/1 exactly when the sum of squares equals the sum. The sums around an integer ``pivot``
        follow exactly too (Python integers)."""
        total, squares = int(total or 0), int(squares or 0)
        if n == 0:
            return cls(0, 0.0, 0.0, True, 0)
        return cls(n, total / n, (n * squares - total * total) / n, squares == total, 0,
                   shifted_sum=float(total - n * pivot), shifted_squares=float(squares - 2 * pivot * total + n * pivot * pivot))

    @classmethod
    def of_shifted_sums(cls, n: int, pivot: float, shifted: float, squares: float, non_binary: int | None,
                        ones: int | None) -> _Moments:
        """From compensated sums of ``x − pivot`` and ``(x − pivot)²``: mean = pivot + Σ/n and
        m2 = Σ² − (Σ)²/n, with bounds on their rounding errors (see ``_SHIFTED_BOUND``). A group
        whose values are all 0 or 1 (``non_binary == 0``) is summarised exactly from its count of ones."""
        if n == 0:
            return cls(0, 0.0, 0.0, True, 0)
        if not (math.isfinite(shifted) and math.isfinite(squares)):
            raise _NotCleanError
        if non_binary == 0 and ones is not None:
            return cls(n, ones / n, ones * (n - ones) / n, True, 0, shifted_sum=shifted, shifted_squares=squares)
        mean = pivot + shifted / n
        m2 = max(squares - shifted * shifted / n, 0.0) if n > 1 else 0.0
        mean_error = 3.0 * _UNIT_ROUNDOFF * math.sqrt(squares / n) + _UNIT_ROUNDOFF * abs(mean)
        return cls(n, mean, m2, non_binary == 0, 0, mean_error, _SHIFTED_BOUND * squares if n > 1 else 0.0,
                   shifted, squares)

    def merge(self, other: _Moments) -> _Moments:
        n = self.n + other.n
        if n == 0:
            return self
        delta = other.mean - self.mean
        weight = self.n * other.n / n
        m2 = self.m2 + other.m2 + delta * delta * weight
        # (δ + e)² − δ² ≤ 2|δ|e + e² with e the means' error; then a few roundings of the sum.
        delta_error = self.mean_error + other.mean_error
        m2_error = (self.m2_error + other.m2_error + (2.0 * abs(delta) + delta_error) * delta_error * weight
                    + 4.0 * _UNIT_ROUNDOFF * m2) if self.m2_error or other.m2_error or delta_error else 0.0
        mean = self.mean + delta * other.n / n
        mean_error = max(self.mean_error, other.mean_error) + 2.0 * _UNIT_ROUNDOFF * abs(mean) \
            if self.mean_error or other.mean_error else 0.0
        return _Moments(n, mean, m2, self.binary and other.binary, self.non_finite + other.non_finite, mean_error,
                        m2_error)

    def trusted(self) -> bool:
        """Whether the rounding-error bound of m2 is small against m2 (always, for exact moments)."""
        return self.m2_error == 0.0 or self.m2_error <= _TRUSTED * self.m2 or self.n < 2


@dataclass(frozen=True)
class _CoMoments:
    """Pair count, means and co-moments of a metric y and its covariate x."""

    n: int
    mean_y: float
    mean_x: float
    sxx: float
    sxy: float
    sxy_error: float = 0.0  # bound on the rounding error of sxy (0: exact, or DuckDB's own)
    mean_error: float = 0.0  # bound on the error of mean_y plus that of mean_x

    def merge(self, other: _CoMoments) -> _CoMoments:
        n = self.n + other.n
        if n == 0:
            return self
        dy, dx = other.mean_y - self.mean_y, other.mean_x - self.mean_x
        weight = self.n * other.n / n
        sxy = self.sxy + other.sxy + dx * dy * weight
        error = self.mean_error + other.mean_error
        sxy_error = (self.sxy_error + other.sxy_error + ((abs(dx) + abs(dy)) * error + error * error) * weight
                     + 4.0 * _UNIT_ROUNDOFF * abs(sxy)) if self.sxy_error or other.sxy_error or error else 0.0
        return _CoMoments(n, self.mean_y + dy * other.n / n, self.mean_x + dx * other.n / n,
                          self.sxx + other.sxx + dx * dx * weight, sxy, sxy_error, max(self.mean_error,
                                                                                        other.mean_error))


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
        """Per-column summaries; raises :class:`_NotCleanError` when a pivoted variance cannot be trusted."""
        if not all(m.trusted() for m in self.moments):
            raise _NotCleanError
        return {name: ColumnSummary(m.n, m.mean if m.n else None, m.m2 / (m.n - 1) if m.n > 1 else None,
                                    m.mean * m.n, m.binary, m.non_finite)
                for name, m in zip(numeric, self.moments, strict=True)}

    def covariates(self, pairs: Sequence[str], indices: Sequence[tuple[int, int]]) -> dict[str, CovariateSummary]:
        """Per-pair summaries; raises :class:`_NotCleanError` when a pivoted co-moment cannot be trusted:
        its error bound must be small against √(sxx·syy), the scale on which the correlation is read."""
        for c, (metric, _) in zip(self.co_moments, indices, strict=True):
            if c.sxy_error > 0.0 and c.n > 1 and not c.sxy_error <= _TRUSTED * math.sqrt(c.sxx * self.moments[metric].m2):
                raise _NotCleanError
        return {name: CovariateSummary(c.mean_x if c.n else None, c.sxx / (c.n - 1) if c.n > 1 else None,
                                       c.sxy / (c.n - 1) if c.n > 1 else None)
                for name, c in zip(pairs, self.co_moments, strict=True)}


@dataclass(frozen=True)
class _Scan:
    """The aggregate expressions of one scan and how to read a result row back into a :class:`_Cell`.

    The *fast* scan is what clean data costs: exact integer sums and sums of squares for integer
    columns (mean, variance and the 0/1 test follow exactly), compensated sums of ``x − c`` and
    ``(x − c)²`` around the column's pivot ``c`` plus counts of non-0/1 values and of ones for
    floating-point columns, and only the shifted cross-product sum per CUPED pair (the pair's
    means and ``sxx`` are the columns' own when neither has empty values). Anything it cannot
    vouch for raises :class:`_NotCleanError` (here, or when a merged result's error bound is too
    large), and the *exact* scan — DuckDB's stable ``avg`` / ``var_samp``, every statistic
    counted explicitly, NaN / infinity and pairwise-complete co-moments included — runs instead.
    """

    columns: tuple[tuple[str, str], ...]  # (quoted name, DuckDB type) of every numeric column
    pairs: tuple[tuple[int, int], ...]  # (metric index, covariate index) into columns
    exact: bool
    known_non_binary: frozenset[int] = frozenset()  # columns whose Parquet statistics go beyond [0, 1]
    pivots: tuple[float, ...] = ()  # per column: the shift of the fast scan's floating-point sums

    def _pivot(self, index: int) -> str:
        # A string cast, so DuckDB parses the very double Python holds (a bare literal is a DECIMAL).
        return f"CAST('{self.pivots[index]!r}' AS DOUBLE)" if self.pivots else "0.0"

    def _shifted(self, index: int) -> str:
        return f"(CAST({self.columns[index][0]} AS DOUBLE) - {self._pivot(index)})"

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
            if not self.exact:
                shifted = self._shifted(index)
                moments = f"count({value}), fsum({shifted}), fsum({shifted} * {shifted})"
                if self._counts_binary(index):
                    moments += f", count_if({value} NOT IN (0, 1)), count_if({value} = 1)"
                parts.append(moments)
                continue
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
                parts.append(f"coalesce(fsum({self._shifted(metric)} * {self._shifted(covariate)}), 0)")
        return parts

    def cell(self, values: Sequence[Any]) -> _Cell:
        rows = int(values[0])
        position = 1
        moments = []
        for index in range(len(self.columns)):
            if self._integer(index):
                count, total, squares = values[position: position + 3]
                position += 3
                pivot = int(self.pivots[index]) if self.pivots else 0
                moments.append(_Moments.of_integer_sums(int(count), total, squares, pivot))
                continue
            if not self.exact:
                width = 5 if self._counts_binary(index) else 3
                count, shifted, squares, *counted = values[position: position + width]
                position += width
                non_binary, ones = (int(counted[0]), int(counted[1])) if counted else (None, None)
                moments.append(_Moments.of_shifted_sums(int(count), self.pivots[index], float(shifted or 0.0),
                                                        float(squares or 0.0), non_binary, ones))
                continue
            width = 3 + self._counts_binary(index) + (self.exact and self.columns[index][1] in ("FLOAT", "DOUBLE"))
            count, mean, variance, *rest = values[position: position + width]
            position += width
            non_binary = rest.pop(0) if self._counts_binary(index) else 1
            non_finite = rest
            count = int(count)
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
            products = float(values[position])
            position += 1
            if not math.isfinite(products):
                raise _NotCleanError
            # Σ(y − c_y)(x − c_x) − Σ(y − c_y)·Σ(x − c_x)/n, from the columns' own shifted sums.
            sxy = products - y.shifted_sum * x.shifted_sum / rows if rows > 1 else 0.0
            # Cauchy–Schwarz: Σ|(y − c_y)(x − c_x)| ≤ √(Σ(y − c_y)² · Σ(x − c_x)²).
            scale = math.sqrt(y.shifted_squares * x.shifted_squares)
            co_moments.append(_CoMoments(rows, y.mean, x.mean, x.m2, sxy, _SHIFTED_BOUND * scale if rows > 1 else 0.0,
                                         y.mean_error + x.mean_error))
        return _Cell(rows, tuple(moments), tuple(co_moments))


@dataclass(frozen=True)
class _Assembled:
    """The scan's groups merged: what :func:`summarise_user_level` reports besides the id check."""

    total: int
    missing: int
    undated: int
    spellings: dict[str, dict[str, int]]
    variants: tuple[VariantSummary, ...]
    grouped: dict[tuple[str, str], list[VariantSummary]]
    days: tuple[tuple[str, tuple[VariantSummary, ...]], ...]
    new_users: tuple[tuple[str, dict[str, int]], ...]


_ID_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
_MAX_BITMAP_IDS = 1 << 28  # a 32 MB bitmap


def _ids_unique(connection: duckdb.DuckDBPyConnection, source: str, path: str, user: str, low: int, high: int) -> bool:
    """True when no integer user id appears twice, so no user can be in two variants: one bit per
    possible id (DuckDB's ``bitstring_agg``) and a count, ~0.1 s for 10 million ids where grouping
    by the id takes ~1 s. Ids spread over more than 2^28 values are left to the grouping query."""
    if high - low >= _MAX_BITMAP_IDS:
        return False
    try:
        found = connection.execute(
            f"SELECT bit_count(bitstring_agg(CAST({user} AS BIGINT), {int(low)}, {int(high)})), count({user}) "
            f"FROM {source}", [path]).fetchone()
    except duckdb.Error:  # an id outside the footer's range (statistics that lie): group the ids instead
        return False
    return found is not None and found[0] == found[1]


@dataclass(frozen=True)
class _FooterStatistics:
    """A Parquet column's min / max over its row groups, read from the footer (not the data)."""

    low: float | None
    high: float | None
    integer_range: tuple[int, int] | None  # exact integer bounds, when every row group has them


def _footer_statistics(connection: duckdb.DuckDBPyConnection, path: str) -> dict[str, _FooterStatistics]:
    """Every column's footer statistics ({} when the footer cannot be read)."""
    try:
        found = connection.execute(
            "SELECT path_in_schema, min(TRY_CAST(stats_min_value AS DOUBLE)), max(TRY_CAST(stats_max_value AS DOUBLE)), "
            "min(TRY_CAST(stats_min_value AS BIGINT)), max(TRY_CAST(stats_max_value AS BIGINT)), "
            "count(*) = count(TRY_CAST(stats_min_value AS BIGINT)) AND count(*) = count(TRY_CAST(stats_max_value AS BIGINT)) "
            "FROM parquet_metadata(?) GROUP BY path_in_schema", [path]).fetchall()
    except duckdb.Error:
        return {}
    return {str(name): _FooterStatistics(low, high, (int(least), int(most)) if complete else None)
            for name, low, high, least, most, complete in found}


def _beyond_zero_one(statistics: dict[str, _FooterStatistics], names: Sequence[str]) -> frozenset[int]:
    """Indices of the columns that a Parquet file's own statistics (min / max per row group,
    read from the footer, not the data) show to hold a value outside [0, 1]: they cannot be 0/1,
    so the scan need not test each value. Columns without statistics are tested as usual."""
    def beyond(found: _FooterStatistics | None) -> bool:
        return found is not None and ((found.low is not None and found.low < 0)
                                      or (found.high is not None and found.high > 1))

    return frozenset(index for index, name in enumerate(names) if beyond(statistics.get(name)))


def _pivots(connection: duckdb.DuckDBPyConnection, source: str, path: str,
            columns: Sequence[tuple[str, str]]) -> tuple[float, ...]:
    """Each column's pivot for the shifted sums: the mean of its finite values among the file's first
    ``_PIVOT_ROWS`` rows (rounded to an integer for integer columns, whose shifted sums are then
    exact), 0 without any. Close to the column's mean in most files, so Σ(x − c)² is not much
    larger than the sum of squared deviations and its rounding error stays tiny; when the pivot
    is far off, the error bounds say so and the exact scan runs."""
    if not columns:
        return ()
    averages = ", ".join(f"avg(CAST({name} AS DOUBLE)) FILTER (WHERE isfinite(CAST({name} AS DOUBLE)))"
                         for name, _ in columns)
    try:
        found = connection.execute(f"SELECT {averages} FROM (SELECT * FROM {source} LIMIT {_PIVOT_ROWS})",
                                   [path]).fetchone()
    except duckdb.Error:
        found = None
    pivots = []
    for (_, kind), value in zip(columns, found or [None] * len(columns), strict=True):
        pivot = float(value) if value is not None and math.isfinite(value) else 0.0
        pivots.append(float(round(pivot)) if kind in INTEGER_TYPES and abs(pivot) < 2.0**52 else pivot)
    return tuple(pivots)


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

    footer = _footer_statistics(connection, path) if source.startswith("read_parquet") else {}
    known_non_binary = _beyond_zero_one(footer, [columns[key][0] for key in numeric])

    user = _quote(columns["user_id"][0]) if "user_id" in columns else None
    integer_ids = user is not None and columns["user_id"][1].split("(")[0] in _ID_TYPES
    # Integer user ids: their range, for the bitmap duplicate check below, comes from a Parquet
    # footer's statistics when every row group has them (reading it in the scan costs a fifth of
    # the scan), otherwise with the scan.
    footer_ids = footer[columns["user_id"][0]].integer_range if integer_ids and columns["user_id"][0] in footer \
        else None
    id_range = f", min(CAST({user} AS BIGINT)), max(CAST({user} AS BIGINT))" if integer_ids and not footer_ids else ""
    trailing = 2 if id_range else 0

    def scan(exact: bool) -> tuple[list[Any], list[_Cell]]:
        # One scan, one hash aggregation at the finest grain (raw variant label × every segment
        # column); variants (trimmed, case-insensitive) and each segment's margins are then merged
        # exactly from these few groups with Chan's parallel formulas.
        plan = _Scan(quoted, indexed, exact, known_non_binary, () if exact else _pivots(connection, source, path, quoted))
        sql = (f"SELECT {', '.join(keys)}, count(*)" + "".join(", " + part for part in plan.aggregates())
               + f"{id_range} FROM {source} GROUP BY ALL")
        found = connection.execute(sql, [path]).fetchall()
        return found, [plan.cell(row[len(keys): len(row) - trailing]) for row in found]

    pair_names = [*pairs, *(f"{n}/{d}" for n, d in ratio_pairs)]

    def assemble(rows: list[Any], cells: list[_Cell]) -> _Assembled:
        """Merge the scan's groups into variants, segment margins and days (raises
        :class:`_NotCleanError` when a pivoted result cannot be trusted)."""
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

        def variant_summary(key: str, cell: _Cell) -> VariantSummary:
            found = cell.covariates(pair_names, indexed)
            return VariantSummary(label_of(key), tuple(sorted(spellings[key])), cell.n, cell.columns(numeric),
                                  {name: found[name] for name in pairs},
                                  {pair: found[f"{pair[0]}/{pair[1]}"] for pair in ratio_pairs})

        variants = [variant_summary(key, overall[key]) for key in sorted(overall)]
        grouped: dict[tuple[str, str], list[VariantSummary]] = {}
        for (column, value, key), cell in sorted(by_segment.items()):
            grouped.setdefault((column, value), []).append(variant_summary(key, cell))
        days: list[tuple[str, tuple[VariantSummary, ...]]] = []
        new_users: list[tuple[str, dict[str, int]]] = []
        running: dict[str, _Cell] = {}
        for day in sorted({d for d, _ in by_day}):
            today = {key: cell for (d, key), cell in by_day.items() if d == day}
            for key, cell in today.items():
                running[key] = running[key].merge(cell) if key in running else cell
            new_users.append((day, {label_of(key): cell.n for key, cell in today.items()}))
            days.append((day, tuple(variant_summary(key, running[key]) for key in sorted(running))))
        return _Assembled(total, missing, undated, spellings, tuple(variants), grouped, tuple(days), tuple(new_users))

    try:
        rows, cells = scan(exact=False)
        assembled = assemble(rows, cells)
    except (_NotCleanError, duckdb.OutOfRangeException):
        rows, cells = scan(exact=True)
        assembled = assemble(rows, cells)
    spellings = assembled.spellings
    several, examples = 0, tuple[str, ...]()
    lows = [footer_ids[0]] if footer_ids else [row[-2] for row in rows if id_range and row[-2] is not None]
    highs = [footer_ids[1]] if footer_ids else [row[-1] for row in rows if id_range and row[-1] is not None]
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
    return UserLevelSummary(rows=assembled.total, days=assembled.days, new_users=assembled.new_users,
                            undated_rows=assembled.undated, numeric=tuple(numeric), ignored=tuple(ignored),
                            variants=assembled.variants, missing_variant_rows=assembled.missing,
                            users_in_several_variants=several, example_users=examples,
                            segments=tuple(SegmentSummary(column, value, tuple(found))
                                           for (column, value), found in sorted(assembled.grouped.items())),
                            unknown_segments=tuple(unknown))
