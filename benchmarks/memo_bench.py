"""Median time to render the memo as Markdown, HTML and PDF (WeasyPrint), per sample file.

    .venv/bin/python benchmarks/memo_bench.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from analytics import Charter
from dashapp.memo import build_memo, render_html, render_markdown, render_pdf
from dashapp.services import AnalysisRequest, analyze_path, report_json

DATA = Path(__file__).resolve().parent.parent / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    reports = [report_json(analyze_path(p, AnalysisRequest(charter=Charter(
                   name="홈화면 배너 A/B 테스트", primary_metric="revenue" if "continuous" in p.name else None))))
               for p in sorted(DATA.glob("sample_*.csv"))]
    memos = [build_memo(r) for r in reports]
    render_pdf(memos[0], reports[0]["policy"])  # warm-up: imports, font discovery
    timings: dict[str, list[float]] = {"markdown": [], "html": [], "pdf": []}
    for _ in range(args.repeats):
        for memo, report in zip(memos, reports, strict=True):
            for kind, function in (("markdown", lambda m=memo: render_markdown(m)),
                                   ("html", lambda m=memo, r=report: render_html(m, r["policy"])),
                                   ("pdf", lambda m=memo, r=report: render_pdf(m, r["policy"]))):
                started = time.perf_counter()
                function()
                timings[kind].append(time.perf_counter() - started)
    print(f"{len(memos)} sample memos x {args.repeats} repeats (after one warm-up render)")
    for kind, values in timings.items():
        ordered = sorted(values)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        print(f"{kind:9s} median {statistics.median(values) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
