"""Start-up: whole CLI processes against the floor of importing DuckDB and NumPy, in one run.

Each command runs ``--runs`` times (alternating with the floor, so a noisy neighbour slows both)
and the script prints the medians and each command's ratio to the floor's median:

* floor: ``python -c "import duckdb, numpy"`` — what any DuckDB-based tool pays before work;
* ``experimentos analyze data/sample_launch.csv --format json`` — the issue 14 target, ≤ 2.5×;
* ``experimentos analyze … --format md`` (adds the memo's templates);
* ``experimentos plan --baseline 0.1 --mde 0.01`` (no file, no DuckDB scan);
* ``experimentos --help``.

It also lists the heavy modules ``analyze`` imports (``-X importtime``), so a regression names
its culprit.

    .venv/bin/python benchmarks/startup_bench.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bytecode import byte_compile

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SAMPLE = str(ROOT / "data" / "sample_launch.csv")
FLOOR = [PYTHON, "-c", "import duckdb, numpy"]
COMMANDS = {
    "analyze sample_launch.csv --format json": [PYTHON, "-m", "dashapp.cli", "analyze", SAMPLE, "--format", "json"],
    "analyze sample_launch.csv --format md": [PYTHON, "-m", "dashapp.cli", "analyze", SAMPLE, "--format", "md"],
    "plan --baseline 0.1 --mde 0.01": [PYTHON, "-m", "dashapp.cli", "plan", "--baseline", "0.1", "--mde", "0.01"],
    "--help": [PYTHON, "-m", "dashapp.cli", "--help"],
}
TARGETS = {"analyze sample_launch.csv --format json": 2.5}
HEAVY = ("scipy.stats", "scipy.optimize", "pandas", "matplotlib", "dash", "flask", "weasyprint", "jinja2", "pyarrow")


def timed(command: list[str]) -> float:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - started


def heavy_imports(command: list[str]) -> list[str]:
    """Top-level packages from :data:`HEAVY` that ``command`` imports."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([command[0], "-X", "importtime", *command[1:]], cwd=ROOT, env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    return [name for name in HEAVY if name in imported]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    byte_compile()
    for command in (FLOOR, *COMMANDS.values()):  # warm the page cache and .pyc files
        timed(command)
    samples: dict[str, list[float]] = {"floor": [], **{name: [] for name in COMMANDS}}
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            samples["floor"].append(timed(FLOOR))
            samples[name].append(timed(command))
    floor = statistics.median(samples["floor"])
    print(f"{args.runs} runs each, medians (floor measured beside every command: {len(samples['floor'])} runs)")
    print(f"{'command':<52} {'median':>8} {'ratio':>7}  target")
    label = 'floor: python -c "import duckdb, numpy"'
    print(f"{label:<52} {floor * 1000:>6.0f} ms {1.0:>6.2f}x")
    for name in COMMANDS:
        median = statistics.median(samples[name])
        target = TARGETS.get(name)
        verdict = "" if target is None else f"≤ {target}x {'met' if median / floor <= target else 'NOT MET'}"
        print(f"{'experimentos ' + name:<52} {median * 1000:>6.0f} ms {median / floor:>6.2f}x  {verdict}")
    heavy = heavy_imports(COMMANDS["analyze sample_launch.csv --format json"])
    print("heavy modules imported by analyze --format json:", ", ".join(heavy) if heavy else "none")


if __name__ == "__main__":
    main()
