"""The memo in all three formats: content, one A4 page, CJK glyphs, safety, and a look at the page."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from analytics import DEFAULT_POLICY
from dashapp.memo import Charter, SafeURLFetcher, build_memo, render_html, render_markdown, render_pdf, render_report
from dashapp.services import AnalysisRequest, analyze_path, report_json
from tests.conftest import DATA, assert_clean_json, run_cli

SAMPLES = sorted(p.name for p in DATA.glob("sample_*.csv"))
KOREAN = "홈화면 배너 A/B 테스트"


def _report(sample: str, **request: Any) -> dict[str, Any]:
    extra = {"primary": "revenue"} if "continuous" in sample else {}
    return report_json(analyze_path(DATA / sample, AnalysisRequest(**{**extra, **request})))


def _pdf_text(content: bytes, tmp_path: Path) -> str:
    path = tmp_path / "memo.pdf"
    path.write_bytes(content)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_memo_in_three_formats(name: str, tmp_path: Path) -> None:
    report = _report(name, name=f"{KOREAN} 実験 实验 Café")
    outcome = report["decision"]["outcome"].upper()
    markdown = render_report(report, "md")
    html = render_report(report, "html")
    pdf = render_report(report, "pdf")
    assert isinstance(markdown, str) and isinstance(html, str) and isinstance(pdf, bytes)
    for text in (markdown, html):
        assert outcome in text
        assert "0.1 pp" in text and "0.3 pp" in text and "1e-05" in text  # thresholds used
        assert report["input"]["sha256"] in text
    if report["comparisons"]:
        p_value = report["comparisons"][0]["primary"]["p_value_adjusted"]
        shown = "&lt; 0.0001" if p_value < 1e-4 else f"{p_value:.4f}"
        assert shown in html
    assert pdf.startswith(b"%PDF")
    assert len(PdfReader(__import__("io").BytesIO(pdf)).pages) == 1
    text = _pdf_text(pdf, tmp_path)
    assert KOREAN in text and "実験" in text and "实验" in text and "Café" in text
    assert outcome in text


def test_memo_with_six_guardrails_and_long_notes_stays_on_one_page(tmp_path: Path) -> None:
    header = "variant,users,conversions," + ",".join(f"guardrail_g{i}" for i in range(6))
    rows = ["control,50000,6000," + ",".join("600" for _ in range(6)),
            "treatment,50100,6300," + ",".join(str(600 + 40 * i) for i in range(6))]
    path = tmp_path / "six.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    report = report_json(analyze_path(path, AnalysisRequest(name=KOREAN)))
    charter = Charter(hypothesis="A bigger banner raises conversion " * 4, primary_metric="conversions",
                      mde="+5% relative", planned_sample=150_000)
    pdf = render_pdf(build_memo(report, charter=charter, notes="Reviewed with the PM. " * 40), report["policy"])
    assert len(PdfReader(__import__("io").BytesIO(pdf)).pages) == 1
    text = _pdf_text(pdf, tmp_path)
    assert "Under-powered" in text


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
    assert time.perf_counter() - started < 5
    assert all(url.startswith("data:") for url in spy.requested), spy.requested
    assert spy.refused == []
    reader = PdfReader(__import__("io").BytesIO(pdf))
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


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is installed by make test")
@pytest.mark.parametrize("name", SAMPLES)
def test_pdf_page_renders_to_a_non_blank_png(name: str, tmp_path: Path) -> None:
    from PIL import Image

    pdf = render_report(_report(name), "pdf")
    assert isinstance(pdf, bytes)
    (tmp_path / "memo.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(tmp_path / "memo.pdf"),
                    str(tmp_path / "page")], check=True)
    image = Image.open(next(tmp_path.glob("page*.png"))).convert("L")
    histogram = image.histogram()
    dark = sum(histogram[:128]) / sum(histogram)
    assert 0.01 < dark < 0.5, f"{name}: {dark:.3f} of the page is dark"
    extremes = image.getextrema()
    assert extremes[0] < 60 and extremes[1] > 240


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
