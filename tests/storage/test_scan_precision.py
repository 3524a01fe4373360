"""The fast scan's pivoted sums against numpy on adversarial data, and the exact rescan when they cannot be trusted.

The independent reference is exact rational arithmetic (:class:`fractions.Fraction` over the very
doubles in the file), rounded once: every statistic must agree with it to 1e-9, as the other
user-level precision tests ask of numpy. (numpy's two-pass ``var`` is itself off by ~2e-8 on
1e9 + N(0, 1e-3) values: its mean carries an error of ~1e-7, whose square is not small beside a
variance of 1e-6.)
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from storage.user_level import summarise_user_level


class _Recording:
    """A DuckDB connection that remembers which aggregate scans ran (fast, then maybe exact)."""

    def __init__(self) -> None:
        self.connection = duckdb.connect()
        self.scans: list[str] = []

    def execute(self, sql: str, parameters: list[Any]) -> Any:
        if "GROUP BY ALL" in sql:
            self.scans.append("exact" if "var_samp" in sql else "fast")
        return self.connection.execute(sql, parameters)


def _summarise(frame: pd.DataFrame, path: Path) -> tuple[Any, list[str]]:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
        source = "read_parquet(?)"
    else:
        frame.to_csv(path, index=False, float_format="%.17g")
        source = "read_csv(?)"
    recording = _Recording()
    summary = summarise_user_level(recording, source, str(path))  # type: ignore[arg-type]
    return summary, recording.scans


def _exact(values: np.ndarray, other: np.ndarray | None = None) -> tuple[float, float | None]:
    """(mean, sample variance — or covariance with ``other``) in exact rational arithmetic, rounded once."""
    x = [Fraction(v) for v in values.tolist()]
    y = x if other is None else [Fraction(v) for v in other.tolist()]
    n = len(x)
    mean_x, mean_y = sum(x, Fraction(0)) / n, sum(y, Fraction(0)) / n
    spread = sum(((a - mean_x) * (b - mean_y) for a, b in zip(x, y, strict=True)), Fraction(0))
    return float(mean_x), float(spread / (n - 1)) if n > 1 else None


def _check(summary: Any, frame: pd.DataFrame, columns: tuple[str, ...], covariate: str | None = None) -> None:
    labels = {v.label for v in summary.variants}
    assert labels == set(frame["variant"].unique())
    for variant in summary.variants:
        group = frame[frame["variant"] == variant.label]
        assert variant.n == len(group)
        for column in columns:
            values = group[column].to_numpy(dtype=float)
            stats = variant.columns[column]
            assert stats.count == len(values)
            mean, variance = _exact(values)
            assert stats.mean == pytest.approx(mean, rel=1e-9, abs=0.0), column
            assert stats.total == pytest.approx(mean * len(values), rel=1e-9), column
            if variance is None:
                assert stats.variance is None
            else:
                assert stats.variance == pytest.approx(variance, rel=1e-9, abs=0.0), (column, variant.label)
        if covariate is not None:
            y, x = group[columns[0]].to_numpy(dtype=float), group[covariate].to_numpy(dtype=float)
            found = variant.covariates[columns[0]]
            assert found.mean_x == pytest.approx(_exact(x)[0], rel=1e-9)
            assert found.variance_x == pytest.approx(_exact(x)[1], rel=1e-9)
            assert found.covariance_xy == pytest.approx(_exact(y, x)[1], rel=1e-9)


def _frame(rng: np.random.Generator, n: int, revenue: np.ndarray, pre: np.ndarray | None = None) -> pd.DataFrame:
    data: dict[str, Any] = {"user_id": np.arange(n) + 7, "variant": rng.choice(["control", "treatment"], n),
                            "revenue": revenue}
    if pre is not None:
        data["pre_revenue"] = pre
    return pd.DataFrame(data)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize("case", ["offset_1e9_small_noise", "scale_1e12", "tiny_variance", "negative",
                                  "mixed_sign_large", "offset_1e9_cuped"])
def test_pivoted_sums_equal_numpy_on_adversarial_data(tmp_path: Path, case: str, suffix: str) -> None:
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    n = 20_000
    pre = None
    if case == "offset_1e9_small_noise":
        revenue = 1e9 + rng.normal(0.0, 1e-3, n)  # variance 1e-6 beside values of 1e9: avg/var_samp territory
    elif case == "scale_1e12":
        revenue = 1e12 * rng.lognormal(0.0, 0.5, n)
    elif case == "tiny_variance":
        revenue = 1.0 + rng.normal(0.0, 1e-9, n)
    elif case == "negative":
        revenue = -5e6 + rng.gamma(2.0, 3.0, n)
    elif case == "mixed_sign_large":
        revenue = rng.normal(0.0, 1e8, n)
    else:
        pre = 1e9 + rng.normal(0.0, 2.0, n)
        revenue = 0.7 * pre + rng.normal(0.0, 1.0, n)
    frame = _frame(rng, n, revenue, pre)
    summary, scans = _summarise(frame, tmp_path / f"{case}{suffix}")
    assert scans == ["fast"], "a pivot from the first rows keeps every one of these on the fast scan"
    _check(summary, frame, ("revenue",), "pre_revenue" if pre is not None else None)


def test_integer_cuped_pair_far_from_zero(tmp_path: Path) -> None:
    """Integer columns are shifted by an integer pivot, so their sums (and the pair's) stay exact."""
    rng = np.random.default_rng(12)
    n = 20_000
    pre = rng.poisson(1_000_000, n).astype(np.int64)
    frame = _frame(rng, n, (pre + rng.poisson(50, n)).astype(np.int64), pre)
    summary, scans = _summarise(frame, tmp_path / "integers.parquet")
    assert scans == ["fast"]
    _check(summary, frame, ("revenue",), "pre_revenue")


def test_single_user_per_arm(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": [1, 2], "variant": ["control", "treatment"], "revenue": [1e12 + 0.5, -3.25],
                          "share": [0.25, 1.0]})
    summary, scans = _summarise(frame, tmp_path / "two.parquet")
    assert scans == ["fast"]
    _check(summary, frame, ("revenue", "share"))
    assert {v.label: v.columns["revenue"].mean for v in summary.variants} == {"control": 1e12 + 0.5,
                                                                             "treatment": -3.25}


def test_float_flags_are_summarised_exactly_from_counts(tmp_path: Path) -> None:
    """0.0 / 1.0 stored as DOUBLE: a group whose values are all 0 (or all 1) has variance exactly 0."""
    rng = np.random.default_rng(4)
    n = 5_000
    frame = _frame(rng, n, rng.gamma(2.0, 5.0, n))
    frame["flag"] = rng.binomial(1, 0.3, n).astype(float)
    frame.loc[frame["variant"] == "treatment", "flag"] = 1.0
    summary, scans = _summarise(frame, tmp_path / "flags.parquet")
    assert scans == ["fast"]
    _check(summary, frame, ("revenue", "flag"))
    treatment = next(v for v in summary.variants if v.label == "treatment")
    assert treatment.columns["flag"].variance == 0.0 and treatment.columns["flag"].binary


@pytest.mark.parametrize("case", ["pivot_far_from_the_data", "constant_non_binary_arm"])
def test_untrusted_pivoted_sums_fall_back_to_the_exact_scan(tmp_path: Path, case: str) -> None:
    rng = np.random.default_rng(11)
    n = 10_000
    if case == "pivot_far_from_the_data":
        # Sorted so that the first rows (the pivot's sample) are ~0 while the rest are 1e6 + noise:
        # Σ(x − c)² is ~1e12 per row beside deviations of ~1, beyond what doubles can subtract to 1e-9.
        # (At 1e12 + N(0, 1) DuckDB's var_samp — the exact scan — is itself off by ~1e-5.)
        revenue = np.concatenate([rng.normal(0.0, 1.0, 3_000), 1e6 + rng.normal(0.0, 1.0, n - 3_000)])
        frame = _frame(rng, n, revenue)
        frame["variant"] = np.where(np.arange(n) < 3_000, "control", "treatment")
    else:
        frame = _frame(rng, n, rng.gamma(2.0, 5.0, n))
        frame.loc[frame["variant"] == "treatment", "revenue"] = 123.456  # variance exactly 0, mean far from the pivot
    summary, scans = _summarise(frame, tmp_path / f"{case}.parquet")
    assert scans == ["fast", "exact"]
    _check(summary, frame, ("revenue",))
    if case == "constant_non_binary_arm":
        treatment = next(v for v in summary.variants if v.label == "treatment")
        assert treatment.columns["revenue"].variance == 0.0


@pytest.mark.parametrize("case", ["unique", "in_two_variants", "repeated_in_one_variant", "huge_range", "empty_ids"])
def test_parquet_user_ids_checked_with_the_footer_range(tmp_path: Path, case: str) -> None:
    """A Parquet file's id range comes from its footer (the scan does not read the ids); the bitmap
    proves unique ids unique, and anything else is grouped by id, as for CSV."""
    n = 3_000
    ids: Any = np.arange(n, dtype=np.int64) + 500
    variant = np.where(np.arange(n) % 2 == 0, "control", "treatment")
    if case == "in_two_variants":
        ids[1] = ids[0]
    if case == "repeated_in_one_variant":
        ids[2] = ids[0]
    if case == "huge_range":
        ids = ids * 10**9
    frame = pd.DataFrame({"user_id": ids, "variant": variant, "converted": (np.arange(n) % 3 == 0).astype(int)})
    if case == "empty_ids":
        frame["user_id"] = pd.array([None] * n, dtype="Int64")
    path = tmp_path / "ids.parquet"
    frame.to_parquet(path, index=False, row_group_size=1_000)
    sql: list[str] = []

    class Logged(_Recording):
        def execute(self, statement: str, parameters: list[Any]) -> Any:
            sql.append(statement)
            return super().execute(statement, parameters)

    summary = summarise_user_level(Logged(), "read_parquet(?)", str(path))  # type: ignore[arg-type]
    scan = next(s for s in sql if "GROUP BY ALL" in s)
    assert "user_id" not in scan or case == "empty_ids"  # the range came from the footer
    assert any("GROUP BY id" in s for s in sql) == (case != "unique")  # (no ids at all: an empty grouping)
    assert summary.users_in_several_variants == (1 if case == "in_two_variants" else 0)
    if case == "in_two_variants":
        assert summary.example_users == (str(ids[0]),)
