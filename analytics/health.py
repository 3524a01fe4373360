"""Data quality: turn a raw aggregated table into typed experiment data plus issues.

Every problem is an :class:`Issue` with a machine-readable ``code`` (an :class:`IssueCode`), a
``severity`` and a message that names the column or row and says how to fix it. The health
status is the worst severity present (SPEC §2.3).

:func:`validate_aggregated` runs the checks in phases, each a pure function that returns what it
read and the issues it found (in the style of gbstats' guard checks): the header, the rows, the
variant labels, the numbers, the user counts, the arms, the metric columns, the primary metric;
then, when nothing is Blocked, the metrics themselves and the sample sizes. A phase that finds a
Blocked issue the next phases cannot work around ends the validation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from analytics.cuped import CovariateStatistic
from analytics.inference import MetricType
from analytics.policy import Policy
from analytics.sufficient import ProportionStatistic, RatioStatistic, SampleMeanStatistic, Statistic

__all__ = [
    "GUARDRAIL_PREFIX",
    "MAX_COUNT",
    "RATIO_SUFFIXES",
    "REQUIRED",
    "Cell",
    "ExperimentData",
    "HealthStatus",
    "Issue",
    "IssueCode",
    "MetricData",
    "MetricRole",
    "RawTable",
    "Segment",
    "Severity",
    "ValidationResult",
    "blocked_issue",
    "count_too_large_issue",
    "overall_status",
    "validate_aggregated",
    "warning_issue",
]

Cell = str | int | float | None
Severity = Literal["warning", "blocked"]
MetricRole = Literal["primary", "guardrail", "secondary"]

REQUIRED = ("variant", "users", "conversions")
#: The largest count of users (or conversions, or guardrail events) a file may give: 10¹⁵, a
#: quadrillion. No experiment has that many users, and above 2⁵³ ≈ 9·10¹⁵ counts are no longer
#: exact in double precision, so a larger count is an export error (``count_too_large``).
MAX_COUNT = 10**15
GUARDRAIL_PREFIX = "guardrail_"
#: The five sums of a ratio metric in an aggregated file (SPEC §4.2), longest suffix first.
RATIO_SUFFIXES = ("_num_den_sum", "_num_sum_sq", "_den_sum_sq", "_num_sum", "_den_sum")
#: The two forms of a mean metric, ``_sum_sq`` before ``_sum`` so that the longer suffix wins.
_MEAN_SUFFIXES = ("_sum_sq", "_sum", "_mean", "_std")
_TOTAL_LABELS = {"total", "all", "overall", "sum", "grand total"}


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    BLOCKED = "blocked"


class IssueCode(StrEnum):
    """Every code an :class:`Issue` can carry: the closed vocabulary of the health check.

    A member is its string (``IssueCode.SRM == "srm"``), so reports serialise it as before. The
    README's "Health check" table says when each is raised and how severe it is.
    """

    # Reading the file (storage.ingest, storage.spark)
    EMPTY_FILE = "empty_file"
    NOT_TEXT = "not_text"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    UNPARSEABLE_FILE = "unparseable_file"
    TOO_MANY_COLUMNS = "too_many_columns"
    TOO_MANY_ROWS = "too_many_rows"
    LINE_TOO_LONG = "line_too_long"
    INVALID_SPARK_INPUT = "invalid_spark_input"
    SPARK_STATISTICS_FIXED = "spark_statistics_fixed"
    # The header and the rows
    EMPTY_COLUMN_NAME = "empty_column_name"
    DUPLICATE_COLUMN = "duplicate_column"
    MISSING_COLUMN = "missing_column"
    EXTRA_VALUES = "extra_values"
    NO_ROWS = "no_rows"
    # The cells
    MISSING_VALUE = "missing_value"
    NON_NUMERIC = "non_numeric"
    NON_FINITE = "non_finite"
    NEGATIVE_COUNT = "negative_count"
    NEGATIVE_GUARDRAIL = "negative_guardrail"
    NOT_INTEGER = "not_integer"
    ZERO_USERS = "zero_users"
    CONVERSIONS_EXCEED_USERS = "conversions_exceed_users"
    NEGATIVE_STD = "negative_std"
    IMPOSSIBLE_VARIANCE = "impossible_variance"
    COUNT_TOO_LARGE = "count_too_large"
    VALUE_TOO_LARGE = "value_too_large"
    # The variants
    MISSING_VARIANT = "missing_variant"
    DUPLICATE_VARIANT = "duplicate_variant"
    TOTAL_ROW = "total_row"
    LABEL_NORMALISED = "label_normalised"
    USER_IN_SEVERAL_VARIANTS = "user_in_several_variants"
    NO_CONTROL = "no_control"
    TOO_FEW_VARIANTS = "too_few_variants"
    SMALL_SAMPLE = "small_sample"
    # The metrics and segments
    UNKNOWN_PRIMARY = "unknown_primary"
    INCOMPLETE_METRIC = "incomplete_metric"
    IGNORED_COLUMN = "ignored_column"
    GUARDRAIL_NOT_RATE = "guardrail_not_rate"
    UNKNOWN_SEGMENT = "unknown_segment"
    UNKNOWN_RATIO_COLUMN = "unknown_ratio_column"
    RATIO_NAME_TAKEN = "ratio_name_taken"
    ZERO_DENOMINATOR = "zero_denominator"
    UNKNOWN_POLICY_METRIC = "unknown_policy_metric"
    SPARSE_COUNTS = "sparse_counts"
    # Dates (daily exports and first_exposure)
    BAD_DATE = "bad_date"
    DUPLICATE_DATE_VARIANT = "duplicate_date_variant"
    DECREASING_TOTALS = "decreasing_totals"
    VARIANT_MISSING_DAYS = "variant_missing_days"
    LOOKS_CUMULATIVE = "looks_cumulative"
    UNDATED_USERS = "undated_users"
    # Assignment and looks (analytics.report)
    SPLIT_MISMATCH = "split_mismatch"
    SRM = "srm"
    SRM_DAILY = "srm_daily"
    INTERIM_LOOK = "interim_look"


@dataclass(frozen=True)
class Issue:
    """One data-quality finding.

    ``code`` is an :class:`IssueCode`; a plain string naming a member is converted to it, and
    any other string raises ``ValueError`` (the vocabulary is closed).
    """

    code: IssueCode
    severity: Severity
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", IssueCode(self.code))


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


def blocked_issue(code: IssueCode, message: str) -> Issue:
    """An issue that stops the analysis (the report's decision is Hold by rule 1)."""
    return Issue(code, "blocked", message)


def warning_issue(code: IssueCode, message: str) -> Issue:
    """An issue the analysis goes on with; the report shows it beside the results."""
    return Issue(code, "warning", message)


def _has_blocked(issues: Sequence[Issue]) -> bool:
    return any(issue.severity == "blocked" for issue in issues)


# --- Cells ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NotANumber:
    """Why a cell is not a finite number: ``reason`` completes "Row 3, column 'users' …"."""

    code: Literal[IssueCode.MISSING_VALUE, IssueCode.NON_NUMERIC]
    reason: str


def _parse_number(cell: Cell) -> float | _NotANumber:
    """A finite float, or why the cell is not one (empty: ``missing_value``; else ``non_numeric``)."""
    if cell is None:
        return _NotANumber(IssueCode.MISSING_VALUE, "is empty")
    if isinstance(cell, bool):
        return _NotANumber(IssueCode.NON_NUMERIC, "is a boolean")
    if isinstance(cell, int | float):
        value = float(cell)
    else:
        text = cell.strip()
        if not text:
            return _NotANumber(IssueCode.MISSING_VALUE, "is empty")
        try:
            value = float(text)
        except ValueError:
            if "," in text:
                return _NotANumber(IssueCode.NON_NUMERIC, f"is {text!r}, which uses a thousands or decimal comma; "
                                  "write plain digits such as 10000 or 12.5")
            return _NotANumber(IssueCode.NON_NUMERIC, f"is {text!r}, not a number")
    if not math.isfinite(value):
        return _NotANumber(IssueCode.NON_NUMERIC, f"is {cell!r}; NaN and infinity are not allowed")
    return value


def count_too_large_issue(value: float, *, row: int, column: str) -> Issue:
    """The Blocked ``count_too_large`` issue of a count above :data:`MAX_COUNT` in ``row``, ``column``."""
    shown = f"{int(value):,}" if value < 2**53 else f"{value:g}"  # exact digits only where they are exact
    return blocked_issue(IssueCode.COUNT_TOO_LARGE, f"Row {row}, column {column!r} is {shown}, more than "
                         f"{MAX_COUNT:,} (a quadrillion): no experiment has that many users, and counts this large "
                         "are not exact in double precision. Check the export: is it a sum, or an id column "
                         "mistaken for a count?")


def _count_issue(value: float, *, row: int, column: str, guardrail: bool) -> Issue | None:
    """Why ``value`` cannot be a count of users (negative, above :data:`MAX_COUNT` or fractional),
    or ``None`` when it can."""
    if value < 0:
        return blocked_issue(IssueCode.NEGATIVE_GUARDRAIL if guardrail else IssueCode.NEGATIVE_COUNT,
                             f"Row {row}, column {column!r} is {value:g}; counts cannot be negative.")
    if value > MAX_COUNT:
        return count_too_large_issue(value, row=row, column=column)
    if value != math.floor(value):
        return blocked_issue(IssueCode.NOT_INTEGER, f"Row {row}, column {column!r} is {value:g}; counts must be "
                             "whole numbers of users.")
    return None


# --- Phase 1: the header ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    """The header as read: each name trimmed (and without a byte-order mark), its case-folded
    form, and the first column of each non-empty case-folded name."""

    names: tuple[str, ...]
    normal: tuple[str, ...]
    first: Mapping[str, int]

    @classmethod
    def read(cls, table: RawTable) -> _Header:
        names = tuple(str(name).replace("\ufeff", "").strip() for name in table.header)
        normal = tuple(name.casefold() for name in names)
        first: dict[str, int] = {}
        for index, name in enumerate(normal):
            if name:
                first.setdefault(name, index)
        return cls(names, normal, first)

    def column(self, name: str) -> str:
        """The header's spelling of the case-folded column ``name``."""
        return self.names[self.first[name]]


def _header_issues(table: RawTable, header: _Header) -> tuple[Issue, ...]:
    """``empty_file`` (alone), else unnamed and repeated columns and missing required ones."""
    if not header.names or (len(header.names) == 1 and not table.rows and header.normal[0] in ("", "column0")):
        return (blocked_issue(IssueCode.EMPTY_FILE, "The file is empty. Export the results with a header row "
                              "(variant,users,conversions) and one row per variant."),)
    issues: list[Issue] = []
    for index, name in enumerate(header.normal):
        if not name:
            issues.append(blocked_issue(IssueCode.EMPTY_COLUMN_NAME, f"Column {index + 1} has no name in the header "
                                        "row; name it or delete the column."))
        elif header.first[name] != index:
            issues.append(blocked_issue(IssueCode.DUPLICATE_COLUMN, f"Column {header.names[index]!r} appears twice "
                                        f"(columns {header.first[name] + 1} and {index + 1}); keep one of them."))
    for required in REQUIRED:
        if required not in header.first:
            issues.append(blocked_issue(IssueCode.MISSING_COLUMN, f"Required column {required!r} is missing; the "
                                        "header must contain variant, users and conversions (found: "
                                        f"{', '.join(header.names) or 'nothing'})."))
    return tuple(issues)


# --- Phase 2: the rows ------------------------------------------------------------------------

#: A data row: its line number in the file (the header is line 1) and exactly one cell per column.
_Row = tuple[int, tuple[Cell, ...]]


def _data_rows(table: RawTable, width: int) -> tuple[tuple[_Row, ...], tuple[Issue, ...]]:
    """The non-blank rows cut or padded to ``width`` cells; ``extra_values`` for values beyond the
    header, and ``no_rows`` when no row is left."""
    rows: list[_Row] = []
    issues: list[Issue] = []
    for number, row in enumerate(table.rows, start=2):
        if all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in row):
            continue
        extra = [cell for cell in row[width:] if cell is not None and str(cell).strip()]
        if extra:
            issues.append(blocked_issue(IssueCode.EXTRA_VALUES, f"Row {number} has {width + len(extra)} values but "
                                        f"the header names {width} columns; remove the extra values or add their "
                                        "column names."))
        rows.append((number, tuple(row[:width]) + (None,) * max(0, width - len(row))))
    if not rows:
        issues.append(blocked_issue(IssueCode.NO_ROWS, "The file has a header but no data rows; add one row per "
                                    "variant (control and at least one treatment)."))
    return tuple(rows), tuple(issues)


# --- Phase 3: the variant labels --------------------------------------------------------------


def _variant_labels(rows: Sequence[_Row], variant_index: int) -> tuple[tuple[tuple[int, str], ...], tuple[Issue, ...]]:
    """Each usable row's (line number, trimmed label), and the rows that cannot be an arm: no
    label, a label seen before (case-insensitively) or a total; a trimmed label is a warning."""
    labels: list[tuple[int, str]] = []
    issues: list[Issue] = []
    by_key: dict[str, int] = {}
    for number, row in rows:
        cell = row[variant_index]
        raw = "" if cell is None else str(cell)
        label = raw.strip()
        if not label:
            issues.append(blocked_issue(IssueCode.MISSING_VARIANT, f"Row {number} has no variant name; fill in the "
                                        "variant column."))
            continue
        key = label.casefold()
        if key in by_key:
            issues.append(blocked_issue(IssueCode.DUPLICATE_VARIANT, f"Variant {label!r} appears in rows "
                                        f"{by_key[key]} and {number}; give one row per variant (sum the rows if "
                                        "they are parts of one arm)."))
            continue
        if key in _TOTAL_LABELS:
            issues.append(blocked_issue(IssueCode.TOTAL_ROW, f"Row {number} ({label!r}) looks like a total, not a "
                                        "variant; remove it so that each row is one arm."))
            continue
        if raw != label:
            issues.append(warning_issue(IssueCode.LABEL_NORMALISED, f"Variant {raw!r} in row {number} has "
                                        f"surrounding spaces; it was read as {label!r}."))
        by_key[key] = number
        labels.append((number, label))
    return tuple(labels), tuple(issues)


# --- Phase 4: the numbers ---------------------------------------------------------------------

#: Parsed metric cells by (line number, case-folded column name).
_Values = Mapping[tuple[int, str], float]


def _is_metric_column(name: str) -> bool:
    """Columns whose every cell must be a number (others are checked when they are used, or ignored)."""
    return name in REQUIRED or name.startswith(GUARDRAIL_PREFIX) or name.endswith(_MEAN_SUFFIXES)


def _parse_cells(rows: Sequence[_Row], header: _Header) -> tuple[_Values, tuple[Issue, ...]]:
    """Every numeric cell as a float; a metric cell that is empty or not a finite number is Blocked."""
    values: dict[tuple[int, str], float] = {}
    issues: list[Issue] = []
    for number, row in rows:
        for name in header.normal:
            if name == "variant":
                continue
            parsed = _parse_number(row[header.first[name]])
            if isinstance(parsed, _NotANumber):
                if _is_metric_column(name):
                    issues.append(blocked_issue(parsed.code, f"Row {number}, column {header.column(name)!r} "
                                                f"{parsed.reason}; every metric cell must be a number."))
            else:
                values[(number, name)] = parsed
    return values, tuple(issues)


def _count(values: _Values, header: _Header, number: int, name: str) -> tuple[int | None, Issue | None]:
    """The count in row ``number``, column ``name`` (``None`` when absent or not a count, with why)."""
    value = values.get((number, name))
    if value is None:
        return None, None
    issue = _count_issue(value, row=number, column=header.column(name), guardrail=name.startswith(GUARDRAIL_PREFIX))
    return (None, issue) if issue is not None else (int(value), None)


# --- Phase 5: users and conversions -----------------------------------------------------------


@dataclass(frozen=True)
class _Counts:
    """The users and conversions of each arm whose cells are valid counts (in file order)."""

    users: Mapping[str, int]
    conversions: Mapping[str, int]


def _user_counts(labels: Sequence[tuple[int, str]], values: _Values, header: _Header
                 ) -> tuple[_Counts, tuple[Issue, ...]]:
    """Users and conversions per arm; negative or fractional counts, 0 users and more conversions
    than users are Blocked."""
    users: dict[str, int] = {}
    conversions: dict[str, int] = {}
    issues: list[Issue] = []
    for number, label in labels:
        n, users_issue = _count(values, header, number, "users")
        c, conversions_issue = _count(values, header, number, "conversions")
        issues.extend(i for i in (users_issue, conversions_issue) if i is not None)
        if n is not None and n == 0:
            issues.append(blocked_issue(IssueCode.ZERO_USERS, f"Variant {label!r} (row {number}) has 0 users; remove "
                                        "the arm or export the correct user count."))
            n = None
        if n is not None and c is not None and c > n:
            issues.append(blocked_issue(IssueCode.CONVERSIONS_EXCEED_USERS, f"Variant {label!r} (row {number}) has "
                                        f"{c} conversions but only {n} users; conversions count users who converted, "
                                        "so they cannot exceed users."))
            c = None
        if n is not None:
            users[label] = n
        if c is not None:
            conversions[label] = c
    return _Counts(users, conversions), tuple(issues)


# --- Phase 6: the arms ------------------------------------------------------------------------


def _arm_issues(variants: Sequence[str], control: str | None, *, unnamed_rows: bool
                ) -> tuple[str | None, tuple[Issue, ...]]:
    """The control's label as written (``None`` when no variant is named ``control``), and
    ``no_control`` / ``too_few_variants``. When no row is usable because of labels that are
    missing or repeated (``unnamed_rows``), those issues already say what to fix and
    ``no_control`` is not added."""
    issues: list[Issue] = []
    wanted = (control or "control").strip().casefold()
    control_label = next((v for v in variants if v.casefold() == wanted), None)
    if control_label is None and (variants or not unnamed_rows):
        hint = f"--control NAME (variants found: {', '.join(variants)})" if variants else "a control row"
        issues.append(blocked_issue(IssueCode.NO_CONTROL, f"No variant is named {(control or 'control')!r}; rename "
                                    f"the control row or pass {hint}."))
    if len(variants) < 2:
        issues.append(blocked_issue(IssueCode.TOO_FEW_VARIANTS, f"The file has {len(variants)} usable variant(s); an "
                                    "experiment needs a control and at least one treatment, one row each."))
    return control_label, tuple(issues)


# --- Phase 7: the metric columns --------------------------------------------------------------


@dataclass(frozen=True)
class _MetricColumns:
    """Which columns make which metric (case-folded names, in header order)."""

    count_guardrails: tuple[str, ...]  # guardrail_<name>: a count of users
    means: Mapping[str, tuple[str, str]]  # metric → (<metric>_sum, <metric>_sum_sq) or (_mean, _std)
    ratios: Mapping[str, Mapping[str, str]]  # metric → suffix → column, all five sums

    @property
    def names(self) -> tuple[str, ...]:
        """Every metric the file gives: conversions, then means, then ratios."""
        return ("conversions", *self.means, *self.ratios)


def _ratio_columns(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Group ``<name>_num_sum`` … ``<name>_num_den_sum`` columns by ratio metric name."""
    groups: dict[str, dict[str, str]] = {}
    for name in names:
        for suffix in RATIO_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                groups.setdefault(name[: -len(suffix)], {})[suffix] = name
                break
    return groups


def _mean_columns(names: Sequence[str]) -> dict[str, list[str]]:
    """Group ``_sum`` / ``_sum_sq`` / ``_mean`` / ``_std`` columns by metric name: metric → suffixes."""
    groups: dict[str, list[str]] = {}
    for name in names:
        for suffix in _MEAN_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                groups.setdefault(name[: -len(suffix)], []).append(suffix)
                break
    return groups


def _metric_columns(header: _Header) -> tuple[_MetricColumns, tuple[Issue, ...]]:
    """The metrics the columns make; an incomplete ratio or mean metric, a mean given in both forms
    and a column that is no metric are warnings (the columns are ignored)."""
    issues: list[Issue] = []
    normal = header.normal
    count_guardrails = tuple(n for n in normal if n.startswith(GUARDRAIL_PREFIX) and not n.endswith(_MEAN_SUFFIXES))
    ratio_groups = _ratio_columns([n for n in normal if n not in REQUIRED])
    ratios: dict[str, dict[str, str]] = {}
    for metric, found in ratio_groups.items():
        if len(found) == len(RATIO_SUFFIXES):
            ratios[metric] = found
        else:
            missing = ", ".join(metric + s for s in RATIO_SUFFIXES if s not in found)
            issues.append(warning_issue(IssueCode.INCOMPLETE_METRIC, f"Ratio metric {metric!r} needs all five sums; "
                                        f"{missing} missing, so it was ignored (give <name>_num_sum, _den_sum, "
                                        "_num_sum_sq, _den_sum_sq and _num_den_sum, all summed over users)."))
    ratio_columns = {c for found in ratio_groups.values() for c in found.values()}
    mean_groups = _mean_columns([n for n in normal if n not in REQUIRED and n not in count_guardrails
                                 and n not in ratio_columns])
    used = set(REQUIRED) | set(count_guardrails) | {c for found in ratios.values() for c in found.values()}
    means: dict[str, tuple[str, str]] = {}
    for metric, suffixes in mean_groups.items():
        have_sums = "_sum" in suffixes and "_sum_sq" in suffixes
        have_moments = "_mean" in suffixes and "_std" in suffixes
        if have_sums:
            means[metric] = (metric + "_sum", metric + "_sum_sq")
            if have_moments:
                issues.append(warning_issue(IssueCode.IGNORED_COLUMN, f"Metric {metric!r} is given both as "
                                            "_sum/_sum_sq and as _mean/_std; the sums were used and the _mean/_std "
                                            "columns ignored."))
        elif have_moments:
            means[metric] = (metric + "_mean", metric + "_std")
        else:
            present = ", ".join(metric + s for s in suffixes)
            issues.append(warning_issue(IssueCode.INCOMPLETE_METRIC, f"Column(s) {present} need a partner: give "
                                        f"{metric}_sum with {metric}_sum_sq, or {metric}_mean with {metric}_std; "
                                        "ignored for now."))
            continue
        used.update(means[metric])
    for index, name in enumerate(normal):
        if name not in used and name != "variant":
            issues.append(warning_issue(IssueCode.IGNORED_COLUMN, f"Column {header.names[index]!r} is not a known "
                                        "metric column and was ignored (metrics are conversions, guardrail_<name>, "
                                        "<name>_sum/_sum_sq or <name>_mean/_std)."))
    return _MetricColumns(count_guardrails, means, ratios), tuple(issues)


# --- Phase 8: the primary metric --------------------------------------------------------------


def _primary_issue(primary: str | None, columns: _MetricColumns) -> Issue | None:
    """``unknown_primary`` when the primary metric is not one of the file's (guardrails cannot be)."""
    key = (primary or "conversions").strip().casefold()
    if not key.startswith(GUARDRAIL_PREFIX) and key in columns.names:
        return None
    choices = ", ".join(m for m in columns.names if not m.startswith(GUARDRAIL_PREFIX))
    return blocked_issue(IssueCode.UNKNOWN_PRIMARY, f"Primary metric {primary!r} is not in the file; choose one "
                         f"of {choices}.")


# --- Phase 9: the metrics ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Arms:
    """What the metric phases read: the arms in file order with their line numbers and users,
    every parsed cell, and the primary metric's case-folded name."""

    labels: tuple[tuple[int, str], ...]
    users: Mapping[str, int]
    values: _Values
    header: _Header
    primary_key: str

    def metric(self, name: str, metric_type: MetricType, statistics: Mapping[str, Statistic]) -> MetricData | None:
        """The metric ``name`` when every arm has statistics (``guardrail_`` names are guardrails)."""
        if len(statistics) != len(self.labels):
            return None
        if name.startswith(GUARDRAIL_PREFIX):
            return MetricData(name[len(GUARDRAIL_PREFIX):], "guardrail", metric_type, statistics)
        return MetricData(name, "primary" if name == self.primary_key else "secondary", metric_type, statistics)


def _conversion_metric(arms: _Arms, conversions: Mapping[str, int]) -> MetricData:
    role: MetricRole = "primary" if arms.primary_key == "conversions" else "secondary"
    return MetricData("conversions", role, "proportion",
                      {label: ProportionStatistic(arms.users[label], conversions[label]) for _, label in arms.labels})


def _guardrail_metrics(arms: _Arms, names: Sequence[str]) -> tuple[tuple[MetricData, ...], tuple[Issue, ...]]:
    """Count guardrails as rates of users; a negative or fractional count is Blocked, and a count
    larger than users is a warning (the guardrail is not analysed)."""
    metrics: list[MetricData] = []
    issues: list[Issue] = []
    for name in names:
        counts: dict[str, int] = {}
        for number, label in arms.labels:
            value, issue = _count(arms.values, arms.header, number, name)
            if issue is not None:
                issues.append(issue)
            if value is not None:
                counts[label] = value
        if len(counts) != len(arms.labels):
            continue
        too_large = [label for _, label in arms.labels if counts[label] > arms.users[label]]
        if too_large:
            issues.append(warning_issue(IssueCode.GUARDRAIL_NOT_RATE, f"Guardrail {name!r} is larger than users in "
                                        f"{', '.join(too_large)}, so it is not a count of users and cannot be a rate; "
                                        f"it was not analysed. Give per-user counts as {name}_mean and {name}_std "
                                        "instead."))
            continue
        metrics.append(MetricData(name[len(GUARDRAIL_PREFIX):], "guardrail", "proportion",
                                  {label: ProportionStatistic(arms.users[label], counts[label])
                                   for _, label in arms.labels}))
    return tuple(metrics), tuple(issues)


def _mean_statistic(n: int, columns: tuple[str, str], a: float, b: float, row: int
                    ) -> SampleMeanStatistic | Issue:
    """One arm's mean metric from (sum, sum of squares) or (mean, std), or the Blocked issue saying
    why no data can give those numbers (:class:`SampleMeanStatistic` checks them) or why they are
    too large to analyse: ``value_too_large`` when the variance cannot be computed in double
    precision (sum²/users or std² overflows), whatever the other column says."""
    first, second = columns
    if first.endswith("_sum") and not math.isfinite(a * (a / n)):
        return blocked_issue(IssueCode.VALUE_TOO_LARGE, f"Row {row}, column {first!r} is {a:g}: too large to "
                             f"analyse, since {first}²/users overflows double precision. Check the export (a unit "
                             "or scaling error?) or rescale the metric, e.g. to thousands.")
    if not first.endswith("_sum") and b > 0 and not math.isfinite(b * b):
        return blocked_issue(IssueCode.VALUE_TOO_LARGE, f"Row {row}, column {second!r} is {b:g}: too large to "
                             "analyse, since its square (the variance) overflows double precision. Check the export "
                             "(a unit or scaling error?) or rescale the metric, e.g. to thousands.")
    try:
        if not first.endswith("_sum"):
            return SampleMeanStatistic.from_mean_std(n, a, b)
        if b >= 0:
            return SampleMeanStatistic.from_sums(n, a, b)
    except ValueError:
        pass
    if first.endswith("_sum"):
        return blocked_issue(IssueCode.IMPOSSIBLE_VARIANCE, f"Row {row}: {second!r} ({b:g}) is smaller than "
                             f"{first}²/users ({a * a / n:g}), which no data can produce; re-export the sum of "
                             "squared per-user values.")
    return blocked_issue(IssueCode.NEGATIVE_STD, f"Row {row}, column {second!r} is {b:g}; a standard deviation "
                         "cannot be negative.")


def _arm_metrics(arms: _Arms, metric_type: MetricType, names: Sequence[str],
                 statistic: Callable[[str, int, str], Statistic | Issue | None]
                 ) -> tuple[tuple[MetricData, ...], tuple[Issue, ...]]:
    """The metrics ``names`` of one type, each arm's statistic from ``statistic(metric, row, label)``:
    ``None`` when a cell is missing (the metric is left out), an :class:`Issue` when the numbers
    cannot exist (the metric is left out and the issue reported)."""
    metrics: list[MetricData] = []
    issues: list[Issue] = []
    for metric in names:
        statistics: dict[str, Statistic] = {}
        for number, label in arms.labels:
            found = statistic(metric, number, label)
            if found is None:
                break
            if isinstance(found, Issue):
                issues.append(found)
                break
            statistics[label] = found
        made = arms.metric(metric, metric_type, statistics)
        if made is not None:
            metrics.append(made)
    return tuple(metrics), tuple(issues)


def _mean_metrics(arms: _Arms, means: Mapping[str, tuple[str, str]]
                  ) -> tuple[tuple[MetricData, ...], tuple[Issue, ...]]:
    """Mean metrics; an impossible sum of squares or a negative std is Blocked."""
    def statistic(metric: str, number: int, label: str) -> SampleMeanStatistic | Issue | None:
        columns = means[metric]
        a, b = arms.values.get((number, columns[0])), arms.values.get((number, columns[1]))
        return None if a is None or b is None else _mean_statistic(arms.users[label], columns, a, b, number)

    return _arm_metrics(arms, "mean", tuple(means), statistic)


def _ratio_statistic(metric: str, label: str, n: int, sums: Mapping[str, float], row: int) -> RatioStatistic | Issue:
    """One arm's ratio metric from its five sums, or the Blocked issue: a sum too large to square
    in double precision (``value_too_large``), a denominator summing to 0, a sum of squares smaller
    than its sum²/users, or a cross sum that breaks Cauchy–Schwarz (``impossible_variance``)."""
    numerator_sum, denominator_sum = sums["_num_sum"] or 0.0, sums["_den_sum"] or 0.0
    for suffix, total in (("_num_sum", numerator_sum), ("_den_sum", denominator_sum)):
        # |ΣX·ΣY| ≤ max(ΣX², ΣY²), so the cross term ΣX·ΣY/n cannot overflow once these two do not.
        if not math.isfinite(total * total / n):
            return blocked_issue(IssueCode.VALUE_TOO_LARGE, f"Row {row}, column {metric + suffix!r} is {total:g}: "
                                 f"too large to analyse, since its square overflows double precision. Check the "
                                 "export (a unit or scaling error?) or rescale the metric, e.g. to thousands.")
    numerator_squares, denominator_squares = sums["_num_sum_sq"] or 0.0, sums["_den_sum_sq"] or 0.0
    try:
        statistic = RatioStatistic.from_sums(
            n, numerator_sum=numerator_sum, numerator_sum_squares=numerator_squares,
            denominator_sum=denominator_sum, denominator_sum_squares=denominator_squares,
            cross_sum=sums["_num_den_sum"] or 0.0)
    except ValueError as error:
        # RatioStatistic checks the sums of squares first, so a zero denominator is only named when
        # the moments are possible; its message is the one that says "denominator".
        if "denominator" in str(error):
            return blocked_issue(IssueCode.ZERO_DENOMINATOR, f"Row {row}: {metric}_den_sum is 0 in {label!r}, so "
                                 "the ratio is undefined; check the export.")
        return blocked_issue(IssueCode.IMPOSSIBLE_VARIANCE, f"Row {row}: a sum of squares of ratio metric "
                             f"{metric!r} is smaller than its sum²/users, which no data can produce; re-export the "
                             "sums of squared per-user values.")
    # Cauchy–Schwarz: Cov(X, Y)² ≤ Var(X)·Var(Y) for any data, up to a relative 1e-9 and the
    # rounding of the sums the moments are differences of (every such sum is at most √(ΣX²·ΣY²)).
    bound = math.sqrt(statistic.numerator_variance) * math.sqrt(statistic.denominator_variance) * math.sqrt(1 + 1e-9)
    rounding = 1e-6 * math.sqrt(max(numerator_squares, 0.0)) * math.sqrt(max(denominator_squares, 0.0)) / max(n - 1, 1)
    if abs(statistic.covariance) > bound + rounding:
        return blocked_issue(IssueCode.IMPOSSIBLE_VARIANCE, f"Row {row}: {metric}_num_den_sum "
                             f"({sums['_num_den_sum']:g}) is out of range for the sums of squares of ratio metric "
                             f"{metric!r}: Cov(num, den)² cannot exceed Var(num)·Var(den), so no data can produce "
                             "it; re-export the sum of per-user numerator × denominator.")
    return statistic


def _ratio_metrics(arms: _Arms, ratios: Mapping[str, Mapping[str, str]]
                   ) -> tuple[tuple[MetricData, ...], tuple[Issue, ...]]:
    """Ratio metrics from their five sums; a zero denominator or an impossible variance is Blocked."""
    def statistic(metric: str, number: int, label: str) -> RatioStatistic | Issue | None:
        sums = {suffix: arms.values.get((number, column)) for suffix, column in ratios[metric].items()}
        present = {suffix: value for suffix, value in sums.items() if value is not None}
        return None if len(present) != len(sums) else _ratio_statistic(metric, label, arms.users[label], present,
                                                                         number)

    return _arm_metrics(arms, "ratio", tuple(ratios), statistic)


# --- Phase 10: the sample sizes ---------------------------------------------------------------


def _small_sample_issues(arms: _Arms, policy: Policy) -> tuple[Issue, ...]:
    """A warning for each arm with fewer users than ``policy.small_sample_users``."""
    return tuple(warning_issue(IssueCode.SMALL_SAMPLE, f"Variant {label!r} has only {arms.users[label]} users (fewer "
                               f"than {policy.small_sample_users}); results will be very uncertain.")
                 for _, label in arms.labels if arms.users[label] < policy.small_sample_users)


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
    Blocked issue prevents analysis) and every issue found, in the order the phases found them.
    """
    header = _Header.read(table)
    issues = _header_issues(table, header)
    if _has_blocked(issues):
        return ValidationResult(None, issues)

    rows, row_issues = _data_rows(table, len(header.names))
    issues += row_issues
    if not rows:
        return ValidationResult(None, issues)
    labels, label_issues = _variant_labels(rows, header.first["variant"])
    values, cell_issues = _parse_cells(rows, header)
    counts, count_issues = _user_counts(labels, values, header)
    unnamed = any(i.code in (IssueCode.MISSING_VARIANT, IssueCode.DUPLICATE_VARIANT) for i in label_issues)
    variants = tuple(label for _, label in labels)
    control_label, arm_issues = _arm_issues(variants, control, unnamed_rows=unnamed)
    columns, column_issues = _metric_columns(header)
    primary_issue = _primary_issue(primary, columns)
    issues += label_issues + cell_issues + count_issues + arm_issues + column_issues
    if primary_issue is not None:
        issues += (primary_issue,)
    if _has_blocked(issues) or control_label is None:
        return ValidationResult(None, issues)

    arms = _Arms(labels, counts.users, values, header, (primary or "conversions").strip().casefold())
    guardrails, guardrail_issues = _guardrail_metrics(arms, columns.count_guardrails)
    means, mean_issues = _mean_metrics(arms, columns.means)
    ratios, ratio_issues = _ratio_metrics(arms, columns.ratios)
    issues += guardrail_issues + mean_issues + ratio_issues + _small_sample_issues(arms, policy)
    if _has_blocked(issues):
        return ValidationResult(None, issues)
    data = ExperimentData(
        variants=variants,
        control=control_label,
        users=counts.users,
        metrics=(_conversion_metric(arms, counts.conversions), *guardrails, *means, *ratios),
        kind="aggregated",
        rows=len(rows),
    )
    return ValidationResult(data, issues)
