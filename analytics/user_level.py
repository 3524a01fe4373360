"""User-level data (one row per user, SPEC §2.2): from per-variant column summaries to experiment data.

DuckDB summarises the file in one scan (:mod:`storage.user_level`); this module only
interprets the summary: 0/1 columns are proportions, other numeric columns means,
``conversions`` or ``converted`` is the default primary metric, ``guardrail_*`` columns
are guardrails. Every problem is an :class:`Issue` exactly as for aggregated files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from analytics.cuped import CovariateStatistic
from analytics.health import (
    GUARDRAIL_PREFIX,
    ExperimentData,
    Issue,
    IssueCode,
    MetricData,
    MetricRole,
    Segment,
    ValidationResult,
    blocked_issue,
    warning_issue,
)
from analytics.policy import MetricPolicy, Policy
from analytics.sufficient import ProportionStatistic, RatioStatistic, SampleMeanStatistic, Statistic

__all__ = [
    "DEFAULT_PRIMARY",
    "ColumnSummary",
    "CovariateSummary",
    "SegmentSummary",
    "UserLevelSummary",
    "VariantSummary",
    "validate_user_level",
]

DEFAULT_PRIMARY = ("conversions", "converted")


@dataclass(frozen=True)
class ColumnSummary:
    """One numeric column within one variant."""

    count: int
    mean: float | None
    variance: float | None
    total: float
    binary: bool  # every value is 0 or 1 (a proportion); False for any other value
    non_finite: int


@dataclass(frozen=True)
class CovariateSummary:
    """A metric's pre-period covariate ``pre_<metric>`` within one variant (ddof = 1)."""

    mean_x: float | None
    variance_x: float | None
    covariance_xy: float | None


@dataclass(frozen=True)
class VariantSummary:
    label: str
    spellings: tuple[str, ...]
    n: int
    columns: Mapping[str, ColumnSummary]
    covariates: Mapping[str, CovariateSummary] = field(default_factory=dict)
    # (numerator, denominator) of a declared ratio metric → the denominator's moments and Cov(num, den)
    ratios: Mapping[tuple[str, str], CovariateSummary] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentSummary:
    """The variants of the users with one value of one segment column."""

    column: str
    value: str
    variants: tuple[VariantSummary, ...]


@dataclass(frozen=True)
class UserLevelSummary:
    """What one scan of a user-level file found (column names normalised to lower case)."""

    rows: int
    numeric: tuple[str, ...]
    ignored: tuple[str, ...]
    variants: tuple[VariantSummary, ...]
    missing_variant_rows: int = 0
    users_in_several_variants: int = 0
    example_users: tuple[str, ...] = ()
    segments: tuple[SegmentSummary, ...] = ()
    unknown_segments: tuple[str, ...] = ()
    # With a first_exposure column: each day's cumulative arms, each day's new users, and the rows
    # whose first_exposure is empty or not a date.
    days: tuple[tuple[str, tuple[VariantSummary, ...]], ...] = ()
    new_users: tuple[tuple[str, Mapping[str, int]], ...] = ()
    undated_rows: int = 0



def _covariate(column: str, ordered: list[str], by_label: Mapping[str, VariantSummary]
               ) -> tuple[str | None, Mapping[str, CovariateStatistic] | None]:
    """The CUPED covariate ``pre_<column>`` of a metric, when every arm has usable moments of it."""
    statistics: dict[str, CovariateStatistic] = {}
    for label in ordered:
        variant = by_label[label]
        covariate = variant.covariates.get(column)
        metric = variant.columns[column]
        if (covariate is None or covariate.mean_x is None or covariate.variance_x is None
                or covariate.covariance_xy is None or metric.mean is None or metric.variance is None or variant.n < 2):
            return None, None
        statistics[label] = CovariateStatistic(variant.n, metric.mean, covariate.mean_x, max(metric.variance, 0.0),
                                               max(covariate.variance_x, 0.0), covariate.covariance_xy)
    return f"pre_{column}", statistics


def _ratio_metric(declared: MetricPolicy, ordered: list[str], by_label: Mapping[str, VariantSummary],
                  primary_key: str) -> MetricData | None:
    """A declared ratio metric Σnumerator / Σdenominator from the scan's moments (``None`` when an arm
    lacks them, e.g. a segment with a single user)."""
    pair = (declared.numerator or "", declared.denominator or "")
    statistics: dict[str, Statistic] = {}
    for label in ordered:
        variant = by_label[label]
        numerator, moments = variant.columns.get(pair[0]), variant.ratios.get(pair)
        if (numerator is None or moments is None or numerator.mean is None or moments.mean_x is None
                or variant.n < 2 or moments.mean_x == 0):
            return None
        statistics[label] = RatioStatistic(variant.n, numerator.mean, moments.mean_x, max(numerator.variance or 0.0, 0.0),
                                           max(moments.variance_x or 0.0, 0.0), moments.covariance_xy or 0.0)
    key = declared.name.casefold()
    role: MetricRole = "primary" if key == primary_key else (declared.role or "secondary")
    return MetricData(declared.name, role, "ratio", statistics)


def _experiment_data(variants: tuple[VariantSummary, ...], ordered: list[str], control: str, primary_key: str,
                     metric_columns: list[str], policy: Policy, rows: int, rates: frozenset[str]) -> ExperimentData:
    """``rates``: the columns that are 0/1 in the whole file (a segment keeps the file's metric types)."""
    by_label = {v.label: v for v in variants}
    metrics: list[MetricData] = []
    for column in metric_columns:
        binary = column in rates
        statistics: dict[str, Statistic] = {}
        for label in ordered:
            stats = by_label[label].columns[column]
            n = by_label[label].n
            if binary:
                statistics[label] = ProportionStatistic(n, round(stats.total))
            else:
                statistics[label] = SampleMeanStatistic(n, stats.mean or 0.0, max(stats.variance or 0.0, 0.0))
        is_guardrail = column.startswith(GUARDRAIL_PREFIX)
        name = column[len(GUARDRAIL_PREFIX):] if is_guardrail else column
        role: MetricRole = "guardrail" if is_guardrail else ("primary" if column == primary_key else "secondary")
        metrics.append(MetricData(name, role, "proportion" if binary else "mean", statistics,
                                  *_covariate(column, ordered, by_label)))
    for declared in policy.ratio_metrics():
        ratio = _ratio_metric(declared, ordered, by_label, primary_key)
        if ratio is not None:
            metrics.append(ratio)
    metrics.sort(key=lambda m: (m.role != "primary",))
    return ExperimentData(variants=tuple(ordered), control=control, users={label: by_label[label].n for label in ordered},
                          metrics=tuple(metrics), kind="user_level", rows=rows)


def _finite(*moments: float | None) -> bool:
    """Whether every moment the scan computed is finite (``None``: not computed, nothing to check)."""
    return all(value is None or math.isfinite(value) for value in moments)


def _finite_variant(variant: VariantSummary, metric_columns: list[str]) -> bool:
    """Whether every moment of ``variant``'s metrics, covariates and ratios is finite."""
    return (all(_finite(variant.columns[c].mean, variant.columns[c].variance) for c in metric_columns)
            and all(_finite(m.mean_x, m.variance_x, m.covariance_xy)
                    for m in (*variant.covariates.values(), *variant.ratios.values())))


def _too_large_issue(column: str, label: str) -> Issue:
    """``value_too_large``: finite values whose mean or variance overflows double precision."""
    return blocked_issue(IssueCode.VALUE_TOO_LARGE,
                         f"Column {column!r} has values too large to square in variant {label!r}: their variance "
                         "overflows double precision, so they cannot be analysed. Check the export (a unit or "
                         "scaling error?) or rescale the column, e.g. to thousands.")


def validate_user_level(
    summary: UserLevelSummary, *, policy: Policy, control: str | None = None, primary: str | None = None
) -> ValidationResult:
    """Check a user-level summary and build experiment data (``None`` when Blocked)."""
    issues: list[Issue] = []
    if summary.rows == 0:
        return ValidationResult(None, (blocked_issue(IssueCode.NO_ROWS, "The file has a header but no user rows; export one row "
                                                                        "per user with a variant column."),))
    if summary.variants and all(v.n == 1 for v in summary.variants):
        return ValidationResult(None, (blocked_issue(IssueCode.MISSING_COLUMN,
                                                     "Required column 'users' is missing: the file has "
                                                     "one row per variant, so it is an aggregated file and needs variant, "
                                                     "users and conversions (a user-level file has one row per user)."),))
    if summary.missing_variant_rows:
        issues.append(blocked_issue(IssueCode.MISSING_VARIANT,
                                    f"{summary.missing_variant_rows:,} row(s) have no variant; fill in "
                                    "the variant column or drop those users."))
    if summary.users_in_several_variants:
        examples = ", ".join(summary.example_users)
        issues.append(blocked_issue(IssueCode.USER_IN_SEVERAL_VARIANTS,
                                    f"{summary.users_in_several_variants:,} user(s) appear in "
                                    f"more than one variant (e.g. {examples}); assignment leaked, so effects cannot be "
                                    "trusted. Fix the assignment or drop those users."))
    for name in summary.ignored:
        issues.append(warning_issue(IssueCode.IGNORED_COLUMN, f"Column {name!r} is not numeric and was ignored (metrics are "
                                                              "numeric columns: 0/1 for rates, numbers for means; name segment "
                                                              "columns segment_<name> or pass --segment)."))
    for name in summary.unknown_segments:
        issues.append(blocked_issue(IssueCode.UNKNOWN_SEGMENT, f"Segment column {name!r} is not in the file; check --segment."))
    for name in summary.numeric:
        if name.startswith("pre_") and name[len("pre_"):] not in summary.numeric:
            issues.append(warning_issue(IssueCode.IGNORED_COLUMN,
                                        f"Column {name!r} looks like a pre-period covariate but there is "
                                        f"no metric {name[len('pre_'):]!r} to adjust; ignored."))
    variants = [v.label for v in summary.variants]
    for variant in summary.variants:
        if len(variant.spellings) > 1:
            spelled = ", ".join(repr(s) for s in variant.spellings)
            issues.append(warning_issue(IssueCode.LABEL_NORMALISED,
                                        f"Variant {variant.label!r} is written as {spelled}; they were "
                                        "read as one variant."))
    wanted = (control or "control").strip().casefold()
    control_label = next((v for v in variants if v.casefold() == wanted), None)
    if control_label is None:
        issues.append(blocked_issue(IssueCode.NO_CONTROL,
                                    f"No variant is named {(control or 'control')!r}; rename the control or "
                                    f"pass --control NAME (variants found: {', '.join(variants) or 'none'})."))
    if len(variants) < 2:
        issues.append(blocked_issue(IssueCode.TOO_FEW_VARIANTS, f"The file has {len(variants)} variant(s); an experiment needs a "
                                                                "control and at least one treatment."))
    metric_columns = [c for c in summary.numeric if c not in ("user_id", "variant") and not c.startswith("pre_")]
    ratio_names = [m.name.casefold() for m in policy.ratio_metrics()]
    for declared in policy.ratio_metrics():
        for role_name, column in (("numerator", declared.numerator), ("denominator", declared.denominator)):
            if column not in summary.numeric:
                issues.append(blocked_issue(IssueCode.UNKNOWN_RATIO_COLUMN,
                                            f"Ratio metric {declared.name!r}: its {role_name} "
                                            f"{column!r} is not a numeric column of the file; choose one of: "
                                            f"{', '.join(metric_columns) or 'none'}."))
        if declared.name.casefold() in summary.numeric:
            issues.append(blocked_issue(IssueCode.RATIO_NAME_TAKEN,
                                        f"Ratio metric {declared.name!r} has the name of a column "
                                        "of the file; give the ratio another name in [metrics.<name>]."))
        for variant in summary.variants:
            denominator = variant.columns.get(declared.denominator or "")
            if denominator is not None and denominator.total == 0:
                issues.append(blocked_issue(IssueCode.ZERO_DENOMINATOR,
                                            f"Ratio metric {declared.name!r}: the denominator "
                                            f"{declared.denominator!r} sums to 0 in variant {variant.label!r}, so the "
                                            "ratio is undefined there."))
    primary_key = (primary or "").strip().casefold() or next((c for c in DEFAULT_PRIMARY if c in metric_columns), "")
    if not primary_key or (primary_key not in metric_columns and primary_key not in ratio_names) \
            or primary_key.startswith(GUARDRAIL_PREFIX):
        choices = ", ".join([c for c in metric_columns if not c.startswith(GUARDRAIL_PREFIX)] + ratio_names) or "none"
        issues.append(blocked_issue(IssueCode.UNKNOWN_PRIMARY,
                                    f"Primary metric {primary or 'conversions / converted'!r} is not a "
                                    f"numeric column of the file; choose one of: {choices}."))
    for column in metric_columns:
        for variant in summary.variants:
            stats = variant.columns[column]
            if stats.non_finite:
                issues.append(blocked_issue(IssueCode.NON_FINITE,
                                            f"Column {column!r} has {stats.non_finite:,} NaN or infinite "
                                            f"value(s) in variant {variant.label!r}; replace them with numbers."))
            elif not _finite(stats.mean, stats.variance):
                issues.append(_too_large_issue(column, variant.label))
            missing = variant.n - stats.count
            if missing:
                issues.append(blocked_issue(IssueCode.MISSING_VALUE,
                                            f"Column {column!r} has {missing:,} empty value(s) in variant "
                                            f"{variant.label!r}; fill them (0 when nothing happened) or drop "
                                            "those users."))
    for variant in summary.variants:
        for column, moments in variant.covariates.items():
            if column in metric_columns and not _finite(moments.mean_x, moments.variance_x, moments.covariance_xy):
                issues.append(_too_large_issue(f"pre_{column}", variant.label))
        for pair, moments in variant.ratios.items():
            if not _finite(moments.mean_x, moments.variance_x, moments.covariance_xy):
                issues.append(_too_large_issue(" / ".join(pair), variant.label))
    for variant in summary.variants:
        if variant.n < policy.small_sample_users:
            issues.append(warning_issue(IssueCode.SMALL_SAMPLE,
                                        f"Variant {variant.label!r} has only {variant.n} users (fewer than "
                                        f"{policy.small_sample_users}); results will be very uncertain."))
    if any(i.severity == "blocked" for i in issues) or control_label is None:
        return ValidationResult(None, tuple(issues))
    ordered = [control_label, *sorted(v for v in variants if v != control_label)]
    rates = frozenset(c for c in metric_columns if all(v.columns[c].binary for v in summary.variants))
    data = _experiment_data(summary.variants, ordered, control_label, primary_key, metric_columns, policy, summary.rows,
                            rates)
    def subset(found: tuple[VariantSummary, ...], *, every_arm: bool) -> ExperimentData | None:
        """The experiment data of a segment or a day (arms missing there are left out, or — for a
        day of the timeline, ``every_arm`` — the day is left out until every arm has users)."""
        present = {v.label.casefold(): v for v in found}
        arms = [label for label in ordered if label.casefold() in present]
        if control_label not in arms or len(arms) < 2 or (every_arm and len(arms) != len(ordered)):
            return None
        relabelled = tuple(VariantSummary(label, present[label.casefold()].spellings, present[label.casefold()].n,
                                          present[label.casefold()].columns, present[label.casefold()].covariates,
                                          present[label.casefold()].ratios)
                           for label in arms)
        if any(v.n < 2 or not _finite_variant(v, metric_columns) for v in relabelled):
            return None
        return _experiment_data(relabelled, arms, control_label, primary_key, metric_columns, policy,
                                sum(v.n for v in relabelled), rates)

    segments = []
    for segment in summary.segments:
        found = subset(segment.variants, every_arm=False)
        if found is not None:
            segments.append(Segment(segment.column, segment.value, found))
    days = []
    for day, arms_that_day in summary.days:
        found = subset(arms_that_day, every_arm=True)
        if found is not None:
            days.append((day, found))
    if summary.undated_rows:
        issues.append(warning_issue(IssueCode.UNDATED_USERS,
                                    f"{summary.undated_rows:,} user(s) have an empty first_exposure or "
                                    "one that is not a date or timestamp; they count in the totals but not in the "
                                    "timeline. Fill first_exposure (e.g. 2026-11-28 or 2026-11-28T09:15:00)."))
    return ValidationResult(data, tuple(issues), tuple(segments), tuple(days), summary.new_users)
