"""How numbers read, in one place: every sentence analytics writes and every surface that shows
a report (pages, memo in three formats, CLI text, History) format numbers with these functions,
so one p-value is spelled one way everywhere.

Pure functions on plain numbers; the metric-aware wrappers live in ``dashapp.formatting``.
"""

from __future__ import annotations

import datetime as dt
import math

__all__ = [
    "RULE_TITLES",
    "format_count",
    "format_date",
    "format_number",
    "format_p",
    "format_percent",
    "format_points",
    "format_probability",
    "p_clause",
    "rule_title",
]


#: The title of each decision rule (SPEC §4.4), shown by the pages, the memo and the CLI alike.
RULE_TITLES: dict[str, str] = {
    "data_blocked": "Rule 1 — the data is blocked",
    "srm": "Rule 2 — sample ratio mismatch",
    "guardrail_severe": "Rule 3 — a guardrail worsened severely",
    "primary_worse": "Rule 4 — the primary metric is significantly worse",
    "guardrail_worsened": "Rule 5 — a guardrail worsened",
    "guardrail_unproven": "Rule 6b — a guardrail is not shown non-inferior",
    "primary_better": "Rule 6 — the primary metric is significantly better",
    "inconclusive": "Rule 7 — inconclusive",
}


def rule_title(rule: str) -> str:
    """``Rule 6 — the primary metric is significantly better`` (the rule id itself when unknown)."""
    return RULE_TITLES.get(rule, rule)


def format_p(value: float | None) -> str:
    """A p-value: ``< 0.0001`` below 1e-4, else three significant digits rounded *down*, so that
    a p-value below α never reads as α (0.04999 → ``0.0499``, 0.0001766 → ``0.000176``);
    ``n/a`` when missing."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value < 0.0001:
        return "< 0.0001"
    if value >= 1.0:
        return "1.00"
    decimals = 2 - math.floor(math.log10(value))
    scale = 10**decimals
    return f"{math.floor(value * scale * (1 + 1e-12)) / scale:.{decimals}f}"


def format_probability(value: float | None) -> str:
    """A posterior probability without false certainty: never ``100.0%`` or ``0.0%``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value > 0.999:
        return "> 99.9%"
    if value < 0.001:
        return "< 0.1%"
    return f"{value:.1%}"


def format_percent(value: float, *, signed: bool = True, digits: int = 1) -> str:
    """A share or relative change: ``+5.0%``, ``-0.8%``, ``12.0%`` (``signed=False``)."""
    return f"{value:+.{digits}%}" if signed else f"{value:.{digits}%}"


def format_points(value: float, *, signed: bool = True) -> str:
    """A change of a rate in percentage points: ``+0.15 pp``."""
    return f"{value * 100:+.2f} pp" if signed else f"{value * 100:.2f} pp"


def format_number(value: float, *, signed: bool = False) -> str:
    """A metric value or change by magnitude: four significant digits, thousands separators,
    never scientific notation for everyday sizes (``12.4``, ``812``, ``1,234,568``, ``0.003449``);
    beyond a quadrillion, where every digit past the fourth is noise, ``5e+302``."""
    if not math.isfinite(value):
        return "n/a"
    sign = "+" if signed and value >= 0 else "-" if value < 0 else ""
    size = abs(value)
    if size == 0:
        text = "0"
    elif size >= 1e15:
        text = f"{size:.4g}"
    elif size >= 1e4:
        text = f"{size:,.0f}"
    elif size >= 1e-6:
        decimals = max(0, 3 - math.floor(math.log10(size)))
        text = f"{size:,.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{size:,.0f}"
    else:
        text = f"{size:.3g}"
    return sign + text


def format_count(value: int) -> str:
    """A count of users or rows with thousands separators: ``40,000``."""
    return f"{value:,}"


def format_date(value: dt.date | dt.datetime | str) -> str:
    """ISO dates (``2026-11-28``), with minutes for timestamps (``2026-11-28 14:05``); text that is
    not a date comes back as it was."""
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        if len(value.strip()) <= 10:
            return parsed.date().isoformat()
        value = parsed
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return value.isoformat()


def p_clause(value: float | None) -> str:
    """``p = 0.0123`` or ``p < 0.0001``, for sentences."""
    text = format_p(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"
