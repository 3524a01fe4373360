"""Issue 13 in the memo and on New Experiment: the timeline chart, the always-valid column, the
sequential and running-totals switches, and the calculator's sequential mode."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from dash import no_update
from dash.exceptions import PreventUpdate

from analytics.power import plan_sample_size, plan_sequential_sample_size
from analytics.wording import format_number, format_p
from dashapp.memo import build_memo, render_html, render_markdown, render_pdf
from dashapp.memo.chart import timeline_chart_svg
from dashapp.pages.new import plan_view, rerun_for_switches, switches_changed, switches_view
from dashapp.services import AnalysisRequest, analyze_path, report_json
from dashapp.state import FormValues, PlanInputs, form_from_session, plan_answer
from dashapp.workspace import request_from_form
from tests.conftest import DATA, assert_clean_json, run_cli
from tests.dashapp.test_memo import _overprinted_words, _pages, _pdf_text

DAILY = DATA / "sample_daily.csv"


def _daily_report(*, sequential: bool) -> dict[str, Any]:
    request = request_from_form(name="checkout daily", hypothesis=None, control=None, primary=None, split=None,
                                sequential=sequential)
    return report_json(analyze_path(DAILY, request))


def _daily_users() -> dict[str, dict[str, int]]:
    """The file's own new users per date and arm (read with csv, not through the analysis)."""
    users: dict[str, dict[str, int]] = {}
    with DAILY.open(newline="") as handle:
        for row in csv.DictReader(handle):
            users.setdefault(row["date"], {})[row["variant"]] = int(row["users"])
    return users


def test_the_memo_timeline_follows_the_report_and_the_file() -> None:
    report = _daily_report(sequential=True)
    memo = build_memo(report)
    users = _daily_users()
    assert [p.date for p in memo.timeline] == sorted(users)
    for point, row in zip(memo.timeline, report["timeline"], strict=True):
        assert point.effect == pytest.approx(row["absolute_effect"] * 100, abs=1e-12)
        assert (point.low, point.high) == pytest.approx([v * 100 for v in row["absolute_ci"]], abs=1e-12)
        assert (point.sequential_low, point.sequential_high) == pytest.approx(
            [v * 100 for v in row["sequential"]["ci"]], abs=1e-12)
        assert (point.control_new, point.treatment_new) == (users[point.date]["control"],
                                                            users[point.date]["treatment"])
        # The always-valid band contains the fixed-horizon one at every look.
        assert point.sequential_low is not None and point.sequential_high is not None
        assert point.sequential_low < point.low and point.sequential_high > point.high
    first_fixed = next(r["date"] for r in report["timeline"] if r["absolute_ci"][0] > 0 or r["absolute_ci"][1] < 0)
    assert first_fixed == "2026-11-06"  # the sample "wins" on day 5 under fixed-horizon peeking
    assert f"first excluded 0 on {first_fixed}" in (memo.timeline_summary or "")
    assert "always-valid CI, valid at every look, never did" in (memo.timeline_summary or "")
    assert memo.timeline_unit == "pp" and memo.sequential


def test_a_fixed_horizon_daily_memo_warns_against_deciding_at_a_peek() -> None:
    memo = build_memo(_daily_report(sequential=False))
    assert memo.timeline and all(p.sequential_low is None for p in memo.timeline)
    assert "Deciding at an interim look needs sequential inference" in (memo.timeline_summary or "")
    assert not memo.has_sequential
    assert any("read once at the end" in a for a in memo.assumptions)


def test_a_sequential_memo_shows_the_interval_the_decision_used() -> None:
    report = _daily_report(sequential=True)
    primary = report["comparisons"][0]["primary"]
    memo = build_memo(report)
    row = memo.evidence[0]
    low, high = primary["sequential"]["ci"]
    assert row.sequential == f"[{low * 100:+.2f}, {high * 100:+.2f}] pp (p = {format_p(primary['p_value_adjusted'])})"
    assert row.p_value == format_p(primary["p_value"])  # the fixed-horizon p, labelled "p (fixed)"
    assert "always-valid 95% CI" in memo.conclusion and f"{low * 100:+.2f} pp" in memo.conclusion.replace("−", "-")
    assert any("always-valid (sequential)" in a for a in memo.assumptions)
    markdown = render_markdown(memo)
    assert "| Always-valid CI (p) |" in markdown and "p (fixed)" in markdown and "Over time:" in markdown
    html = render_html(memo)
    assert html.count("data:image/svg+xml;base64,") == 2  # the effect chart and the timeline


def test_the_timeline_svg_draws_both_bands_and_the_users() -> None:
    memo = build_memo(_daily_report(sequential=True))
    svg = timeline_chart_svg(memo) or ""
    for text in ("always-valid 95%", "fixed-horizon 95%", "New users per day", "11-02", "11-22"):
        assert text in svg
    assert timeline_chart_svg(build_memo(report_json(analyze_path(DATA / "sample_launch.csv",
                                                                  AnalysisRequest())))) is None


@pytest.mark.parametrize("sequential", [False, True])
def test_the_daily_memo_pdf_is_one_page_without_overprint(sequential: bool, tmp_path: Path) -> None:
    memo = build_memo(_daily_report(sequential=sequential), notes="Looked at every morning. " * 40)
    pdf = render_pdf(memo)
    assert _pages(pdf) == 1
    assert _overprinted_words(pdf, tmp_path) == []
    text = _pdf_text(pdf, tmp_path)
    assert "Across 21 days" in text.replace("\n", " ")


def test_cli_sequential_flag_makes_every_rule_use_the_confidence_sequence() -> None:
    plain = assert_clean_json(run_cli("analyze", str(DAILY)).stdout)[0]
    sequential = assert_clean_json(run_cli("analyze", str(DAILY), "--sequential").stdout)[0]
    assert plain["policy"]["sequential"] is False and sequential["policy"]["sequential"] is True
    primary = sequential["comparisons"][0]["primary"]
    assert primary["sequential"]["tuning"] == 5000.0
    assert "always-valid p" in " ".join(sequential["decision"]["reasons"])


# -- New Experiment: the switches ------------------------------------------------------------------

def test_the_switches_reach_the_analysis_and_survive_the_session() -> None:
    form = FormValues(sequential=True, cumulative=True)
    request = form.request()
    assert request.policy.sequential and request.cumulative
    assert form_from_session(form.as_dict()) == form
    with pytest.raises(ValueError, match="sequential-inference setting"):
        form_from_session({"sequential": "yes"})


def test_flipping_a_switch_reruns_only_when_the_draft_differs() -> None:
    state = {"report": {}, "form": {"sequential": False, "cumulative": False}, "input": {}}
    assert switches_changed(state, sequential=True, cumulative=False)
    assert switches_changed(state, sequential=False, cumulative=True)
    assert not switches_changed(state, sequential=False, cumulative=False)
    # Set from the session: no second run.
    assert not switches_changed({**state, "form": {"sequential": True}}, sequential=True, cumulative=False)
    with pytest.raises(PreventUpdate):
        rerun_for_switches({**state, "form": {"sequential": True}}, FormValues(sequential=True, cumulative=False))
    # Nothing loaded yet: the next upload uses the switch.
    assert not switches_changed(None, sequential=False, cumulative=True)
    with pytest.raises(PreventUpdate):
        rerun_for_switches(None, FormValues(cumulative=True))
    assert switches_view({**state, "form": {"sequential": True}}, False, False) == (True, no_update)
    assert switches_view({**state, "form": {"sequential": True}}, True, False) == (no_update, no_update)
    assert switches_view(None, True, True) == (False, False)  # "Start a new experiment" clears them


# -- the calculator's sequential mode --------------------------------------------------------------

def test_the_calculator_sizes_for_sequential_looks_as_the_cli_does() -> None:
    inputs = PlanInputs(baseline=0.12, mde=0.05, relative=True, daily_users=5000, sequential=True, looks=20)
    answer = plan_answer(inputs, alpha=0.05, power=0.8)
    expected = plan_sequential_sample_size(baseline=0.12, mde=0.05, relative=True, daily_users=5000, looks=20)
    fixed = plan_sample_size(baseline=0.12, mde=0.05, relative=True, daily_users=5000)
    assert answer.ok and answer.total == expected.plan.total_n
    assert expected.plan.total_n > 1.5 * fixed.total_n  # the price of peeking, shown in the sentence
    assert f"over 20 looks: {format_number(expected.ratio)}×" in answer.text
    assert f"{fixed.total_n:,}" in answer.text
    assert f"{expected.fixed_horizon_power:.0%} of the time" in answer.text
    plain = plan_answer(dataclasses.replace(inputs, sequential=False), alpha=0.05, power=0.8)
    assert plain.total == fixed.total_n


def test_the_calculator_names_a_bad_number_of_looks() -> None:
    text, colour, total, *_, looks_style = plan_view("proportion", 0.12, None, None, 0.05, ["relative"], 0.05, 0.8,
                                                    "50,50", 5000, False, True, 0)
    assert colour == "danger" and total is None and "looks must be a whole number from 1 to 100" in str(text)
    assert looks_style == {}
    *_, hidden = plan_view("proportion", 0.12, None, None, 0.05, ["relative"], 0.05, 0.8, "50,50", 5000, False,
                           False, 20)
    assert hidden == {"display": "none"}
    text, colour, *_ = plan_view("proportion", 0.12, None, None, 0.05, ["relative"], 0.05, 0.8, "50,50", 5000, False,
                                 True, 20.0)
    assert colour == "light" and "over 20 looks" in str(text)
