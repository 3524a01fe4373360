"""Every issue code, raised directly (SPEC §2.3): the smallest input that triggers it, its severity
and the words of its message that tell the user what to fix.

Each case below is one row of :data:`CASES`; codes raised while reading a file are tested in
``tests/storage/test_ingest_issue_codes.py`` (:data:`STORAGE_CASES` there). The last test checks
that together they name every member of :class:`analytics.IssueCode`, so a new code fails until
it has a case.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from analytics import (
    DEFAULT_POLICY,
    ColumnSummary,
    ExpectedSplit,
    ExperimentInfo,
    HealthStatus,
    InputInfo,
    Issue,
    IssueCode,
    Policy,
    RawTable,
    SplitMismatch,
    UserLevelSummary,
    VariantSummary,
    analyze,
    overall_status,
    policy_from_mapping,
    split_daily,
    validate_aggregated,
    validate_user_level,
)
from analytics.health import (
    _count_issue,
    _data_rows,
    _Header,
    _header_issues,
    _metric_columns,
    _NotANumber,
    _parse_number,
    _primary_issue,
    _variant_labels,
    blocked_issue,
    warning_issue,
)
from tests.storage.test_ingest_issue_codes import STORAGE_CASES

CLEAN = "variant,users,conversions\ncontrol,1000,100\ntreatment,1000,110"


def table(text: str) -> RawTable:
    """A CSV text without quoting as a :class:`RawTable` (cells are the strings between commas)."""
    header, *rows = text.strip("\n").split("\n")
    return RawTable(tuple(header.split(",")), tuple(tuple(row.split(",")) for row in rows))


def aggregated(text: str, *, policy: Policy = DEFAULT_POLICY, primary: str | None = None,
               control: str | None = None) -> tuple[Issue, ...]:
    return validate_aggregated(table(text), policy=policy, primary=primary, control=control).issues


def rate(n: int, successes: int) -> ColumnSummary:
    """A 0/1 column's summary over ``n`` users (variance with ddof = 1; none for one user)."""
    mean = successes / n
    return ColumnSummary(n, mean, mean * (1 - mean) * n / (n - 1) if n > 1 else None, float(successes), True, 0)


def arm(label: str, n: int = 1000, successes: int = 100, *, spellings: tuple[str, ...] = (),
        columns: Mapping[str, ColumnSummary] | None = None) -> VariantSummary:
    return VariantSummary(label, spellings or (label,), n, {"converted": rate(n, successes), **(columns or {})})


def user_level(*variants: VariantSummary, policy: Policy = DEFAULT_POLICY, rows: int | None = None,
               numeric: tuple[str, ...] | None = None, ignored: tuple[str, ...] = (), **fields: Any) -> tuple[Issue, ...]:
    """The issues of a user-level summary (two healthy arms unless given); ``numeric`` defaults to
    the first arm's columns, ``rows`` to the users of all arms."""
    variants = variants or (arm("control"), arm("treatment", successes=110))
    summary = UserLevelSummary(rows=sum(v.n for v in variants) if rows is None else rows,
                               numeric=tuple(variants[0].columns) if numeric is None else numeric,
                               ignored=ignored, variants=variants, **fields)
    return validate_user_level(summary, policy=policy).issues


def daily(text: str, *, cumulative: bool = False) -> tuple[Issue, ...]:
    return split_daily(table(text), cumulative=cumulative).issues


def report_issues(text: str = CLEAN, *, policy: Policy = DEFAULT_POLICY, planned_sample: int | None = None,
                  new_users: tuple[tuple[str, Mapping[str, int]], ...] = ()) -> tuple[Issue, ...]:
    validation = validate_aggregated(table(text), policy=policy)
    report = analyze(validation.data, validation.issues, policy=policy, experiment=ExperimentInfo("x"),
                     input_info=InputInfo("aggregated", 2, "0" * 64), analytics_version="test",
                     new_users=new_users, planned_sample=planned_sample)
    return report.health.issues


@dataclass(frozen=True)
class Case:
    """One way to raise ``code``: ``issues()`` gives every issue of the smallest input that raises
    it, whose codes must be exactly ``codes`` (``(code,)`` unless given); the first issue with
    ``code`` has ``severity`` and contains every one of ``words``."""

    id: str
    code: IssueCode
    severity: str
    words: tuple[str, ...]
    issues: Callable[[], Sequence[Issue]]
    codes: tuple[IssueCode, ...] = field(default=())


C = IssueCode
RATIO = "ctr_num_sum,ctr_den_sum,ctr_num_sum_sq,ctr_den_sum_sq,ctr_num_den_sum"
AOV = policy_from_mapping({"metrics": {"aov": {"numerator": "revenue", "denominator": "orders"}}})


def revenue(n: int = 1000, *, count: int | None = None, non_finite: int = 0, total: float = 20_000.0) -> ColumnSummary:
    return ColumnSummary(n if count is None else count, 20.0, 900.0, total, False, non_finite)


CASES: tuple[Case, ...] = (
    # --- aggregated files: the header and the rows
    Case("empty file", C.EMPTY_FILE, "blocked", ("The file is empty", "variant,users,conversions"),
         lambda: validate_aggregated(RawTable((), ()), policy=DEFAULT_POLICY).issues),
    Case("unnamed column", C.EMPTY_COLUMN_NAME, "blocked", ("Column 3 has no name", "name it or delete"),
         lambda: aggregated("variant,users,,conversions\ncontrol,1000,1,100\ntreatment,1000,1,110")),
    Case("repeated column", C.DUPLICATE_COLUMN, "blocked", ("'Users' appears twice", "columns 2 and 4"),
         lambda: aggregated("variant,users,conversions,Users\ncontrol,1000,100,1000\ntreatment,1000,110,1000")),
    Case("no conversions column", C.MISSING_COLUMN, "blocked", ("'conversions' is missing", "found: variant, users"),
         lambda: aggregated("variant,users\ncontrol,1000\ntreatment,1000")),
    Case("a value beyond the header", C.EXTRA_VALUES, "blocked", ("Row 3 has 4 values", "names 3 columns"),
         lambda: aggregated(CLEAN + ",7")),
    Case("header only", C.NO_ROWS, "blocked", ("no data rows", "one row per variant"),
         lambda: aggregated("variant,users,conversions")),
    # --- the variants
    Case("unnamed row", C.MISSING_VARIANT, "blocked", ("Row 4 has no variant name",),
         lambda: aggregated(CLEAN + "\n,1000,90")),
    Case("repeated variant", C.DUPLICATE_VARIANT, "blocked", ("'Control' appears in rows 2 and 4", "one row per variant"),
         lambda: aggregated(CLEAN + "\nControl,1000,90")),
    Case("total row", C.TOTAL_ROW, "blocked", ("Row 4 ('Total') looks like a total",),
         lambda: aggregated(CLEAN + "\nTotal,2000,210")),
    Case("spaces around a label", C.LABEL_NORMALISED, "warning", ("' treatment '", "read as 'treatment'"),
         lambda: aggregated(CLEAN.replace("treatment", " treatment "))),
    Case("no control", C.NO_CONTROL, "blocked", ("No variant is named 'control'", "variants found: a, b"),
         lambda: aggregated("variant,users,conversions\na,1000,100\nb,1000,110")),
    Case("a missed --control", C.NO_CONTROL, "blocked", ("No variant is named 'base'", "--control NAME"),
         lambda: aggregated(CLEAN, control="base")),
    Case("one arm", C.TOO_FEW_VARIANTS, "blocked", ("1 usable variant(s)", "at least one treatment"),
         lambda: aggregated("variant,users,conversions\ncontrol,1000,100")),
    Case("small arm", C.SMALL_SAMPLE, "warning", ("'control' has only 50 users", "fewer than 100"),
         lambda: aggregated("variant,users,conversions\ncontrol,50,5\ntreatment,1000,110")),
    # --- the cells
    Case("empty cell", C.MISSING_VALUE, "blocked", ("Row 3, column 'conversions' is empty", "must be a number"),
         lambda: aggregated("variant,users,conversions\ncontrol,1000,100\ntreatment,1000,")),
    Case("text in a count", C.NON_NUMERIC, "blocked", ("Row 2, column 'users' is 'many', not a number",),
         lambda: aggregated(CLEAN.replace("control,1000", "control,many"))),
    Case("thousands comma", C.NON_NUMERIC, "blocked", ("'1,000'", "thousands or decimal comma", "plain digits"),
         lambda: validate_aggregated(RawTable(("variant", "users", "conversions"),
                                              (("control", "1,000", "100"), ("treatment", "1000", "110"))),
                                     policy=DEFAULT_POLICY).issues),
    Case("infinity", C.NON_NUMERIC, "blocked", ("'inf'", "NaN and infinity are not allowed"),
         lambda: aggregated(CLEAN.replace("control,1000,100", "control,1000,inf"))),
    Case("negative count", C.NEGATIVE_COUNT, "blocked", ("Row 2, column 'conversions' is -5", "cannot be negative"),
         lambda: aggregated(CLEAN.replace("control,1000,100", "control,1000,-5"))),
    Case("fractional users", C.NOT_INTEGER, "blocked", ("column 'users' is 1000.5", "whole numbers"),
         lambda: aggregated(CLEAN.replace("control,1000", "control,1000.5"))),
    Case("no users", C.ZERO_USERS, "blocked", ("Variant 'treatment' (row 3) has 0 users",),
         lambda: aggregated("variant,users,conversions\ncontrol,1000,100\ntreatment,0,0")),
    Case("more conversions than users", C.CONVERSIONS_EXCEED_USERS, "blocked", ("200 conversions but only 100 users",),
         lambda: aggregated("variant,users,conversions\ncontrol,1000,100\ntreatment,100,200")),
    Case("negative guardrail", C.NEGATIVE_GUARDRAIL, "blocked", ("column 'guardrail_errors' is -3", "cannot be negative"),
         lambda: aggregated("variant,users,conversions,guardrail_errors\ncontrol,1000,100,-3\ntreatment,1000,110,4")),
    Case("fractional guardrail", C.NOT_INTEGER, "blocked", ("column 'guardrail_errors' is 1.5",),
         lambda: aggregated("variant,users,conversions,guardrail_errors\ncontrol,1000,100,1.5\ntreatment,1000,110,4")),
    Case("negative std", C.NEGATIVE_STD, "blocked", ("Row 3, column 'lat_std' is -1", "cannot be negative"),
         lambda: aggregated("variant,users,conversions,lat_mean,lat_std\ncontrol,1000,100,5,1\ntreatment,1000,110,5,-1")),
    # Σx² = 10 < (Σx)²/n = 1000²/1000 = 1000: no real numbers have that sum of squares.
    Case("impossible sum of squares", C.IMPOSSIBLE_VARIANCE, "blocked",
         ("Row 2: 'rev_sum_sq' (10) is smaller than rev_sum²/users (1000)",),
         lambda: aggregated("variant,users,conversions,rev_sum,rev_sum_sq\ncontrol,1000,100,1000,10\n"
                            "treatment,1000,110,1000,2000")),
    Case("impossible ratio sums", C.IMPOSSIBLE_VARIANCE, "blocked", ("ratio metric 'ctr'", "smaller than its sum²/users"),
         lambda: aggregated(f"variant,users,conversions,{RATIO}\ncontrol,1000,100,500,1000,1,1200,600\n"
                            "treatment,1000,110,55,100,70,120,80")),
    # 10¹⁵ + 1 users: above MAX_COUNT (10¹⁵ itself is allowed, see test_counts_up_to_a_quadrillion_are_allowed).
    Case("users above a quadrillion", C.COUNT_TOO_LARGE, "blocked",
         ("Row 3, column 'users' is 1,000,000,000,000,001", "a quadrillion", "id column mistaken for a count"),
         lambda: aggregated(f"variant,users,conversions\ncontrol,1000,100\ntreatment,{10**15 + 1},110")),
    Case("a float count of 1e300", C.COUNT_TOO_LARGE, "blocked", ("column 'guardrail_errors' is 1e+300",),
         lambda: aggregated("variant,users,conversions,guardrail_errors\ncontrol,1000,100,1e300\ntreatment,1000,110,4")),
    Case("a daily file's users above a quadrillion", C.COUNT_TOO_LARGE, "blocked",
         ("Row 3, column 'users' is 1e+20",),
         lambda: split_daily(RawTable(("date", "variant", "users", "conversions"),
                                      (("2026-01-01", "control", "10", "1"), ("2026-01-01", "treatment", "1e20", "1"),
                                       ("2026-01-02", "control", "10", "1")))).issues),
    # std 1e300 is positive, but its square (the variance) overflows: not "negative_std".
    Case("a std too large to square", C.VALUE_TOO_LARGE, "blocked",
         ("Row 2, column 'rev_std' is 1e+300", "too large to analyse", "rescale"),
         lambda: aggregated("variant,users,conversions,rev_mean,rev_std\ncontrol,1000,100,1e300,1e300\n"
                            "treatment,1000,110,5,1")),
    # (1e160)²/1000 = 1e317 overflows, whatever rev_sum_sq says: not "impossible_variance".
    Case("a sum too large to square", C.VALUE_TOO_LARGE, "blocked",
         ("Row 2, column 'rev_sum' is 1e+160", "rev_sum²/users overflows"),
         lambda: aggregated("variant,users,conversions,rev_sum,rev_sum_sq\ncontrol,1000,100,1e160,1e308\n"
                            "treatment,1000,110,1000,2000")),
    Case("a ratio sum too large to square", C.VALUE_TOO_LARGE, "blocked", ("column 'ctr_den_sum' is 1e+200",),
         lambda: aggregated(f"variant,users,conversions,{RATIO}\ncontrol,1000,100,50,1e200,60,1e300,70\n"
                            "treatment,1000,110,55,100,70,120,80")),
    # Var(X) = Var(Y) ≈ 100 per user but Cov(X, Y) ≈ 1e297: Cov² > Var(X)·Var(Y), which no data allow.
    Case("a cross sum beyond Cauchy–Schwarz", C.IMPOSSIBLE_VARIANCE, "blocked",
         ("ctr_num_den_sum (-1e+300)", "Cov(num, den)² cannot exceed Var(num)·Var(den)"),
         lambda: aggregated(f"variant,users,conversions,{RATIO}\ncontrol,1000,100,5000,2000,1e5,1e5,-1e300\n"
                            "treatment,1000,110,5000,2000,1e5,1e5,1e4")),
    Case("user level: values too large to square", C.VALUE_TOO_LARGE, "blocked",
         ("'revenue' has values too large to square in variant 'control'",),
         lambda: user_level(arm("control", columns={"revenue": ColumnSummary(1000, 1e200, math.inf, 1e203, False, 0)}),
                            arm("treatment", columns={"revenue": revenue()}))),
    # --- the metrics
    Case("unknown primary", C.UNKNOWN_PRIMARY, "blocked", ("Primary metric 'revenue' is not in the file", "conversions"),
         lambda: aggregated(CLEAN, primary="revenue")),
    Case("guardrail as primary", C.UNKNOWN_PRIMARY, "blocked", ("'guardrail_errors'",),
         lambda: aggregated("variant,users,conversions,guardrail_errors\ncontrol,1000,100,3\ntreatment,1000,110,4",
                            primary="guardrail_errors")),
    Case("ratio without its partners", C.INCOMPLETE_METRIC, "warning",
         ("Ratio metric 'ctr' needs all five sums", "ctr_den_sum", "ctr_num_den_sum"),
         lambda: aggregated("variant,users,conversions,ctr_num_sum\ncontrol,1000,100,50\ntreatment,1000,110,55"),
         (C.INCOMPLETE_METRIC, C.IGNORED_COLUMN)),  # ... and the lone column is ignored
    Case("sum without its square", C.INCOMPLETE_METRIC, "warning", ("rev_sum need a partner", "rev_sum_sq"),
         lambda: aggregated("variant,users,conversions,rev_sum\ncontrol,1000,100,50\ntreatment,1000,110,55"),
         (C.INCOMPLETE_METRIC, C.IGNORED_COLUMN)),
    Case("unknown column", C.IGNORED_COLUMN, "warning", ("Column 'Note' is not a known metric column",),
         lambda: aggregated("variant,users,conversions,Note\ncontrol,1000,100,x\ntreatment,1000,110,y")),
    Case("a mean given twice", C.IGNORED_COLUMN, "warning", ("'rev' is given both", "the sums were used"),
         lambda: aggregated("variant,users,conversions,rev_sum,rev_sum_sq,rev_mean,rev_std\n"
                            "control,1000,100,500,3000,0.5,1\ntreatment,1000,110,520,3100,0.52,1"),
         (C.IGNORED_COLUMN,) * 3),  # the metric, then rev_mean and rev_std each
    Case("guardrail above users", C.GUARDRAIL_NOT_RATE, "warning",
         ("'guardrail_clicks' is larger than users in control", "guardrail_clicks_mean"),
         lambda: aggregated("variant,users,conversions,guardrail_clicks\ncontrol,1000,100,2000\ntreatment,1000,110,30")),
    Case("ratio denominator 0", C.ZERO_DENOMINATOR, "blocked", ("ctr_den_sum is 0 in 'control'", "undefined"),
         lambda: aggregated(f"variant,users,conversions,{RATIO}\ncontrol,1000,100,50,0,60,0,0\n"
                            "treatment,1000,110,55,100,70,120,80")),
    # --- user-level files (the summary of one scan)
    Case("user level: no users", C.NO_ROWS, "blocked", ("no user rows",), lambda: user_level(rows=0)),
    Case("user level: one row per variant", C.MISSING_COLUMN, "blocked", ("'users' is missing", "aggregated file"),
         lambda: user_level(arm("control", 1, 1), arm("treatment", 1, 0))),
    Case("user level: no variant", C.MISSING_VARIANT, "blocked", ("3 row(s) have no variant",),
         lambda: user_level(missing_variant_rows=3)),
    Case("user level: assignment leaked", C.USER_IN_SEVERAL_VARIANTS, "blocked",
         ("2 user(s) appear in more than one variant", "u1, u2"),
         lambda: user_level(users_in_several_variants=2, example_users=("u1", "u2"))),
    Case("user level: text column", C.IGNORED_COLUMN, "warning", ("Column 'note' is not numeric",),
         lambda: user_level(ignored=("note",))),
    Case("user level: covariate without metric", C.IGNORED_COLUMN, "warning", ("'pre_spend'", "no metric 'spend'"),
         lambda: user_level(numeric=("converted", "pre_spend"))),
    Case("user level: missing segment", C.UNKNOWN_SEGMENT, "blocked", ("Segment column 'segment_x' is not in the file",),
         lambda: user_level(unknown_segments=("segment_x",))),
    Case("user level: two spellings", C.LABEL_NORMALISED, "warning", ("'control' is written as 'control', 'Control'",),
         lambda: user_level(arm("control", spellings=("control", "Control")), arm("treatment", successes=110))),
    Case("user level: no control", C.NO_CONTROL, "blocked", ("No variant is named 'control'", "a, b"),
         lambda: user_level(arm("a"), arm("b"))),
    Case("user level: one arm", C.TOO_FEW_VARIANTS, "blocked", ("1 variant(s)",), lambda: user_level(arm("control"))),
    Case("user level: unknown primary", C.UNKNOWN_PRIMARY, "blocked", ("'conversions / converted'", "choose one of: spend"),
         lambda: user_level(arm("control", columns={"spend": revenue()}), arm("treatment", columns={"spend": revenue()}),
                            numeric=("spend",))),
    Case("user level: NaN", C.NON_FINITE, "blocked", ("'revenue' has 2 NaN or infinite value(s) in variant 'treatment'",),
         lambda: user_level(arm("control", columns={"revenue": revenue()}),
                            arm("treatment", columns={"revenue": revenue(non_finite=2)}))),
    Case("user level: empty cells", C.MISSING_VALUE, "blocked", ("'revenue' has 3 empty value(s) in variant 'control'",),
         lambda: user_level(arm("control", columns={"revenue": revenue(count=997)}),
                            arm("treatment", columns={"revenue": revenue()}))),
    Case("user level: small arm", C.SMALL_SAMPLE, "warning", ("'treatment' has only 50 users",),
         lambda: user_level(arm("control"), arm("treatment", 50, 5))),
    Case("user level: ratio of a missing column", C.UNKNOWN_RATIO_COLUMN, "blocked",
         ("Ratio metric 'aov': its numerator 'revenue' is not a numeric column", "choose one of: converted, orders"),
         lambda: user_level(arm("control", columns={"orders": revenue()}), arm("treatment", columns={"orders": revenue()}),
                            policy=AOV)),
    Case("user level: ratio named like a column", C.RATIO_NAME_TAKEN, "blocked", ("'aov' has the name of a column",),
         lambda: user_level(*(arm(label, columns={"revenue": revenue(), "orders": revenue(), "aov": revenue()})
                              for label in ("control", "treatment")), policy=AOV)),
    Case("user level: ratio denominator 0", C.ZERO_DENOMINATOR, "blocked",
         ("denominator 'orders' sums to 0 in variant 'treatment'",),
         lambda: user_level(arm("control", columns={"revenue": revenue(), "orders": revenue()}),
                            arm("treatment", columns={"revenue": revenue(), "orders": revenue(total=0.0)}), policy=AOV)),
    Case("user level: undated users", C.UNDATED_USERS, "warning", ("5 user(s) have an empty first_exposure",),
         lambda: user_level(undated_rows=5)),
    # --- daily exports (analytics.timeline)
    Case("daily: not a date", C.BAD_DATE, "blocked", ("Row 3: date '01/02/2026' is not a date", "YYYY-MM-DD"),
         lambda: daily("date,variant,users,conversions\n2026-01-01,control,100,10\n01/02/2026,treatment,100,11")),
    Case("daily: a day twice", C.DUPLICATE_DATE_VARIANT, "blocked", ("variant 'Control' appears twice on 2026-01-01",),
         lambda: daily("date,variant,users,conversions\n2026-01-01,control,100,10\n2026-01-01,Control,100,11")),
    Case("daily: a missing day", C.VARIANT_MISSING_DAYS, "warning", ("'treatment' has no row on 2026-01-02",),
         lambda: daily("date,variant,users,conversions\n2026-01-01,control,100,10\n2026-01-01,treatment,100,11\n"
                       "2026-01-02,control,100,10")),
    Case("daily: running totals fall", C.DECREASING_TOTALS, "blocked",
         ("Running totals of 'control' fall on 2026-01-02", "1,000 → 900 users"),
         lambda: daily("date,variant,users,conversions\n2026-01-01,control,1000,100\n2026-01-01,treatment,1000,110\n"
                       "2026-01-02,control,900,100\n2026-01-02,treatment,2000,215", cumulative=True)),
    Case("daily: rows that look cumulative", C.LOOKS_CUMULATIVE, "warning", ("like running totals", "--cumulative"),
         lambda: daily("date,variant,users,conversions\n" + "\n".join(
             f"2026-01-0{day},{label},{1000 * day},{100 * day}" for day in (1, 2, 3) for label in ("control", "treatment")))),
    # --- the report (analytics.report)
    Case("interim look", C.INTERIM_LOOK, "warning", ("interim look: 2,000 users of the 10,000 planned (20%)",),
         lambda: report_issues(planned_sample=10_000)),
    Case("split of three for two arms", C.SPLIT_MISMATCH, "blocked",
         ("The expected split gives 3 shares but the file has 2 variants (control, treatment); give one share per variant",
          "(control=50,treatment=50)."),
         lambda: report_issues(policy=Policy(expected_split=ExpectedSplit(positional=(30.0, 30.0, 40.0))))),
    Case("split naming another arm", C.SPLIT_MISMATCH, "blocked",
         ("does not match the file: no share for treatment; no variant named test in the file.",),
         lambda: report_issues(policy=Policy(expected_split=ExpectedSplit(named=(("control", 50.0), ("test", 50.0)))))),
    # 10,000 vs 10,500 on 50/50: χ² = 250²·2/10,250 = 12.2, p ≈ 0.00048, between 1e-5 and 1e-3.
    Case("sample ratio mismatch", C.SRM, "warning", ("Sample ratio mismatch", "chi-square 12.20", "< 0.001"),
         lambda: report_issues("variant,users,conversions\ncontrol,10000,1200\ntreatment,10500,1365")),
    Case("severe sample ratio mismatch", C.SRM, "blocked", ("Sample ratio mismatch", "< 1e-05"),
         lambda: report_issues("variant,users,conversions\ncontrol,10000,1200\ntreatment,12000,1440")),
    Case("one day's split broke", C.SRM_DAILY, "warning", ("broke on 1 day(s): 2026-01-02",),
         lambda: report_issues(new_users=(("2026-01-01", {"control": 500, "treatment": 500}),
                                          ("2026-01-02", {"control": 500, "treatment": 700})))),
    Case("policy names no metric of the file", C.UNKNOWN_POLICY_METRIC, "blocked", ("'revnue'", "did you mean"),
         lambda: report_issues("variant,users,conversions,revenue_sum,revenue_sum_sq\ncontrol,1000,100,500,3000\n"
                               "treatment,1000,110,520,3100",
                               policy=policy_from_mapping({"metrics": {"revnue": {"better": "lower"}}}))),
    Case("rare conversions", C.SPARSE_COUNTS, "warning", ("fewer than 10 conversions or non-conversions in control",
                                                          "Fisher's exact test"),
         lambda: report_issues("variant,users,conversions\ncontrol,5000,2\ntreatment,5000,40")),
)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_each_issue_code(case: Case) -> None:
    issues = case.issues()
    assert [i.code for i in issues] == list(case.codes or (case.code,))
    (issue, *_) = [i for i in issues if i.code is case.code]
    assert isinstance(issue.code, IssueCode)
    assert issue.severity == case.severity
    for words in case.words:
        assert words in issue.message


def test_clean_data_has_no_issue() -> None:
    validation = validate_aggregated(table(CLEAN), policy=DEFAULT_POLICY)
    assert validation.issues == () and validation.data is not None
    assert validation.data.users == {"control": 1000, "treatment": 1000}
    assert user_level() == ()
    assert daily("date,variant,users,conversions\n2026-01-01,control,100,10\n2026-01-01,treatment,100,11\n"
                 "2026-01-02,control,90,10\n2026-01-02,treatment,95,12") == ()
    assert report_issues() == ()
    assert overall_status(()) is HealthStatus.HEALTHY


def test_blocked_data_gives_no_experiment_data_and_warnings_keep_it() -> None:
    assert validate_aggregated(table(CLEAN + "\nTotal,2000,210"), policy=DEFAULT_POLICY).data is None
    warned = validate_aggregated(table(CLEAN.replace("treatment", " treatment ")), policy=DEFAULT_POLICY)
    assert warned.data is not None and warned.data.variants == ("control", "treatment")
    assert overall_status(warned.issues) is HealthStatus.WARNING


def test_issues_come_in_the_order_of_the_phases() -> None:
    # a label problem (phase 3), a cell problem (phase 4), a count problem (phase 5), an ignored column (phase 7)
    issues = aggregated("variant,users,conversions,Note\ncontrol,1000,100,x\n treatment ,1000,abc,y\nb,-1,1,z")
    assert [i.code for i in issues] == [C.LABEL_NORMALISED, C.NON_NUMERIC, C.NEGATIVE_COUNT, C.IGNORED_COLUMN]


def test_an_issue_code_is_a_closed_vocabulary_and_serialises_as_its_text() -> None:
    assert Issue("srm", "warning", "m").code is IssueCode.SRM  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not_a_code"):
        Issue("not_a_code", "warning", "m")  # type: ignore[arg-type]
    assert blocked_issue(C.NO_ROWS, "m") == Issue(C.NO_ROWS, "blocked", "m")
    assert warning_issue(C.SMALL_SAMPLE, "m").severity == "warning"
    assert IssueCode.SRM == "srm" and f"{IssueCode.SRM}" == "srm"
    assert all(member.value == member.name.lower() for member in IssueCode)


# --- the phases one by one --------------------------------------------------------------------


def test_parse_number_says_why_a_cell_is_not_a_number() -> None:
    assert _parse_number(" 12.5 ") == 12.5 and _parse_number(3) == 3.0
    assert _parse_number(None) == _NotANumber(C.MISSING_VALUE, "is empty")
    assert _parse_number("  ") == _NotANumber(C.MISSING_VALUE, "is empty")
    assert _parse_number(True) == _NotANumber(C.NON_NUMERIC, "is a boolean")
    assert _parse_number("x") == _NotANumber(C.NON_NUMERIC, "is 'x', not a number")
    nan = _parse_number(math.nan)
    assert isinstance(nan, _NotANumber) and nan.code is C.NON_NUMERIC and "NaN and infinity" in nan.reason
    comma = _parse_number("12,5")
    assert isinstance(comma, _NotANumber) and "decimal comma" in comma.reason


def test_count_issue_is_a_guard() -> None:
    assert _count_issue(3.0, row=2, column="users", guardrail=False) is None
    negative = _count_issue(-1.0, row=2, column="guardrail_x", guardrail=True)
    assert negative is not None and negative.code is C.NEGATIVE_GUARDRAIL
    fraction = _count_issue(0.5, row=4, column="users", guardrail=False)
    assert fraction is not None and fraction.code is C.NOT_INTEGER and "Row 4" in fraction.message


def test_counts_up_to_a_quadrillion_are_allowed() -> None:
    """MAX_COUNT = 10¹⁵ itself is a count; one more is ``count_too_large``."""
    assert _count_issue(1e15, row=2, column="users", guardrail=False) is None
    too_large = _count_issue(1e15 + 1, row=2, column="users", guardrail=False)
    assert too_large is not None and too_large.code is C.COUNT_TOO_LARGE
    result = validate_aggregated(RawTable(("variant", "users", "conversions"),
                                          (("control", str(10**15), "0"), ("treatment", str(10**15), "3"))),
                                 policy=DEFAULT_POLICY)
    assert result.data is not None and result.data.users == {"control": 10**15, "treatment": 10**15}


@pytest.mark.parametrize("users", [3, 1000, 123_457])
def test_perfectly_correlated_ratio_sums_are_possible(users: int) -> None:
    """Cov² = Var(X)·Var(Y) exactly (X = 7.3·Y, and Y = 1 for every user, so Var(Y) = Cov = 0 up
    to rounding): the Cauchy–Schwarz check allows the rounding of the sums."""
    rows = []
    for label, scale in (("control", 7.3), ("treatment", 0.1)):
        y = [1.0] * users
        x = [scale * (1 + (i % 7)) for i in range(users)]
        rows.append((label, str(users), "1", repr(math.fsum(x)), repr(math.fsum(y)),
                     repr(math.fsum(v * v for v in x)), repr(math.fsum(v * v for v in y)),
                     repr(math.fsum(a * b for a, b in zip(x, y, strict=True)))))
        rows.append((label + "_b", str(users), "1", repr(math.fsum(x)), repr(math.fsum(v * 3 for v in x)),
                     repr(math.fsum(v * v for v in x)), repr(math.fsum(9 * v * v for v in x)),
                     repr(math.fsum(3 * v * v for v in x))))
    result = validate_aggregated(RawTable(("variant", "users", "conversions", *RATIO.split(",")), tuple(rows)),
                                 policy=DEFAULT_POLICY)
    assert [i.code for i in result.issues if i.severity == "blocked"] == []


def test_header_phase() -> None:
    raw = RawTable(("\ufeffVariant ", "Users", "conversions", "users"), ())
    header = _Header.read(raw)
    assert header.names == ("Variant", "Users", "conversions", "users")
    assert header.first == {"variant": 0, "users": 1, "conversions": 2}
    assert [i.code for i in _header_issues(raw, header)] == [C.DUPLICATE_COLUMN]
    empty = RawTable(("column0",), ())
    assert [i.code for i in _header_issues(empty, _Header.read(empty))] == [C.EMPTY_FILE]


def test_row_and_label_phases() -> None:
    rows, issues = _data_rows(RawTable(("variant", "users"), (("a", "1", "9"), ("", " "), ("b",))), 2)
    assert rows == ((2, ("a", "1")), (4, ("b", None)))  # the blank row 3 is skipped, row 4 padded
    assert [i.code for i in issues] == [C.EXTRA_VALUES]
    assert [i.code for i in _data_rows(RawTable(("variant",), ()), 1)[1]] == [C.NO_ROWS]
    labels, issues = _variant_labels(((2, ("control",)), (3, ("CONTROL",)), (4, (" b",))), 0)
    assert labels == ((2, "control"), (4, "b"))
    assert [i.code for i in issues] == [C.DUPLICATE_VARIANT, C.LABEL_NORMALISED]


def test_metric_column_and_primary_phases() -> None:
    header = _Header.read(RawTable(("variant", "users", "conversions", "guardrail_errors", "rev_mean", "rev_std",
                                    *RATIO.split(",")), ()))
    columns, issues = _metric_columns(header)
    assert issues == ()
    assert columns.count_guardrails == ("guardrail_errors",)
    assert columns.means == {"rev": ("rev_mean", "rev_std")}
    assert set(columns.ratios) == {"ctr"} and columns.names == ("conversions", "rev", "ctr")
    assert _primary_issue("Rev", columns) is None
    unknown = _primary_issue("nope", columns)
    assert unknown is not None and "choose one of conversions, rev, ctr" in unknown.message


def test_expected_split_resolves_to_shares_or_a_typed_mismatch() -> None:
    assert ExpectedSplit().resolve(("a", "b")) == {"a": 0.5, "b": 0.5}
    assert ExpectedSplit(positional=(30.0, 70.0)).resolve(("a", "b")) == {"a": 0.3, "b": 0.7}
    assert ExpectedSplit(named=(("B", 1.0), ("a", 3.0))).resolve(("a", "b")) == {"a": 0.75, "b": 0.25}
    mismatch = ExpectedSplit(positional=(1.0, 1.0, 1.0)).resolve(("a", "b"))
    assert isinstance(mismatch, SplitMismatch)
    assert mismatch.reason.startswith("the expected split gives 3 shares")
    assert mismatch.message.startswith("The expected split gives 3 shares") and mismatch.message.endswith(".")
    with pytest.raises(ValueError, match="positive"):  # a bad argument is still an exception (STYLE rule 4)
        ExpectedSplit(positional=(0.0, 1.0))


def test_every_issue_code_has_a_case() -> None:
    tested = {case.code for case in CASES} | {case.code for case in STORAGE_CASES}
    assert tested == set(IssueCode), f"codes without a test: {sorted(set(IssueCode) - tested)}"
