"""The memo in all three formats: content, one A4 page, CJK glyphs, safety, and a look at the page."""

from __future__ import annotations

import copy
import dataclasses
import functools
import io
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from analytics import DEFAULT_POLICY, policy_from_mapping
from analytics.wording import RULE_TITLES, format_count, format_p
from dashapp.memo import Charter, SafeURLFetcher, build_memo, render_html, render_markdown, render_pdf, render_report
from dashapp.memo.chart import effect_chart_svg
from dashapp.memo.render import NOTES_MARKER
from dashapp.services import AnalysisRequest, analyze_path, report_json, sample_request
from tests.conftest import DATA, assert_clean_json, run_cli

SAMPLES = sorted(p.name for p in DATA.glob("sample_*.csv"))
KOREAN = "홈화면 배너 A/B 테스트"
LONG_GUARDRAILS = ("checkout_abandonment_after_payment_page_error", "support_tickets_opened_within_seven_days", "cancel",
                   "payment_declined_rate_for_returning_customers", "error", "refund_requests_per_user_in_first_month")
# A lower-is-better primary (seconds to check out) and a latency guardrail in ms with its own margins.
CHECKOUT_CSV = ("variant,users,conversions,checkout_seconds_mean,checkout_seconds_std,guardrail_cancel,"
                "guardrail_load_ms_mean,guardrail_load_ms_std\n"
                "control,20000,2400,40.0,30.0,240,820.0,300.0\n"
                "treatment,20000,2430,{seconds},29.0,236,826.0,310.0\n")
CHECKOUT_POLICY = {"metrics": {"checkout_seconds": {"better": "lower"},
                               "load_ms": {"better": "lower", "margin": "1%", "severe_margin": "5%"}}}
_WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>')


def _report(sample: str, **charter: Any) -> dict[str, Any]:
    """A sample analysed as the CLI and the dashboard analyse it (its primary metric and policy),
    with these charter fields (``name``, ``hypothesis``)."""
    return copy.deepcopy(_cached_report(sample, tuple(sorted(charter.items()))))


@functools.cache
def _cached_report(sample: str, charter: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    request = sample_request(DATA / sample)
    request = dataclasses.replace(request, charter=dataclasses.replace(request.charter, **dict(charter)))
    return report_json(analyze_path(DATA / sample, request))


def _pdf_text(content: bytes, tmp_path: Path) -> str:
    path = tmp_path / "memo.pdf"
    path.write_bytes(content)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def _pages(content: bytes) -> int:
    return len(PdfReader(io.BytesIO(content)).pages)


TABLE_HEADINGS = ("Arm", "Metric", "Control", "Treatment", "Guardrail", "Change", "Harm", "Margin", "Status",
                  "Severe", "Role", "Better")


def _overprinted_words(content: bytes, tmp_path: Path) -> list[tuple[str, str]]:
    """Pairs of words whose boxes overlap (one printed over the other), words past the page's edge,
    and table headings run into their neighbour (pdftotext reads "TreatmentChange" as one word).

    Line boxes of consecutive lines may touch; two words count as overprinted when they overlap
    horizontally and by more than half a line vertically.
    """
    path = tmp_path / "overlap.pdf"
    path.write_bytes(content)
    xhtml = subprocess.run(["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True, check=True).stdout
    found: list[tuple[str, str]] = []
    for page in xhtml.split("<page ")[1:]:
        width = float(re.search(r'width="([\d.]+)"', page).group(1))  # type: ignore[union-attr]
        words = sorted(((float(a), float(b), float(c), float(d), w) for a, b, c, d, w in _WORD.findall(page)),
                       key=lambda word: word[1])
        for index, (x0, y0, x1, y1, word) in enumerate(words):
            if x0 < 0 or x1 > width:
                found.append((word, "<page edge>"))
            if word not in TABLE_HEADINGS and any(word.startswith(h) and word[len(h):len(h) + 1].isupper()
                                                   for h in TABLE_HEADINGS):
                found.append((word, "<run together>"))
            for u0, v0, u1, v1, other in words[index + 1:]:
                if v0 >= y1:
                    break
                if min(x1, u1) - max(x0, u0) > 0.1 and min(y1, v1) - max(y0, v0) > 0.5 * min(y1 - y0, v1 - v0):
                    found.append((word, other))
    return found


def _checkout_report(tmp_path: Path, *, seconds: float = 36.0, **policy: Any) -> dict[str, Any]:
    path = tmp_path / "checkout.csv"
    path.write_text(CHECKOUT_CSV.format(seconds=seconds))
    request = AnalysisRequest(charter=Charter(primary_metric="checkout_seconds"),
                              policy=policy_from_mapping({**CHECKOUT_POLICY, **policy}))
    return report_json(analyze_path(path, request))


def _six_long_guardrails_report(tmp_path: Path, *, arms: int = 1) -> dict[str, Any]:
    """Six guardrails with long names, most of them INCONCLUSIVE (small samples, tiny changes)."""
    header = "variant,users,conversions," + ",".join(f"guardrail_{name}" for name in LONG_GUARDRAILS)
    rows = ["control,20000,2400,300,150,360,90,105,60",
            "treatment,20100,2560,318,160,380,92,104,66",
            "treatment_b,19950,2600,330,190,300,100,100,70"][: arms + 1]
    path = tmp_path / f"six_{arms}.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return report_json(analyze_path(path, AnalysisRequest(charter=Charter(name=f"{KOREAN} — checkout redesign"))))


def _as_schema_1(report: dict[str, Any]) -> dict[str, Any]:
    """A report as analytics 1.x stored it: no risks, no per-metric direction or margins."""
    old = copy.deepcopy(report)
    old["schema_version"] = 1
    for key in ("risks", "rules_version"):
        del old[key]
    for key in ("metrics", "require_non_inferiority", "guardrail_correction"):
        del old["policy"][key]
    for comparison in old["comparisons"]:
        for metric in (comparison["primary"], *comparison["secondary"]):
            for key in ("better", "better_default", "margin", "severe_margin", "relative_ci_method",
                        "ci_simultaneous", "p_value_exact"):
                del metric[key]
        for guardrail in comparison["guardrails"]:
            for key in ("better", "better_default", "margin", "severe_margin", "relative_ci_method", "harm",
                        "harm_ci", "p_value_adjusted"):
                del guardrail[key]
    return old


def _assert_png_not_blank(pdf: bytes, tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "memo.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(tmp_path / "memo.pdf"),
                    str(tmp_path / "page")], check=True)
    image = Image.open(next(tmp_path.glob("page*.png"))).convert("L")
    histogram = image.histogram()
    dark = sum(histogram[:128]) / sum(histogram)
    assert 0.01 < dark < 0.5, f"{dark:.3f} of the page is dark"
    extremes = image.getextrema()
    assert extremes[0] < 60 and extremes[1] > 240


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_memo_in_three_formats(name: str, tmp_path: Path) -> None:
    """Layout test (issue 11): every sample is one A4 page, no two words overprint, the page is not blank."""
    report = _report(name, name=f"{KOREAN} 実験 实验 Café")
    outcome = report["decision"]["outcome"].upper()
    markdown = render_report(report, "md")
    html = render_report(report, "html")
    pdf = render_report(report, "pdf")
    assert isinstance(markdown, str) and isinstance(html, str) and isinstance(pdf, bytes)
    for text in (markdown, html):
        assert outcome in text
        assert "0.10 pp" in text and "0.30 pp" in text and "0.00001" in text  # thresholds used
        assert "1e-05" not in text
        assert "Guardrail worsened above" not in text  # margins are per metric since rules v2
        assert report["input"]["sha256"] in text
    if report["comparisons"]:
        p_value = report["comparisons"][0]["primary"]["p_value_adjusted"]
        shown = format_p(p_value).replace("<", "&lt;")
        assert shown in html
    assert pdf.startswith(b"%PDF")
    assert _pages(pdf) == 1
    assert _overprinted_words(pdf, tmp_path) == []
    text = _pdf_text(pdf, tmp_path)
    assert KOREAN in text and "実験" in text and "实验" in text and "Café" in text
    assert outcome in text
    if shutil.which("pdftoppm"):
        _assert_png_not_blank(pdf, tmp_path)


def test_memo_with_six_guardrails_and_long_notes_stays_on_one_page(tmp_path: Path) -> None:
    header = "variant,users,conversions," + ",".join(f"guardrail_g{i}" for i in range(6))
    rows = ["control,50000,6000," + ",".join("600" for _ in range(6)),
            "treatment,50100,6300," + ",".join(str(600 + 40 * i) for i in range(6))]
    path = tmp_path / "six.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    report = report_json(analyze_path(path, AnalysisRequest(charter=Charter(name=KOREAN))))
    charter = Charter(hypothesis="A bigger banner raises conversion " * 4, primary_metric="conversions",
                      mde="+5% relative", planned_sample=150_000)
    pdf = render_pdf(build_memo(report, charter=charter, notes="Reviewed with the PM. " * 40), report["policy"])
    assert _pages(pdf) == 1
    assert _overprinted_words(pdf, tmp_path) == []
    text = _pdf_text(pdf, tmp_path)
    assert "Under-powered" in text


@pytest.mark.parametrize("arms", [1, 2])
def test_long_guardrail_names_and_inconclusive_statuses_fit_one_page_without_overprinting(
        arms: int, tmp_path: Path) -> None:
    """The issue: the Status column printed over the Risks column (INCONCLUSIVE rows, 3-arm memo)."""
    report = _six_long_guardrails_report(tmp_path, arms=arms)
    statuses = [g["status"] for c in report["comparisons"] for g in c["guardrails"]]
    assert len(statuses) == 6 * arms and statuses.count("inconclusive") >= 4
    charter = Charter(hypothesis="A shorter checkout raises conversion " * 3, planned_sample=250_000, owner="Growth")
    notes = None if arms > 1 else "Reviewed with the PM and the payments team. " * 40
    pdf = render_pdf(build_memo(report, charter=charter, notes=notes))
    assert _pages(pdf) == 1
    assert _overprinted_words(pdf, tmp_path) == []
    text = _pdf_text(pdf, tmp_path)
    assert text.count("INCONCLUSIVE") >= statuses.count("inconclusive")
    assert "refund_requests_per_user_in_first_month" in re.sub(r"\s+", "", text)


HOSTILE = [
    '<img src=x onerror=alert(1)>',
    '<img src="http://127.0.0.1:9/x">',
    '<link rel="attachment" href="file:///etc/passwd">',
    '<img src="file:///dev/urandom">',
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_names_and_notes_are_text_and_fetch_nothing(payload: str) -> None:
    report = _report("sample_launch.csv", name=payload, hypothesis=payload)
    memo = build_memo(report, charter=Charter(owner=payload), notes=payload)
    html = render_html(memo, report["policy"])
    assert payload not in html
    assert payload.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;") in html
    markdown = render_markdown(memo)
    assert "<img" not in markdown and "<link" not in markdown
    spy = SafeURLFetcher()
    started = time.perf_counter()
    pdf = render_pdf(memo, report["policy"], fetcher=spy)
    # a hostile payload must not make the renderer hang or fetch: bounded well inside the renderer's own
    # 20 s limit, loosely enough that a busy shared machine does not fail it (this is not a speed claim)
    assert time.perf_counter() - started < 15
    assert all(url.startswith("data:") for url in spy.requested), spy.requested
    assert spy.refused == []
    reader = PdfReader(io.BytesIO(pdf))
    assert "/EmbeddedFiles" not in str(reader.trailer["/Root"].get("/Names", {}))
    assert all("/FileAttachment" not in str(page.get("/Annots", "")) for page in reader.pages)


def test_fetcher_refuses_everything_but_data_and_static_files() -> None:
    fetcher = SafeURLFetcher()
    for url in ("http://127.0.0.1:9/x", "https://example.org/a.png", "file:///etc/passwd", "file:///dev/urandom",
                "ftp://host/x", "file:///" + str(Path(__file__).resolve())):
        with pytest.raises(ValueError):
            fetcher.fetch(url)
    assert len(fetcher.refused) == 6
    static = (Path(__file__).resolve().parents[2] / "dashapp" / "memo" / "static" / "memo.css").as_uri()
    fetcher.fetch(static)
    assert fetcher.refused == fetcher.requested[:6]


def test_notes_are_limited() -> None:
    report = _report("sample_launch.csv")
    with pytest.raises(ValueError, match="notes"):
        build_memo(report, notes="x" * 5000)


def test_blocked_report_memo_lists_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("variant,users,conversions\ncontrol,100,120\ntreatment,100,12\n")
    report = report_json(analyze_path(path, AnalysisRequest()))
    markdown = render_report(report, "md")
    assert "cannot exceed" in markdown and "HOLD" in markdown
    assert DEFAULT_POLICY.alpha == report["policy"]["alpha"]


def test_a_sentence_without_a_direction_verb_keeps_the_effect_sign(tmp_path: Path) -> None:
    """"raised … by 0.31 pp" needs no sign; "no significant change (…)" does, or a drop reads as a gain."""
    path = tmp_path / "flat.csv"
    path.write_text("variant,users,conversions\ncontrol,10000,2020\ntreatment,10000,1989\n")
    report = assert_clean_json(run_cli("analyze", str(path)).stdout)[0]
    primary = report["comparisons"][0]["primary"]
    assert report["decision"]["outcome"] == "hold" and primary["absolute_effect"] < 0
    memo = run_cli("analyze", str(path), "--format", "md").stdout
    expected = f"No significant change in conversions ({primary['absolute_effect'] * 100:+.2f} pp"
    assert expected in memo and "-0.31 pp" in expected


def test_thresholds_table_lists_each_metric_with_its_direction_margins_and_default_marks(tmp_path: Path) -> None:
    report = _checkout_report(tmp_path)
    memo = build_memo(report)
    rows = {t.metric: t for t in memo.metric_thresholds}
    assert list(rows) == ["checkout_seconds", "conversions", "cancel", "load_ms"]
    # Relative margins are shown with the control value they amount to: 1% and 3% of 40 s, 1% and 5% of 820 ms.
    seconds = rows["checkout_seconds"]
    assert (seconds.role, seconds.better, seconds.better_default) == ("primary", "lower", False)
    assert (seconds.margin, seconds.margin_default, seconds.severe, seconds.severe_default) == \
        ("1% (0.4)", True, "3% (1.2)", True)
    conversions = rows["conversions"]
    assert (conversions.role, conversions.better, conversions.better_default) == ("secondary", "higher", True)
    assert (conversions.margin, conversions.severe) == ("0.10 pp", "0.30 pp")
    cancel = rows["cancel"]
    assert (cancel.role, cancel.better, cancel.better_default, cancel.margin, cancel.severe) == \
        ("guardrail", "lower", True, "0.10 pp", "0.30 pp")
    load = rows["load_ms"]
    assert (load.better, load.better_default, load.margin, load.margin_default, load.severe, load.severe_default) == \
        ("lower", False, "1% (8.2)", False, "5% (41)", False)
    markdown = render_markdown(memo)
    assert "| load_ms | guardrail | lower | 1% (8.2) | 5% (41) |" in markdown
    assert "| cancel | guardrail | lower (default) | 0.10 pp (default) | 0.30 pp (default) |" in markdown
    assert "| checkout_seconds | primary | lower | 1% (0.4) (default) | 3% (1.2) (default) |" in markdown
    html = render_html(memo)
    assert "higher*" in html and "* default (not set in the policy)" in html
    general = dict(memo.thresholds)
    assert general["Significance level α (two-sided)"] == "0.05"
    assert general["SRM warning / blocked when p <"] == "0.001 / 0.00001"  # never 1e-05 (issue 11)
    assert general["Expected split"] == "equal (2 arms)"
    assert general["Non-inferiority of guardrails for launch"] == "not required"
    assert general["Guardrail harm p-values"] == "Holm across an arm's guardrails"
    assert not any("worsened above" in name or "severe above" in name for name in general)


def test_guardrail_rows_show_their_own_margin_and_the_harm_upper_bound(tmp_path: Path) -> None:
    report = _checkout_report(tmp_path)
    memo = build_memo(report)
    guardrails = {g["metric"]: g for g in report["comparisons"][0]["guardrails"]}
    rows = {g.metric: g for g in memo.guardrails}
    assert rows["load_ms"].margin == "1% (8.2)" and rows["load_ms"].severe == "5% (41)"
    assert rows["load_ms"].harm_upper == f"{guardrails['load_ms']['harm_ci'][1]:+,.4g}" == "+11.98"
    assert rows["cancel"].harm_upper == f"{guardrails['cancel']['harm_ci'][1] * 100:+.2f} pp"
    assert rows["cancel"].p_value == format_p(guardrails['cancel']['p_value_adjusted'])
    assert [g.status for g in memo.guardrails] == [g["status"] for g in guardrails.values()]


def test_memo_chart_draws_each_guardrail_against_its_own_margin(tmp_path: Path) -> None:
    report = _checkout_report(tmp_path)
    memo = build_memo(report)
    guardrails = {g["metric"]: g for g in report["comparisons"][0]["guardrails"]}
    chart = {row.label: row for row in memo.guardrail_chart}
    load, cancel = guardrails["load_ms"], guardrails["cancel"]
    # Harm in multiples of the margin: ms and pp on one axis; the severe margin at severe ÷ margin.
    assert chart["load_ms"].high == pytest.approx(load["harm_ci"][1] / (0.01 * 820.0))
    assert chart["load_ms"].low == pytest.approx(load["harm_ci"][0] / (0.01 * 820.0))
    assert chart["load_ms"].severe == pytest.approx(5.0)
    assert chart["cancel"].value == pytest.approx(cancel["harm"] / 0.001)
    assert chart["cancel"].severe == pytest.approx(3.0)
    svg = effect_chart_svg(memo)
    assert svg is not None and "lower is better" in svg and "× margin" in svg and "pp / units" not in svg


def test_lower_is_better_launch_says_lowered(tmp_path: Path) -> None:
    report = _checkout_report(tmp_path)
    primary = report["comparisons"][0]["primary"]
    assert report["decision"]["outcome"] == "launch" and primary["better"] == "lower"
    assert primary["absolute_effect"] == pytest.approx(36.0 - 40.0)
    memo = build_memo(report)
    low, high = primary["relative_ci"]
    assert memo.conclusion == (f"Treatment lowered checkout_seconds by 4 (-10.0%, 95% CI {low:+.1%} to {high:+.1%}); "
                               "ship it.")
    assert "raised" not in memo.conclusion
    # The report's Bayesian probability is already in the declared direction: here P(treatment < control).
    assert primary["bayesian"]["prob_treatment_better"] > 0.999
    assert memo.evidence[0].prob_better == "> 99.9%"
    assert "checkout_seconds: lower is better." in render_markdown(memo)


def test_lower_is_better_metric_that_rose_rolls_back_saying_raised(tmp_path: Path) -> None:
    report = _checkout_report(tmp_path, seconds=44.0)
    assert report["decision"]["rule"] == "primary_worse"
    memo = build_memo(report)
    assert memo.conclusion.startswith("Treatment raised checkout_seconds by 4 (+10.0%")
    assert memo.conclusion.endswith("the wrong way (lower is better); roll it back.")
    assert memo.evidence[0].prob_better == "< 0.1%"


def test_guardrail_unproven_holds_with_the_sample_that_would_settle_it(tmp_path: Path) -> None:
    report = _checkout_report(tmp_path, require_non_inferiority=True)
    assert report["decision"]["rule"] == "guardrail_unproven"
    memo = build_memo(report)
    assert memo.rule_title == RULE_TITLES["guardrail_unproven"] == "Rule 6b — a guardrail is not shown non-inferior"
    assert memo.conclusion.startswith("Treatment lowered checkout_seconds by 4 (-10.0%")
    assert "but the cancel and load_ms guardrails are not yet shown non-inferior" in memo.conclusion
    assert memo.next_actions[0].startswith("Keep the experiment running until every guardrail is shown non-inferior")
    reasons = " ".join(report["decision"]["reasons"])
    needed = [int(n.replace(",", "")) for n in re.findall(r"about ([\d,]+) users in total", reasons)]
    assert len(needed) == 2
    assert memo.next_actions[1].startswith(f"About {max(needed):,} users in total")
    assert dict(memo.thresholds)["Non-inferiority of guardrails for launch"] == "required (rule 6b)"


def test_risks_come_from_the_report(tmp_path: Path) -> None:
    report = _report("sample_inconclusive.csv")
    cancel = next(g for g in report["comparisons"][0]["guardrails"] if g["metric"] == "cancel")
    assert cancel["status"] == "inconclusive"
    upper = f"{cancel['harm_ci'][1] * 100:+.2f} pp"
    assert upper == "+0.20 pp"
    memo = build_memo(report)
    assert memo.risks[: len(report["risks"])] == tuple(report["risks"])
    assert any(f"a harm up to {upper} cannot be ruled out (margin 0.10 pp)" in risk for risk in memo.risks)
    # The memo adds what only it knows (the charter) after the report's risks, and never its own
    # guardrail sentences ("within the tolerated threshold" was the bug).
    mine = build_memo({**report, "risks": ["A risk only analytics knows."]}, charter=Charter(planned_sample=80_000))
    assert mine.risks == ("A risk only analytics knows.",
                          "Under-powered: 40,100 users analysed vs 80,000 planned in the charter (50%).")
    markdown = render_markdown(build_memo(report))
    assert "tolerated threshold" not in markdown and "a harm above" not in markdown


def test_multi_arm_evidence_shows_simultaneous_ci_beside_the_adjusted_p() -> None:
    report = _report("sample_multi_arm.csv")
    memo = build_memo(report)
    for row, comparison in zip(memo.evidence, report["comparisons"], strict=True):
        low, high = comparison["primary"]["ci_simultaneous"]
        assert row.simultaneous == f"[{low * 100:+.2f}, {high * 100:+.2f}] pp"
        assert row.p_value == format_p(comparison["primary"]["p_value_adjusted"])
    html = render_html(memo)
    assert "<th>Simultaneous CI</th>" in html and "Bonferroni at 1 − α/2" in html
    assert "Holm-adjusted across 2 arms" in html


def test_sparse_counts_show_fishers_exact_p(tmp_path: Path) -> None:
    path = tmp_path / "sparse.csv"
    path.write_text("variant,users,conversions,guardrail_cancel\ncontrol,400,4,10\ntreatment,400,16,9\n")
    report = report_json(analyze_path(path, AnalysisRequest()))
    exact = report["comparisons"][0]["primary"]["p_value_exact"]
    assert exact is not None
    memo = build_memo(report)
    assert memo.evidence[0].p_exact == format_p(exact)
    markdown = render_markdown(memo)
    assert "| p exact |" in markdown and f"| {format_p(exact)} |" in markdown
    assert "Fisher's exact test" in markdown


def test_a_schema_1_report_still_renders(tmp_path: Path) -> None:
    old = _as_schema_1(_report("sample_inconclusive.csv"))
    memo = build_memo(old)
    assert memo.rules_version == 1
    assert dict(memo.thresholds)["Rules version"] == "1 (one margin for every guardrail)"
    rows = {t.metric: t for t in memo.metric_thresholds}
    # v1 judged every guardrail against the policy's two absolute thresholds.
    assert (rows["cancel"].better, rows["cancel"].margin, rows["cancel"].severe) == ("lower", "0.10 pp", "0.30 pp")
    assert (rows["conversions"].better, rows["conversions"].margin) == ("higher", "—")
    cancel = next(g for g in old["comparisons"][0]["guardrails"] if g["metric"] == "cancel")
    assert [g.harm_upper for g in memo.guardrails if g.metric == "cancel"] == \
        [f"{cancel['absolute_ci'][1] * 100:+.2f} pp"]
    assert memo.risks[0] == (f"Guardrail cancel is inconclusive: a harm up to {cancel['absolute_ci'][1] * 100:+.2f} pp "
                             "cannot be ruled out (threshold 0.10 pp).")
    for fmt in ("md", "html"):
        text = render_report(old, fmt)
        assert isinstance(text, str) and "HOLD" in text and "INCONCLUSIVE" in text
    pdf = render_report(old, "pdf")
    assert isinstance(pdf, bytes) and _pages(pdf) == 1
    assert _overprinted_words(pdf, tmp_path) == []


# --- issue 11: layout under stress, the rule said once, roles and users, trust signals ----------

STRESS_GUARDRAILS = LONG_GUARDRAILS
STRESS_NOTES = ("Line one of the notes.\nReviewed with the PM and the payments team; " * 100)[:4000]


def _stress_report(tmp_path: Path, *, arms: int = 1, name: str = "stress", hypothesis: str | None = None
                   ) -> dict[str, Any]:
    """Six guardrails, all INCONCLUSIVE: equal guardrail counts in every arm of 20,000 users (the
    harm CI of ±0.24 pp reaches past the 0.10 pp margin)."""
    header = "variant,users,conversions," + ",".join(f"guardrail_{g}" for g in STRESS_GUARDRAILS)
    variants = ["control", *(["treatment"] if arms == 1 else [f"treatment_{c}" for c in "abc"[:arms]])]
    rows = [f"{v},20000,{2400 + 90 * i}," + ",".join("300" for _ in STRESS_GUARDRAILS) for i, v in enumerate(variants)]
    path = tmp_path / f"stress_{arms}.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return report_json(analyze_path(path, AnalysisRequest(charter=Charter(name=name, hypothesis=hypothesis))))


STRESS_CASES = {
    "six_inconclusive": {"arms": 1, "name": "Six guardrails, all inconclusive"},
    "four_arms": {"arms": 3, "name": f"{KOREAN} — 4 arms"},
    "long_text": {"arms": 1, "name": ("N" * 120 + " " + "long experiment name " * 4)[:200],
                  "hypothesis": ("A bigger banner raises conversion because users see the offer " * 4)[:200]},
    "korean": {"arms": 1, "name": KOREAN, "hypothesis": ("홈화면 배너를 키우면 전환율이 오른다 " * 10)[:200]},
}


@pytest.mark.parametrize("case", sorted(STRESS_CASES))
def test_stress_memos_are_one_a4_page_without_overprinting(case: str, tmp_path: Path) -> None:
    """Issue 11's layout test: 6 INCONCLUSIVE guardrails, 4 arms, 200-character names and hypotheses,
    4,000-character notes, Korean. The PDF is one A4 page and no two words' boxes overlap."""
    options = STRESS_CASES[case]
    report = _stress_report(tmp_path, **options)
    statuses = [g["status"] for c in report["comparisons"] for g in c["guardrails"]]
    assert statuses == ["inconclusive"] * 6 * options["arms"]
    long_owner = "Owner " * 33 + "O" if case == "long_text" else "Growth"
    memo = build_memo(report, charter=Charter(owner=long_owner, planned_sample=250_000, mde="+5% relative"),
                      notes=STRESS_NOTES)
    pdf = render_pdf(memo)
    assert _pages(pdf) == 1
    reader = PdfReader(io.BytesIO(pdf))
    width, height = (float(v) for v in reader.pages[0].mediabox.upper_right)
    assert (round(width * 25.4 / 72), round(height * 25.4 / 72)) == (210, 297)  # A4 in mm
    assert _overprinted_words(pdf, tmp_path) == []
    text = re.sub(r"\s+", "", _pdf_text(pdf, tmp_path))
    # The notes are cut in the PDF with a visible marker, never spilled onto a second page…
    assert re.sub(r"\s+", "", NOTES_MARKER) in text
    assert "Lineoneofthenotes." in text
    # …and stay whole in the Markdown, line breaks included.
    markdown = render_markdown(memo)
    assert "Line one of the notes.  \nReviewed with the PM" in markdown
    assert markdown.count("Reviewed with the PM") == STRESS_NOTES.count("Reviewed with the PM")
    assert text.count("INCONCLUSIVE") >= 6
    if case == "four_arms":
        # One column per arm: six rows, not 18; the chart draws the winner's guardrails only.
        assert len(memo.guardrail_matrix) == 6 and all(len(r.cells) == 3 for r in memo.guardrail_matrix)
        assert memo.chart_arm == report["decision"]["winner"] == "treatment_c"
        assert [r.label for r in memo.guardrail_chart] == list(STRESS_GUARDRAILS)
        assert "equal(4arms)" in text and "33/33" not in text
        for arm in ("treatment_a", "treatment_b", "treatment_c"):
            assert f"{arm}:harmupto" in text
    if case == "korean":
        assert KOREAN.replace(" ", "") in text
    if case == "long_text":
        assert "N" * 50 in text and "longexperimentname" in text  # the badge may sit between the title's lines


def test_the_rule_title_is_said_once(tmp_path: Path) -> None:
    report = _report("sample_launch.csv")
    reason = report["decision"]["reasons"][0]
    assert reason.startswith("The primary metric is significantly better in treatment: ")
    memo = build_memo(report)
    assert memo.why[0] == "Rule 6 — the primary metric is significantly better in treatment: " + reason.split(": ", 1)[1]
    html = render_html(memo)
    rule_line = re.search(r'<p class="rule">(.*?)</p>', html, re.S).group(1)  # type: ignore[union-attr]
    assert rule_line.lower().count("significantly better") == 1
    markdown = render_markdown(memo)
    assert markdown.lower().count("the primary metric is significantly better") == 1
    # A multi-arm reason carries its arm tag; the merged sentence names the arm already.
    multi = build_memo(_report("sample_multi_arm.csv"))
    assert multi.why[0].startswith("Rule 6 — the primary metric is significantly better in treatment_b: ")
    assert not any("[treatment_b] The primary metric" in sentence for sentence in multi.why)
    # A title no reason restates leads, with its own full stop.
    inconclusive = build_memo(_report("sample_inconclusive.csv"))
    assert inconclusive.why[0] == "Rule 7 — inconclusive."
    srm = build_memo(_report("sample_srm_warning.csv"))
    assert srm.why[0].startswith("Rule 2 — sample ratio mismatch (p = ")


def test_evidence_marks_roles_and_shows_users_per_arm() -> None:
    report = _report("sample_continuous.csv")
    comparison = report["comparisons"][0]
    memo = build_memo(report)
    roles = [(row.metric, row.role) for row in memo.evidence]
    expected = [(comparison["primary"]["metric"], "primary"), *((m["metric"], "secondary") for m in comparison["secondary"])]
    assert roles == expected and len(roles) >= 2
    primary = comparison["primary"]
    assert memo.evidence[0].control_n == format_count(primary["control"]["n"]) == "20,000"
    assert memo.evidence[0].treatment_n == format_count(primary["treatment"]["n"])
    html = render_html(memo)
    assert '<span class="role primary">primary</span>' in html and '<span class="role secondary">secondary</span>' in html
    assert f"{memo.evidence[0].control_n} / {memo.evidence[0].treatment_n}" in html
    markdown = render_markdown(memo)
    assert f"| {primary['metric']} (primary) | {memo.evidence[0].control_n} / {memo.evidence[0].treatment_n} |" in markdown


def test_untrustworthy_holds_look_different_from_an_inconclusive_hold(tmp_path: Path) -> None:
    srm_report = _report("sample_srm_warning.csv")
    srm = build_memo(srm_report)
    assert srm.badge == "HOLD — SAMPLE RATIO MISMATCH" and srm.untrusted == "not trustworthy: sample ratio mismatch"
    prob = srm.evidence[0].prob_better
    html = render_html(srm)
    assert 'class="badge hold blocked"' in html and "HOLD — SAMPLE RATIO MISMATCH" in html
    assert 'class="evidence untrusted' in html and f"<s>{prob}</s>" in html
    assert "Not trustworthy: sample ratio mismatch. These effects are shown for investigation only" in html
    markdown = render_markdown(srm)
    assert "**Decision: HOLD — SAMPLE RATIO MISMATCH**" in markdown and f"~~{prob}~~" in markdown
    assert "**Not trustworthy: sample ratio mismatch.**" in markdown
    svg = effect_chart_svg(srm)
    assert svg is not None and "NOT TRUSTWORTHY" in svg
    text = _pdf_text(render_pdf(srm), tmp_path)
    assert "HOLD — SAMPLE RATIO MISMATCH" in text and "Not trustworthy" in text

    path = tmp_path / "bad.csv"
    path.write_text("variant,users,conversions\ncontrol,100,120\ntreatment,100,12\n")
    blocked = build_memo(report_json(analyze_path(path, AnalysisRequest())))
    assert blocked.badge == "HOLD — DATA BLOCKED"
    assert 'class="badge hold blocked"' in render_html(blocked)

    inconclusive = build_memo(_report("sample_inconclusive.csv"))
    assert inconclusive.badge == "HOLD" and inconclusive.untrusted is None
    html = render_html(inconclusive)
    assert 'class="badge hold"' in html and 'class="evidence untrusted' not in html and "<s>" not in html


def test_markdown_keeps_identifiers_and_comparisons_readable() -> None:
    memo = build_memo(_report("sample_launch.csv", name="sample_srm_warning <b>x</b> & co"),
                      notes="first line\nsecond line with *stars*")
    markdown = render_markdown(memo)
    assert "# sample_srm_warning &lt;b&gt;x&lt;/b&gt; & co" in markdown or \
        "# sample_srm_warning &lt;b>x&lt;/b> & co" in markdown
    assert "p < 0.0001" in markdown or "p = " in markdown
    assert "&lt; 0" not in markdown and "sample\\_srm" not in markdown
    assert "first line  \nsecond line with \\*stars\\*" in markdown


def test_preview_frame_is_one_a4_page_tall() -> None:
    from dashapp.pages.memo import PREVIEW_STYLE

    assert PREVIEW_STYLE["aspectRatio"] == "210 / 297" and PREVIEW_STYLE["height"] == "auto"
