"""The memo's effect chart: matplotlib's SVG backend, no browser needed at run time.

Two panels: the primary metric's relative change (% vs control), and each guardrail's harm
in multiples of its own margin, so a rate in pp and a latency in ms share one axis: 1 is the
margin, the red tick on each row its severe margin, right of 0 is worse.

For a daily export, :func:`timeline_chart_svg` draws the cumulative effect over time with its
fixed-horizon band (and the wider always-valid band when sequential) beside the users each arm
gained per day.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from analytics import GuardrailStatus
from dashapp.memo.model import ChartRow, MemoModel

__all__ = [
    "CONTROL_COLOUR",
    "FIXED_BAND_COLOUR",
    "LABEL_CHARS",
    "MARGIN_COLOUR",
    "MAX_HEIGHT_INCHES",
    "SEVERE_COLOUR",
    "STATUS_COLOURS",
    "TIMELINE_HEIGHT_INCHES",
    "UNTRUSTED_COLOUR",
    "effect_chart_svg",
    "svg_data_uri",
    "timeline_chart_svg",
]

#: Bar colours: the primary metric's, then each guardrail status's.
STATUS_COLOURS = {
    "primary": "#1f5fbf", GuardrailStatus.OK: "#157f3b", GuardrailStatus.MINOR: "#3730a3",
    GuardrailStatus.INCONCLUSIVE: "#6b7280", GuardrailStatus.WORSENED: "#b7791f", GuardrailStatus.SEVERE: "#b42318",
}
MARGIN_COLOUR = "#b7791f"
SEVERE_COLOUR = "#b42318"
UNTRUSTED_COLOUR = "#b0b5bd"
LABEL_CHARS = 26
MAX_HEIGHT_INCHES = 2.5


def _label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _panel(axis: object, rows: Sequence[ChartRow], title: str, unit: str, label_size: float, *,
           untrusted: bool = False) -> list[int]:
    from matplotlib.axes import Axes

    assert isinstance(axis, Axes)
    positions = list(range(len(rows)))[::-1]
    for y, row in zip(positions, rows, strict=True):
        colour = UNTRUSTED_COLOUR if untrusted else STATUS_COLOURS.get(row.kind, "#1f5fbf")
        axis.plot([row.low, row.high], [y, y], color=colour, linewidth=2.2, solid_capstyle="butt")
        axis.plot([row.value], [y], marker="o", color=colour, markersize=5)
    axis.axvline(0, color="#111827", linewidth=0.8)
    axis.set_yticks(positions)
    axis.set_yticklabels([_label(row.label) for row in rows])
    axis.set_ylim(-0.7, len(rows) - 0.3)
    axis.set_title(title, fontsize=8, loc="left")
    axis.set_xlabel(unit, fontsize=7)
    axis.tick_params(labelsize=7)
    axis.tick_params(axis="y", labelsize=label_size)
    for side in ("top", "right"):
        axis.spines[side].set_visible(False)
    return positions


def _margin_lines(axis: object, rows: Sequence[ChartRow], positions: Sequence[int]) -> None:
    """The margin (1) as one line; severe margins as one line when shared, else a tick per row."""
    from matplotlib.axes import Axes

    assert isinstance(axis, Axes)
    axis.axvline(1.0, color=MARGIN_COLOUR, linewidth=0.9, linestyle=(0, (3, 2)))
    severe = {round(row.severe, 9) for row in rows if row.severe is not None}
    if len(severe) == 1 and all(row.severe is not None for row in rows):
        axis.axvline(next(iter(severe)), color=SEVERE_COLOUR, linewidth=0.9, linestyle=(0, (3, 2)))
        return
    for y, row in zip(positions, rows, strict=True):
        if row.severe is not None:
            axis.plot([row.severe, row.severe], [y - 0.35, y + 0.35], color=SEVERE_COLOUR, linewidth=1.2)


def effect_chart_svg(memo: MemoModel, *, max_height: float = MAX_HEIGHT_INCHES) -> str | None:
    """An SVG with the primary relative change and the guardrail harms, each with its 95% CI.

    ``max_height`` (inches) caps the figure; rows get closer and their labels smaller. Returns
    ``None`` when there is nothing to draw (blocked data).
    """
    if not memo.primary_chart and not memo.guardrail_chart:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    panels = [p for p in (memo.primary_chart, memo.guardrail_chart) if p]
    rows = max(len(p) for p in panels)
    height = max(1.3, min(0.62 + 0.22 * rows, max_height))
    # 7 pt labels need about 0.13 in of height per row; closer rows get smaller labels.
    label_size = max(4.5, min(7.0, 7.0 * (height - 0.62) / (0.16 * rows)))
    figure = Figure(figsize=(7.3, height), dpi=100)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    index = 0
    with matplotlib.rc_context({"svg.fonttype": "none", "font.family": ["DejaVu Sans", "Noto Sans CJK JP"],
                                "svg.hashsalt": "experimentos"}):
        if memo.primary_chart:
            direction = "← lower is better" if memo.primary_better == "lower" else "higher is better →"
            title = f"Primary: change vs control ({direction})"
            if memo.untrusted:  # an SRM or blocked hold: the interval is not a result
                title = "Primary: NOT TRUSTWORTHY (see Health)"
            _panel(axes[index], memo.primary_chart, title, "% of control", label_size, untrusted=bool(memo.untrusted))
            index += 1
        if memo.guardrail_chart:
            arm = f" ({_label(memo.chart_arm)})" if memo.chart_arm else ""
            positions = _panel(axes[index], memo.guardrail_chart, f"Guardrails{arm}: harm ÷ margin (worse →)",
                               "× margin (dashed: margin = 1, red: severe)", label_size)
            _margin_lines(axes[index], memo.guardrail_chart, positions)
        figure.tight_layout(pad=0.4)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


TIMELINE_HEIGHT_INCHES = 1.5
FIXED_BAND_COLOUR = "#1f5fbf"
CONTROL_COLOUR = "#6b7280"


def _date_ticks(axis: object, dates: Sequence[str]) -> None:
    """At most five date labels (MM-DD), first and last always shown."""
    from matplotlib.axes import Axes

    assert isinstance(axis, Axes)
    count = len(dates)
    step = max(1, round((count - 1) / 4)) if count > 1 else 1
    positions = sorted({*range(0, count, step), count - 1})
    if len(positions) > 1 and positions[-1] - positions[-2] < step / 2:
        positions.pop(-2)
    axis.set_xticks(positions)
    axis.set_xticklabels([dates[i][5:] if len(dates[i]) >= 10 else dates[i] for i in positions])


def _headroom(axis: object, share: float = 0.45) -> None:
    """Room above the data for a one-line legend, so it never covers a band or a bar."""
    from matplotlib.axes import Axes

    assert isinstance(axis, Axes)
    low, high = axis.get_ylim()
    axis.set_ylim(low, high + (high - low) * share)


def timeline_chart_svg(memo: MemoModel, *, height: float = TIMELINE_HEIGHT_INCHES) -> str | None:
    """An SVG of the primary metric over time (``None`` without a timeline): the cumulative
    effect with its fixed-horizon 95% band, the always-valid band when the analysis is sequential,
    and the new users per arm and day."""
    if not memo.timeline:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    points = memo.timeline
    x = list(range(len(points)))
    dates = [p.date for p in points]
    figure = Figure(figsize=(7.3, height), dpi=100)
    effect_axis, users_axis = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.3, 1]})
    unit = f" ({memo.timeline_unit})" if memo.timeline_unit else ""
    arm = f" — {_label(memo.timeline_arm)}" if memo.timeline_arm and memo.arm_count > 1 else ""
    with matplotlib.rc_context({"svg.fonttype": "none", "font.family": ["DejaVu Sans", "Noto Sans CJK JP"],
                                "svg.hashsalt": "experimentos"}):
        colour = UNTRUSTED_COLOUR if memo.untrusted else FIXED_BAND_COLOUR
        if any(p.sequential_low is not None for p in points):
            effect_axis.fill_between(x, [p.sequential_low if p.sequential_low is not None else p.low for p in points],
                                     [p.sequential_high if p.sequential_high is not None else p.high for p in points],
                                     color=colour, alpha=0.12, linewidth=0, label="always-valid 95%")
        effect_axis.fill_between(x, [p.low for p in points], [p.high for p in points], color=colour, alpha=0.3,
                                 linewidth=0, label="fixed-horizon 95%")
        effect_axis.plot(x, [p.effect for p in points], color=colour, linewidth=1.4, marker="o", markersize=2,
                         label="effect")
        effect_axis.axhline(0, color="#111827", linewidth=0.8)
        effect_axis.set_title(f"Primary over time: cumulative effect{unit}{arm}", fontsize=8, loc="left")
        _headroom(effect_axis)
        effect_axis.legend(fontsize=6, frameon=False, loc="upper right", ncol=3)
        width = 0.4
        users_axis.bar([i - width / 2 for i in x], [p.control_new for p in points], width=width,
                       color=CONTROL_COLOUR, label="control")
        users_axis.bar([i + width / 2 for i in x], [p.treatment_new for p in points], width=width,
                       color=colour, label=_label(memo.timeline_arm or "treatment"))
        users_axis.set_title("New users per day", fontsize=8, loc="left")
        _headroom(users_axis)
        users_axis.legend(fontsize=6, frameon=False, loc="upper right", ncol=2)
        for axis in (effect_axis, users_axis):
            _date_ticks(axis, dates)
            axis.tick_params(labelsize=6.5)
            for side in ("top", "right"):
                axis.spines[side].set_visible(False)
        figure.tight_layout(pad=0.4)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def svg_data_uri(svg: str) -> str:
    """A ``data:`` URI: the chart travels inside the HTML and the PDF, and an <img> never runs scripts."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
