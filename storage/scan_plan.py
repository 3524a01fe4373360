"""The user-level scan as a plan, independent of the SQL engine that runs it.

A :class:`ScanPlan` says *what* one scan of a user-level table computes: the grouping keys
(the raw variant label, every segment column, the day of ``first_exposure``), and per group a
list of :class:`Aggregate`. It does not say *how*: each engine (:mod:`storage.engines`: DuckDB
embedded, Spark over Spark Connect) renders every aggregate in its own hand-written SQL
(quoting, casts, overflow, ``isfinite``, compensated sums), runs the one ``GROUP BY`` and hands
back one row per group: keys, ``count(*)``, then the aggregates in the plan's order.

Per group the *fast* scan computes what each numeric column needs: exact integer sums and sums
of squares for integer columns (mean, variance and the 0/1 test follow exactly); for
floating-point ones, counts of values other than 0/1 and of ones (a 0/1 group is then
summarised exactly from its counts) and, depending on what the engine offers
(:attr:`ScanPlan.moments`):

* ``pivoted`` (DuckDB, which has a compensated ``fsum``): Kahan sums of ``x − c`` and
  ``(x − c)²`` around a per-column pivot ``c`` (the mean of the input's first rows), and the
  shifted cross-product sum for every metric with a ``pre_<metric>`` CUPED covariate and every
  declared ratio pair. Shifted sums are as cheap as bare sums; each carries a rounding-error
  bound, and when the bound of any reported variance or co-moment is not below 1e-11 of its
  value (catastrophic cancellation: values far from the pivot relative to their spread) the
  result is not trusted.
* ``central`` (Spark, whose ``sum`` of doubles is a plain sum with no such bound): the engine's
  own streaming ``avg`` / ``var_samp`` and ``regr_sxy`` (central moments merged per partition)
  of ``x − c`` around the same pivot, trusted as the exact scan's are. The pivot matters: on
  values of 1e9 with a spread of 1, Spark's ``var_samp`` of ``x`` itself is off by ~1e-5.

When a result is not trusted, and when the data is not clean (NaN or infinity, empty values in
a CUPED pair, integers too large to square — or sum — in the engine's integers), the *exact*
scan runs instead: stable ``avg`` / ``var_samp``, explicit counts and pairwise ``regr_*``
co-moments.

Everything after the scan is engine-agnostic and lives here: reading a row back into a
:class:`Cell`, merging cells exactly with Chan's parallel formulas (one hash aggregation at the
finest grain keeps the scan close to a bare aggregate; GROUPING SETS would aggregate every row
once per set), and building the :class:`analytics.UserLevelSummary` (variants, segments, days,
users in several variants). Groups are sorted by their keys before merging: a group holding
±infinity merged with finite ones gives infinity or NaN depending on the order, and the order in
which an engine returns groups is not defined (DuckDB's threads, Spark's partitions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from analytics import ColumnSummary, CovariateSummary, SegmentSummary, UserLevelSummary, VariantSummary

__all__ = [
    "FLOATING_TYPES",
    "ID_TYPES",
    "INTEGER_TYPES",
    "NUMERIC_TYPES",
    "PIVOT_ROWS",
    "Aggregate",
    "AggregateFunction",
    "Cell",
    "Key",
    "MomentsMethod",
    "ScanEngine",
    "ScanOverflowError",
    "ScanPlan",
    "summarise",
]

# Column types in the plan's vocabulary: SQL type names as DuckDB spells them. Every engine
# describes its columns in these names (Spark's LongType is BIGINT, StringType VARCHAR, ...).
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL", "BOOLEAN")
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "BOOLEAN")
FLOATING_TYPES = ("FLOAT", "DOUBLE")  # NaN / infinity can only occur in these
ID_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")

AggregateFunction = Literal[
    "count",              # values that are not empty
    "sum",                # exact integer sum (BIGINT operands; wider accumulators where the engine has them)
    "sum_squares",        # exact integer sum of x * x
    "avg",                # mean of the DOUBLE values
    "var_samp",           # sample variance of the DOUBLE values, 0 when fewer than two
    "count_non_binary",   # values other than 0 and 1
    "count_non_finite",   # NaN, +infinity, -infinity
    "regr_count",         # pairs (y, x) with both values present
    "regr_avgy",
    "regr_avgx",
    "regr_sxx",           # Σ (x - x̄)² over complete pairs, 0 when none
    "regr_sxy",           # Σ (x - x̄)(y - ȳ) over complete pairs, 0 when none
    "count_ones",         # values equal to 1
    "shifted_sum",        # compensated Σ (x − pivot) (``pivoted`` engines only)
    "shifted_squares",    # compensated Σ (x − pivot)²
    "shifted_cross",      # compensated Σ (y − pivot_y)(x − pivot_x), 0 when none
    "min_id",             # smallest integer user id (BIGINT)
    "max_id",             # largest integer user id (BIGINT)
]

MomentsMethod = Literal["pivoted", "central"]

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
PIVOT_ROWS = 2048


class ScanOverflowError(Exception):
    """Integer arithmetic overflowed in every form the engine can sum in; the plan is re-run exact."""


class _NotCleanError(Exception):
    """The fast scan met data it cannot summarise exactly (NaN or infinity, an incomplete CUPED pair,
    integer squares beyond 64 bits); the exact scan is run instead."""


@dataclass(frozen=True)
class Aggregate:
    """One aggregate of the scan over column ``column`` (and ``other``, the x of a ``regr_*`` pair).

    ``integer``: the operand is the column cast to BIGINT (exact sums), else to DOUBLE."""

    function: AggregateFunction
    column: str
    other: str | None = None
    integer: bool = False
    pivot: float = 0.0  # the shift of ``column`` (``shifted_*``; avg / var_samp / regr_* of x − pivot)
    other_pivot: float = 0.0  # and of ``other``


@dataclass(frozen=True)
class Key:
    """A grouping key: a column's value as text, or the calendar day of a date / timestamp column
    (empty when the value is not a date)."""

    column: str
    kind: Literal["text", "day"] = "text"


class ScanEngine(Protocol):
    """What the plan needs from an engine. Column names are the table's own spelling."""

    name: str
    moments: MomentsMethod  # how the fast scan sums floating-point columns (see the module docstring)

    def describe(self) -> list[tuple[str, str]]:
        """Every column of the input as (name, type in the plan's vocabulary)."""
        ...

    def group(self, keys: Sequence[Key], aggregates: Sequence[Aggregate]) -> list[tuple[Any, ...]]:
        """``SELECT keys..., count(*), aggregates... GROUP BY keys``: one row per group. Raises
        :class:`ScanOverflowError` when integer arithmetic overflows however the engine sums."""
        ...

    def beyond_zero_one(self, names: Sequence[str]) -> frozenset[int]:
        """Indices of ``names`` that the storage's own metadata proves hold a value outside [0, 1]
        (free to ask, or an empty set)."""
        ...

    def id_range(self, user: str) -> tuple[int, int] | None:
        """The integer user ids' (min, max) from the storage's metadata, when it holds them exactly
        (then the scan need not read the ids), else ``None``."""
        ...

    def pivots(self, columns: Sequence[tuple[str, str]]) -> tuple[float, ...]:
        """Per (name, type) column: the mean of its finite values among the input's first
        :data:`PIVOT_ROWS` rows (rounded for integer columns; 0 without any), for the fast scan."""
        ...

    def ids_unique(self, user: str, low: int, high: int) -> bool:
        """True when it is cheap to prove that no integer user id in [low, high] repeats; False
        means "not proven" (the grouping query then decides)."""
        ...

    def users_in_several_variants(self, user: str, variant: str, arms: Mapping[str, int]) -> list[str]:
        """Ids (as text) of the users whose rows fall in more than one arm; ``arms`` maps each raw
        spelling of a variant label to its arm's number."""
        ...


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

    @classmethod
    def of_central(cls, n: int, mean: Any, variance: Any, non_binary: int | None, ones: int | None,
                   pivot: float = 0.0) -> _Moments:
        """From the engine's own stable mean and sample variance of ``x − pivot`` (the pivot takes
        the offset away, where streaming updates lose digits; exact error bounds are not known, so
        they are trusted as the exact scan's are). A group whose values are all 0 or 1 is
        summarised exactly from its count of ones; a non-finite mean or variance (NaN or infinity
        in the data) raises :class:`_NotCleanError`."""
        if n == 0:
            return cls(0, 0.0, 0.0, True, 0)
        if non_binary == 0 and ones is not None:
            return cls(n, ones / n, ones * (n - ones) / n, True, 0)
        found_mean = float(mean) if mean is not None else 0.0
        found_variance = float(variance) if variance is not None else 0.0
        if not (math.isfinite(found_mean) and math.isfinite(found_variance)):
            raise _NotCleanError
        return cls(n, pivot + found_mean, found_variance * (n - 1) if n > 1 else 0.0, non_binary == 0, 0)

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
class Cell:
    """One group of the scan: its row count and the moments of every column and pair."""

    n: int
    moments: tuple[_Moments, ...]
    co_moments: tuple[_CoMoments, ...]

    def merge(self, other: Cell) -> Cell:
        return Cell(self.n + other.n, tuple(a.merge(b) for a, b in zip(self.moments, other.moments, strict=True)),
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
class ScanPlan:
    """The aggregates of one scan and how to read a result row back into a :class:`Cell`.

    The *fast* scan is what clean data costs: exact integer sums and sums of squares for integer
    columns, counts of non-0/1 values and of ones plus, for floating-point columns, either
    compensated sums of ``x − c`` and ``(x − c)²`` around the column's pivot ``c`` (``pivoted``)
    or the engine's stable mean and sample variance (``central``); per CUPED or ratio pair only
    the cross-product (the pair's means and ``sxx`` are the columns' own when neither has empty
    values). Anything it cannot vouch for raises :class:`_NotCleanError` (here, or when a merged
    result's error bound is too large), and the *exact* scan — stable ``avg`` / ``var_samp``,
    every statistic counted explicitly, NaN / infinity and pairwise-complete co-moments
    included — runs instead.
    """

    columns: tuple[tuple[str, str], ...]  # (name as the table spells it, type) of every numeric column
    pairs: tuple[tuple[int, int], ...]  # (metric index, covariate index) into columns
    exact: bool
    known_non_binary: frozenset[int] = frozenset()  # columns whose storage statistics go beyond [0, 1]
    pivots: tuple[float, ...] = ()  # per column: the shift of a pivoted fast scan's sums
    moments: MomentsMethod = "pivoted"

    def _pivot(self, index: int) -> float:
        return self.pivots[index] if self.pivots else 0.0

    def _integer(self, index: int) -> bool:
        return not self.exact and self.columns[index][1] in INTEGER_TYPES

    def _counts_binary(self, index: int) -> bool:
        return self.exact or index not in self.known_non_binary

    def _counts_non_finite(self, index: int) -> bool:
        return self.exact and self.columns[index][1] in FLOATING_TYPES

    def aggregates(self) -> list[Aggregate]:
        found: list[Aggregate] = []
        for index, (name, _) in enumerate(self.columns):
            if self._integer(index):
                found += [Aggregate(f, name, integer=True) for f in ("count", "sum", "sum_squares")]
                continue
            if not self.exact:
                if self.moments == "pivoted":
                    pivot = self._pivot(index)
                    found += [Aggregate("count", name), Aggregate("shifted_sum", name, pivot=pivot),
                              Aggregate("shifted_squares", name, pivot=pivot)]
                else:
                    pivot = self._pivot(index)
                    found += [Aggregate("count", name), Aggregate("avg", name, pivot=pivot),
                              Aggregate("var_samp", name, pivot=pivot)]
                if self._counts_binary(index):
                    found += [Aggregate("count_non_binary", name), Aggregate("count_ones", name)]
                continue
            found += [Aggregate("count", name), Aggregate("avg", name), Aggregate("var_samp", name)]
            if self._counts_binary(index):
                found.append(Aggregate("count_non_binary", name))
            if self._counts_non_finite(index):
                found.append(Aggregate("count_non_finite", name))
        for metric, covariate in self.pairs:
            y, x = self.columns[metric][0], self.columns[covariate][0]
            if self.exact:
                found += [Aggregate(f, y, x) for f in ("regr_count", "regr_avgy", "regr_avgx", "regr_sxx", "regr_sxy")]
            elif self.moments == "pivoted":
                found.append(Aggregate("shifted_cross", y, x, pivot=self._pivot(metric),
                                       other_pivot=self._pivot(covariate)))
            else:
                found.append(Aggregate("regr_sxy", y, x, pivot=self._pivot(metric), other_pivot=self._pivot(covariate)))
        return found

    def cell(self, values: Sequence[Any]) -> Cell:
        """A row's ``count(*)`` and aggregates (in :meth:`aggregates` order) as a :class:`Cell`."""
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
                count, first, second, *counted = values[position: position + width]
                position += width
                non_binary, ones = (int(counted[0]), int(counted[1])) if counted else (None, None)
                if self.moments == "pivoted":
                    moments.append(_Moments.of_shifted_sums(int(count), self.pivots[index], float(first or 0.0),
                                                            float(second or 0.0), non_binary, ones))
                else:
                    moments.append(_Moments.of_central(int(count), first, second, non_binary, ones, self._pivot(index)))
                continue
            width = 3 + self._counts_binary(index) + self._counts_non_finite(index)
            count, mean, variance, *rest = values[position: position + width]
            position += width
            non_binary = rest.pop(0) if self._counts_binary(index) else 1
            non_finite = rest
            count = int(count)
            moments.append(_Moments(count, float(mean) if mean is not None else 0.0,
                                    float(variance or 0.0) * (count - 1) if count > 1 else 0.0, int(non_binary) == 0,
                                    int(non_finite[0]) if non_finite else 0))
        co_moments = []
        for metric, covariate in self.pairs:
            if self.exact:
                count, mean_y, mean_x, sxx, sxy = values[position: position + 5]
                position += 5
                co_moments.append(_CoMoments(int(count), float(mean_y or 0.0), float(mean_x or 0.0),
                                             float(sxx or 0.0), float(sxy or 0.0)))
                continue
            y, x = moments[metric], moments[covariate]
            if y.n != rows or x.n != rows:
                raise _NotCleanError  # empty values: the pairs are a subset; count them exactly
            products = float(values[position] or 0.0)
            position += 1
            if not math.isfinite(products):
                raise _NotCleanError
            if self.moments == "central":  # the engine's own stable co-moment
                co_moments.append(_CoMoments(rows, y.mean, x.mean, x.m2, products))
                continue
            # Σ(y − c_y)(x − c_x) − Σ(y − c_y)·Σ(x − c_x)/n, from the columns' own shifted sums.
            sxy = products - y.shifted_sum * x.shifted_sum / rows if rows > 1 else 0.0
            # Cauchy–Schwarz: Σ|(y − c_y)(x − c_x)| ≤ √(Σ(y − c_y)² · Σ(x − c_x)²).
            scale = math.sqrt(y.shifted_squares * x.shifted_squares)
            co_moments.append(_CoMoments(rows, y.mean, x.mean, x.m2, sxy, _SHIFTED_BOUND * scale if rows > 1 else 0.0,
                                         y.mean_error + x.mean_error))
        return Cell(rows, tuple(moments), tuple(co_moments))


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


def _group_order(keys: Sequence[Any]) -> tuple[tuple[bool, str], ...]:
    """A total order of group keys whatever their types (empty last within each key)."""
    return tuple((key is None, "" if key is None else str(key)) for key in keys)


def summarise(engine: ScanEngine, segments: Sequence[str] = (), ratios: Sequence[tuple[str, str]] = ()
              ) -> UserLevelSummary:
    """Summarise the engine's input per variant and per variant within each value of every segment
    column (columns named ``segment_*`` plus ``segments``), from one scan grouped at the finest
    grain and merged exactly. ``ratios`` names (numerator, denominator) column pairs of ratio
    metrics: their co-moments come with the same scan. Raises whatever the engine raises for an
    input it cannot read (a :class:`storage.errors.StorageError` for Spark)."""
    described = engine.describe()
    columns = {str(name).replace("\ufeff", "").strip().casefold(): (str(name), str(kind)) for name, kind in described}
    variant = columns["variant"][0]
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
    keys = [Key(variant), *(Key(columns[k][0]) for k in segment_keys)]
    # A first_exposure column (date or timestamp) gives the timeline (SPEC §3.1): its day is one
    # more grouping key, and each day's cumulative arms are merged from those groups below.
    exposure = columns["first_exposure"][0] if "first_exposure" in columns else None
    if exposure is not None:
        keys.append(Key(exposure, "day"))
    typed = tuple((columns[key][0], columns[key][1].split("(")[0]) for key in numeric)
    indexed = tuple((numeric.index(key), numeric.index("pre_" + key)) for key in pairs) + tuple(
        (numeric.index(numerator), numeric.index(denominator)) for numerator, denominator in ratio_pairs)
    known_non_binary = engine.beyond_zero_one([columns[key][0] for key in numeric])

    user = columns["user_id"][0] if "user_id" in columns else None
    integer_ids = user is not None and columns["user_id"][1].split("(")[0] in ID_TYPES
    # Integer user ids: their range, for the cheap duplicate check below, comes from the storage's
    # metadata when it holds it exactly (a Parquet footer: reading the ids in the scan costs a
    # fifth of the scan), otherwise with the scan.
    stored_ids = engine.id_range(user) if integer_ids and user is not None else None
    id_range = [Aggregate("min_id", user, integer=True), Aggregate("max_id", user, integer=True)] \
        if integer_ids and user is not None and stored_ids is None else []
    trailing = len(id_range)

    def scan(exact: bool) -> tuple[list[tuple[Any, ...]], list[Cell]]:
        # One scan, one hash aggregation at the finest grain (raw variant label × every segment
        # column); variants (trimmed, case-insensitive) and each segment's margins are then merged
        # exactly from these few groups with Chan's parallel formulas, in the order of their keys.
        plan = ScanPlan(typed, indexed, exact, known_non_binary, () if exact else engine.pivots(typed), engine.moments)
        found = sorted(engine.group(keys, [*plan.aggregates(), *id_range]),
                       key=lambda row: _group_order(row[: len(keys)]))
        return found, [plan.cell(row[len(keys): len(row) - trailing]) for row in found]

    pair_names = [*pairs, *(f"{n}/{d}" for n, d in ratio_pairs)]

    def assemble(rows: list[tuple[Any, ...]], cells: list[Cell]) -> _Assembled:
        """Merge the scan's groups into variants, segment margins and days (raises
        :class:`_NotCleanError` when a pivoted result cannot be trusted)."""
        overall: dict[str, Cell] = {}
        spellings: dict[str, dict[str, int]] = {}
        by_segment: dict[tuple[str, str, str], Cell] = {}
        by_day: dict[tuple[str, str], Cell] = {}
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

        def variant_summary(key: str, cell: Cell) -> VariantSummary:
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
        running: dict[str, Cell] = {}
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
    except (_NotCleanError, ScanOverflowError):
        rows, cells = scan(exact=True)
        assembled = assemble(rows, cells)
    spellings = assembled.spellings
    several, examples = 0, tuple[str, ...]()
    lows = [stored_ids[0]] if stored_ids else [row[-2] for row in rows if id_range and row[-2] is not None]
    highs = [stored_ids[1]] if stored_ids else [row[-1] for row in rows if id_range and row[-1] is not None]
    unique = bool(lows) and engine.ids_unique(user or "", int(min(lows)), int(max(highs)))
    if user is not None and not unique and spellings:
        # Some id may repeat (or ids are not small integers): find the users in more than one
        # variant, each spelling of a label mapped to its variant's number.
        number = {raw: i for i, key in enumerate(sorted(spellings)) for raw in spellings[key]}
        found = sorted(engine.users_in_several_variants(user, variant, number))
        several, examples = len(found), tuple(found[:3])
    return UserLevelSummary(rows=assembled.total, days=assembled.days, new_users=assembled.new_users,
                            undated_rows=assembled.undated, numeric=tuple(numeric), ignored=tuple(ignored),
                            variants=assembled.variants, missing_variant_rows=assembled.missing,
                            users_in_several_variants=several, example_users=examples,
                            segments=tuple(SegmentSummary(column, value, tuple(found))
                                           for (column, value), found in sorted(assembled.grouped.items())),
                            unknown_segments=tuple(unknown))
