"""Daily exports (SPEC §3.1): splitting, the cumulative timeline, per-day SRM, and their issues."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats import proportion as sm_proportion

from analytics import Charter, Policy, RawTable, always_valid, split_daily, two_proportion_ztest
from analytics.sufficient import ProportionStatistic
from dashapp.services import AnalysisRequest, analyze_path, report_json
from tests.conftest import DATA

HEADER = ("date", "variant", "users", "conversions")


def _table(rows: list[tuple[object, ...]], header: tuple[str, ...] = HEADER) -> RawTable:
    return RawTable(header, tuple(tuple(None if c is None else str(c) for c in r) for r in rows))


def test_daily_and_running_total_files_give_the_same_report_and_timeline() -> None:
    daily = report_json(analyze_path(DATA / "sample_daily.csv", AnalysisRequest()))
    running = report_json(analyze_path(DATA / "sample_daily_cumulative.csv", AnalysisRequest(cumulative=True)))
    assert daily["timeline"] == running["timeline"] and len(daily["timeline"]) == 21
    assert daily["comparisons"] == running["comparisons"] and daily["decision"] == running["decision"]
    assert daily["srm_daily"] == running["srm_daily"]
    # read without --cumulative, a running-totals file is flagged, not silently summed
    misread = report_json(analyze_path(DATA / "sample_daily_cumulative.csv", AnalysisRequest()))
    assert [i["code"] for i in misread["health"]["issues"]] == ["looks_cumulative"]


def test_timeline_points_equal_an_independent_cumulative_computation() -> None:
    rows = np.loadtxt(DATA / "sample_daily.csv", delimiter=",", skiprows=1, usecols=(2, 3), dtype=np.int64)
    control, treatment = rows[0::2].cumsum(axis=0), rows[1::2].cumsum(axis=0)
    report = report_json(analyze_path(DATA / "sample_daily.csv", AnalysisRequest()))
    for day, point in enumerate(report["timeline"]):
        (n_c, x_c), (n_t, x_t) = control[day], treatment[day]
        low, high = sm_proportion.confint_proportions_2indep(int(x_t), int(n_t), int(x_c), int(n_c), method="wald")
        assert point["absolute_ci"] == pytest.approx([low, high], rel=1e-9)
        assert point["p_value"] == pytest.approx(
            sm_proportion.test_proportions_2indep(int(x_t), int(n_t), int(x_c), int(n_c), method="wald").pvalue, rel=1e-9)
        assert (point["control"]["n"], point["treatment_arm"]["n"]) == (n_c, n_t)


def test_peeking_wins_on_day_5_but_the_confidence_sequence_never_does() -> None:
    fixed = report_json(analyze_path(DATA / "sample_daily.csv", AnalysisRequest()))
    assert [p["p_value"] < 0.05 for p in fixed["timeline"]].index(True) == 4  # day 5: "significant" if you peek
    assert fixed["timeline"][-1]["p_value"] >= 0.05 and fixed["decision"]["rule"] == "inconclusive"
    sequential = report_json(analyze_path(DATA / "sample_daily.csv",
                                          AnalysisRequest(policy=Policy(sequential=True, sequential_tuning=42_000))))
    for point in sequential["timeline"]:
        estimate = two_proportion_ztest(ProportionStatistic(point["control"]["n"],
                                                            round(point["control"]["value"] * point["control"]["n"])),
                                        ProportionStatistic(point["treatment_arm"]["n"],
                                                            round(point["treatment_arm"]["value"]
                                                                  * point["treatment_arm"]["n"])))
        expected = always_valid(estimate, alpha=0.05, tuning=42_000)
        assert point["sequential"]["p_value"] == pytest.approx(expected.p_value, rel=1e-9)
        assert point["sequential"]["p_value"] >= 0.05


def test_bad_dates_duplicates_missing_days_and_falling_totals_are_issues() -> None:
    bad = split_daily(_table([("2026-11-01", "control", 100, 10), ("yesterday", "treatment", 100, 12)]))
    assert bad.totals is None and [i.code for i in bad.issues] == ["bad_date"] and "'yesterday'" in bad.issues[0].message
    twice = split_daily(_table([("2026-11-01", "control", 100, 10), ("2026-11-01", "Control", 90, 9)]))
    assert [i.code for i in twice.issues] == ["duplicate_date_variant"]
    gap = split_daily(_table([("2026-11-01", "control", 100, 10), ("2026-11-01", "treatment", 100, 12),
                              ("2026-11-02", "control", 100, 11)]))
    assert [i.code for i in gap.issues] == ["variant_missing_days"] and "2026-11-02" in gap.issues[0].message
    assert gap.totals is not None and sorted(gap.totals.rows) == [("control", 200, 21), ("treatment", 100, 12)]
    falling = split_daily(_table([("2026-11-01", "control", 100, 10), ("2026-11-02", "control", 90, 12)]),
                          cumulative=True)
    assert falling.totals is None and [i.code for i in falling.issues] == ["decreasing_totals"]


def test_daily_means_are_pooled_exactly() -> None:
    rng = np.random.default_rng(4)
    header = ("date", "variant", "users", "conversions", "revenue_mean", "revenue_std")
    days, values = [], {"control": [], "treatment": []}
    for day in range(5):
        for arm in ("control", "treatment"):
            x = rng.gamma(2.0, 10.0, int(rng.integers(50, 200)))
            values[arm].append(x)
            days.append((f"2026-11-0{day + 1}", arm, len(x), int(len(x) * 0.1), float(x.mean()), float(x.std(ddof=1))))
    split = split_daily(_table(days, header))
    assert split.totals is not None
    for row in split.totals.rows:
        pooled = np.concatenate(values[str(row[0])])
        assert float(row[1]) == len(pooled)
        assert float(row[3]) == pytest.approx(pooled.mean(), rel=1e-12)
        assert float(row[4]) == pytest.approx(pooled.std(ddof=1), rel=1e-12)


def test_a_day_whose_split_broke_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = ["date,variant,users,conversions"]
    for day in range(1, 8):
        treatment = 1_300 if day == 3 else 1_000
        rows += [f"2026-11-0{day},control,1000,100", f"2026-11-0{day},treatment,{treatment},{treatment // 10}"]
    path = tmp_path / "daily.csv"
    path.write_text("\n".join(rows) + "\n")
    report = report_json(analyze_path(path, AnalysisRequest()))
    broken = [d["date"] for d in report["srm_daily"] if d["broken"]]
    assert broken == ["2026-11-03"]
    (issue,) = [i for i in report["health"]["issues"] if i["code"] == "srm_daily"]
    assert "2026-11-03" in issue["message"] and issue["severity"] == "warning"
    day3 = next(d for d in report["srm_daily"] if d["date"] == "2026-11-03")
    expected = ((1000 - 1150) ** 2 + (1300 - 1150) ** 2) / 1150
    assert day3["chi2"] == pytest.approx(expected, rel=1e-12) and math.isfinite(day3["p_value"])


def test_an_analysis_below_the_planned_sample_is_an_interim_look_unless_sequential() -> None:
    early = report_json(analyze_path(DATA / "sample_daily.csv", AnalysisRequest(charter=Charter(planned_sample=100_000))))
    (issue,) = [i for i in early["health"]["issues"] if i["code"] == "interim_look"]
    assert issue["severity"] == "warning" and "42,000 users of the 100,000 planned (42%)" in issue["message"]
    done = report_json(analyze_path(DATA / "sample_daily.csv", AnalysisRequest(charter=Charter(planned_sample=42_000))))
    assert not [i for i in done["health"]["issues"] if i["code"] == "interim_look"]
    sequential = report_json(analyze_path(DATA / "sample_daily.csv", AnalysisRequest(
        charter=Charter(planned_sample=100_000), policy=Policy(sequential=True))))
    assert not [i for i in sequential["health"]["issues"] if i["code"] == "interim_look"]
    assert sequential["policy"]["sequential_tuning"] == 100_000  # the planned total tunes the sequence


def test_a_second_look_is_added_to_a_saved_experiment_through_the_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from storage.database import ExperimentDatabase
    from tests.conftest import run_cli

    db = str(tmp_path / "looks.duckdb")
    assert run_cli("analyze", str(DATA / "sample_daily.csv"), "--save", "--db", db).returncode == 0
    second = run_cli("analyze", str(DATA / "sample_daily_cumulative.csv"), "--cumulative", "--save", "--db", db,
                     "--experiment", "1")
    assert second.returncode == 0 and "analysis 2 of experiment 1 (look 2)" in second.stderr
    assert len(ExperimentDatabase(db).analyses(1)) == 2
    missing = run_cli("analyze", str(DATA / "sample_daily.csv"), "--save", "--db", db, "--experiment", "7")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "experiment 7 does not exist" in missing.stderr
    unsaved = run_cli("analyze", str(DATA / "sample_daily.csv"), "--experiment", "1", "--db", db)
    assert unsaved.returncode == 2 and "--save" in unsaved.stderr


def test_a_user_level_file_with_first_exposure_gives_the_same_timeline_as_its_daily_export(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    rng = np.random.default_rng(8)
    n = 6_000
    users = pd.DataFrame({
        "user_id": np.arange(n),
        "variant": np.where(rng.random(n) < 0.5, "control", "treatment"),
        "converted": (rng.random(n) < 0.1).astype(int),
        "first_exposure": [f"2026-11-{1 + int(d):02d}T{int(h):02d}:30:00" for d, h in
                           zip(rng.integers(0, 10, n), rng.integers(0, 24, n), strict=True)],
    })
    users.loc[5, "first_exposure"] = "not a date"
    users.to_csv(tmp_path / "users.csv", index=False)
    dated = users.drop(index=5)
    daily = (dated.assign(date=dated["first_exposure"].str[:10])
             .groupby(["date", "variant"]).agg(users=("user_id", "size"), conversions=("converted", "sum")).reset_index())
    daily.to_csv(tmp_path / "daily.csv", index=False)
    from_users = report_json(analyze_path(tmp_path / "users.csv", AnalysisRequest()))
    from_daily = report_json(analyze_path(tmp_path / "daily.csv", AnalysisRequest()))
    assert len(from_users["timeline"]) == 10
    assert from_users["timeline"] == from_daily["timeline"]
    assert from_users["srm_daily"] == from_daily["srm_daily"]
    (issue,) = [i for i in from_users["health"]["issues"] if i["code"] == "undated_users"]
    assert issue["severity"] == "warning" and issue["message"].startswith("1 user(s)")
    assert from_users["comparisons"][0]["primary"]["control"]["n"] == int((users["variant"] == "control").sum())
