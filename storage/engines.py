"""The two SQL engines that run a :class:`storage.scan_plan.ScanPlan`: DuckDB and Spark.

Each engine writes its own SQL by hand from the same plan, because the dialects differ in
ways that a transpiler (sqlglot was tried) gets silently wrong:

=================================  ==========================================================
DuckDB                             Spark
=================================  ==========================================================
``"ident"``                        ```ident``` (``"variant"`` is a *string literal* in Spark)
``CAST(x AS VARCHAR)``             ``CAST(x AS STRING)``
``read_parquet(?)``, ``read_csv``  a temporary view over ``spark.read`` (:mod:`storage.spark`)
``sum(BIGINT)`` is 128-bit         BIGINT sums overflow: first BIGINT, on overflow DECIMAL(38,0)
``isfinite(x)``                    ``NOT isnan(x) AND abs(x) <> double('Infinity')``
``fsum`` (compensated, Kahan)      none: the fast scan takes Spark's ``avg`` / ``var_samp``
                                   / ``regr_sxy`` of ``x − pivot`` instead of pivoted sums
``bitstring_agg`` id bitmap        not used: users are grouped by id
``parquet_metadata`` min / max     none: every value is tested, ids are read by the scan
=================================  ==========================================================

Neither engine computes anything the other does not: the rows they return are merged, checked
and analysed by the same code (:func:`storage.scan_plan.summarise`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from storage.scan_plan import INTEGER_TYPES, PIVOT_ROWS, Aggregate, Key, MomentsMethod, ScanOverflowError

__all__ = ["DuckDBEngine", "SparkEngine", "spark_type_name"]


# -- DuckDB ----------------------------------------------------------------------------------------

def _common_aggregate(function: str, value: str, x: str) -> str | None:
    """The aggregates both dialects spell alike (``value`` and ``x`` are already cast and shifted);
    ``None`` for those each engine writes its own way."""
    match function:
        case "count":
            return f"count({value})"
        case "sum":
            return f"sum({value})"
        case "sum_squares":
            return f"sum({value} * {value})"
        case "avg":
            return f"avg({value})"
        case "var_samp":
            return f"coalesce(var_samp({value}), 0)"
        case "count_non_binary":
            return f"count_if({value} NOT IN (0, 1))"
        case "count_ones":
            return f"count_if({value} = 1)"
        case "regr_count" | "regr_avgy" | "regr_avgx":
            return f"{function}({value}, {x})"
        case "regr_sxx" | "regr_sxy":
            return f"coalesce({function}({value}, {x}), 0)"
    return None


def _duckdb_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_MAX_BITMAP_IDS = 1 << 28  # a 32 MB bitmap


@dataclass(frozen=True)
class _FooterStatistics:
    """A Parquet column's min / max over its row groups, read from the footer (not the data)."""

    low: float | None
    high: float | None
    integer_range: tuple[int, int] | None  # exact integer bounds, when every row group has them


def _duckdb_double(value: float) -> str:
    # A string cast, so DuckDB parses the very double Python holds (a bare literal is a DECIMAL).
    return f"CAST('{value!r}' AS DOUBLE)"


class DuckDBEngine:
    """The embedded engine: ``source`` is ``read_csv(?)`` or ``read_parquet(?)`` over ``path`` on an
    open DuckDB connection (anything with ``execute(sql, parameters)``)."""

    name = "duckdb"
    moments: MomentsMethod = "pivoted"  # fsum is a compensated (Kahan) sum: pivoted sums carry a bound

    def __init__(self, connection: duckdb.DuckDBPyConnection, source: str, path: str) -> None:
        self._connection = connection
        self._source = source
        self._path = path
        self._footer: dict[str, _FooterStatistics] | None = None

    def describe(self) -> list[tuple[str, str]]:
        found = self._connection.execute(f"DESCRIBE SELECT * FROM {self._source}", [self._path]).fetchall()
        return [(str(name), str(kind)) for name, kind, *_ in found]

    @staticmethod
    def render_key(key: Key) -> str:
        column = _duckdb_quote(key.column)
        return f"CAST(TRY_CAST({column} AS TIMESTAMP) AS DATE)" if key.kind == "day" else f"CAST({column} AS VARCHAR)"

    @staticmethod
    def render_aggregate(aggregate: Aggregate) -> str:
        cast = "BIGINT" if aggregate.integer else "DOUBLE"
        value = f"CAST({_duckdb_quote(aggregate.column)} AS {cast})"
        x = f"CAST({_duckdb_quote(aggregate.other)} AS DOUBLE)" if aggregate.other is not None else ""
        shifted = f"({value} - {_duckdb_double(aggregate.pivot)})"
        if aggregate.function in ("avg", "var_samp", "regr_sxy") and (aggregate.pivot or aggregate.other_pivot):
            value, x = shifted, f"({x} - {_duckdb_double(aggregate.other_pivot)})" if x else ""
        # sum: a HUGEINT of 128 bits, never overflows here; sum_squares: the product overflows past 2^63
        # (OutOfRangeException), which the scan plan catches and reruns in doubles.
        common = _common_aggregate(aggregate.function, value, x)
        if common is not None:
            return common
        match aggregate.function:
            case "count_non_finite":
                return f"count_if(NOT isfinite({value}))"
            case "shifted_sum":
                return f"fsum({shifted})"
            case "shifted_squares":
                return f"fsum({shifted} * {shifted})"
            case "shifted_cross":
                return f"coalesce(fsum({shifted} * ({x} - {_duckdb_double(aggregate.other_pivot)})), 0)"
            case "min_id":
                return f"min({value})"
            case "max_id":
                return f"max({value})"
        raise ValueError(f"aggregate function {aggregate.function!r} is unknown to the DuckDB engine")

    def render_group(self, keys: Sequence[Key], aggregates: Sequence[Aggregate]) -> str:
        selected = [*(self.render_key(k) for k in keys), "count(*)", *(self.render_aggregate(a) for a in aggregates)]
        return f"SELECT {', '.join(selected)} FROM {self._source} GROUP BY ALL"

    def group(self, keys: Sequence[Key], aggregates: Sequence[Aggregate]) -> list[tuple[Any, ...]]:
        try:
            return self._connection.execute(self.render_group(keys, aggregates), [self._path]).fetchall()
        except duckdb.OutOfRangeException:
            raise ScanOverflowError from None

    def _footer_statistics(self) -> dict[str, _FooterStatistics]:
        """Every column's Parquet footer statistics ({} for CSV, or when the footer cannot be read)."""
        if self._footer is not None:
            return self._footer
        self._footer = {}
        if self._source.startswith("read_parquet"):
            try:
                found = self._connection.execute(
                    "SELECT path_in_schema, min(TRY_CAST(stats_min_value AS DOUBLE)), "
                    "max(TRY_CAST(stats_max_value AS DOUBLE)), min(TRY_CAST(stats_min_value AS BIGINT)), "
                    "max(TRY_CAST(stats_max_value AS BIGINT)), count(*) = count(TRY_CAST(stats_min_value AS BIGINT)) "
                    "AND count(*) = count(TRY_CAST(stats_max_value AS BIGINT)) "
                    "FROM parquet_metadata(?) GROUP BY path_in_schema", [self._path]).fetchall()
            except duckdb.Error:
                found = []
            self._footer = {str(name): _FooterStatistics(low, high, (int(least), int(most)) if complete else None)
                            for name, low, high, least, most, complete in found}
        return self._footer

    def beyond_zero_one(self, names: Sequence[str]) -> frozenset[int]:
        """A Parquet file's own statistics (min / max per row group, read from the footer, not the
        data) prove a column is not 0/1 when they go beyond [0, 1]; columns without them are tested."""
        statistics = self._footer_statistics()

        def beyond(found: _FooterStatistics | None) -> bool:
            return found is not None and ((found.low is not None and found.low < 0)
                                          or (found.high is not None and found.high > 1))

        return frozenset(index for index, name in enumerate(names) if beyond(statistics.get(name)))

    def id_range(self, user: str) -> tuple[int, int] | None:
        found = self._footer_statistics().get(user)
        return found.integer_range if found is not None else None

    def pivots(self, columns: Sequence[tuple[str, str]]) -> tuple[float, ...]:
        """Each column's pivot for the shifted sums: the mean of its finite values among the file's
        first rows (rounded to an integer for integer columns, whose shifted sums are then exact),
        0 without any. Close to the column's mean in most files, so Σ(x − c)² is not much larger
        than the sum of squared deviations and its rounding error stays tiny; when the pivot is
        far off, the error bounds say so and the exact scan runs."""
        if not columns:
            return ()
        averages = ", ".join(
            f"avg(CAST({_duckdb_quote(name)} AS DOUBLE)) FILTER (WHERE isfinite(CAST({_duckdb_quote(name)} AS DOUBLE)))"
            for name, _ in columns)
        try:
            found = self._connection.execute(
                f"SELECT {averages} FROM (SELECT * FROM {self._source} LIMIT {PIVOT_ROWS})", [self._path]).fetchone()
        except duckdb.Error:
            found = None
        pivots = []
        for (_, kind), value in zip(columns, found or [None] * len(columns), strict=True):
            pivot = float(value) if value is not None and math.isfinite(value) else 0.0
            pivots.append(float(round(pivot)) if kind in INTEGER_TYPES and abs(pivot) < 2.0**52 else pivot)
        return tuple(pivots)

    def ids_unique(self, user: str, low: int, high: int) -> bool:
        """One bit per possible id (``bitstring_agg``) and a count: ~0.1 s for 10 million ids where
        grouping by the id takes ~1 s. Ids spread over more than 2^28 values are left to grouping.
        (Folding this check into the main scan was measured on 10 million users and is dearer: a
        bitmap per group costs ~0.87 s of CPU and 330 MB against 0.43 s + 0.24 s and 120 MB for the
        scan plus an id-only bitmap pass; ``count(DISTINCT user_id)`` per group 7.5 s and 1.2 GB. A
        Parquet file's bitmap pass reads only the id column.)"""
        if high - low >= _MAX_BITMAP_IDS:
            return False
        quoted = _duckdb_quote(user)
        try:
            found = self._connection.execute(
                f"SELECT bit_count(bitstring_agg(CAST({quoted} AS BIGINT), {int(low)}, {int(high)})), "
                f"count({quoted}) FROM {self._source}", [self._path]).fetchone()
        except duckdb.Error:  # an id outside the footer's range (statistics that lie): group the ids instead
            return False
        return found is not None and found[0] == found[1]

    def users_in_several_variants(self, user: str, variant: str, arms: Mapping[str, int]) -> list[str]:
        quoted = _duckdb_quote(user)
        arm = f"CASE CAST({_duckdb_quote(variant)} AS VARCHAR) " + " ".join(f"WHEN ? THEN {i}" for i in arms.values()) \
            + " END"
        found = self._connection.execute(
            f"WITH rows AS (SELECT {quoted} AS id, {arm} AS arm FROM {self._source} WHERE {quoted} IS NOT NULL) "
            "SELECT CAST(id AS VARCHAR) FROM rows GROUP BY id HAVING min(arm) <> max(arm)",
            [*arms, self._path]).fetchall()
        return [str(row[0]) for row in found]


# -- Spark -----------------------------------------------------------------------------------------

def _spark_quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _spark_double(value: float) -> str:
    return f"CAST('{value!r}' AS DOUBLE)"  # the very double Python holds (a bare literal is a DECIMAL)


_SPARK_TYPES = {
    "byte": "TINYINT", "short": "SMALLINT", "integer": "INTEGER", "long": "BIGINT", "float": "FLOAT",
    "double": "DOUBLE", "decimal": "DECIMAL", "boolean": "BOOLEAN", "string": "VARCHAR", "varchar": "VARCHAR",
    "char": "VARCHAR", "date": "DATE", "timestamp": "TIMESTAMP", "timestamp_ntz": "TIMESTAMP", "binary": "BLOB",
}


def spark_type_name(type_name: str) -> str:
    """A Spark ``DataType.typeName()`` (``long``, ``decimal(10,2)``, ...) in the plan's vocabulary."""
    return _SPARK_TYPES.get(type_name.split("(")[0].strip().lower(), type_name.upper())


def _is_overflow(error: BaseException) -> bool:
    text = str(error)
    return any(marker in text for marker in ("ARITHMETIC_OVERFLOW", "NUMERIC_VALUE_OUT_OF_RANGE",
                                             "DECIMAL_PRECISION_EXCEEDS", "CAST_OVERFLOW"))


class SparkEngine:
    """Spark through a session (Spark Connect or classic) over the temporary view ``view``
    (:func:`storage.spark.register_input` makes one from a path, a table or a query).

    ``translate`` maps an exception Spark raised to a :class:`storage.errors.SparkError` (or
    returns it unchanged); it is applied to every query, so each failure is one line."""

    name = "spark"
    moments: MomentsMethod = "central"  # no compensated sum in Spark: its stable avg / var_samp / regr_sxy

    def __init__(self, session: Any, view: str, *, translate: Callable[[BaseException], BaseException] | None = None
                 ) -> None:
        self._session = session
        self._view = view
        self._translate = translate or (lambda error: error)

    def _collect(self, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            frame = self._session.sql(sql, args=list(args)) if args else self._session.sql(sql)
            return [tuple(row) for row in frame.collect()]
        except Exception as error:
            if _is_overflow(error):
                raise ScanOverflowError from None
            raise self._translate(error) from None

    def describe(self) -> list[tuple[str, str]]:
        try:
            fields = self._session.table(self._view).schema.fields
        except Exception as error:
            raise self._translate(error) from None
        return [(str(field.name), spark_type_name(field.dataType.typeName())) for field in fields]

    @staticmethod
    def render_key(key: Key) -> str:
        column = _spark_quote(key.column)
        return f"CAST(TRY_CAST({column} AS TIMESTAMP) AS DATE)" if key.kind == "day" else f"CAST({column} AS STRING)"

    @staticmethod
    def render_aggregate(aggregate: Aggregate, *, wide: bool = False) -> str:
        """``wide``: integer sums in DECIMAL(38,0) instead of BIGINT (the rerun after an overflow)."""
        cast = ("DECIMAL(38,0)" if wide else "BIGINT") if aggregate.integer else "DOUBLE"
        value = f"CAST({_spark_quote(aggregate.column)} AS {cast})"
        x = f"CAST({_spark_quote(aggregate.other)} AS DOUBLE)" if aggregate.other is not None else ""
        if aggregate.function in ("avg", "var_samp", "regr_sxy") and (aggregate.pivot or aggregate.other_pivot):
            # Moments of x − c: Spark's streaming updates lose the digits an offset leaves no room for.
            value = f"({value} - {_spark_double(aggregate.pivot)})"
            x = f"({x} - {_spark_double(aggregate.other_pivot)})" if x else ""
        common = _common_aggregate(aggregate.function, value, x)
        if common is not None:
            return common
        match aggregate.function:
            case "count_non_finite":
                return f"count_if(isnan({value}) OR abs({value}) = double('Infinity'))"
            case "min_id":
                return f"min(CAST({_spark_quote(aggregate.column)} AS BIGINT))"
            case "max_id":
                return f"max(CAST({_spark_quote(aggregate.column)} AS BIGINT))"
        raise ValueError(f"aggregate function {aggregate.function!r} is unknown to the Spark engine")

    def render_group(self, keys: Sequence[Key], aggregates: Sequence[Aggregate], *, wide: bool = False) -> str:
        selected = [*(self.render_key(k) for k in keys), "count(*)",
                    *(self.render_aggregate(a, wide=wide) for a in aggregates)]
        ordinals = ", ".join(str(i + 1) for i in range(len(keys)))
        return f"SELECT {', '.join(selected)} FROM {_spark_quote(self._view)}" + (f" GROUP BY {ordinals}" if keys else "")

    def group(self, keys: Sequence[Key], aggregates: Sequence[Aggregate]) -> list[tuple[Any, ...]]:
        try:
            return self._collect(self.render_group(keys, aggregates))
        except ScanOverflowError:
            if not any(a.integer and a.function in ("sum", "sum_squares") for a in aggregates):
                raise
        # BIGINT sums overflowed (ANSI mode raises): the same scan with 38-digit decimal sums, still
        # exact. Past 38 digits ScanOverflowError reaches the plan, which then scans in DOUBLE.
        return self._collect(self.render_group(keys, aggregates, wide=True))

    def beyond_zero_one(self, names: Sequence[str]) -> frozenset[int]:
        return frozenset()  # no metadata shortcut: every value is tested

    def id_range(self, user: str) -> tuple[int, int] | None:
        return None

    def pivots(self, columns: Sequence[tuple[str, str]]) -> tuple[float, ...]:
        """As DuckDB's: the mean of each column's finite values among some :data:`PIVOT_ROWS` rows
        (which rows Spark reads first is its choice; any nearby value serves)."""
        if not columns:
            return ()

        def finite(name: str) -> str:
            value = f"CAST({_spark_quote(name)} AS DOUBLE)"
            return f"avg(CASE WHEN NOT isnan({value}) AND abs({value}) <> double('Infinity') THEN {value} END)"

        found = self._collect(f"SELECT {', '.join(finite(name) for name, _ in columns)} "
                              f"FROM (SELECT * FROM {_spark_quote(self._view)} LIMIT {PIVOT_ROWS})")
        values = found[0] if found else (None,) * len(columns)
        pivots = []
        for (_, kind), value in zip(columns, values, strict=True):
            pivot = float(value) if value is not None and math.isfinite(float(value)) else 0.0
            pivots.append(float(round(pivot)) if kind in INTEGER_TYPES and abs(pivot) < 2.0**52 else pivot)
        return tuple(pivots)

    def ids_unique(self, user: str, low: int, high: int) -> bool:
        return False  # no cheap proof on Spark: the grouping query (one shuffle) decides

    def users_in_several_variants(self, user: str, variant: str, arms: Mapping[str, int]) -> list[str]:
        quoted = _spark_quote(user)
        arm = f"CASE CAST({_spark_quote(variant)} AS STRING) " + " ".join(f"WHEN ? THEN {i}" for i in arms.values()) \
            + " END"
        found = self._collect(
            f"WITH user_arms AS (SELECT {quoted} AS id, {arm} AS arm FROM {_spark_quote(self._view)} "
            f"WHERE {quoted} IS NOT NULL) "
            "SELECT CAST(id AS STRING) FROM user_arms GROUP BY id HAVING min(arm) <> max(arm)", list(arms))
        return [str(row[0]) for row in found]
