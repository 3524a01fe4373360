"""User-level analysis at scale: 10M users, Parquet and CSV.

Generates (with DuckDB) a file of one row per user with a primary metric (`converted`),
two guardrails, `revenue` with its pre-period covariate `pre_revenue`, and three segment
columns; then, in the same run and each in its own process, times:
  - the full analysis (`experimentos analyze FILE` in-process via the services layer, and
    the CLI end to end),
  - the floor: one bare DuckDB aggregate scan of the same file (count, sum and sum of
    squares of every metric and the revenue × pre_revenue cross-product) at the grain the
    analysis needs, variant × segments; the same scan by variant only is printed too,
  - a pandas baseline (read the file, groupby variant and each segment).
It prints wall time (median of --repeat fresh processes for the floor and the full analysis),
ratios and each process's peak RSS (sampled every 10 ms).

    .venv/bin/python benchmarks/user_level_bench.py [--users 10000000] [--formats parquet,csv]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import psutil

ROOT = Path(__file__).resolve().parent.parent

GENERATE = """
COPY (
    SELECT
        variant,
        pre_revenue,
        (u1 < (CASE WHEN variant = 'treatment' THEN 0.123 ELSE 0.12 END))::INTEGER AS converted,
        (u2 < 0.010)::INTEGER AS guardrail_error,
        (u3 < 0.005)::INTEGER AS guardrail_refund,
        greatest(0, 0.8 * pre_revenue + 4 * sqrt(-2 * ln(1 - u4)) * cos(2 * pi() * u5)
                 + CASE WHEN variant = 'treatment' THEN 0.05 ELSE 0 END) AS revenue,
        ['KR', 'JP', 'US'][1 + (i % 3)::INTEGER] AS segment_country,
        ['ios', 'android'][1 + ((i // 3) % 2)::INTEGER] AS segment_platform,
        ['new', 'returning', 'heavy'][1 + ((i // 7) % 3)::INTEGER] AS segment_tier
    FROM (
        SELECT i, CASE WHEN random() < 0.5 THEN 'control' ELSE 'treatment' END AS variant,
               -10 * ln(1 - random()) AS pre_revenue,
               random() AS u1, random() AS u2, random() AS u3, random() AS u4, random() AS u5
        FROM range({users}) t(i)
    )
) TO '{path}' ({options})
"""

FULL = """
import time, sys
started = time.perf_counter()
from dashapp.services import AnalysisRequest, analyze_path
imported = time.perf_counter()
report = analyze_path(sys.argv[1], AnalysisRequest(primary="revenue"))
done = time.perf_counter()
assert report.input.kind == "user_level" and report.comparisons, report.health
print(f"{done - imported:.3f} {imported - started:.3f} {len(report.segments)}")
"""

FLOOR = """
import time, sys
started = time.perf_counter()
import duckdb
imported = time.perf_counter()
source = "read_parquet(?)" if sys.argv[1].endswith(".parquet") else "read_csv(?)"
keys = sys.argv[2]
metrics = ["converted", "guardrail_error", "guardrail_refund", "revenue", "pre_revenue"]
aggregates = ", ".join(f"sum({m}), sum({m} * {m})" for m in metrics) + ", sum(revenue * pre_revenue)"
connection = duckdb.connect()
connection.execute("SET enable_progress_bar = false")  # it would print on stdout after 2 s
rows = connection.execute(f"SELECT {keys}, count(*), {aggregates} FROM {source} GROUP BY ALL",
                          [sys.argv[1]]).fetchall()
done = time.perf_counter()
assert len(rows) >= 2
print(f"{done - imported:.3f} {imported - started:.3f} 0")
"""

# The floor groups at the grain the analysis needs (variant × the three segments: 36 groups);
# the variant-only scan is printed for reference (it cannot give segment breakdowns).
GRAIN = "variant, segment_country, segment_platform, segment_tier"

PANDAS = """
import time, sys
started = time.perf_counter()
import pandas as pd
imported = time.perf_counter()
frame = pd.read_parquet(sys.argv[1]) if sys.argv[1].endswith(".parquet") else pd.read_csv(sys.argv[1])
metrics = ["converted", "guardrail_error", "guardrail_refund", "revenue", "pre_revenue"]
overall = frame.groupby("variant")[metrics].agg(["count", "mean", "var"])
cross = frame.groupby("variant")[["revenue", "pre_revenue"]].cov()
segments = [frame.groupby(["variant", s])[metrics].agg(["count", "mean", "var"])
            for s in ("segment_country", "segment_platform", "segment_tier")]
done = time.perf_counter()
print(f"{done - imported:.3f} {imported - started:.3f} {sum(len(s) for s in segments)}")
"""


def run(script: str, path: Path, *arguments: str) -> tuple[float, float, float]:
    """(work seconds, wall seconds, peak RSS MB) of a script in its own process."""
    started = time.perf_counter()
    process = psutil.Popen([sys.executable, "-c", textwrap.dedent(script), str(path), *arguments], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(stderr[-2000:])
    work = float(stdout.split()[0])
    return work, wall, peak / 2**20


def median_run(script: str, path: Path, repeat: int, *arguments: str) -> tuple[float, float, float]:
    """The run with the median work time out of ``repeat`` (each in a fresh process)."""
    runs = sorted((run(script, path, *arguments) for _ in range(repeat)), key=lambda r: r[0])
    return runs[len(runs) // 2]


def cli(path: Path) -> tuple[float, float]:
    started = time.perf_counter()
    process = psutil.Popen([sys.executable, "-m", "dashapp.cli", "analyze", str(path), "--primary", "revenue"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.01)
    return time.perf_counter() - started, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000_000)
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the floor and the full analysis (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        for file_format in args.formats.split(","):
            path = Path(folder) / f"users.{file_format}"
            options = "FORMAT parquet" if file_format == "parquet" else "FORMAT csv, HEADER"
            started = time.perf_counter()
            with duckdb.connect() as connection:
                connection.execute(GENERATE.format(users=args.users, path=path, options=options))
            print(f"\n{args.users:,} users as {file_format}: {path.stat().st_size / 2**20:.0f} MB "
                  f"(generated in {time.perf_counter() - started:.1f} s)")
            # Fresh processes, median of --repeat runs (one run of a ~0.3 s scan is noisy); pandas,
            # twenty times slower, runs once.
            results = {"floor": median_run(FLOOR, path, args.repeat, GRAIN),
                       "floor by variant only": median_run(FLOOR, path, args.repeat, "variant"),
                       "full": median_run(FULL, path, args.repeat), "pandas": run(PANDAS, path)}
            cli_wall, cli_peak = cli(path)
            floor = results["floor"][0]
            for name, (work, wall, peak) in results.items():
                print(f"  {name:22s} work {work:6.2f} s  ({work / floor:5.2f}x floor)   process wall {wall:6.2f} s   "
                      f"peak RSS {peak:5.0f} MB")
            print(f"  CLI end to end {cli_wall:6.2f} s (interpreter, imports, scan, JSON)   peak RSS {cli_peak:5.0f} MB")
            print(f"  full analysis is {results['full'][0] / floor:.2f}x the floor "
                  f"({results['full'][0] / results['floor by variant only'][0]:.2f}x the variant-only scan) and "
                  f"{results['pandas'][0] / results['full'][0]:.1f}x faster than pandas")

if __name__ == "__main__":
    main()
