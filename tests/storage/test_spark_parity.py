"""DuckDB and Spark give the same report from the same user-level data (issue 15).

Each case is a small file written here; DuckDB reads it in process (:class:`FileReader`), Spark
(the session-wide local[2] server from ``tests/conftest.py``) reads the same data as a path, a
directory of Parquet part files, a table or a query. Numbers must agree to 1e-9 relative (1e-12
absolute near zero); everything else — counts, labels, issues, decisions, texts — exactly.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics import Charter, policy_from_mapping
from dashapp.services import AnalysisRequest, analyze_loaded, report_json
from dashapp.spark_source import analyze_spark
from storage.ingest import FileReader
from storage.spark import SparkInput, register_input
from tests.conftest import SPARK_GROUP

pytestmark = SPARK_GROUP

RELATIVE, ABSOLUTE = 1e-9, 1e-12


def _mismatches(duck: Any, spark: Any, path: str = "") -> list[str]:
    if isinstance(duck, dict) and isinstance(spark, dict):
        if set(duck) != set(spark):
            return [f"{path}: keys {sorted(set(duck) ^ set(spark))} in one report only"]
        return [m for key in sorted(duck) for m in _mismatches(duck[key], spark[key], f"{path}.{key}")]
    if isinstance(duck, list | tuple) and isinstance(spark, list | tuple):
        if len(duck) != len(spark):
            return [f"{path}: {len(duck)} items from DuckDB, {len(spark)} from Spark"]
        return [m for i, (a, b) in enumerate(zip(duck, spark, strict=True)) for m in _mismatches(a, b, f"{path}[{i}]")]
    if isinstance(duck, float) and isinstance(spark, float):
        if math.isnan(duck) and math.isnan(spark):
            return []
        return [] if math.isclose(duck, spark, rel_tol=RELATIVE, abs_tol=ABSOLUTE) else [f"{path}: {duck!r} vs {spark!r}"]
    return [] if duck == spark and type(duck) is type(spark) else [f"{path}: {duck!r} vs {spark!r}"]


def _reports(spark: Any, file: Path, request: AnalysisRequest, spark_input: SparkInput | None = None
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    with FileReader() as reader:
        duck = report_json(analyze_loaded(reader.read_path(file, segments=request.segments, ratios=request.ratios),
                                          request))
    found = analyze_spark(spark, spark_input or SparkInput("path", str(file)), request).report
    duck["input"].pop("sha256")
    found["input"].pop("sha256")  # a file's digest vs the digest of the query and its statistics
    return duck, found


def _base(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    variant = rng.choice(["control", "treatment"], n)
    treated = variant == "treatment"
    return pd.DataFrame({
        "variant": variant,
        "converted": rng.binomial(1, np.where(treated, 0.16, 0.12)),
        "revenue": rng.gamma(2.0, np.where(treated, 6.6, 6.2)),
        "guardrail_errors": rng.binomial(1, 0.02, n),
    })


def _parquet(frame: pd.DataFrame, folder: Path, name: str = "users.parquet") -> Path:
    path = folder / name
    frame.to_parquet(path, index=False)
    return path


def _with_non_finite(folder: Path, values: list[float]) -> Path:
    """Parquet with real NaN / ±infinity in ``revenue`` (pandas would write NaN as empty)."""
    frame = _base(600, 11)
    revenue = frame["revenue"].to_numpy().copy()
    revenue[: len(values)] = values
    table = pa.table({"variant": frame["variant"].to_numpy(), "converted": frame["converted"].to_numpy(),
                      "revenue": pa.array(revenue, from_pandas=False)})
    path = folder / "non_finite.parquet"
    pq.write_table(table, path)
    return path


Case = Callable[[Path], tuple[Path, AnalysisRequest]]


def _plain(folder: Path) -> tuple[Path, AnalysisRequest]:
    return _parquet(_base(800, 1), folder), AnalysisRequest()


def _integer_ids(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(800, 2)
    frame.insert(0, "user_id", np.arange(len(frame)) + 1_000)
    return _parquet(frame, folder), AnalysisRequest()


def _text_ids(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(800, 3)
    frame.insert(0, "user_id", [f"u{i:05d}" for i in range(len(frame))])
    return _parquet(frame, folder), AnalysisRequest()


def _duplicated_users(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(800, 4)
    ids = np.arange(len(frame)) + 7
    ids[1:12:2] = ids[0:11:2]  # several users appear twice, some in both variants
    frame.insert(0, "user_id", ids)
    return _parquet(frame, folder), AnalysisRequest()


def _label_spellings(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(900, 5)
    frame.loc[::7, "variant"] = frame.loc[::7, "variant"].str.upper()
    frame.loc[::11, "variant"] = " " + frame.loc[::11, "variant"] + " "
    return _parquet(frame, folder), AnalysisRequest()


def _missing_labels(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(800, 6)
    frame.loc[::13, "variant"] = None
    frame.loc[5, "variant"] = "  "
    return _parquet(frame, folder), AnalysisRequest()


def _empty_values(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(800, 7)
    frame["revenue"] = frame["revenue"].where(np.arange(len(frame)) % 9 != 0)  # empty (null) values
    frame["converted"] = frame["converted"].astype("Int64").where(np.arange(len(frame)) % 17 != 0)
    return _parquet(frame, folder), AnalysisRequest()


def _nan(folder: Path) -> tuple[Path, AnalysisRequest]:
    return _with_non_finite(folder, [math.nan, math.nan]), AnalysisRequest()


def _infinity(folder: Path) -> tuple[Path, AnalysisRequest]:
    return _with_non_finite(folder, [math.inf, -math.inf, math.inf]), AnalysisRequest()


def _squares_beyond_64_bits(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(600, 8)
    frame["clicks"] = np.random.default_rng(8).poisson(40, len(frame)).astype(np.int64) * 4_000_000_000
    return _parquet(frame, folder), AnalysisRequest()


def _sums_beyond_64_bits(folder: Path) -> tuple[Path, AnalysisRequest]:
    """Each square fits in 64 bits, their sum does not: DuckDB sums in 128 bits, Spark reruns in DECIMAL(38,0)."""
    frame = _base(600, 9)
    frame["bytes"] = np.random.default_rng(9).integers(2_000_000_000, 3_000_000_000, len(frame)).astype(np.int64)
    return _parquet(frame, folder), AnalysisRequest()


def _segments(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(1200, 10)
    rng = np.random.default_rng(10)
    frame["segment_country"] = rng.choice(["KR", "JP", "US"], len(frame))
    frame["segment_platform"] = rng.choice(["ios", "android", None], len(frame))
    return _parquet(frame, folder), AnalysisRequest()


def _named_segment(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(1000, 12)
    frame["country"] = np.random.default_rng(12).choice(["KR", "JP"], len(frame))
    frame["cohort"] = np.random.default_rng(13).integers(1, 4, len(frame))  # an integer segment
    return _parquet(frame, folder), AnalysisRequest(segments=("country", "cohort", "not_a_column"))


def _cuped(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(1000, 14)
    rng = np.random.default_rng(14)
    frame["pre_revenue"] = frame["revenue"] * 0.7 + rng.gamma(2.0, 3.0, len(frame))
    return _parquet(frame, folder), AnalysisRequest(charter=Charter(primary_metric="revenue"))


def _cuped_with_gaps(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(1000, 15)
    rng = np.random.default_rng(15)
    frame["pre_revenue"] = (frame["revenue"] * 0.7 + rng.gamma(2.0, 3.0, len(frame))).where(
        np.arange(len(frame)) % 6 != 0)
    return _parquet(frame, folder), AnalysisRequest(charter=Charter(primary_metric="revenue"))


def _ratio_metric(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(1000, 16)
    rng = np.random.default_rng(16)
    frame["orders"] = rng.poisson(2.0, len(frame)) + 1
    policy = policy_from_mapping(tomllib.loads('[metrics.aov]\nnumerator = "revenue"\ndenominator = "orders"\n'))
    return _parquet(frame, folder), AnalysisRequest(policy=policy)


def _exposure_dates(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(1000, 17)
    days = np.random.default_rng(17).integers(0, 6, len(frame))
    frame["first_exposure"] = (pd.Timestamp("2026-03-01") + pd.to_timedelta(days, unit="D")).date
    return _parquet(frame, folder), AnalysisRequest()


def _exposure_text_with_junk(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(800, 18)
    days = np.random.default_rng(18).integers(0, 4, len(frame))
    stamps = (pd.Timestamp("2026-03-01 10:30:00") + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d %H:%M:%S")
    frame["first_exposure"] = np.where(np.arange(len(frame)) % 19 == 0, "not a date", stamps)
    return _parquet(frame, folder), AnalysisRequest()


def _narrow_and_boolean_types(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(800, 19)
    frame["converted"] = frame["converted"].astype(np.int8)
    frame["clicks"] = np.random.default_rng(19).poisson(30, len(frame)).astype(np.int16)
    frame["guardrail_errors"] = frame["guardrail_errors"].astype(bool)
    frame["share"] = np.random.default_rng(20).uniform(0, 1, len(frame)).astype(np.float32)
    return _parquet(frame, folder), AnalysisRequest()


def _decimal_and_text_columns(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(600, 21)
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column(
        "price", pa.array([Decimal(f"{x:.2f}") for x in frame["revenue"]], pa.decimal128(12, 2))).append_column(
        "comment", pa.array(["ok"] * len(frame)))
    path = folder / "typed.parquet"
    pq.write_table(table, path)
    return path, AnalysisRequest()


def _three_variants(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(1200, 22)
    frame["variant"] = np.random.default_rng(22).choice(["control", "blue", "green"], len(frame))
    return _parquet(frame, folder), AnalysisRequest()


def _sample_ratio_mismatch(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(2000, 23)
    frame = frame[(frame["variant"] == "control") | (np.arange(len(frame)) % 4 != 0)]
    return _parquet(frame, folder), AnalysisRequest()


def _csv(folder: Path) -> tuple[Path, AnalysisRequest]:
    frame = _base(700, 24)
    frame.insert(0, "user_id", np.arange(len(frame)))
    frame["segment_country"] = np.random.default_rng(24).choice(["KR", "JP"], len(frame))
    path = folder / "users.csv"
    frame.to_csv(path, index=False)
    return path, AnalysisRequest()


def _far_from_zero(folder: Path) -> tuple[Path, AnalysisRequest]:
    """Values of 1e9 with a spread of 1e-3 (DuckDB: pivoted compensated sums; Spark: its var_samp)."""
    frame = _base(3000, 25)
    rng = np.random.default_rng(25)
    frame["latency"] = 1e9 + rng.normal(0.0, 1e-3, len(frame))
    frame["pre_latency"] = 1e9 + rng.normal(0.0, 2.0, len(frame))
    frame["latency"] = 0.7 * frame["pre_latency"] + rng.normal(0.0, 1.0, len(frame))
    return _parquet(frame, folder), AnalysisRequest()


def _constant_arm_and_float_flags(folder: Path) -> tuple[Path, AnalysisRequest]:
    """A treatment arm whose every revenue is 123.456 and a 0/1 flag stored as DOUBLE (all ones in one arm)."""
    frame = _base(2000, 26)
    frame.loc[frame["variant"] == "treatment", "revenue"] = 123.456
    frame["flag"] = np.random.default_rng(26).binomial(1, 0.3, len(frame)).astype(float)
    frame.loc[frame["variant"] == "treatment", "flag"] = 1.0
    return _parquet(frame, folder), AnalysisRequest()


CASES: dict[str, Case] = {
    "far_from_zero": _far_from_zero, "constant_arm_and_float_flags": _constant_arm_and_float_flags,
    "plain": _plain, "integer_ids": _integer_ids, "text_ids": _text_ids, "duplicated_users": _duplicated_users,
    "label_spellings": _label_spellings, "missing_labels": _missing_labels, "empty_values": _empty_values,
    "nan": _nan, "infinity": _infinity, "squares_beyond_64_bits": _squares_beyond_64_bits,
    "sums_beyond_64_bits": _sums_beyond_64_bits, "segments": _segments, "named_segment": _named_segment,
    "cuped": _cuped, "cuped_with_gaps": _cuped_with_gaps, "ratio_metric": _ratio_metric,
    "exposure_dates": _exposure_dates, "exposure_text_with_junk": _exposure_text_with_junk,
    "narrow_and_boolean_types": _narrow_and_boolean_types, "decimal_and_text_columns": _decimal_and_text_columns,
    "three_variants": _three_variants, "sample_ratio_mismatch": _sample_ratio_mismatch, "csv": _csv,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_duckdb_and_spark_give_the_same_report(spark: Any, tmp_path: Path, case: str) -> None:
    file, request = CASES[case](tmp_path)
    duck, found = _reports(spark, file, request)
    assert _mismatches(duck, found) == []


def test_a_directory_of_parquet_parts_a_table_and_a_query_give_the_file_s_report(spark: Any, tmp_path: Path) -> None:
    frame = _base(1500, 30)
    frame.insert(0, "user_id", np.arange(len(frame)))
    frame["segment_country"] = np.random.default_rng(30).choice(["KR", "JP"], len(frame))
    file = _parquet(frame, tmp_path)
    parts = tmp_path / "parts"
    parts.mkdir()
    for index in range(3):
        frame.iloc[index * 500: (index + 1) * 500].to_parquet(parts / f"part-{index:05d}.parquet", index=False)
    view = register_input(spark.session, SparkInput("path", str(file)))
    request = AnalysisRequest(charter=Charter(name="same"))
    duck, _ = _reports(spark, file, request)
    for spark_input in (SparkInput("path", str(parts)), SparkInput("table", view),
                        SparkInput("sql", f"SELECT * FROM {view} WHERE variant IS NOT NULL")):
        found = analyze_spark(spark, spark_input, request).report
        found["input"].pop("sha256")
        assert _mismatches(duck, found) == [], spark_input
