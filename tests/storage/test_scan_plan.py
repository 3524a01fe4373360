"""The engine seam: one scan plan, two hand-written renderings, an order-independent merge (issue 15)."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.engines import DuckDBEngine, SparkEngine, spark_type_name
from storage.scan_plan import Aggregate, Key, ScanPlan, summarise


class _Shuffled:
    """A DuckDB engine whose groups come back in a random order, as threads or partitions return them."""

    def __init__(self, engine: DuckDBEngine, seed: int) -> None:
        self._engine = engine
        self._random = random.Random(seed)
        self.name = "shuffled"
        self.moments = engine.moments

    def id_range(self, user: str) -> tuple[int, int] | None:
        return self._engine.id_range(user)

    def pivots(self, columns: Sequence[tuple[str, str]]) -> tuple[float, ...]:
        return self._engine.pivots(columns)

    def describe(self) -> list[tuple[str, str]]:
        return self._engine.describe()

    def group(self, keys: Sequence[Key], aggregates: Sequence[Aggregate]) -> list[tuple[Any, ...]]:
        rows = self._engine.group(keys, aggregates)
        self._random.shuffle(rows)
        return rows

    def beyond_zero_one(self, names: Sequence[str]) -> frozenset[int]:
        return self._engine.beyond_zero_one(names)

    def ids_unique(self, user: str, low: int, high: int) -> bool:
        return self._engine.ids_unique(user, low, high)

    def users_in_several_variants(self, user: str, variant: str, arms: Mapping[str, int]) -> list[str]:
        found = self._engine.users_in_several_variants(user, variant, arms)
        self._random.shuffle(found)
        return found


def _canonical(value: Any) -> Any:
    """A summary as nested tuples with NaN spelled out (NaN != NaN would hide equal summaries)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if hasattr(value, "__dataclass_fields__"):
        return tuple((name, _canonical(getattr(value, name))) for name in value.__dataclass_fields__)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _canonical(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_canonical(v) for v in value)
    return value


def test_merging_infinity_does_not_depend_on_the_order_of_the_groups(tmp_path: Path) -> None:
    """Merging a group holding +inf with finite groups gives inf or NaN depending on the order:
    the groups are sorted by their keys before merging, so every order gives one answer."""
    rng = np.random.default_rng(1)
    n = 4_000
    segment = rng.choice([f"s{i}" for i in range(12)], n)
    revenue = rng.gamma(2.0, 5.0, n)
    revenue[(segment == "s3")] = math.inf  # one whole group is infinite, the others finite
    revenue[(segment == "s7")] = -math.inf
    ids = np.arange(n)
    ids[1:40:2] = ids[0:39:2]
    table = pa.table({"user_id": ids, "variant": rng.choice(["control", "treatment", "Control "], n),
                      "segment_part": segment, "revenue": pa.array(revenue, from_pandas=False),
                      "converted": rng.binomial(1, 0.2, n)})
    path = tmp_path / "inf.parquet"
    pq.write_table(table, path)
    with duckdb.connect() as connection:
        engine = DuckDBEngine(connection, "read_parquet(?)", str(path))
        expected = _canonical(summarise(engine))
        for seed in range(8):
            assert _canonical(summarise(_Shuffled(engine, seed))) == expected, seed


def test_the_duckdb_rendering_of_a_pivoted_fast_scan() -> None:
    """The plan rendered for DuckDB is the one-pass scan's SQL (pivoted compensated sums, 0/1 and
    ones counts, the shifted cross-product of a CUPED pair), each pivot cast from its exact repr."""
    engine = DuckDBEngine(None, "read_parquet(?)", "x")  # type: ignore[arg-type]
    plan = ScanPlan((("clicks", "BIGINT"), ("revenue", "DOUBLE"), ("pre_revenue", "DOUBLE")), ((1, 2),), exact=False,
                    pivots=(40.0, 12.5, 0.1 + 0.2))
    sql = engine.render_group([Key("variant"), Key("first_exposure", "day")], plan.aggregates())
    revenue, pre = """(CAST("revenue" AS DOUBLE) - CAST('12.5' AS DOUBLE))""", \
        """(CAST("pre_revenue" AS DOUBLE) - CAST('0.30000000000000004' AS DOUBLE))"""
    assert sql == ('SELECT CAST("variant" AS VARCHAR), CAST(TRY_CAST("first_exposure" AS TIMESTAMP) AS DATE), count(*), '
                   'count(CAST("clicks" AS BIGINT)), sum(CAST("clicks" AS BIGINT)), '
                   'sum(CAST("clicks" AS BIGINT) * CAST("clicks" AS BIGINT)), '
                   f'count(CAST("revenue" AS DOUBLE)), fsum({revenue}), fsum({revenue} * {revenue}), '
                   'count_if(CAST("revenue" AS DOUBLE) NOT IN (0, 1)), count_if(CAST("revenue" AS DOUBLE) = 1), '
                   f'count(CAST("pre_revenue" AS DOUBLE)), fsum({pre}), fsum({pre} * {pre}), '
                   'count_if(CAST("pre_revenue" AS DOUBLE) NOT IN (0, 1)), count_if(CAST("pre_revenue" AS DOUBLE) = 1), '
                   f'coalesce(fsum({revenue} * {pre}), 0) FROM read_parquet(?) GROUP BY ALL')


def test_a_central_fast_scan_uses_the_engine_s_stable_moments() -> None:
    """Spark has no compensated sum: its fast scan asks for avg / var_samp / regr_sxy, never a pivot."""
    plan = ScanPlan((("revenue", "DOUBLE"), ("pre_revenue", "DOUBLE")), ((0, 1),), exact=False, moments="central")
    assert [a.function for a in plan.aggregates()] == [
        "count", "avg", "var_samp", "count_non_binary", "count_ones",
        "count", "avg", "var_samp", "count_non_binary", "count_ones", "regr_sxy"]


def test_the_spark_rendering_quotes_with_backticks_and_widens_sums_on_request() -> None:
    engine = SparkEngine(None, "experimentos_input_1")
    plan = ScanPlan((("we`ird", "BIGINT"), ("revenue", "DOUBLE")), (), exact=True)
    narrow = engine.render_group([Key("variant")], ScanPlan((("we`ird", "BIGINT"),), (), exact=False).aggregates())
    assert '"' not in narrow  # Spark reads "variant" as a string literal: silently one group
    assert "CAST(`variant` AS STRING)" in narrow and "sum(CAST(`we``ird` AS BIGINT))" in narrow
    assert narrow.endswith("FROM `experimentos_input_1` GROUP BY 1")
    wide = engine.render_group([Key("variant")], ScanPlan((("we`ird", "BIGINT"),), (), exact=False).aggregates(),
                               wide=True)
    assert "sum(CAST(`we``ird` AS DECIMAL(38,0)) * CAST(`we``ird` AS DECIMAL(38,0)))" in wide
    exact = engine.render_group([Key("variant")], plan.aggregates())
    assert "count_if(isnan(CAST(`revenue` AS DOUBLE)) OR abs(CAST(`revenue` AS DOUBLE)) = double('Infinity'))" in exact
    assert "isfinite" not in exact


def test_spark_types_map_onto_the_plan_vocabulary() -> None:
    assert [spark_type_name(t) for t in ("long", "integer", "short", "byte", "double", "float", "decimal(12,2)",
                                         "boolean", "string", "date", "timestamp", "timestamp_ntz")] == [
        "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "DECIMAL", "BOOLEAN", "VARCHAR", "DATE",
        "TIMESTAMP", "TIMESTAMP"]
