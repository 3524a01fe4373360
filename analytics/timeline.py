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

from analytics.health import Cell, Issue, RawTable, blocked_issue, warning_issue
from analytics.policy import Policy
from analytics.srm import srm_check
from analytics.sufficient import Interval

__all__ = ["DailySplit", "DailySrm", "TimelinePoint", "daily_srm", "has_date_column", "split_daily"]

DATE_COLUMN = "date"
# Columns summed across days when rows are daily new counts (everything else numeric is a
# per-day mean/std pair, pooled exactly below).
_POOLED_SUFFIXES = ("_mean", "_std")


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


def _pool(rows: Sequence[Sequence[Cell]], header: Sequence[str], users_index: int) -> list[Cell]:
    """Combine daily rows of one variant into one: counts and sums add up; ``<m>_mean`` /
    ``<m>_std`` pairs are pooled exactly (total n, weighted mean, within + between sums of squares)."""
    combined: list[Cell] = list(rows[0])
    normal = [name.casefold() for name in header]
    users = [_number(row[users_index]) or 0.0 for row in rows]
    total_users = sum(users)
    for index, name in enumerate(normal):
        if name in ("variant", DATE_COLUMN):
            continue
        values = [_number(row[index]) for row in rows]
        if any(v is None for v in values):
            combined[index] = next((row[index] for row, v in zip(rows, values, strict=True) if v is None), None)
            continue
        numbers = [float(v) for v in values if v is not None]
        if name.endswith("_mean"):
            combined[index] = sum(n * m for n, m in zip(users, numbers, strict=True)) / total_users if total_users else 0.0
        elif name.endswith("_std"):
            stem = name[: -len("_std")]
            mean_index = normal.index(stem + "_mean") if stem + "_mean" in normal else None
            if mean_index is None:
                combined[index] = numbers[-1]
                continue
            means = [_number(row[mean_index]) or 0.0 for row in rows]
            grand = sum(n * m for n, m in zip(users, means, strict=True)) / total_users if total_users else 0.0
            squares = sum((n - 1) * s * s + n * (m - grand) ** 2
                          for n, s, m in zip(users, numbers, means, strict=True))
            combined[index] = math.sqrt(max(squares, 0.0) / (total_users - 1)) if total_users > 1 else 0.0
        else:
            total = sum(numbers)
            combined[index] = int(total) if total == math.floor(total) and abs(total) < 2**53 else total
    return combined


def _strictly_increasing(values: Sequence[float | None]) -> bool:
    numbers = [v for v in values if v is not None]
    return len(numbers) >= 3 and all(b > a for a, b in itertools.pairwise(numbers))


def split_daily(table: RawTable, *, cumulative: bool = False) -> DailySplit:
    """Split an aggregated table with a ``date`` column (SPEC §3.1).

    Issues: a date that is not ISO (``YYYY-MM-DD``) or a duplicated (date, variant) row is
    Blocked; a variant missing on some dates is a Warning (its days count as zero new users);
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
            issues.append(blocked_issue("bad_date", f"Row {number}: date {cells[date_index]!r} is not a date like "
                                        "2026-11-28; write every date as YYYY-MM-DD."))
            continue
        key = label.casefold()
        spelled.setdefault(key, label)
        if key in by_day.setdefault(day, {}):
            issues.append(blocked_issue("duplicate_date_variant", f"Row {number}: variant {label!r} appears twice on "
                                        f"{day}; give one row per date and variant (sum the rows of one day)."))
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
            issues.append(warning_issue("variant_missing_days", f"Variant {spelled[key]!r} has no row on {shown}; "
                                        "those days count as no new users for it. Check the export if it ran then."))
    days: list[tuple[str, RawTable]] = []
    new_users: list[tuple[str, dict[str, int]]] = []
    previous: dict[str, float] = {}
    seen_rows: dict[str, list[list[Cell]]] = {key: [] for key in variants}
    for day in dates:
        today: dict[str, int] = {}
        for key in variants:
            found = by_day[day].get(key)
            if found is None:
                continue
            users = _number(found[users_index])
            if cumulative and users is not None:
                if users < previous.get(key, 0.0):
                    issues.append(blocked_issue("decreasing_totals", f"Running totals of {spelled[key]!r} fall on {day} "
                                                f"({previous[key]:,.0f} → {users:,.0f} users); a cumulative export never "
                                                "decreases — check the export or drop --cumulative if rows are daily."))
                today[spelled[key]] = int(users - previous.get(key, 0.0))
                previous[key] = users
            elif users is not None:
                today[spelled[key]] = int(users)
            seen_rows[key].append(found)
        new_users.append((day, today))
        rows = []
        for key in variants:
            history = seen_rows[key]
            if not history:
                continue
            rows.append(tuple(history[-1]) if cumulative else tuple(_pool(history, header, users_index)))
        days.append((day, RawTable(tuple(header), tuple(rows))))
    if any(i.severity == "blocked" for i in issues):
        return DailySplit(None, (), (), tuple(issues))
    if not cumulative and len(dates) >= 3 and all(
            _strictly_increasing([_number(by_day[day][key][users_index]) for day in dates if key in by_day[day]])
            for key in variants):
        issues.append(warning_issue("looks_cumulative", "Every variant's users grow every day, like running totals; "
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
