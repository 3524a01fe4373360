"""A 365-day × 4-arm daily export analysed in-process, timeline included (issue 13's target: ≤ 0.25 s).

    .venv/bin/python benchmarks/timeline_bench.py [--days 365] [--arms 4] [--repeat 5]

Prints the median wall time of the whole analysis (split, totals, every day's cumulative
validation and comparison, per-day SRM, report JSON) and, for scale, of DuckDB reading the same
file alone, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashapp.services import AnalysisRequest, analyze_path, report_json
from storage.ingest import FileReader


def write_daily(path: Path, days: int, arms: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    names = ["control", *(f"treatment_{i}" for i in range(1, arms))]
    lines = ["date,variant,users,conversions,guardrail_error,revenue_sum,revenue_sum_sq"]
    for day in range(days):
        date = np.datetime64("2026-01-01") + day
        for name in names:
            users = int(rng.integers(900, 1100))
            conversions = int(rng.binomial(users, 0.1))
            revenue = rng.gamma(2.0, 10.0, conversions)
            lines.append(f"{date},{name},{users},{conversions},{int(rng.binomial(users, 0.01))},"
                         f"{revenue.sum():.4f},{(revenue ** 2).sum():.4f}")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--arms", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, FileReader() as reader:
        daily = Path(folder) / "daily.csv"
        write_daily(daily, args.days, args.arms)
        report = report_json(analyze_path(daily, AnalysisRequest(), reader=reader))
        assert len(report["timeline"]) == args.days * (args.arms - 1), "every day should be on the timeline"
        timings: dict[str, list[float]] = {"daily export, timeline included": [], "file read only": []}
        for _ in range(args.repeat):
            started = time.perf_counter()
            report_json(analyze_path(daily, AnalysisRequest(), reader=reader))
            timings["daily export, timeline included"].append(time.perf_counter() - started)
            started = time.perf_counter()
            reader.read_path(daily)
            timings["file read only"].append(time.perf_counter() - started)
    print(f"{args.days} days × {args.arms} arms, median of {args.repeat} runs in one process:")
    for name, values in timings.items():
        print(f"  {name:34s} {statistics.median(values) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
