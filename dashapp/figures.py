"""Plotly figures of the dashboard, built from report dicts (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from scipy import stats

from dashapp.formatting import format_probability
from storage.database import ComparisonRow

__all__ = ["compare_figure", "effect_figure", "empty_figure", "guardrail_figure", "guardrail_harm", "posterior_figure"]

STATUS_COLOURS = {"ok": "#157f3b", "minor": "#3730a3", "inconclusive": "#6b7280", "worsened": "#b7791f",
                  "severe": "#b42318"}
ARM_COLOURS = ["#1f5fbf", "#c2410c", "#0f766e", "#7c3aed", "#be185d"]
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=40), template="plotly_white", height=300,
               font=dict(family="system-ui, -apple-system, 'Segoe UI', 'Noto Sans CJK KR', sans-serif", size=12))


def empty_figure(message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, font=dict(size=14, color="#6b7280"))
    figure.update_layout(**_LAYOUT, xaxis=dict(visible=False), yaxis=dict(visible=False))
    return figure


def effect_figure(report: dict[str, Any], *, scale: str = "relative") -> go.Figure:
    """The primary effect of each arm with its 95% CI, relative (%) or absolute (pp / units)."""
    comparisons = report.get("comparisons") or []
    if not comparisons:
        return empty_figure("No effect to show: the data is blocked.")
    labels, values, lows, highs = [], [], [], []
    for comparison in comparisons:
        primary = comparison["primary"]
        if scale == "relative" and primary.get("relative_ci") is not None:
            factor = 100.0
            value, (low, high) = primary["relative_effect"], primary["relative_ci"]
            unit = "% vs control"
        else:
            factor = 100.0 if primary["type"] == "proportion" else 1.0
            value, (low, high) = primary["absolute_effect"], primary["absolute_ci"]
            unit = "pp" if primary["type"] == "proportion" else primary["metric"]
        labels.append(comparison["treatment"])
        values.append(value * factor)
        lows.append(low * factor)
        highs.append(high * factor)
    figure = go.Figure(go.Scatter(
        x=values, y=labels, mode="markers", marker=dict(size=11, color=ARM_COLOURS[0]),
        error_x=dict(type="data", symmetric=False, array=[h - v for h, v in zip(highs, values, strict=True)],
                     arrayminus=[v - lo for v, lo in zip(values, lows, strict=True)], thickness=3, width=8),
        hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    figure.add_vline(x=0, line=dict(color="#111827", width=1))
    metric = comparisons[0]["primary"]["metric"]
    figure.update_layout(**_LAYOUT, title=dict(text=f"{metric}: effect with 95% CI ({scale})", font=dict(size=14)),
                         xaxis_title=unit, yaxis=dict(autorange="reversed"), showlegend=False)
    return figure


def posterior_figure(report: dict[str, Any]) -> go.Figure:
    """Posterior densities of the primary metric per arm (Beta for rates, normal for means)."""
    comparisons = report.get("comparisons") or []
    if not comparisons:
        return empty_figure("No posterior: the data is blocked.")
    primary0 = comparisons[0]["primary"]
    arms = [(comparisons[0]["control"], primary0["control"])] + [(c["treatment"], c["primary"]["treatment"])
                                                                    for c in comparisons]
    curves = []
    for name, arm in arms:
        n, value = arm["n"], arm["value"]
        if primary0["type"] == "proportion":
            successes = round(value * n)
            distribution = stats.beta(1 + successes, 1 + n - successes)
        else:
            se = (arm.get("std") or 0.0) / math.sqrt(n)
            distribution = stats.norm(value, se if se > 0 else 1e-12)
        curves.append((name, distribution))
    low = min(d.ppf(1e-4) for _, d in curves)
    high = max(d.ppf(1 - 1e-4) for _, d in curves)
    grid = np.linspace(low, high, 400)
    figure = go.Figure()
    scale = 100.0 if primary0["type"] == "proportion" else 1.0
    for index, (name, distribution) in enumerate(curves):
        figure.add_trace(go.Scatter(x=grid * scale, y=distribution.pdf(grid) / scale, name=name, mode="lines",
                                    line=dict(color=ARM_COLOURS[index % len(ARM_COLOURS)], width=2),
                                    fill="tozeroy", opacity=0.5))
    bayes = comparisons[0]["primary"].get("bayesian") or {}
    title = "Posterior of the primary metric"
    if "prob_treatment_better" in bayes:  # on a second line: the chart's tool bar takes the right of the first
        title += (f"<br><sup>P({comparisons[0]['treatment']} better) = "
                  f"{format_probability(bayes['prob_treatment_better'])}</sup>")
    figure.update_layout(**{**_LAYOUT, "margin": dict(l=10, r=10, t=60, b=40)}, title=dict(text=title, font=dict(size=14)),
                         xaxis_title="rate (%)" if scale == 100.0 else primary0["metric"], yaxis_title="density",
                         legend=dict(orientation="h", y=-0.25))
    return figure


def guardrail_harm(guardrail: dict[str, Any]) -> tuple[float, float, float]:
    """(harm, low, high): the change in the guardrail's worse direction and its 95% CI (positive =
    worse). A stored v1 report has only the change and the harmful direction."""
    if guardrail.get("harm") is not None and guardrail.get("harm_ci"):
        low, high = guardrail["harm_ci"]
        return float(guardrail["harm"]), float(low), float(high)
    sign = 1.0 if guardrail.get("harm_direction", "increase") == "increase" else -1.0
    low, high = sorted(sign * float(v) for v in guardrail["absolute_ci"])
    return sign * float(guardrail["absolute_effect"]), low, high


def _margins(guardrail: dict[str, Any], policy: dict[str, Any]) -> tuple[float, float]:
    """The margin and severe margin in the metric's unit (a v1 report: the policy's global ones)."""
    margin, severe = guardrail.get("margin") or {}, guardrail.get("severe_margin") or {}
    return (float(margin.get("absolute", policy.get("guardrail_worsened", 0.001))),
            float(severe.get("absolute", policy.get("guardrail_severe", 0.003))))


def _amount(guardrail: dict[str, Any], value: float) -> str:
    return f"{value * 100:+.2f} pp" if guardrail["type"] == "proportion" else f"{value:+,.4g}"


def guardrail_figure(report: dict[str, Any], policy: dict[str, Any] | None = None) -> go.Figure:
    """Each guardrail's harm with its 95% CI measured in its own margin (harm ÷ margin), so that
    rates, means and ratios share one honest axis: 1 is the margin, the red ticks the severe
    margins, right of 0 is worse. Points are coloured by status."""
    rows = [(c["treatment"], g) for c in report.get("comparisons") or [] for g in c["guardrails"]]
    if not rows:
        return empty_figure("No guardrails in this file.")
    policy = policy or report.get("policy") or {}
    several = len(report["comparisons"]) > 1
    figure = go.Figure()
    severe_x, severe_y, unscaled = [], [], []
    for treatment, g in rows:
        label = f"{treatment}: {g['metric']}" if several else g["metric"]
        harm, low, high = guardrail_harm(g)
        margin, severe = _margins(g, policy)
        if margin <= 0:  # a zero margin has no unit to measure in: the table shows the numbers
            unscaled.append(label)
            figure.add_trace(go.Scatter(x=[0], y=[label], mode="text", text=["margin 0: see the table"],
                                        textposition="middle right", showlegend=False, hoverinfo="skip"))
            continue
        hover = (f"{label}: harm {_amount(g, harm)} [{_amount(g, low)}, {_amount(g, high)}]<br>"
                 f"margin {_amount(g, margin)}, severe {_amount(g, severe)} — {g['status']}<extra></extra>")
        figure.add_trace(go.Scatter(
            x=[harm / margin], y=[label], mode="markers", name=g["status"], showlegend=False,
            marker=dict(size=10, color=STATUS_COLOURS.get(g["status"], "#1f5fbf")),
            error_x=dict(type="data", symmetric=False, array=[(high - harm) / margin],
                         arrayminus=[(harm - low) / margin], thickness=3), hovertemplate=hover))
        severe_x.append(severe / margin)
        severe_y.append(label)
    figure.add_vline(x=0, line=dict(color="#111827", width=1))
    figure.add_vline(x=1, line=dict(color="#b7791f", width=1.5, dash="dot"), annotation_text="margin",
                     annotation_position="top", annotation_font=dict(size=11, color="#b7791f"))
    if severe_x and max(severe_x) - min(severe_x) < 1e-9:
        figure.add_vline(x=severe_x[0], line=dict(color="#b42318", width=1.5, dash="dash"),
                         annotation_text="severe margin", annotation_position="top",
                         annotation_font=dict(size=11, color="#b42318"))
    elif severe_x:
        figure.add_trace(go.Scatter(x=severe_x, y=severe_y, mode="markers", name="severe margin",
                                    marker=dict(symbol="line-ns", size=22, color="#b42318",
                                                line=dict(width=2, color="#b42318")),
                                    hovertemplate="%{y}: severe margin at %{x:.2f}× the margin<extra></extra>"))
    height = max(_LAYOUT["height"], 150 + 42 * len(rows))  # type: ignore[call-overload]
    figure.update_layout(**{**_LAYOUT, "height": height, "margin": dict(l=10, r=10, t=60, b=50)},
                         title=dict(text="Guardrails: harm ÷ margin, 95% CI", font=dict(size=14)),
                         xaxis=dict(title="harm ÷ margin (0 = no change, 1 = the margin; right = worse)",
                                    zeroline=False),
                         yaxis=dict(autorange="reversed"), legend=dict(orientation="h", y=-0.3),
                         showlegend=bool(severe_x) and max(severe_x) - min(severe_x) >= 1e-9)
    return figure


def compare_figure(rows: Sequence[ComparisonRow]) -> go.Figure:
    """Relative lift and CI of several stored experiments on one chart."""
    if not rows:
        return empty_figure("Select experiments in the table and press Compare.")
    labels = [f"#{r.experiment_id} {r.name}"[:48] for r in rows]
    values = [(r.relative_effect or 0.0) * 100 for r in rows]
    highs = [((r.relative_ci[1] if r.relative_ci[1] is not None else r.relative_effect) or 0.0) * 100 for r in rows]
    lows = [((r.relative_ci[0] if r.relative_ci[0] is not None else r.relative_effect) or 0.0) * 100 for r in rows]
    colours = {"launch": "#157f3b", "hold": "#b7791f", "rollback": "#b42318"}
    figure = go.Figure(go.Scatter(
        x=values, y=labels, mode="markers",
        marker=dict(size=11, color=[colours.get(r.decision, "#1f5fbf") for r in rows]),
        error_x=dict(type="data", symmetric=False, array=[h - v for h, v in zip(highs, values, strict=True)],
                     arrayminus=[v - lo for v, lo in zip(values, lows, strict=True)], thickness=3),
        text=[r.decision for r in rows], hovertemplate="%{y}: %{x:.2f}% (%{text})<extra></extra>"))
    figure.add_vline(x=0, line=dict(color="#111827", width=1))
    figure.update_layout(**{**_LAYOUT, "height": 120 + 40 * len(rows)},
                         title=dict(text="Relative lift of the primary metric (95% CI)", font=dict(size=14)),
                         xaxis_title="% vs control", yaxis=dict(autorange="reversed"))
    return figure
