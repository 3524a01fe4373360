"""Number formatting shared by the memo and the dashboard (one place for how a result reads)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_absolute", "format_p", "format_probability", "format_relative", "format_value"]


def format_value(metric: dict[str, Any], value: float | None) -> str:
    """A rate as a percentage, a mean with four significant digits."""
    if value is None:
        return "n/a"
    return f"{value:.2%}" if metric["type"] == "proportion" else f"{value:,.4g}"


def format_absolute(metric: dict[str, Any]) -> str:
    """``+0.55 pp [+0.26, +0.84]`` for rates, ``+0.9 [+0.3008, +1.499]`` for means."""
    effect, (low, high) = metric["absolute_effect"], metric["absolute_ci"]
    if metric["type"] == "proportion":
        return f"{effect * 100:+.2f} pp [{low * 100:+.2f}, {high * 100:+.2f}]"
    return f"{effect:+,.4g} [{low:+,.4g}, {high:+,.4g}]"


def format_relative(metric: dict[str, Any]) -> str:
    if metric.get("relative_effect") is None or metric.get("relative_ci") is None:
        return "n/a (control is 0)"
    low, high = metric["relative_ci"]
    return f"{metric['relative_effect']:+.1%} [{low:+.1%}, {high:+.1%}]"


def format_p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.0001" if value < 0.0001 else f"{value:.4f}"


def format_probability(value: float) -> str:
    """A posterior probability without false certainty: never 100.0% or 0.0%."""
    if value > 0.999:
        return "> 99.9%"
    if value < 0.001:
        return "< 0.1%"
    return f"{value:.1%}"
