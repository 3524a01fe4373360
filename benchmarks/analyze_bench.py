"""A batch of aggregated experiments: the cost per file against DuckDB reading the same files alone, in one run.

Generates 1,000 two-arm files (three guardrails, a revenue metric; a temporary folder) and
measures, each in fresh processes, interleaved, median of --repeat runs:

  - the floor: one process that imports DuckDB and reads every file the way the reader does
    (``read_csv(all_varchar, header = false, null_padding = true)``, every row fetched), timed
    after its start-up: DuckDB's cost per file;
  - the CLI, ``experimentos analyze`` on all the files (JSON Lines) and on one of them, whole
    processes: its cost per extra file is the difference over the extra files — the issue's
    measure, target ≤ 1.3× the floor. The CLI reads the files in forked workers (50 a worker)
    and analyses them in its own process, the next worker reading while it analyses, so on two
    cores it costs about what the reading costs; its CPU time per extra file (CLI and workers,
    every core) is printed beside it;
  - for the breakdown, one process that reads, analyses and serialises every file on one core
    (``FileReader.read_path`` → ``analyze_loaded`` → ``report_json``, one reader for the batch),
    timed after start-up: where the time goes (reading, analysing — the Bayesian summary
    apart — and JSON).

    .venv/bin/python benchmarks/analyze_bench.py [--experiments 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from bytecode import byte_compile

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.3


def generate(folder: Path, count: int, seed: int = 1) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        n_c, n_t = (int(v) for v in rng.integers(5_000, 2_000_000, 2))
        rate = float(rng.uniform(0.01, 0.4))
        lift = float(rng.normal(0.0, 0.05))
        rows = ["variant,users,conversions,guardrail_cancel,guardrail_error,guardrail_refund,revenue_mean,revenue_std"]
        for name, n, r in (("control", n_c, rate), ("treatment", n_t, rate * (1 + lift))):
            conversions = int(rng.binomial(n, min(r, 0.99)))
            guards = [int(rng.binomial(n, p)) for p in (0.012, 0.0035, 0.004)]
            rows.append(f"{name},{n},{conversions},{guards[0]},{guards[1]},{guards[2]},"
                        f"{rng.uniform(8, 15):.4f},{rng.uniform(20, 40):.4f}")
        path = folder / f"experiment_{index:04d}.csv"
        path.write_text("\n".join(rows) + "\n")
        paths.append(path)
    return paths


FLOOR = """
import sys, time, duckdb
paths = open(sys.argv[1]).read().split()
connection = duckdb.connect()
connection.execute("SET enable_progress_bar = false")
started = time.perf_counter()
for path in paths:
    rows = connection.execute(
        "SELECT * FROM read_csv(?, all_varchar = true, header = false, null_padding = true)", [path]).fetchall()
    assert len(rows) == 3
print(f"{time.perf_counter() - started:.6f}")
"""

OURS = """
import sys, time
from dashapp.services import AnalysisRequest, analyze_loaded, report_json
from storage.ingest import FileReader
import analytics.report
from analytics.distributions import special_functions
special_functions()  # part of start-up (the CLI imports it while its first worker reads)
paths = open(sys.argv[1]).read().split()
request = AnalysisRequest()
bayesian = 0.0
summarise = analytics.report.beta_binomial_summary

def timed(*args, **kwargs):
    global bayesian
    started = time.perf_counter()
    try:
        return summarise(*args, **kwargs)
    finally:
        bayesian += time.perf_counter() - started

analytics.report.beta_binomial_summary = timed
reading = analysing = serialising = 0.0
started = time.perf_counter()
with FileReader() as reader:
    for path in paths:
        t0 = time.perf_counter()
        loaded = reader.read_path(path)
        t1 = time.perf_counter()
        report = analyze_loaded(loaded, request)
        t2 = time.perf_counter()
        json_report = report_json(report)
        t3 = time.perf_counter()
        reading, analysing, serialising = reading + t1 - t0, analysing + t2 - t1, serialising + t3 - t2
        assert json_report["decision"]["outcome"]
print(f"{time.perf_counter() - started:.6f} {reading:.6f} {analysing:.6f} {bayesian:.6f} {serialising:.6f}")
"""


def run_script(text: str, listing: Path) -> list[float]:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(text), str(listing)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    return [float(v) for v in result.stdout.split()]


def run_cli(paths: list[Path]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the CLI and its workers, standard output) of one CLI process."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dashapp.cli", "analyze", *map(str, paths), "--format", "json"],
                            capture_output=True, text=True, env=environment, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    byte_compile()
    with tempfile.TemporaryDirectory(prefix="analyze-bench-") as folder:
        paths = generate(Path(folder), args.experiments)
        listing = Path(folder) / "files.txt"
        listing.write_text("\n".join(map(str, paths)))
        floors, ours, singles, batches = [], [], [], []
        output = ""
        for _ in range(args.repeat):  # interleaved: load from elsewhere hits both sides alike
            floors.append(run_script(FLOOR, listing)[0])
            single = run_cli(paths[:1])
            *batch, output = run_cli(paths)
            singles.append(single[:2])
            batches.append(tuple(batch))
            ours.append(run_script(OURS, listing))
        count = args.experiments
        floor = statistics.median(floors) / count
        middle = sorted(ours, key=lambda r: r[0])[len(ours) // 2]
        total, reading, analysing, bayesian, serialising = (v / count for v in middle)
        extra = [(b[0] - s[0]) / (count - 1) for s, b in zip(singles, batches, strict=True)]
        extra_cpu = [(b[1] - s[1]) / (count - 1) for s, b in zip(singles, batches, strict=True)]
        marginal, marginal_cpu = statistics.median(extra), statistics.median(extra_cpu)
        lines = output.splitlines()
        assert len(lines) == count
        outcomes: dict[str, int] = {}
        for line in lines:
            outcome = json.loads(line)["decision"]["outcome"]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"experiments:                                  {count}")
    print(f"floor, DuckDB reading each file:              {floor * 1000:7.3f} ms per file (after start-up)")
    print(f"CLI, experimentos analyze on all the files:   {marginal * 1000:7.3f} ms per extra file  "
          f"{marginal / floor:5.2f}x the floor (target <= {TARGET}x)  "
          f"[one file {statistics.median(s[0] for s in singles):.2f} s, {count} files "
          f"{statistics.median(b[0] for b in batches):.2f} s; CPU {marginal_cpu * 1000:.3f} ms per extra file, "
          f"{marginal_cpu / floor:.2f}x]")
    print(f"one core, read + analyse + JSON in one process: {total * 1000:7.3f} ms per file  "
          f"{total / floor:5.2f}x the floor")
    print(f"  reading {reading * 1000:.3f} ms, analysing {analysing * 1000:.3f} ms "
          f"(Bayesian summary {bayesian * 1000:.3f} ms), JSON {serialising * 1000:.3f} ms")
    print(f"all runs: floor {', '.join(f'{v / count * 1000:.3f}' for v in floors)} ms; CLI "
          f"{', '.join(f'{v * 1000:.3f}' for v in extra)} ms; one process "
          f"{', '.join(f'{r[0] / count * 1000:.3f}' for r in ours)} ms")
    print(f"decisions: {outcomes}")


if __name__ == "__main__":
    main()
