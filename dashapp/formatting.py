"""Number formatting shared by the memo and the dashboard (one place for how a result reads)."""

from __future__ import annotations

from typing import Any

from analytics.wording import format_number, format_percent, p_clause

__all__ = [
    "cuped_sentence",
    "format_absolute",
    "format_amount",
    "format_interval",
    "format_margin",
    "format_relative",
    "format_value",
]


def format_value(metric: dict[str, Any], value: float | None) -> str:
    """A rate as a percentage, a mean or ratio with four significant digits."""
    if value is None:
        return "n/a"
    return f"{value:.2%}" if metric["type"] == "proportion" else format_number(value)


def format_amount(metric: dict[str, Any], value: float, *, signed: bool = True) -> str:
    """A change in the metric's unit: ``+0.15 pp`` for rates, ``+11.98`` for means and ratios."""
    if metric["type"] == "proportion":
        return f"{value * 100:+.2f} pp" if signed else f"{value * 100:.2f} pp"
    return format_number(value, signed=signed)


def format_interval(metric: dict[str, Any], interval: list[float] | tuple[float, float] | None) -> str:
    """``[+0.26, +0.84] pp`` for rates, ``[+0.3008, +1.499]`` for means and ratios; ``[n/a]`` when a
    bound is beyond double precision (the report holds ``null`` there)."""
    if not interval or interval[0] is None or interval[1] is None:
        return "[n/a]"
    low, high = interval
    if metric["type"] == "proportion":
        return f"[{low * 100:+.2f}, {high * 100:+.2f}] pp"
    return f"[{format_number(low, signed=True)}, {format_number(high, signed=True)}]"


def format_absolute(metric: dict[str, Any]) -> str:
    """``+0.55 pp [+0.26, +0.84]`` for rates, ``+0.9 [+0.3008, +1.499]`` for means."""
    effect, interval = metric["absolute_effect"], metric.get("absolute_ci")
    if effect is None:
        return "n/a (beyond double precision)"
    if not interval or interval[0] is None or interval[1] is None:
        return f"{format_amount(metric, effect)} [n/a]"
    low, high = interval
    if metric["type"] == "proportion":
        return f"{effect * 100:+.2f} pp [{low * 100:+.2f}, {high * 100:+.2f}]"
    return (f"{format_number(effect, signed=True)} [{format_number(low, signed=True)}, "
            f"{format_number(high, signed=True)}]")


def format_relative(metric: dict[str, Any]) -> str:
    """``+5.0% [+2.1%, +8.0%]``; ``n/a (control is 0)`` or, for a lift or bound beyond double
    precision, ``n/a``."""
    effect, interval = metric.get("relative_effect"), metric.get("relative_ci")
    if effect is None:
        return "n/a (control is 0)" if (metric.get("control") or {}).get("value") == 0 else "n/a"
    if not interval or interval[0] is None or interval[1] is None:
        return f"{effect:+.1%} [n/a]"
    low, high = interval
    return f"{effect:+.1%} [{low:+.1%}, {high:+.1%}]"


def format_margin(metric: dict[str, Any], margin: dict[str, Any] | None) -> str:
    """A margin of the report (``{value, absolute, relative, default}``) in the metric's unit.

    ``0.10 pp`` for a rate, ``0.002`` for a mean, ``1% (8.2)`` when relative to the control.
    """
    if not margin or margin.get("absolute") is None:
        return "—"
    absolute = float(margin["absolute"])
    if metric["type"] == "proportion":
        points = absolute * 100
        size = f"{points:.2f} pp" if abs(round(points, 2) - points) < 1e-9 else f"{points:.4g} pp"
    else:
        size = format_number(absolute)
    if margin.get("relative"):
        value = margin.get("value")
        share = value if isinstance(value, str) else f"{float(value) * 100:g}%" if value is not None else None
        return f"{share} ({size})" if share else size
    return size


def cuped_sentence(cuped: dict[str, Any]) -> str:
    """How CUPED changed a metric, said the same way on Results and in the memo:
    ``CUPED with pre_x (θ = 0.52, variance −31%, used for the decision); unadjusted change +0.55 pp
    [+0.26, +0.84], p = 0.0123.``"""
    state = "used for the decision" if cuped["applied"] else "reported only"
    unadjusted = cuped["unadjusted"]
    return (f"CUPED with {cuped['covariate']} (θ = {format_number(cuped['theta'])}, variance "
            f"−{format_percent(cuped['variance_reduction'], signed=False, digits=0)}, {state}); unadjusted change "
            f"{format_absolute(unadjusted)}, {p_clause(unadjusted.get('p_value'))}.")
