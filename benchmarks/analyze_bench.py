"""Time `experimentos analyze` on 1,000 aggregated experiments in one process (JSON Lines).

Generates 1,000 two-arm files with three guardrails and a revenue metric in a
temporary folder, then prints: the wall time of one CLI process analysing them all,
the cost per experiment, and the same split into start-up vs per-file work (a second
run on a single file gives the start-up cost).

    .venv/bin/python benchmarks/analyze_bench.py [--experiments 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


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


def run(paths: list[Path]) -> tuple[float, str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dashapp.cli", "analyze", *map(str, paths), "--format", "json"],
                            capture_output=True, text=True, env=environment, check=True)
    return time.perf_counter() - started, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = generate(Path(folder), args.experiments)
        single, _ = run(paths[:1])
        total, output = run(paths)
        lines = output.splitlines()
        assert len(lines) == args.experiments
        outcomes: dict[str, int] = {}
        for line in lines:
            outcome = json.loads(line)["decision"]["outcome"]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    per_file = (total - single) / max(args.experiments - 1, 1)
    print(f"experiments analysed:            {args.experiments}")
    print(f"one CLI process, all files:      {total:.2f} s  (JSON Lines, {len(output) / 1e6:.1f} MB)")
    print(f"per experiment (incl. start-up): {total / args.experiments * 1000:.2f} ms")
    print(f"start-up (one-file run):         {single:.2f} s")
    print(f"marginal cost per experiment:    {per_file * 1000:.2f} ms")
    print(f"decisions:                       {outcomes}")


if __name__ == "__main__":
    main()
