"""Data quality: turn a raw aggregated table into typed experiment data plus issues.

Every problem is an :class:`Issue` with a machine-readable ``code``, a ``severity``
and a message that names the column or row and says how to fix it. The health
status is the worst severity present (SPEC §2.3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from analytics.cuped import CovariateStatistic
from analytics.inference import MetricType
from analytics.policy import Policy
from analytics.sufficient import ProportionStatistic, RatioStatistic, SampleMeanStatistic, Statistic

__all__ = [
    "Cell",
    "ExperimentData",
    "HealthStatus",
    "Issue",
    "MetricData",
    "MetricRole",
    "RawTable",
    "Segment",
    "Severity",
    "ValidationResult",
    "blocked_issue",
    "overall_status",
    "validate_aggregated",
    "warning_issue",
]

Cell = str | int | float | None
Severity = Literal["warning", "blocked"]
MetricRole = Literal["primary", "guardrail", "secondary"]

REQUIRED = ("variant", "users", "conversions")
GUARDRAIL_PREFIX = "guardrail_"
#: The five sums of a ratio metric in an aggregated file (SPEC §4.2), longest suffix first.
RATIO_SUFFIXES = ("_num_den_sum", "_num_sum_sq", "_den_sum_sq", "_num_sum", "_den_sum")
_TOTAL_LABELS = {"total", "all", "overall", "sum", "grand total"}


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class Issue:
    """One data-quality finding."""

    code: str
    severity: Severity
    message: str


def overall_status(issues: Sequence[Issue]) -> HealthStatus:
    """The worst severity among ``issues`` (Healthy when there are none)."""
    severities = {issue.severity for issue in issues}
    if "blocked" in severities:
        return HealthStatus.BLOCKED
    if "warning" in severities:
        return HealthStatus.WARNING
    return HealthStatus.HEALTHY


@dataclass(frozen=True)
class RawTable:
    """A file as read: the header exactly as written and every row's cells.

    ``rows`` may be ragged (a row longer or shorter than the header).
    """

    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class MetricData:
    """One metric's sufficient statistics in every arm."""

    name: str
    role: MetricRole
    metric_type: MetricType
    statistics: Mapping[str, Statistic]
    covariate: str | None = None
    covariate_statistics: Mapping[str, CovariateStatistic] | None = None


@dataclass(frozen=True)
class ExperimentData:
    """Validated experiment data: arms in file order, the control, and metrics."""

    variants: tuple[str, ...]
    control: str
    users: Mapping[str, int]
    metrics: tuple[MetricData, ...]
    kind: Literal["aggregated", "user_level"] = "aggregated"
    rows: int = 0

    @property
    def treatments(self) -> tuple[str, ...]:
        return tuple(v for v in self.variants if v != self.control)

    @property
    def primary(self) -> MetricData:
        return next(m for m in self.metrics if m.role == "primary")

    def by_role(self, role: MetricRole) -> tuple[MetricData, ...]:
        return tuple(m for m in self.metrics if m.role == role)


@dataclass(frozen=True)
class Segment:
    """One segment value's experiment data (arms missing from the segment are left out)."""

    column: str
    value: str
    data: ExperimentData


@dataclass(frozen=True)
class ValidationResult:
    """Validated data (``None`` when Blocked) with every issue; for user-level files also the
    segments and, with ``first_exposure``, each day's cumulative data and new users (SPEC §3.1)."""

    data: ExperimentData | None
    issues: tuple[Issue, ...] = field(default_factory=tuple)
    segments: tuple[Segment, ...] = ()
    days: tuple[tuple[str, ExperimentData], ...] = ()
    new_users: tuple[tuple[str, Mapping[str, int]], ...] = ()


@dataclass(frozen=True)
class _Column:
    index: int
    name: str


def blocked_issue(code: str, message: str) -> Issue:
    return Issue(code, "blocked", message)


def warning_issue(code: str, message: str) -> Issue:
    return Issue(code, "warning", message)


def _parse_number(cell: Cell) -> float | str:
    """A finite float, or a short description of why the cell is not one."""
    if cell is None:
        return "is empty"
    if isinstance(cell, bool):
        return "is a boolean"
    if isinstance(cell, int | float):
        value = float(cell)
    else:
        text = cell.strip()
        if not text:
            return "is empty"
        try:
            value = float(text)
        except ValueError:
            if "," in text:
                return f"is {text!r}, which uses a thousands or decimal comma; write plain digits such as 10000 or 12.5"
            return f"is {text!r}, not a number"
    if not math.isfinite(value):
        return f"is {cell!r}; NaN and infinity are not allowed"
    return value


def _ratio_columns(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Group ``<name>_num_sum`` … ``<name>_num_den_sum`` columns by ratio metric name."""
    groups: dict[str, dict[str, str]] = {}
    for name in names:
        for suffix in RATIO_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                groups.setdefault(name[: -len(suffix)], {})[suffix] = name
                break
    return groups


def _metric_columns(names: Sequence[str]) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Group metric columns by metric name and form (sum/sum_sq or mean/std)."""
    groups: dict[str, dict[str, int]] = {}
    leftovers: list[str] = []
    for index, name in enumerate(names):
        for suffix in ("_sum_sq", "_sum", "_mean", "_std"):
            if name.endswith(suffix) and len(name) > len(suffix):
                groups.setdefault(name[: -len(suffix)], {})[suffix] = index
                break
        else:
            leftovers.append(name)
    return groups, leftovers


def validate_aggregated(
    table: RawTable,
    *,
    policy: Policy,
    control: str | None = None,
    primary: str | None = None,
) -> ValidationResult:
    """Check an aggregated table (one row per variant, SPEC §2.1) and build its data.

    Column names are trimmed and compared case-insensitively; variant labels are
    trimmed and compared case-insensitively. Returns the data (``None`` when any
    Blocked issue prevents analysis) and every issue found.
    """
    issues: list[Issue] = []
    header = [str(name).replace("\ufeff", "").strip() for name in table.header]
    normal = [name.casefold() for name in header]
    if not header or (len(header) == 1 and not table.rows and normal[0] in ("", "column0")):
        return ValidationResult(None, (blocked_issue("empty_file", "The file is empty. Export the results with a header row "
                                                "(variant,users,conversions) and one row per variant."),))
    seen: dict[str, int] = {}
    for index, name in enumerate(normal):
        if not name:
            issues.append(blocked_issue("empty_column_name", f"Column {index + 1} has no name in the header row; "
                                   "name it or delete the column."))
        elif name in seen:
            issues.append(blocked_issue("duplicate_column", f"Column {header[index]!r} appears twice (columns "
                                   f"{seen[name] + 1} and {index + 1}); keep one of them."))
        else:
            seen[name] = index
    for required in REQUIRED:
        if required not in seen:
            issues.append(blocked_issue("missing_column", f"Required column {required!r} is missing; the header must "
                                   f"contain variant, users and conversions (found: {', '.join(header) or 'nothing'})."))
    if any(i.severity == "blocked" for i in issues):
        return ValidationResult(None, tuple(issues))

    width = len(header)
    rows: list[tuple[int, tuple[Cell, ...]]] = []
    for number, row in enumerate(table.rows, start=2):
        if all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in row):
            continue
        extra = [cell for cell in row[width:] if cell is not None and str(cell).strip()]
        if extra:
            issues.append(blocked_issue("extra_values", f"Row {number} has {width + len(extra)} values but the header "
                                   f"names {width} columns; remove the extra values or add their column names."))
        rows.append((number, tuple(row[:width]) + (None,) * max(0, width - len(row))))
    if not rows:
        return ValidationResult(None, (*issues, blocked_issue("no_rows", "The file has a header but no data rows; add one "
                                                         "row per variant (control and at least one treatment).")))

    # Variants
    variant_index = seen["variant"]
    labels: list[tuple[int, str]] = []
    by_key: dict[str, int] = {}
    for number, row in rows:
        cell = row[variant_index]
        raw = "" if cell is None else str(cell)
        label = raw.strip()
        if not label:
            issues.append(blocked_issue("missing_variant", f"Row {number} has no variant name; fill in the variant column."))
            continue
        key = label.casefold()
        if key in by_key:
            issues.append(blocked_issue("duplicate_variant", f"Variant {label!r} appears in rows {by_key[key]} and "
                                   f"{number}; give one row per variant (sum the rows if they are parts of one arm)."))
            continue
        if key in _TOTAL_LABELS:
            issues.append(blocked_issue("total_row", f"Row {number} ({label!r}) looks like a total, not a variant; "
                                   "remove it so that each row is one arm."))
            continue
        if raw != label:
            issues.append(warning_issue("label_normalised", f"Variant {raw!r} in row {number} has surrounding spaces; "
                                   f"it was read as {label!r}."))
        by_key[key] = number
        labels.append((number, label))

    # Numbers
    numeric_names = [n for n in normal if n != "variant"]
    values: dict[tuple[int, str], float] = {}
    for number, row in rows:
        for name in numeric_names:
            column_index = seen.get(name)
            if column_index is None:
                continue
            parsed = _parse_number(row[column_index])
            if isinstance(parsed, str):
                if name in REQUIRED or name.startswith(GUARDRAIL_PREFIX) or name.endswith(("_sum", "_sum_sq", "_mean", "_std")):
                    code = "missing_value" if parsed == "is empty" else "non_numeric"
                    issues.append(blocked_issue(code, f"Row {number}, column {header[column_index]!r} {parsed}; "
                                           "every metric cell must be a number."))
            else:
                values[(number, name)] = parsed

    def count(number: int, name: str) -> int | None:
        value = values.get((number, name))
        if value is None:
            return None
        column = header[seen[name]]
        if value < 0:
            issues.append(blocked_issue("negative_guardrail" if name.startswith(GUARDRAIL_PREFIX) else "negative_count",
                                   f"Row {number}, column {column!r} is {value:g}; counts cannot be negative."))
            return None
        if value != math.floor(value):
            issues.append(blocked_issue("not_integer", f"Row {number}, column {column!r} is {value:g}; counts must be "
                                   "whole numbers of users."))
            return None
        return int(value)

    users: dict[str, int] = {}
    conversions: dict[str, int] = {}
    for number, label in labels:
        n = count(number, "users")
        c = count(number, "conversions")
        if n is not None and n == 0:
            issues.append(blocked_issue("zero_users", f"Variant {label!r} (row {number}) has 0 users; remove the arm or "
                                   "export the correct user count."))
            n = None
        if n is not None and c is not None and c > n:
            issues.append(blocked_issue("conversions_exceed_users", f"Variant {label!r} (row {number}) has {c} conversions "
                                   f"but only {n} users; conversions count users who converted, so they cannot exceed users."))
            c = None
        if n is not None:
            users[label] = n
        if c is not None:
            conversions[label] = c

    # Control and arms
    variants = [label for _, label in labels]
    control_label: str | None = None
    wanted = (control or "control").strip().casefold()
    matches = [v for v in variants if v.casefold() == wanted]
    if matches:
        control_label = matches[0]
    elif labels or not any(i.code in ("missing_variant", "duplicate_variant") for i in issues):
        hint = f"--control NAME (variants found: {', '.join(variants)})" if variants else "a control row"
        issues.append(blocked_issue("no_control", f"No variant is named {(control or 'control')!r}; rename the control "
                               f"row or pass {hint}."))
    if len(variants) < 2:
        issues.append(blocked_issue("too_few_variants", f"The file has {len(variants)} usable variant(s); an experiment "
                               "needs a control and at least one treatment, one row each."))

    # Metric columns
    guardrail_names = [n for n in normal if n.startswith(GUARDRAIL_PREFIX)]
    count_guardrails = [n for n in guardrail_names if not n.endswith(("_sum", "_sum_sq", "_mean", "_std"))]
    ratio_groups = _ratio_columns([n for n in normal if n not in REQUIRED])
    ratio_forms: dict[str, dict[str, str]] = {}
    for metric, found in ratio_groups.items():
        if len(found) == len(RATIO_SUFFIXES):
            ratio_forms[metric] = found
        else:
            missing = ", ".join(metric + s for s in RATIO_SUFFIXES if s not in found)
            issues.append(warning_issue("incomplete_metric", f"Ratio metric {metric!r} needs all five sums; {missing} "
                                   "missing, so it was ignored (give <name>_num_sum, _den_sum, _num_sum_sq, "
                                   "_den_sum_sq and _num_den_sum, all summed over users)."))
    ratio_columns = {c for found in ratio_groups.values() for c in found.values()}
    metric_groups, _ = _metric_columns([n for n in normal if n not in REQUIRED and n not in count_guardrails
                                        and n not in ratio_columns])
    used = set(REQUIRED) | set(count_guardrails) | {c for found in ratio_forms.values() for c in found.values()}
    mean_forms: dict[str, tuple[str, str]] = {}
    for metric, forms in metric_groups.items():
        have_sums = "_sum" in forms and "_sum_sq" in forms
        have_moments = "_mean" in forms and "_std" in forms
        if have_sums:
            mean_forms[metric] = (metric + "_sum", metric + "_sum_sq")
            if have_moments:
                issues.append(warning_issue("ignored_column", f"Metric {metric!r} is given both as _sum/_sum_sq and as "
                                       "_mean/_std; the sums were used and the _mean/_std columns ignored."))
        elif have_moments:
            mean_forms[metric] = (metric + "_mean", metric + "_std")
        else:
            present = ", ".join(metric + s for s in forms)
            issues.append(warning_issue("incomplete_metric", f"Column(s) {present} need a partner: give {metric}_sum with "
                                   f"{metric}_sum_sq, or {metric}_mean with {metric}_std; ignored for now."))
            continue
        used.update(mean_forms[metric])
    for index, name in enumerate(normal):
        if name not in used and name != "variant" and name in seen and seen[name] == index:
            issues.append(warning_issue("ignored_column", f"Column {header[index]!r} is not a known metric column and was "
                                   "ignored (metrics are conversions, guardrail_<name>, <name>_sum/_sum_sq or "
                                   "<name>_mean/_std)."))

    metrics: list[MetricData] = []
    primary_key = (primary or "conversions").strip().casefold()
    known = ["conversions", *mean_forms, *ratio_forms]
    if primary_key.startswith(GUARDRAIL_PREFIX) or primary_key not in known:
        issues.append(blocked_issue("unknown_primary", f"Primary metric {primary!r} is not in the file; choose one of "
                               f"{', '.join(m for m in known if not m.startswith(GUARDRAIL_PREFIX))}."))

    if any(i.severity == "blocked" for i in issues) or control_label is None:
        return ValidationResult(None, tuple(issues))

    def role(metric: str) -> MetricRole:
        return "primary" if metric == primary_key else "secondary"

    def add(metric: str, kind: MetricType, statistics: dict[str, Statistic]) -> None:
        """A complete metric (every arm has statistics); ``guardrail_`` names are guardrails."""
        if len(statistics) != len(variants):
            return
        is_guardrail = metric.startswith(GUARDRAIL_PREFIX)
        short = metric[len(GUARDRAIL_PREFIX):] if is_guardrail else metric
        metrics.append(MetricData(short, "guardrail" if is_guardrail else role(metric), kind, statistics))

    metrics.append(MetricData("conversions", role("conversions"), "proportion",
                              {v: ProportionStatistic(users[v], conversions[v]) for v in variants}))
    for name in count_guardrails:
        short = name[len(GUARDRAIL_PREFIX):]
        counts = {}
        for number, label in labels:
            value = count(number, name)
            if value is not None:
                counts[label] = value
        if len(counts) != len(variants):
            continue
        too_large = [v for v in variants if counts[v] > users[v]]
        if too_large:
            issues.append(warning_issue("guardrail_not_rate", f"Guardrail {name!r} is larger than users in "
                                   f"{', '.join(too_large)}, so it is not a count of users and cannot be a rate; it was "
                                   f"not analysed. Give per-user counts as {name}_mean and {name}_std instead."))
            continue
        metrics.append(MetricData(short, "guardrail", "proportion",
                                  {v: ProportionStatistic(users[v], counts[v]) for v in variants}))
    for metric, (first, second) in mean_forms.items():
        statistics: dict[str, Statistic] = {}
        for number, label in labels:
            a, b = values.get((number, first)), values.get((number, second))
            if a is None or b is None:
                break
            n = users[label]
            try:
                if first.endswith("_sum"):
                    if b < 0:
                        raise ValueError("a sum of squares cannot be negative")
                    statistics[label] = SampleMeanStatistic.from_sums(n, a, b)
                else:
                    statistics[label] = SampleMeanStatistic.from_mean_std(n, a, b)
            except ValueError:
                if first.endswith("_sum"):
                    issues.append(blocked_issue("impossible_variance", f"Row {number}: {second!r} ({b:g}) is smaller than "
                                           f"{first}²/users ({a * a / n:g}), which no data can produce; re-export the "
                                           "sum of squared per-user values."))
                else:
                    issues.append(blocked_issue("negative_std", f"Row {number}, column {second!r} is {b:g}; a standard "
                                           "deviation cannot be negative."))
                break
        add(metric, "mean", statistics)
    for metric, found in ratio_forms.items():
        ratios: dict[str, Statistic] = {}
        for number, label in labels:
            sums = {suffix: values.get((number, column)) for suffix, column in found.items()}
            if any(v is None for v in sums.values()):
                break
            try:
                ratios[label] = RatioStatistic.from_sums(
                    users[label], numerator_sum=sums["_num_sum"] or 0.0,
                    numerator_sum_squares=sums["_num_sum_sq"] or 0.0, denominator_sum=sums["_den_sum"] or 0.0,
                    denominator_sum_squares=sums["_den_sum_sq"] or 0.0, cross_sum=sums["_num_den_sum"] or 0.0)
            except ValueError as error:
                code = "zero_denominator" if "denominator" in str(error) else "impossible_variance"
                fix = (f"{metric}_den_sum is 0 in {label!r}, so the ratio is undefined; check the export"
                       if code == "zero_denominator" else
                       f"a sum of squares of ratio metric {metric!r} is smaller than its sum²/users, which no data "
                       "can produce; re-export the sums of squared per-user values")
                issues.append(blocked_issue(code, f"Row {number}: {fix}."))
                break
        add(metric, "ratio", ratios)

    for _, label in labels:
        if users[label] < policy.small_sample_users:
            issues.append(warning_issue("small_sample", f"Variant {label!r} has only {users[label]} users (fewer than "
                                   f"{policy.small_sample_users}); results will be very uncertain."))
    if any(i.severity == "blocked" for i in issues):
        return ValidationResult(None, tuple(issues))
    data = ExperimentData(
        variants=tuple(variants),
        control=control_label,
        users=users,
        metrics=tuple(metrics),
        kind="aggregated",
        rows=len(rows),
    )
    return ValidationResult(data, tuple(issues))
