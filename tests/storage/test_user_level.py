"""User-level files: one DuckDB scan gives numpy's statistics, and the same report as the aggregated file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from analytics import Charter
from dashapp.services import AnalysisRequest, analyze_loaded, report_json
from storage.ingest import FileReader
from tests.conftest import assert_clean_json, run_cli


def _users(seed: int = 3, n: int = 6_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    variant = rng.choice(["control", "treatment"], n)
    treated = variant == "treatment"
    return pd.DataFrame({
        "user_id": np.arange(n) + 10_000,
        "variant": variant,
        "converted": rng.binomial(1, np.where(treated, 0.135, 0.12)),
        "guardrail_error": rng.binomial(1, 0.02, n),
        "guardrail_pageviews": rng.poisson(np.where(treated, 4.1, 4.0)),
        "revenue": rng.gamma(2.0, np.where(treated, 6.6, 6.2)),
    })


def _write(frame: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    csv = folder / "users.csv"
    frame.to_csv(csv, index=False)
    parquet = folder / "users.parquet"
    with duckdb.connect() as connection:
        connection.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{parquet}' (FORMAT parquet)")
    return csv, parquet


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_every_statistic_equals_numpy(kind: str, tmp_path: Path) -> None:
    frame = _users()
    csv, parquet = _write(frame, tmp_path)
    with FileReader() as reader:
        loaded = reader.read_path(csv if kind == "csv" else parquet)
    summary = loaded.user_level
    assert summary is not None and loaded.kind == "user_level" and summary.rows == len(frame)
    for variant in summary.variants:
        group = frame[frame["variant"] == variant.label]
        assert variant.n == len(group)
        for column in ("converted", "guardrail_error", "guardrail_pageviews", "revenue"):
            values = group[column].to_numpy(dtype=float)
            stats = variant.columns[column]
            assert stats.count == len(values)
            assert stats.total == pytest.approx(values.sum(), rel=1e-9)
            assert stats.mean == pytest.approx(values.mean(), rel=1e-9)
            assert stats.variance == pytest.approx(values.var(ddof=1), rel=1e-9)
            assert stats.binary == bool(np.isin(values, (0, 1)).all())


def _aggregate(frame: pd.DataFrame, path: Path) -> Path:
    rows = ["variant,users,conversions,guardrail_error,guardrail_pageviews_mean,guardrail_pageviews_std,"
            "revenue_mean,revenue_std"]
    for variant in ("control", "treatment"):
        g = frame[frame["variant"] == variant]
        rows.append(",".join([variant, str(len(g)), str(int(g["converted"].sum())), str(int(g["guardrail_error"].sum())),
                              repr(float(g["guardrail_pageviews"].mean())), repr(float(g["guardrail_pageviews"].std())),
                              repr(float(g["revenue"].mean())), repr(float(g["revenue"].std()))]))
    path.write_text("\n".join(rows) + "\n")
    return path


def _by_metric(report: dict[str, Any]) -> dict[str, Any]:
    comparison = report["comparisons"][0]
    metrics = {m["metric"]: m for m in [comparison["primary"], *comparison["secondary"], *comparison["guardrails"]]}
    return metrics


def _assert_close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{path}[{index}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


def test_user_level_and_aggregated_files_give_the_same_report(tmp_path: Path) -> None:
    frame = _users()
    csv, parquet = _write(frame, tmp_path)
    aggregated = _aggregate(frame, tmp_path / "aggregated.csv")
    request = AnalysisRequest(charter=Charter(name="same"))  # default primary: conversions (aggregated) / converted (user level)
    with FileReader() as reader:
        reports = {kind: report_json(analyze_loaded(reader.read_path(path), request))
                   for kind, path in (("users_csv", csv), ("users_parquet", parquet), ("aggregated", aggregated))}
    expected = reports["aggregated"]
    expected_metrics = _by_metric(expected)
    expected_metrics["converted"] = expected_metrics.pop("conversions")
    expected_metrics["converted"]["metric"] = "converted"
    for kind in ("users_csv", "users_parquet"):
        report = reports[kind]
        assert report["input"]["kind"] == "user_level" and report["input"]["rows"] == len(frame)
        assert report["decision"]["outcome"] == expected["decision"]["outcome"]
        assert report["decision"]["rule"] == expected["decision"]["rule"]
        assert report["health"]["status"] == expected["health"]["status"] == "healthy"
        _assert_close(report["health"]["srm"], expected["health"]["srm"])
        _assert_close(_by_metric(report), expected_metrics)


def test_health_problems_of_user_level_files(tmp_path: Path) -> None:
    frame = _users(n=500)
    frame.loc[3, "user_id"] = frame.loc[4, "user_id"]
    frame.loc[3, "variant"], frame.loc[4, "variant"] = "control", "treatment"
    frame.loc[7, "revenue"] = np.nan
    frame.loc[9, "variant"] = None
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    result = run_cli("analyze", str(path))
    report = assert_clean_json(result.stdout)[0]
    codes = {i["code"] for i in report["health"]["issues"]}
    assert {"user_in_several_variants", "missing_value", "missing_variant"} <= codes
    assert report["health"]["status"] == "blocked" and report["decision"]["rule"] == "data_blocked"
    assert report["input"]["kind"] == "user_level"
    message = next(i["message"] for i in report["health"]["issues"] if i["code"] == "user_in_several_variants")
    assert str(int(frame.loc[3, "user_id"])) in message


def test_user_level_primary_and_control_options(tmp_path: Path) -> None:
    frame = _users()
    frame["variant"] = frame["variant"].map({"control": "A", "treatment": "B"})
    path = tmp_path / "ab.csv"
    frame.to_csv(path, index=False)
    missing_control = json.loads(run_cli("analyze", str(path)).stdout)
    assert missing_control["health"]["issues"][0]["code"] == "no_control"
    report = json.loads(run_cli("analyze", str(path), "--control", "A", "--primary", "revenue").stdout)
    primary = report["comparisons"][0]["primary"]
    assert primary["metric"] == "revenue" and primary["type"] == "mean"
    treated = frame[frame["variant"] == "B"]["revenue"]
    assert primary["treatment"]["value"] == pytest.approx(treated.mean(), rel=1e-12)
    assert math.isfinite(primary["p_value"])
    unknown = json.loads(run_cli("analyze", str(path), "--control", "A", "--primary", "clicks").stdout)
    assert any(i["code"] == "unknown_primary" for i in unknown["health"]["issues"])


def test_cuped_through_the_cli_matches_ols_and_can_be_switched_off(tmp_path: Path) -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(21)
    n = 4_000
    variant = rng.choice(["control", "treatment"], n)
    pre = rng.gamma(2.0, 6.0, n)
    revenue = 0.9 * pre + rng.normal(0, 5.0, n) + np.where(variant == "treatment", 0.6, 0.0)
    frame = pd.DataFrame({"variant": variant, "converted": rng.binomial(1, 0.1, n), "revenue": revenue,
                          "pre_revenue": pre})
    path = tmp_path / "cuped.csv"
    frame.to_csv(path, index=False)
    report = json.loads(run_cli("analyze", str(path), "--primary", "revenue").stdout)
    primary = report["comparisons"][0]["primary"]
    cuped = primary["cuped"]
    treated = (variant == "treatment").astype(float)
    fit = sm.OLS(revenue, sm.add_constant(np.column_stack([treated, pre - pre.mean()]))).fit(cov_type="HC2")
    assert cuped["covariate"] == "pre_revenue" and cuped["applied"] is True
    assert primary["absolute_effect"] == pytest.approx(fit.params[1], rel=1e-9)
    assert primary["standard_error"] == pytest.approx(fit.bse[1], rel=0.01)
    assert cuped["unadjusted"]["absolute_effect"] == pytest.approx(
        revenue[variant == "treatment"].mean() - revenue[variant == "control"].mean(), rel=1e-9)
    assert cuped["variance_reduction"] > 0.5
    assert not any(i["code"] == "ignored_column" for i in report["health"]["issues"])
    policy = tmp_path / "policy.toml"
    policy.write_text("use_cuped = false\n")
    plain = json.loads(run_cli("analyze", str(path), "--primary", "revenue", "--policy", str(policy)).stdout)
    assert plain["policy"]["use_cuped"] is False
    assert plain["comparisons"][0]["primary"]["absolute_effect"] == pytest.approx(
        cuped["unadjusted"]["absolute_effect"], rel=1e-12)
    assert plain["comparisons"][0]["primary"]["cuped"]["applied"] is False


def _segmented(seed: int = 8, n: int = 12_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    variant = rng.choice(["control", "treatment"], n)
    country = rng.choice(["KR", "JP", "US"], n)
    platform = rng.choice(["ios", "android"], n)
    lift = np.where(country == "KR", 0.05, np.where(country == "JP", -0.05, 0.0))
    converted = rng.binomial(1, 0.2 + np.where(variant == "treatment", lift, 0.0))
    return pd.DataFrame({"variant": variant, "converted": converted, "segment_country": country, "device": platform,
                         "revenue": rng.gamma(2.0, 5.0, n)})


def test_segments_equal_per_segment_analyses_with_holm_and_flags(tmp_path: Path) -> None:
    from statsmodels.stats.multitest import multipletests

    frame = _segmented()
    path = tmp_path / "seg.csv"
    frame.to_csv(path, index=False)
    report = json.loads(run_cli("analyze", str(path), "--segment", "device").stdout)
    rows = report["segments"]
    assert {(r["column"], r["value"]) for r in rows} == {("segment_country", c) for c in ("KR", "JP", "US")} | {
        ("device", d) for d in ("ios", "android")}
    assert report["decision"]["outcome"] in ("hold", "launch", "rollback")
    for row in rows:
        subset = frame[frame[row["column"]] == row["value"]].drop(columns=["segment_country", "device"])
        single = tmp_path / f"{row['column']}_{row['value']}.csv"
        subset.to_csv(single, index=False)
        alone = json.loads(run_cli("analyze", str(single)).stdout)["comparisons"][0]["primary"]
        for key in ("absolute_effect", "p_value", "relative_effect"):
            assert row[key] == pytest.approx(alone[key], rel=1e-9), (row["value"], key)
        assert row["absolute_ci"] == pytest.approx(alone["absolute_ci"], rel=1e-9)
        assert row["control"]["n"] == alone["control"]["n"]
        assert (row["control_variant"], row["variant"]) == ("control", "treatment")
    country = [r for r in rows if r["column"] == "segment_country"]
    expected = multipletests([r["p_value"] for r in country], method="holm")[1]
    assert [r["p_value_adjusted"] for r in country] == pytest.approx(list(expected), rel=1e-12)
    assert any("disagree" in flag and "KR" in flag and "JP" in flag for flag in report["segment_flags"])
    assert all(r["srm"]["status"] == "healthy" for r in rows)
    policy = tmp_path / "bh.toml"
    policy.write_text('segment_correction = "bh"\n')
    bh = json.loads(run_cli("analyze", str(path), "--policy", str(policy)).stdout)
    bh_country = [r for r in bh["segments"] if r["column"] == "segment_country"]
    expected = multipletests([r["p_value"] for r in bh_country], method="fdr_bh")[1]
    assert [r["p_value_adjusted"] for r in bh_country] == pytest.approx(list(expected), rel=1e-12)
    assert {r["column"] for r in bh["segments"]} == {"segment_country"}  # device is a segment only when asked
    memo = run_cli("analyze", str(path), "--format", "md").stdout
    assert "disagree" in memo
    unknown = json.loads(run_cli("analyze", str(path), "--segment", "nope").stdout)
    assert any(i["code"] == "unknown_segment" for i in unknown["health"]["issues"])


class _Recording:
    """A DuckDB connection that remembers the aggregate scans it ran."""

    def __init__(self) -> None:
        self.connection = duckdb.connect()
        self.scans: list[str] = []
        self.sql: list[str] = []

    def execute(self, sql: str, parameters: list[Any]) -> Any:
        self.sql.append(sql)
        if "GROUP BY ALL" in sql:
            self.scans.append("exact" if "regr_count" in sql or "isfinite" in sql else "fast")
        return self.connection.execute(sql, parameters)


def _summarise(frame: pd.DataFrame, path: Path) -> tuple[Any, list[str]]:
    from storage.user_level import summarise_user_level

    frame.to_parquet(path, index=False)
    recording = _Recording()
    return summarise_user_level(recording, "read_parquet(?)", str(path)), recording.scans  # type: ignore[arg-type]


def test_fast_scan_on_clean_data_and_exact_scan_when_it_cannot_vouch(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 3_000
    pre = rng.gamma(2.0, 5.0, n)
    frame = pd.DataFrame({
        "variant": rng.choice(["control", "treatment"], n),
        "converted": rng.binomial(1, 0.3, n).astype(np.int8),  # narrow integers must not overflow when squared
        "clicks": rng.poisson(40.0, n).astype(np.int16),
        "flag_as_float": rng.binomial(1, 0.5, n).astype(float),  # 0.0 / 1.0 stored as DOUBLE: still a rate
        "share": rng.uniform(0, 1, n),  # inside [0, 1] but not 0/1: a mean
        "revenue": 0.8 * pre + rng.normal(0, 3, n),
        "pre_revenue": pre,
    })
    clean, scans = _summarise(frame, tmp_path / "clean.parquet")
    assert scans == ["fast"]

    def check(summary: Any, data: pd.DataFrame) -> None:
        for variant in summary.variants:
            group = data[data["variant"] == variant.label]
            for column in ("converted", "clicks", "flag_as_float", "share", "revenue"):
                values = group[column].to_numpy(dtype=float)
                values = values[~np.isnan(values)]
                stats = variant.columns[column]
                assert stats.count == len(values)
                assert stats.mean == pytest.approx(values.mean(), rel=1e-12)
                assert stats.variance == pytest.approx(values.var(ddof=1), rel=1e-9)
                assert stats.binary == (column in ("converted", "flag_as_float"))
            pairs = group[["revenue", "pre_revenue"]].dropna().to_numpy()
            covariate = variant.covariates["revenue"]
            assert covariate.mean_x == pytest.approx(pairs[:, 1].mean(), rel=1e-12)
            assert covariate.variance_x == pytest.approx(pairs[:, 1].var(ddof=1), rel=1e-9)
            assert covariate.covariance_xy == pytest.approx(np.cov(pairs[:, 0], pairs[:, 1])[0, 1], rel=1e-9)

    check(clean, frame)
    # Users without a pre-period value: co-moments over complete pairs only, from the exact scan.
    gaps = frame.copy()
    gaps.loc[::7, "pre_revenue"] = np.nan
    summary, scans = _summarise(gaps, tmp_path / "gaps.parquet")
    assert scans == ["fast", "exact"]
    check(summary, gaps)
    # Integers whose squares pass 64 bits: exact scan in floating point, same statistics.
    huge = frame.copy()
    huge["clicks"] = huge["clicks"].astype(np.int64) * 4_000_000_000
    summary, scans = _summarise(huge, tmp_path / "huge.parquet")
    assert scans == ["fast", "exact"]
    check(summary, huge)
    # Infinity is counted exactly (the health check names how many).
    broken = frame.copy()
    broken.loc[[1, 2, 3], "share"] = [np.inf, -np.inf, np.inf]  # (pandas writes NaN to Parquet as empty)
    summary, scans = _summarise(broken, tmp_path / "broken.parquet")
    assert scans == ["fast", "exact"]
    expected = broken.assign(bad=~np.isfinite(broken["share"])).groupby("variant")["bad"].sum()
    assert {v.label: v.columns["share"].non_finite for v in summary.variants} == expected.to_dict()


def test_a_segment_keeps_the_metric_type_of_the_whole_file(tmp_path: Path) -> None:
    from analytics import Policy, validate_user_level

    rng = np.random.default_rng(9)
    n = 2_000
    country = rng.choice(["KR", "JP"], n)
    views = rng.poisson(2.0, n)
    views[country == "KR"] = np.minimum(views[country == "KR"], 1)  # 0/1 inside KR, counts elsewhere
    frame = pd.DataFrame({"variant": rng.choice(["control", "treatment"], n), "converted": rng.binomial(1, 0.2, n),
                          "views": views, "segment_country": country})
    path = tmp_path / "typed.csv"
    frame.to_csv(path, index=False)
    with FileReader() as reader:
        summary = reader.read_path(path).user_level
    assert summary is not None
    validation = validate_user_level(summary, policy=Policy())
    assert validation.data is not None
    kinds = {m.name: m.metric_type for m in validation.data.metrics}
    assert kinds == {"converted": "proportion", "views": "mean"}
    for segment in validation.segments:
        assert {m.name: m.metric_type for m in segment.data.metrics} == kinds, segment.value


@pytest.mark.parametrize("case", ["unique", "repeated_in_one_variant", "spelled_twice", "in_two_variants", "text_ids",
                                  "huge_range"])
def test_users_in_two_variants_are_found_whatever_the_ids(tmp_path: Path, case: str) -> None:
    """Unique integer ids are proven unique by a bitmap (no grouping by id); anything else is grouped."""
    from storage.user_level import summarise_user_level

    n = 3_000
    ids: Any = np.arange(n) + 500
    variant = np.where(np.arange(n) % 2 == 0, "control", "treatment")
    if case == "repeated_in_one_variant":
        ids[2] = ids[0]  # rows 0 and 2 are both control
    if case == "in_two_variants":
        ids[1] = ids[0]
    if case == "spelled_twice":  # the same variant written two ways is still one variant
        ids[2] = ids[0]
        variant = variant.astype(object)
        variant[2] = " Control"
    if case == "text_ids":
        ids = np.array([f"u{i}" for i in ids])
    if case == "huge_range":
        ids = ids.astype(np.int64) * 10**9
    frame = pd.DataFrame({"user_id": ids, "variant": variant, "converted": np.arange(n) % 3 == 0})
    frame["converted"] = frame["converted"].astype(int)
    frame.to_csv(tmp_path / "ids.csv", index=False)
    recording = _Recording()
    summary = summarise_user_level(recording, "read_csv(?)", str(tmp_path / "ids.csv"))  # type: ignore[arg-type]
    grouped = any("GROUP BY id" in sql for sql in recording.sql)
    bitmap = any("bitstring_agg" in sql for sql in recording.sql)
    assert grouped == (case != "unique")
    assert bitmap == (case in ("unique", "repeated_in_one_variant", "spelled_twice", "in_two_variants"))
    expected = 1 if case == "in_two_variants" else 0
    assert summary.users_in_several_variants == expected
    if expected:
        assert summary.example_users == (str(frame["user_id"][0]),)
