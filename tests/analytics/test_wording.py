"""One spelling per number (issue 11): the formatting rules, value by value."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.wording import (
    format_count,
    format_date,
    format_number,
    format_p,
    format_percent,
    format_points,
    format_probability,
    p_clause,
)


@pytest.mark.parametrize(("value", "text"), [
    (0.0001766, "0.000176"), (0.000177, "0.000177"), (0.04999, "0.0499"), (0.05, "0.0500"), (0.1526, "0.152"),
    (0.5, "0.500"), (0.99999, "0.999"), (1.0, "1.00"), (0.0001, "0.000100"), (9.99e-5, "< 0.0001"),
    (1.452e-05, "< 0.0001"), (None, "n/a"), (float("nan"), "n/a"),
])
def test_p_values_have_one_spelling_and_never_round_up_to_alpha(value: float | None, text: str) -> None:
    assert format_p(value) == text


def test_p_clause_reads_in_a_sentence() -> None:
    assert (p_clause(0.0123), p_clause(1e-7)) == ("p = 0.0123", "p < 0.0001")


@pytest.mark.parametrize(("value", "text"), [
    (12.4, "12.4"), (12.61, "12.61"), (812.0, "812"), (0.003449, "0.003449"), (1_234_567.8, "1,234,568"),
    (0.4758, "0.4758"), (-0.05577, "-0.05577"), (40_000, "40,000"), (0.0, "0"),
    (999_999_999_999_999.0, "999,999,999,999,999"), (5e302, "5e+302"), (-1.2345e20, "-1.234e+20"),
])
def test_numbers_by_magnitude_without_scientific_notation(value: float, text: str) -> None:
    assert format_number(value) == text
    assert format_number(value, signed=True) == (text if text.startswith("-") else "+" + text)


def test_other_spellings() -> None:
    assert format_probability(0.9999) == "> 99.9%" and format_probability(0.0004) == "< 0.1%"
    assert format_probability(0.985) == "98.5%"
    assert format_percent(0.0833) == "+8.3%" and format_percent(0.12, signed=False) == "12.0%"
    assert format_points(0.0055) == "+0.55 pp" and format_points(-0.001, signed=True) == "-0.10 pp"
    assert format_count(40_000) == "40,000"
    assert format_date(dt.date(2026, 11, 28)) == "2026-11-28"
    assert format_date("2026-11-28T14:05:09") == "2026-11-28 14:05"
    assert format_date("2026-11-28") == "2026-11-28" and format_date("yesterday") == "yesterday"
