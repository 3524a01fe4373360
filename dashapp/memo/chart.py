"""The memo's effect chart: matplotlib's SVG backend, no browser needed at run time."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from dashapp.memo.model import ChartRow, MemoModel

__all__ = ["STATUS_COLOURS", "effect_chart_svg", "svg_data_uri"]

STATUS_COLOURS = {
    "primary": "#1f5fbf", "ok": "#157f3b", "minor": "#3730a3", "inconclusive": "#6b7280",
    "worsened": "#b7791f", "severe": "#b42318",
}


def _panel(axis: object, rows: Sequence[ChartRow], title: str, unit: str, lines: Sequence[float]) -> None:
    from matplotlib.axes import Axes

    assert isinstance(axis, Axes)
    positions = list(range(len(rows)))[::-1]
    for y, row in zip(positions, rows, strict=True):
        colour = STATUS_COLOURS.get(row.kind, "#1f5fbf")
        axis.plot([row.low, row.high], [y, y], color=colour, linewidth=2.2, solid_capstyle="butt")
        axis.plot([row.value], [y], marker="o", color=colour, markersize=5)
    axis.axvline(0, color="#111827", linewidth=0.8)
    for value in lines:
        axis.axvline(value, color="#b42318", linewidth=0.7, linestyle=(0, (3, 2)))
    axis.set_yticks(positions)
    axis.set_yticklabels([row.label if len(row.label) <= 28 else row.label[:27] + "…" for row in rows])
    axis.set_ylim(-0.7, len(rows) - 0.3)
    axis.set_title(title, fontsize=8, loc="left")
    axis.set_xlabel(unit, fontsize=7)
    axis.tick_params(labelsize=7)
    for side in ("top", "right"):
        axis.spines[side].set_visible(False)


def effect_chart_svg(memo: MemoModel, *, worsened_pp: float, severe_pp: float) -> str | None:
    """An SVG with the primary relative lift and the guardrail changes, each with its 95% CI.

    Returns ``None`` when there is nothing to draw (blocked data).
    """
    if not memo.primary_chart and not memo.guardrail_chart:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    panels = [p for p in (memo.primary_chart, memo.guardrail_chart) if p]
    height = 0.55 + 0.24 * max(len(p) for p in panels)
    figure = Figure(figsize=(7.3, max(1.25, min(height, 2.6))), dpi=100)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    index = 0
    with matplotlib.rc_context({"svg.fonttype": "none", "font.family": ["DejaVu Sans", "Noto Sans CJK JP"],
                                "svg.hashsalt": "experimentos"}):
        if memo.primary_chart:
            _panel(axes[index], memo.primary_chart, "Primary metric: relative lift", "% vs control", [])
            index += 1
        if memo.guardrail_chart:
            _panel(axes[index], memo.guardrail_chart, "Guardrails: change (harm →)", "pp / units",
                   [worsened_pp, severe_pp])
        figure.tight_layout(pad=0.4)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def svg_data_uri(svg: str) -> str:
    """A ``data:`` URI: the chart travels inside the HTML and the PDF, and an <img> never runs scripts."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
