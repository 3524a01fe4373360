"""User-level analysis at scale (10M users by default): our whole CLI process against its floor, in one run.

Generates (with DuckDB, into a temporary folder under /tmp or $BENCH_TMP, never the repository)
a file of one row per user: unique integer ``user_id``, ``variant``, a primary metric
(``converted``), two guardrails, ``revenue`` with its CUPED covariate ``pre_revenue`` and three
segment columns. Then, each in fresh processes, interleaved, median of --repeat runs:

  - the floor: one DuckDB ``GROUP BY ALL`` of the same sufficient statistics (count, sum and
    sum of squares of every metric and the revenue × pre_revenue cross-product, at the grain the
    analysis needs: variant × segments) plus the user-id uniqueness check (a bitmap of the ids,
    ``bitstring_agg``, over the id range the scan returns), as a whole process: interpreter,
    ``import duckdb``, both queries;
  - ours: the whole CLI process, ``experimentos analyze FILE --primary revenue --format json``
    (interpreter, imports, any worker process it starts, the scan, the report);
  - for reference, the analysis inside an already started process (``analyze_path``), without
    start-up; and pandas (``--pandas``; it needs ~3 GB at 10M users).

It prints wall times and peak memory (the process and its children, sampled every 10 ms) with the
ratios against the floor: targets ≤ 1.5× in time, ≤ 1.2× in peak memory. Memory is given two
ways: the sum of RSS, which counts twice every page the CLI shares with the worker it forked
(the interpreter, NumPy, SciPy, DuckDB's code), and the sum of PSS (proportional set size: a
shared page counted once, split among the processes sharing it), which is the memory the tree
really holds. For the one-process floor the two are the same thing.

    .venv/bin/python benchmarks/user_level_bench.py [--users 10000000] [--formats parquet,csv] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import psutil
from bytecode import byte_compile

ROOT = Path(__file__).resolve().parent.parent
TIME_TARGET, MEMORY_TARGET = 1.5, 1.2

GENERATE = """
COPY (
    SELECT
        i + 1000000 AS user_id,
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

# The floor: what any exact analysis must at least do — the sufficient statistics at the grain
# the report needs (variant × the three segments: 36 groups) and the proof that no user id repeats.
FLOOR = """
import sys
import duckdb
source = "read_parquet(?)" if sys.argv[1].endswith(".parquet") else "read_csv(?)"
metrics = ["converted", "guardrail_error", "guardrail_refund", "revenue", "pre_revenue"]
aggregates = ", ".join(f"sum({m}), sum({m} * {m})" for m in metrics) + ", sum(revenue * pre_revenue)"
connection = duckdb.connect()
connection.execute("SET enable_progress_bar = false")
if len(sys.argv) > 2:
    connection.execute(f"SET threads = {int(sys.argv[2])}")
rows = connection.execute(
    f"SELECT variant, segment_country, segment_platform, segment_tier, count(*), {aggregates}, "
    f"min(user_id), max(user_id) FROM {source} GROUP BY ALL", [sys.argv[1]]).fetchall()
low, high = min(r[-2] for r in rows), max(r[-1] for r in rows)
ids = connection.execute(f"SELECT bit_count(bitstring_agg(user_id, {low}, {high})), count(user_id) FROM {source}",
                         [sys.argv[1]]).fetchone()
assert len(rows) >= 2 and ids is not None and ids[0] == ids[1]
"""

IN_PROCESS = """
import time, sys
from analytics import Charter
from analytics.distributions import special_functions
from dashapp.services import AnalysisRequest, analyze_path
special_functions()  # imported at start-up, as the CLI does while its worker reads
started = time.perf_counter()
report = analyze_path(sys.argv[1], AnalysisRequest(charter=Charter(primary_metric="revenue")))
done = time.perf_counter()
assert report.input.kind == "user_level" and report.comparisons, report.health
print(f"{done - started:.3f}")
"""

PANDAS = """
import time, sys
import pandas as pd
started = time.perf_counter()
frame = pd.read_parquet(sys.argv[1]) if sys.argv[1].endswith(".parquet") else pd.read_csv(sys.argv[1])
metrics = ["converted", "guardrail_error", "guardrail_refund", "revenue", "pre_revenue"]
overall = frame.groupby("variant")[metrics].agg(["count", "mean", "var"])
cross = frame.groupby("variant")[["revenue", "pre_revenue"]].cov()
segments = [frame.groupby(["variant", s])[metrics].agg(["count", "mean", "var"])
            for s in ("segment_country", "segment_platform", "segment_tier")]
unique = frame["user_id"].is_unique
print(f"{time.perf_counter() - started:.3f}")
"""


def measure(command: list[str], threads: int | None = None, *, memory: bool = False
            ) -> tuple[float, float, float, str]:
    """(wall seconds, peak RSS MB and peak PSS MB of the process and its children, standard
    output) of one process; ``threads``: DuckDB's in the CLI's worker (the floor takes its own
    as an argument). The peaks are sampled only with ``memory`` (0 otherwise): reading every
    process's ``smaps`` each 10 ms takes CPU from the measured processes on a 2-core machine,
    so times come from runs without the sampler."""
    started = time.perf_counter()
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads is not None:
        environment["EXPERIMENTOS_WORKER_THREADS"] = str(threads)
        environment["EXPERIMENTOS_DUCKDB_THREADS"] = str(threads)
    process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    peak = peak_pss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_pss
        while not done.is_set():
            try:
                tree = [process, *process.children(recursive=True)]
                total = total_pss = 0
                for member in tree:
                    with contextlib.suppress(psutil.Error):  # a child may end between the two calls
                        memory = member.memory_full_info()
                        total += memory.rss
                        total_pss += memory.pss
                peak, peak_pss = max(peak, total), max(peak_pss, total_pss)
            except psutil.Error:
                return
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    if memory:
        sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    done.set()
    if memory:
        sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed: {stderr[-2000:]}")
    return wall, peak / 2**20, peak_pss / 2**20, stdout


def script(text: str, path: Path, threads: int | None = None) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(text), str(path), *([] if threads is None else [str(threads)])]


def cli(path: Path) -> list[str]:
    return [sys.executable, "-m", "dashapp.cli", "analyze", str(path), "--primary", "revenue", "--format", "json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000_000, help="rows of the generated file (default 10M)")
    parser.add_argument("--formats", default="parquet", help="parquet, csv or both (comma-separated)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per measurement (median)")
    parser.add_argument("--pandas", action="store_true", help="also time pandas (~3 GB of memory at 10M users)")
    parser.add_argument("--threads", type=int, default=None,
                        help="DuckDB threads in the floor and in the CLI's worker (default: DuckDB's, the cores): "
                             "16 gives the memory a 16-core machine needs (its times mean nothing on 2 cores)")
    args = parser.parse_args()
    byte_compile()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP", "/tmp"), prefix="user-level-bench-") as folder:
        for file_format in args.formats.split(","):
            path = Path(folder) / f"users.{file_format}"
            options = "FORMAT parquet" if file_format == "parquet" else "FORMAT csv, HEADER"
            started = time.perf_counter()
            with duckdb.connect() as connection:
                connection.execute("SET memory_limit = '2GB'")
                connection.execute(GENERATE.format(users=args.users, path=path, options=options))
            print(f"\n{args.users:,} users as {file_format}: {path.stat().st_size / 2**20:.0f} MB "
                  f"(generated in {time.perf_counter() - started:.1f} s)")
            runs: dict[str, list[tuple[float, float, float, str]]] = {"floor": [], "cli": [], "in-process": []}
            commands = {"floor": (script(FLOOR, path, args.threads), None), "cli": (cli(path), args.threads),
                        "in-process": (script(IN_PROCESS, path), args.threads)}
            for _ in range(args.repeat):  # interleaved, so a burst of load elsewhere hits both sides
                for name, (command, threads) in commands.items():
                    wall, _, _, out = measure(command, threads)
                    _, peak, peak_pss, _ = measure(command, threads, memory=True)
                    runs[name].append((wall, peak, peak_pss, out))
            floor_wall = statistics.median(r[0] for r in runs["floor"])
            floor_peak = statistics.median(r[1] for r in runs["floor"])
            cli_wall = statistics.median(r[0] for r in runs["cli"])
            floor_pss = statistics.median(r[2] for r in runs["floor"])
            cli_peak = statistics.median(r[1] for r in runs["cli"])
            cli_pss = statistics.median(r[2] for r in runs["cli"])
            in_process = statistics.median(float(r[3].split()[0]) for r in runs["in-process"])
            print(f"  floor (GROUP BY ALL + id bitmap), whole process  {floor_wall:6.2f} s   "
                  f"peak RSS {floor_peak:6.0f} MB   peak PSS {floor_pss:6.0f} MB")
            print(f"  experimentos analyze, whole CLI process           {cli_wall:6.2f} s   "
                  f"peak RSS {cli_peak:6.0f} MB   peak PSS {cli_pss:6.0f} MB (summed over the CLI and its worker)")
            print(f"  analysis inside a started process (no start-up)   {in_process:6.2f} s")
            print(f"  ratio to the floor: time {cli_wall / floor_wall:.2f}x (target <= {TIME_TARGET}x), "
                  f"peak PSS {cli_pss / floor_pss:.2f}x, peak RSS summed {cli_peak / floor_peak:.2f}x "
                  f"(target <= {MEMORY_TARGET}x)")
            print("  all runs (wall s / peak RSS MB / peak PSS MB): " + "; ".join(
                f"{name} " + ", ".join(f"{w:.2f}/{p:.0f}/{q:.0f}" for w, p, q, _ in found)
                for name, found in runs.items()))
            if args.pandas:
                wall, peak, _, out = measure(script(PANDAS, path))
                print(f"  pandas, whole process {wall:6.2f} s (work {float(out.split()[0]):.2f} s)   peak RSS {peak:6.0f} MB")


if __name__ == "__main__":
    main()
