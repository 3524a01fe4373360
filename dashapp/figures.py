"""Plotly figures of the dashboard, built from report dicts (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from scipy import stats

from storage.database import ComparisonRow

__all__ = ["compare_figure", "effect_figure", "empty_figure", "guardrail_figure", "posterior_figure"]

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
    if "prob_treatment_better" in bayes:
        title += f" — P({comparisons[0]['treatment']} better) = {bayes['prob_treatment_better']:.1%}"
    figure.update_layout(**_LAYOUT, title=dict(text=title, font=dict(size=14)),
                         xaxis_title="rate (%)" if scale == 100.0 else primary0["metric"], yaxis_title="density",
                         legend=dict(orientation="h", y=-0.25))
    return figure


def guardrail_figure(report: dict[str, Any], policy: dict[str, Any] | None = None) -> go.Figure:
    """Each guardrail's change with its 95% CI, coloured by status, with the threshold lines."""
    rows = [(c["treatment"], g) for c in report.get("comparisons") or [] for g in c["guardrails"]]
    if not rows:
        return empty_figure("No guardrails in this file.")
    several = len(report["comparisons"]) > 1
    figure = go.Figure()
    for treatment, g in rows:
        factor = 100.0 if g["type"] == "proportion" else 1.0
        value = g["absolute_effect"] * factor
        low, high = (v * factor for v in g["absolute_ci"])
        label = f"{treatment}: {g['metric']}" if several else g["metric"]
        figure.add_trace(go.Scatter(
            x=[value], y=[label], mode="markers", name=g["status"],
            marker=dict(size=10, color=STATUS_COLOURS.get(g["status"], "#1f5fbf")), showlegend=False,
            error_x=dict(type="data", symmetric=False, array=[high - value], arrayminus=[value - low], thickness=3),
            hovertemplate=f"{label}: %{{x:.3f}} ({g['status']})<extra></extra>"))
    policy = policy or report.get("policy") or {}
    for key, dash in (("guardrail_worsened", "dot"), ("guardrail_severe", "dash")):
        if key in policy:
            figure.add_vline(x=policy[key] * 100, line=dict(color="#b42318", width=1, dash=dash))
    figure.add_vline(x=0, line=dict(color="#111827", width=1))
    figure.update_layout(**_LAYOUT, title=dict(text="Guardrails: change with 95% CI (pp; right = more)",
                                               font=dict(size=14)), yaxis=dict(autorange="reversed"))
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
