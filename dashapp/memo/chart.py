"""The memo's effect chart: matplotlib's SVG backend, no browser needed at run time.

Two panels: the primary metric's relative change (% vs control), and each guardrail's harm
in multiples of its own margin, so a rate in pp and a latency in ms share one axis: 1 is the
margin, the red tick on each row its severe margin, right of 0 is worse.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from dashapp.memo.model import ChartRow, MemoModel

__all__ = ["LABEL_CHARS", "MAX_HEIGHT_INCHES", "STATUS_COLOURS", "effect_chart_svg", "svg_data_uri"]

STATUS_COLOURS = {
    "primary": "#1f5fbf", "ok": "#157f3b", "minor": "#3730a3", "inconclusive": "#6b7280",
    "worsened": "#b7791f", "severe": "#b42318",
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


def svg_data_uri(svg: str) -> str:
    """A ``data:`` URI: the chart travels inside the HTML and the PDF, and an <img> never runs scripts."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
