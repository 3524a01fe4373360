"""Experiments over time (SPEC §3.1): daily aggregated exports, the cumulative timeline and a
per-day SRM check.

An aggregated file may carry a ``date`` column: one row per date × variant holding that day's
*new* users and counts, or — with ``cumulative`` — running totals. :func:`split_daily` turns it
into the totals the analysis uses plus one cumulative table per date (problems become issues,
never exceptions); the report (:func:`analytics.report.analyze`) turns those into the timeline of
the primary effect; :func:`daily_srm` checks each day's *new* users against the expected split.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from analytics.health import (
    MAX_COUNT,
    Cell,
    Issue,
    IssueCode,
    RawTable,
    blocked_issue,
    count_too_large_issue,
    warning_issue,
)
from analytics.policy import Policy
from analytics.srm import srm_check
from analytics.sufficient import Interval

__all__ = ["DATE_COLUMN", "DailySplit", "DailySrm", "TimelinePoint", "daily_srm", "has_date_column", "split_daily"]

DATE_COLUMN = "date"


@dataclass(frozen=True)
class DailySplit:
    """A daily export split into its totals (one row per variant, for the analysis) and the
    cumulative table at the end of each date, in date order."""

    totals: RawTable | None
    days: tuple[tuple[str, RawTable], ...]
    new_users: tuple[tuple[str, Mapping[str, int]], ...]
    issues: tuple[Issue, ...]


@dataclass(frozen=True)
class TimelinePoint:
    """The primary metric of one treatment, cumulative up to and including ``date``."""

    date: str
    treatment: str
    control_n: int
    treatment_n: int
    control_value: float
    treatment_value: float
    absolute_effect: float
    absolute_ci: Interval
    p_value: float
    sequential_ci: Interval | None
    sequential_p_value: float | None


@dataclass(frozen=True)
class DailySrm:
    """The split of one day's new users against the expected shares."""

    date: str
    chi2: float
    p_value: float
    broken: bool


def has_date_column(table: RawTable) -> bool:
    return any(str(name).replace("\ufeff", "").strip().casefold() == DATE_COLUMN for name in table.header)


def _number(cell: Cell) -> float | None:
    if cell is None or isinstance(cell, bool):
        return None
    if isinstance(cell, int | float):
        return float(cell) if math.isfinite(float(cell)) else None
    try:
        value = float(str(cell).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_date(cell: Cell) -> str | None:
    text = "" if cell is None else str(cell).strip()
    try:
        return dt.date.fromisoformat(text[:10]).isoformat() if len(text) >= 10 else None
    except ValueError:
        return None


class _Running:
    """One variant's daily rows added up as they come (so a year of days costs one pass): counts
    and sums add; ``<m>_mean`` / ``<m>_std`` pairs are pooled exactly with Chan's merge of
    (n, mean, sum of squared deviations); a cell that is not a number is kept as written, so the
    validation of the totals names it."""

    def __init__(self, header: Sequence[str], users_index: int) -> None:
        self._normal = [name.casefold() for name in header]
        self._users = users_index
        self._row: list[Cell] = []
        self._sums: dict[int, float] = {}
        self._moments: dict[int, tuple[float, float, float]] = {}  # mean column → (n, mean, m2)
        self._bad: dict[int, Cell] = {}

    def add(self, cells: Sequence[Cell]) -> None:
        self._row = list(cells)
        users = _number(cells[self._users]) or 0.0
        for index, name in enumerate(self._normal):
            if name in ("variant", DATE_COLUMN) or index in self._bad:
                continue
            value = _number(cells[index])
            if value is None:
                self._bad[index] = cells[index]
            elif name.endswith("_mean"):
                std_index = self._partner(name)
                std = _number(cells[std_index]) if std_index is not None else 0.0
                n, mean, m2 = self._moments.get(index, (0.0, 0.0, 0.0))
                m2_new = (users - 1) * (std or 0.0) ** 2 if users > 1 else 0.0
                total = n + users
                delta = value - mean
                self._moments[index] = (total, mean + delta * users / total if total else 0.0,
                                        m2 + m2_new + delta * delta * n * users / total if total else 0.0)
            elif not name.endswith("_std") or self._mean_of(name) is None:
                self._sums[index] = self._sums.get(index, 0.0) + value

    def _partner(self, mean_name: str) -> int | None:
        std = mean_name[: -len("_mean")] + "_std"
        return self._normal.index(std) if std in self._normal else None

    def _mean_of(self, std_name: str) -> int | None:
        mean = std_name[: -len("_std")] + "_mean"
        return self._normal.index(mean) if mean in self._normal else None

    def row(self) -> tuple[Cell, ...]:
        combined = list(self._row)
        for index, total in self._sums.items():
            combined[index] = int(total) if total == math.floor(total) and abs(total) < 2**53 else total
        for index, (n, mean, m2) in self._moments.items():
            combined[index] = mean
            std_index = self._partner(self._normal[index])
            if std_index is not None and std_index not in self._bad:
                combined[std_index] = math.sqrt(max(m2, 0.0) / (n - 1)) if n > 1 else 0.0
        for index, cell in self._bad.items():
            combined[index] = cell
        return tuple(combined)


def _strictly_increasing(values: Sequence[float | None]) -> bool:
    numbers = [v for v in values if v is not None]
    return len(numbers) >= 3 and all(b > a for a, b in itertools.pairwise(numbers))


def split_daily(table: RawTable, *, cumulative: bool = False) -> DailySplit:
    """Split an aggregated table with a ``date`` column (SPEC §3.1).

    Issues: a date that is not ISO (``YYYY-MM-DD``) or a duplicated (date, variant) row is
    Blocked, and so are a day's users above :data:`~analytics.health.MAX_COUNT` (``count_too_large``);
    a variant missing on some dates is a Warning (its days count as zero new users);
    running totals (``cumulative``) that decrease are Blocked; daily rows whose users grow every
    day in every arm look like running totals read without ``cumulative`` (Warning).
    """
    header = [str(name).replace("\ufeff", "").strip() for name in table.header]
    normal = [name.casefold() for name in header]
    date_index = normal.index(DATE_COLUMN)
    if "variant" not in normal or "users" not in normal:
        return DailySplit(None, (), (), ())  # the normal validation names the missing columns
    variant_index, users_index = normal.index("variant"), normal.index("users")
    issues: list[Issue] = []
    by_day: dict[str, dict[str, list[Cell]]] = {}
    spelled: dict[str, str] = {}
    for number, row in enumerate(table.rows, start=2):
        if all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in row):
            continue
        cells = list(row[: len(header)]) + [None] * max(0, len(header) - len(row))
        day = _parse_date(cells[date_index])
        label = "" if cells[variant_index] is None else str(cells[variant_index]).strip()
        if day is None:
            issues.append(blocked_issue(IssueCode.BAD_DATE, f"Row {number}: date {cells[date_index]!r} is not a date like "
                                                            "2026-11-28; write every date as YYYY-MM-DD."))
            continue
        key = label.casefold()
        spelled.setdefault(key, label)
        if key in by_day.setdefault(day, {}):
            issues.append(blocked_issue(IssueCode.DUPLICATE_DATE_VARIANT,
                                        f"Row {number}: variant {label!r} appears twice on "
                                        f"{day}; give one row per date and variant (sum the rows of one day)."))
            continue
        users = _number(cells[users_index])
        if users is not None and users > MAX_COUNT:
            # Each day's users are read here, not only in the validated totals (daily SRM uses them).
            issues.append(count_too_large_issue(users, row=number, column=header[users_index]))
            continue
        by_day[day][key] = cells
    if any(i.severity == "blocked" for i in issues) or not by_day:
        return DailySplit(None, (), (), tuple(issues))
    dates = sorted(by_day)
    variants = list(spelled)
    for key in variants:
        missing = [day for day in dates if key not in by_day[day]]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            issues.append(warning_issue(IssueCode.VARIANT_MISSING_DAYS,
                                        f"Variant {spelled[key]!r} has no row on {shown}; "
                                        "those days count as no new users for it. Check the export if it ran then."))
    days: list[tuple[str, RawTable]] = []
    new_users: list[tuple[str, dict[str, int]]] = []
    previous: dict[str, float] = {}
    latest: dict[str, list[Cell]] = {}
    running = {key: _Running(header, users_index) for key in variants}
    for day in dates:
        today: dict[str, int] = {}
        for key in variants:
            found = by_day[day].get(key)
            if found is None:
                continue
            users = _number(found[users_index])
            if cumulative and users is not None:
                if users < previous.get(key, 0.0):
                    issues.append(blocked_issue(IssueCode.DECREASING_TOTALS,
                                                f"Running totals of {spelled[key]!r} fall on {day} "
                                                f"({previous[key]:,.0f} → {users:,.0f} users); a cumulative export never "
                                                "decreases — check the export or drop --cumulative if rows are daily."))
                today[spelled[key]] = int(users - previous.get(key, 0.0))
                previous[key] = users
            elif users is not None:
                today[spelled[key]] = int(users)
            latest[key] = found
            running[key].add(found)
        new_users.append((day, today))
        rows = [tuple(latest[key]) if cumulative else running[key].row() for key in variants if key in latest]
        days.append((day, RawTable(tuple(header), tuple(rows))))
    if any(i.severity == "blocked" for i in issues):
        return DailySplit(None, (), (), tuple(issues))
    if not cumulative and len(dates) >= 3 and all(
            _strictly_increasing([_number(by_day[day][key][users_index]) for day in dates if key in by_day[day]])
            for key in variants):
        issues.append(warning_issue(IssueCode.LOOKS_CUMULATIVE,
                                    "Every variant's users grow every day, like running totals; "
                                    "the rows were read as each day's new users and summed. If they are running "
                                    "totals, analyse with --cumulative (dashboard: 'rows are running totals')."))
    totals = days[-1][1]
    without_date = [i for i, name in enumerate(normal) if name != DATE_COLUMN]

    def drop_date(table_: RawTable) -> RawTable:
        return RawTable(tuple(table_.header[i] for i in without_date),
                        tuple(tuple(row[i] for i in without_date) for row in table_.rows))

    return DailySplit(drop_date(totals), tuple((day, drop_date(t)) for day, t in days), tuple(new_users), tuple(issues))


def daily_srm(new_users: Sequence[tuple[str, Mapping[str, int]]], shares: Mapping[str, float],
              policy: Policy) -> tuple[DailySrm, ...]:
    """The SRM test of each day's new users (days where some arm got nobody, or everyone got
    nobody, are skipped: a χ² of a partial day says nothing about assignment)."""
    found = []
    lookup = {name.casefold(): share for name, share in shares.items()}
    for day, users in new_users:
        arms = {name: count for name, count in users.items() if name.casefold() in lookup}
        if len(arms) != len(lookup) or sum(arms.values()) == 0 or min(arms.values()) < 0:
            continue
        result = srm_check(arms, {name: lookup[name.casefold()] for name in arms})
        found.append(DailySrm(day, result.chi2, result.p_value, result.p_value < policy.srm_warning_p))
    return tuple(found)
