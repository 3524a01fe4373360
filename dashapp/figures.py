"""Plotly figures of the dashboard, built from report dicts (pure functions)."""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analytics import GuardrailStatus, Outcome
from analytics.bayesian import Posterior, posterior_curves, posterior_from_dict, posterior_from_stored_arm
from analytics.wording import format_number, format_p, format_percent, format_points, format_probability
from dashapp.formatting import format_amount
from storage.database import ComparisonRow, DecisionCount

__all__ = [
    "ARM_COLOURS",
    "HISTORY_DECISION_COLOURS",
    "STATUS_COLOURS",
    "UNTRUSTED_COLOUR",
    "compare_figure",
    "decision_interval",
    "effect_figure",
    "effect_title",
    "empty_figure",
    "guardrail_figure",
    "guardrail_harm",
    "history_compare_hover",
    "history_compare_label",
    "history_legend_group",
    "history_legend_groups",
    "history_metric_kind",
    "looks_figure",
    "portfolio_timeline_figure",
    "posterior_figure",
    "posterior_title",
    "primary_results",
    "timeline_figure",
    "untrusted_reason",
]

STATUS_COLOURS = {GuardrailStatus.OK: "#157f3b", GuardrailStatus.MINOR: "#3730a3",
                  GuardrailStatus.INCONCLUSIVE: "#6b7280", GuardrailStatus.WORSENED: "#b7791f",
                  GuardrailStatus.SEVERE: "#b42318"}
ARM_COLOURS = ["#1f5fbf", "#c2410c", "#0f766e", "#7c3aed", "#be185d"]
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=40), template="plotly_white", height=300,
               font=dict(family="system-ui, -apple-system, 'Segoe UI', 'Noto Sans CJK KR', sans-serif", size=12))


UNTRUSTED_COLOUR = "#9ca3af"
#: Rules under which the numbers of a report describe broken data, not the treatment.
_UNTRUSTED_RULES = {"srm": "sample ratio mismatch", "data_blocked": "the data is blocked"}


def untrusted_reason(report: dict[str, Any]) -> str | None:
    """Why the effects of a report must not be read as results (``sample ratio mismatch``), or None."""
    return _UNTRUSTED_RULES.get((report.get("decision") or {}).get("rule", ""))


def _plot_text(text: object) -> str:
    """Text from a file or a person, made safe for a Plotly label: Plotly renders a subset of HTML
    in tick labels, legends and titles, so a variant named ``<a href=…>`` would become a link."""
    return html.escape(str(text), quote=False)


def _title(text: str) -> dict[str, Any]:
    """A title on the left: Plotly's tool bar sits on the right and must never cover it."""
    return dict(text=text, font=dict(size=14), x=0.01, xanchor="left")


def empty_figure(message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, font=dict(size=14, color="#6b7280"))
    figure.update_layout(**_LAYOUT, xaxis=dict(visible=False), yaxis=dict(visible=False))
    return figure


def effect_title(report: dict[str, Any], *, scale: str = "relative") -> str:
    """``conversions: effect with 95% CI (relative)``."""
    comparisons = report.get("comparisons") or []
    metric = comparisons[0]["primary"]["metric"] if comparisons else report["experiment"]["primary_metric"]
    return f"{metric}: effect with 95% CI ({scale})"


def _effect_text(primary: dict[str, Any], value: float, *, relative: bool) -> str:
    if relative:
        return format_percent(value)
    return format_points(value) if primary["type"] == "proportion" else format_number(value, signed=True)


def effect_figure(report: dict[str, Any], *, scale: str = "relative", titled: bool = True) -> go.Figure:
    """The primary effect of each arm with its 95% CI, relative (%) or absolute (pp / units).

    ``titled=False`` leaves the title to the page (a card header); an untrusted report (SRM) is
    drawn in grey and says why."""
    comparisons = report.get("comparisons") or []
    if not comparisons:
        return empty_figure("No effect to show: the data is blocked.")
    labels, values, lows, highs, texts = [], [], [], [], []
    for comparison in comparisons:
        primary = comparison["primary"]
        relative = scale == "relative" and primary.get("relative_ci") is not None
        if relative:
            factor = 100.0
            value, (low, high) = primary["relative_effect"], primary["relative_ci"]
            unit = "% vs control"
        else:
            factor = 100.0 if primary["type"] == "proportion" else 1.0
            value, (low, high) = primary["absolute_effect"], primary["absolute_ci"]
            unit = "pp" if primary["type"] == "proportion" else _plot_text(primary["metric"])
        labels.append(_plot_text(comparison["treatment"]))
        values.append(value * factor)
        lows.append(low * factor)
        highs.append(high * factor)
        texts.append(f"{_effect_text(primary, value, relative=relative)} [{_effect_text(primary, low, relative=relative)}"
                     f", {_effect_text(primary, high, relative=relative)}]")
    reason = untrusted_reason(report)
    colour = UNTRUSTED_COLOUR if reason else ARM_COLOURS[0]
    figure = go.Figure(go.Scatter(
        x=values, y=labels, mode="markers", marker=dict(size=11, color=colour), customdata=texts,
        error_x=dict(type="data", symmetric=False, array=[h - v for h, v in zip(highs, values, strict=True)],
                     arrayminus=[v - lo for v, lo in zip(values, lows, strict=True)], thickness=3, width=8,
                     color=colour),
        hovertemplate="%{y}: %{customdata}<extra></extra>"))
    figure.add_vline(x=0, line=dict(color="#111827", width=1))
    layout: dict[str, Any] = {**_LAYOUT, "margin": dict(l=10, r=10, t=(40 if titled else 10) + (24 if reason else 0), b=40)}
    figure.update_layout(**layout, xaxis_title=unit, yaxis=dict(autorange="reversed"), showlegend=False)
    if titled:
        figure.update_layout(title=_title(_plot_text(effect_title(report, scale=scale))))
    if reason:
        _mark_untrusted(figure, reason)
    return figure


def _mark_untrusted(figure: go.Figure, reason: str) -> None:
    # top left: the tool bar takes the top right
    figure.add_annotation(text=f"not trustworthy: {reason}", xref="paper", yref="paper", x=0, y=1.02,
                          xanchor="left", yanchor="bottom", showarrow=False,
                          font=dict(size=12, color="#b42318"))


def posterior_title(report: dict[str, Any]) -> tuple[str, str | None]:
    """The posterior chart's title and the probability line under it: every arm's P(better than
    control), the best arm (the winner, else the most probable) first, so a 3-arm test never
    names an arm that lost."""
    comparisons = report.get("comparisons") or []
    title = "Posterior of the primary metric"
    probabilities = [(c["treatment"], c["primary"]["bayesian"]["prob_treatment_better"]) for c in comparisons
                     if "prob_treatment_better" in (c["primary"].get("bayesian") or {})]
    if not probabilities:
        return title, None
    if len(probabilities) == 1:
        name, probability = probabilities[0]
        return title, f"P({name} better than control) = {format_probability(probability)}"
    winner = (report.get("decision") or {}).get("winner")
    ordered = sorted(probabilities, key=lambda item: (item[0] != winner, -item[1]))
    arms = " · ".join(f"{name} {format_probability(probability)}" for name, probability in ordered)
    return title, f"P(better than control): {arms}"


def _arm_posteriors(comparisons: list[dict[str, Any]]) -> list[tuple[str, Posterior]]:
    """(arm, posterior of its primary metric), control first: the posterior the Bayesian summary
    used (``bayesian.posterior``); a report stored before that field existed has it rebuilt from
    the arm's n, value and std by analytics. Raises ``ValueError`` for a malformed posterior."""
    primary0 = comparisons[0]["primary"]
    arms = [(comparisons[0]["control"], primary0, "control")] + [(c["treatment"], c["primary"], "treatment")
                                                                  for c in comparisons]
    found = []
    for name, primary, side in arms:
        stored = (primary.get("bayesian") or {}).get("posterior")
        if isinstance(stored, dict) and side in stored:
            found.append((name, posterior_from_dict(stored[side])))
        else:
            arm = primary[side]
            found.append((name, posterior_from_stored_arm(primary0["type"], arm["n"], arm["value"], arm.get("std"))))
    return found


def posterior_figure(report: dict[str, Any], *, titled: bool = True) -> go.Figure:
    """Posterior densities of the primary metric per arm (Beta for rates, normal for means and
    CUPED-adjusted metrics), drawn from the posteriors in the report; the densities come from
    :func:`analytics.bayesian.posterior_curves`. Rates are drawn in %.

    ``titled=False`` leaves the title to the page (a card header, see :func:`posterior_title`)."""
    comparisons = report.get("comparisons") or []
    if not comparisons:
        return empty_figure("No posterior: the data is blocked.")
    primary0 = comparisons[0]["primary"]
    try:
        arms = _arm_posteriors(comparisons)
    except ValueError as error:
        return empty_figure(f"No posterior: {_plot_text(error)}.")
    grid, densities = posterior_curves([posterior for _, posterior in arms])
    figure = go.Figure()
    scale = 100.0 if primary0["type"] == "proportion" else 1.0
    reason = untrusted_reason(report)
    for index, ((name, _), density) in enumerate(zip(arms, densities, strict=True)):
        colour = ARM_COLOURS[index % len(ARM_COLOURS)]
        figure.add_trace(go.Scatter(x=grid * scale, y=density / scale, name=_plot_text(name), mode="lines",
                                    line=dict(color=colour, width=2, dash="dot" if reason else "solid"),
                                    fill="tozeroy", opacity=0.25 if reason else 0.5,
                                    hovertemplate="%{fullData.name}<extra></extra>"))
    title, subtitle = posterior_title(report)
    figure.update_layout(**{**_LAYOUT, "margin": dict(l=10, r=10, t=(60 if titled else 10) + (24 if reason else 0), b=40)},
                         xaxis_title="rate (%)" if scale == 100.0 else _plot_text(primary0["metric"]), yaxis_title="density",
                         legend=dict(orientation="h", y=-0.25))
    if titled:
        figure.update_layout(title=_title(_plot_text(title) + (f"<br><sup>{_plot_text(subtitle)}</sup>" if subtitle else "")))
    if reason:
        _mark_untrusted(figure, reason)
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
    return format_amount(guardrail, value)


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
        label = _plot_text(f"{treatment}: {g['metric']}" if several else g["metric"])
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
                                    customdata=[format_number(x) for x in severe_x],
                                    hovertemplate="%{y}: severe margin at %{customdata}× the margin<extra></extra>"))
    height = max(_LAYOUT["height"], 150 + 42 * len(rows))  # type: ignore[call-overload]
    figure.update_layout(**{**_LAYOUT, "height": height, "margin": dict(l=10, r=10, t=60, b=50)},
                         title=_title("Guardrails: harm ÷ margin, 95% CI"),
                         xaxis=dict(title="harm ÷ margin (0 = no change, 1 = the margin; right = worse)",
                                    zeroline=False),
                         yaxis=dict(autorange="reversed"), legend=dict(orientation="h", y=-0.3),
                         showlegend=bool(severe_x) and max(severe_x) - min(severe_x) >= 1e-9)
    return figure


def compare_figure(rows: Sequence[ComparisonRow]) -> go.Figure:
    """Relative lift and 95% CI of the primary metric of several stored experiments: one panel per
    metric (a rate and revenue never share an axis), one row per experiment naming its arm,
    coloured by decision with a legend; an effect under SRM or blocked data is drawn hollow and grey."""
    if not rows:
        return empty_figure("Select experiments in the table and press Compare.")
    metrics = list(dict.fromkeys(r.primary_metric for r in rows))
    panels = {metric: [r for r in rows if r.primary_metric == metric] for metric in metrics}
    figure = make_subplots(rows=len(metrics), cols=1, shared_xaxes=False, vertical_spacing=0.12 if len(metrics) > 1 else 0,
                           row_heights=[len(panels[m]) + 1 for m in metrics],
                           subplot_titles=[f"{m} ({history_metric_kind(panels[m][0])}): relative lift vs control, 95% CI"
                                           for m in metrics])
    shown: set[str] = set()
    for index, metric in enumerate(metrics, start=1):
        for group, label, colour in history_legend_groups():
            members = [r for r in panels[metric] if history_legend_group(r) == group]
            if not members:
                continue
            points = [r for r in members if r.relative_effect is not None]
            values = [(r.relative_effect or 0.0) * 100 for r in points]
            lows = [(r.relative_ci[0] if r.relative_ci[0] is not None else r.relative_effect or 0.0) * 100 for r in points]
            highs = [(r.relative_ci[1] if r.relative_ci[1] is not None else r.relative_effect or 0.0) * 100 for r in points]
            hollow = group == "untrusted"
            figure.add_trace(go.Scatter(
                x=values, y=[_plot_text(history_compare_label(r)) for r in points], mode="markers", name=label,
                legendgroup=group, showlegend=group not in shown,
                marker=dict(size=12 if hollow else 11, color=colour, line=dict(width=2, color=colour),
                            symbol="circle-open" if hollow else "circle"),
                error_x=dict(type="data", symmetric=False, array=[h - v for h, v in zip(highs, values, strict=True)],
                             arrayminus=[v - lo for v, lo in zip(values, lows, strict=True)], thickness=3, width=6,
                             color=colour),
                customdata=[_plot_text(history_compare_hover(r)) for r in points],
                hovertemplate="%{y}<br>%{customdata}<extra></extra>"), row=index, col=1)
            shown.add(group)
            missing = [r for r in members if r.relative_effect is None]
            if missing:  # a control of 0 has no relative lift: say so on the row rather than drop it
                figure.add_trace(go.Scatter(x=[0] * len(missing), y=[_plot_text(history_compare_label(r)) for r in missing],
                                            mode="text", text=["no relative lift (control is 0)"] * len(missing),
                                            textposition="middle right", showlegend=False, hoverinfo="skip"),
                                 row=index, col=1)
        figure.add_vline(x=0, line=dict(color="#111827", width=1), row=index, col=1)  # type: ignore[arg-type]
        figure.update_yaxes(autorange="reversed", automargin=True, row=index, col=1)
        figure.update_xaxes(title_text="% vs control", ticksuffix="%", row=index, col=1)
    for annotation in figure.layout.annotations:  # the panel titles: left-aligned, never under the tool bar
        annotation.update(x=0, xanchor="left", font=dict(size=13))
    height = 130 + 40 * len(rows) + 90 * len(metrics)
    # The legend goes under the panels: the tool bar takes the top right.
    figure.update_layout(**{**_LAYOUT, "height": height, "margin": dict(l=10, r=10, t=40, b=90)},
                         legend=dict(orientation="h", x=0, xanchor="left", y=0, yanchor="bottom", yref="container",
                                     title_text="Decision: "))
    return figure


# -- History: comparison and portfolio ------------------------------------------------------------

#: The colour of each decision, as on the badges of the History grid.
HISTORY_DECISION_COLOURS = {Outcome.LAUNCH: "#157f3b", Outcome.HOLD: "#b7791f", Outcome.ROLLBACK: "#b42318"}


def history_legend_groups() -> tuple[tuple[str, str, str], ...]:
    """(group, legend label, colour) of the comparison chart, in legend order."""
    return (*((outcome.value, outcome.value, HISTORY_DECISION_COLOURS[outcome]) for outcome in Outcome),
            ("untrusted", "not trustworthy (SRM / blocked)", UNTRUSTED_COLOUR))


def history_legend_group(row: ComparisonRow) -> str:
    """The legend group of a compared experiment: its decision, or ``untrusted``."""
    return "untrusted" if row.untrustworthy else row.decision


def history_metric_kind(row: ComparisonRow) -> str:
    return {"proportion": "rate", "mean": "mean", "ratio": "ratio"}.get(row.metric_type or "", "metric")


def history_compare_label(row: ComparisonRow) -> str:
    """``#6 sample_launch · treatment vs control``: which experiment and which arm a row is."""
    name = row.name if len(row.name) <= 34 else row.name[:33] + "…"
    arm = f"{row.treatment} vs {row.control or 'control'}" if row.treatment else "no arm"
    return f"#{row.experiment_id} {name} · {arm}"


def history_compare_hover(row: ComparisonRow) -> str:
    lift = "n/a"
    if row.relative_effect is not None and row.relative_ci[0] is not None and row.relative_ci[1] is not None:
        lift = (f"{format_percent(row.relative_effect)} [{format_percent(row.relative_ci[0])}, "
                f"{format_percent(row.relative_ci[1])}]")
    status = f"not trustworthy ({row.untrustworthy})" if row.untrustworthy else row.decision
    return f"{row.primary_metric}: {lift} · {status}"


def portfolio_timeline_figure(timeline: Sequence[DecisionCount]) -> go.Figure:
    """Decisions per day as stacked bars (launch / hold / rollback), a small chart for History."""
    if not timeline:
        return empty_figure("No decisions in this selection.")
    days = sorted({c.day for c in timeline})
    figure = go.Figure()
    for decision, colour in HISTORY_DECISION_COLOURS.items():
        counts = {c.day: c.count for c in timeline if c.decision == decision}
        figure.add_trace(go.Bar(x=[d.isoformat() for d in days], y=[counts.get(d, 0) for d in days], name=decision,
                                marker_color=colour, width=86_400_000 * 0.8,
                                hovertemplate=f"%{{x}}: %{{y}} {decision}<extra></extra>"))
    padding = dt.timedelta(days=3)
    figure.update_layout(**{**_LAYOUT, "height": 150, "margin": dict(l=10, r=10, t=10, b=25)}, barmode="stack",
                         xaxis=dict(type="date", range=[(days[0] - padding).isoformat(), (days[-1] + padding).isoformat()],
                                    tickformat="%b %d"),
                         yaxis=dict(title_text="decisions", rangemode="tozero", dtick=max(1, math.ceil(max(
                             sum(c.count for c in timeline if c.day == d) for d in days) / 3))),
                         legend=dict(orientation="h", x=1, xanchor="right", y=1.0, yanchor="bottom",
                                     traceorder="normal"), bargap=0.1)
    return figure


def timeline_figure(report: dict[str, Any]) -> go.Figure:
    """A daily export's cumulative effect over time (SPEC §3.1): per treatment the effect with its
    fixed-horizon 95% band and, when the analysis is sequential, the wider always-valid band; under
    it the users per arm that joined each day. Rates in pp, other metrics in their unit."""
    points = report.get("timeline") or []
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.08)
    if not points:
        return figure
    proportion = report["comparisons"][0]["primary"]["type"] == "proportion" if report["comparisons"] else False
    scale = 100.0 if proportion else 1.0
    treatments = list(dict.fromkeys(p["treatment"] for p in points))
    for index, treatment in enumerate(treatments):
        colour = ARM_COLOURS[(index + 1) % len(ARM_COLOURS)]
        rows = [p for p in points if p["treatment"] == treatment]
        dates = [p["date"] for p in rows]
        name = _plot_text(treatment)
        if any(p.get("sequential") for p in rows):
            figure.add_trace(go.Scatter(
                x=dates + dates[::-1],
                y=[p["sequential"]["ci"][1] * scale for p in rows] + [p["sequential"]["ci"][0] * scale for p in rows[::-1]],
                fill="toself", line=dict(width=0), fillcolor=colour, opacity=0.12, hoverinfo="skip",
                name=f"{name}: always-valid 95%"), row=1, col=1)
        figure.add_trace(go.Scatter(
            x=dates + dates[::-1],
            y=[p["absolute_ci"][1] * scale for p in rows] + [p["absolute_ci"][0] * scale for p in rows[::-1]],
            fill="toself", line=dict(width=0), fillcolor=colour, opacity=0.28, hoverinfo="skip",
            name=f"{name}: fixed-horizon 95%"), row=1, col=1)
        figure.add_trace(go.Scatter(
            x=dates, y=[p["absolute_effect"] * scale for p in rows], mode="lines+markers", line=dict(color=colour),
            name=f"{name}: effect", customdata=[format_p(p["p_value"]) for p in rows],
            hovertemplate="%{x}: %{y:.3f}" + (" pp" if proportion else "") + " (p = %{customdata})<extra></extra>"),
            row=1, col=1)
    figure.add_hline(y=0, line=dict(color="#6b7280", width=1), row=1, col=1)
    arms = [("control", "control")] + [(t, "treatment_arm") for t in treatments]
    for index, (arm, key) in enumerate(arms):
        rows = [p for p in points if p["treatment"] == (treatments[0] if arm == "control" else arm)]
        totals = [p[key]["n"] for p in rows]
        daily = [b - a for a, b in zip([0, *totals[:-1]], totals, strict=True)]
        figure.add_trace(go.Bar(x=[p["date"] for p in rows], y=daily, name=f"{_plot_text(arm)}: new users",
                                marker_color=ARM_COLOURS[index % len(ARM_COLOURS)], opacity=0.7), row=2, col=1)
    figure.update_layout(**{**_LAYOUT, "height": 420, "margin": dict(l=10, r=10, t=10, b=40)}, barmode="group",
                         legend=dict(orientation="h", y=-0.18))
    figure.update_yaxes(title_text="effect (pp)" if proportion else "effect", row=1, col=1)
    figure.update_yaxes(title_text="new users", row=2, col=1)
    return figure


# -- an experiment's looks ------------------------------------------------------------------------


def primary_results(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(treatment, primary result) of each comparison of a report that keeps the contract."""
    return [(c["treatment"], c["primary"]) for c in report.get("comparisons") or []]


def decision_interval(primary: dict[str, Any]) -> tuple[list[float], float | None, bool]:
    """The CI and p the decision used (always-valid ones when the analysis was sequential), and
    whether they are always-valid."""
    sequential = primary.get("sequential")
    if isinstance(sequential, dict) and sequential.get("ci"):
        return sequential["ci"], sequential.get("p_value"), True
    return primary["absolute_ci"], primary.get("p_value"), False


def looks_figure(looks: Sequence[tuple[str, dict[str, Any]]]) -> go.Figure:
    """The primary effect at each look (``(label, report)``, reports that keep the contract) with
    the CI the decision used (always-valid when sequential); looks whose data could not be
    trusted are hollow grey markers. Rates in pp."""
    figure = go.Figure()
    points: dict[str, list[tuple[str, float, float, float, bool]]] = {}
    proportion = False
    for label, report in looks:
        untrusted = untrusted_reason(report) is not None
        for treatment, primary in primary_results(report):
            proportion = primary["type"] == "proportion"
            scale = 100.0 if proportion else 1.0
            interval, _, _ = decision_interval(primary)
            points.setdefault(treatment, []).append((label, primary["absolute_effect"] * scale, interval[0] * scale,
                                                     interval[1] * scale, untrusted))
    for index, (treatment, rows) in enumerate(points.items()):
        colour = ARM_COLOURS[(index + 1) % len(ARM_COLOURS)]
        figure.add_trace(go.Scatter(
            x=[r[0] for r in rows], y=[r[1] for r in rows], mode="lines+markers", name=_plot_text(treatment),
            line=dict(color=colour), marker=dict(size=9, color=[UNTRUSTED_COLOUR if r[4] else colour for r in rows],
                                                 symbol=["circle-open" if r[4] else "circle" for r in rows]),
            error_y=dict(type="data", symmetric=False, array=[r[3] - r[1] for r in rows],
                         arrayminus=[r[1] - r[2] for r in rows], color=colour, thickness=1.5),
            hovertemplate="%{x}: %{y:.3f}" + (" pp" if proportion else "") + "<extra>%{fullData.name}</extra>"))
    figure.add_hline(y=0, line=dict(color="#6b7280", width=1))
    figure.update_layout(template="plotly_white", height=280, margin=dict(l=10, r=10, t=10, b=40),
                         showlegend=len(points) > 1, xaxis=dict(type="category"),
                         yaxis=dict(title="Effect (pp)" if proportion else "Effect"))
    return figure
