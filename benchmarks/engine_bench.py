"""DuckDB against Spark local[2] on the same user-level file (2M users by default), cold and warm.

Generates (with DuckDB, into a temporary folder under /tmp or $BENCH_TMP) a Parquet file of one
row per user — unique integer ``user_id``, ``variant``, ``converted``, two guardrails,
``revenue`` with its CUPED covariate ``pre_revenue``, three segment columns — and measures:

  - **cold**: a whole CLI process, ``experimentos analyze FILE`` (DuckDB) and
    ``experimentos analyze --engine spark --spark-remote local[2] FILE`` (Spark: the JVM and its
    Connect server start inside it);
  - **warm**: inside one process with the engine already up (an open DuckDB reader; an open
    Spark session that has scanned the file once), the scan and summary of the file again.

Median of --repeat runs (cold Spark runs once unless --repeat-cold). Both engines must give the
same summary (checked to 1e-9 relative), or the benchmark fails.

    .venv/bin/python benchmarks/engine_bench.py [--users 2000000] [--repeat 3] [--repeat-cold 1]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The same 10M-style users as user_level_bench.py (this folder is on sys.path when run as a script).
from user_level_bench import GENERATE  # noqa: E402


def _generate(folder: Path, users: int) -> Path:
    path = folder / f"users_{users}.parquet"
    if not path.exists():
        with duckdb.connect() as connection:
            connection.execute("SELECT setseed(0.15)")
            connection.execute(GENERATE.format(users=users, path=path, options="FORMAT parquet"))
    return path


def _cold(arguments: list[str]) -> float:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dashapp.cli", "analyze", *arguments, "--primary", "revenue",
                             "--format", "json"], capture_output=True, text=True, env=environment, check=False,
                            cwd=tempfile.gettempdir())
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"analyze {' '.join(arguments)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return elapsed


def _close(a: Any, b: Any, path: str = "") -> list[str]:
    if hasattr(a, "__dataclass_fields__"):
        return [m for name in a.__dataclass_fields__ for m in _close(getattr(a, name), getattr(b, name), f"{path}.{name}")]
    if isinstance(a, dict):
        return [m for key in a for m in _close(a[key], b[key], f"{path}[{key!r}]")]
    if isinstance(a, list | tuple):
        return [m for i, (x, y) in enumerate(zip(a, b, strict=True)) for m in _close(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else [f"{path}: {a} vs {b}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repeat-cold", type=int, default=1, help="cold Spark runs (each starts a JVM)")
    parser.add_argument("--spark", default="local[2]", help="Spark remote for the warm runs (default local[2])")
    options = parser.parse_args()

    from storage.engines import DuckDBEngine
    from storage.scan_plan import summarise
    from storage.spark import SparkInput, open_session, read_spark

    folder = Path(os.environ.get("BENCH_TMP", tempfile.gettempdir())) / "experimentos-engine-bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = _generate(folder, options.users)
    size = path.stat().st_size / 2**20
    print(f"{options.users:,} users, {size:.0f} MB Parquet, {os.cpu_count()} cores, median of {options.repeat}")

    cold_duckdb = statistics.median(_cold([str(path)]) for _ in range(options.repeat))
    cold_spark = statistics.median(_cold(["--engine", "spark", "--spark-remote", "local[2]", str(path)])
                                   for _ in range(options.repeat_cold))

    with duckdb.connect() as connection:
        engine = DuckDBEngine(connection, "read_parquet(?)", str(path))
        duck_summary = summarise(engine)
        warm_duckdb = []
        for _ in range(options.repeat):
            started = time.perf_counter()
            summarise(engine)
            warm_duckdb.append(time.perf_counter() - started)

    started = time.perf_counter()
    with open_session(options.spark) as spark:
        opened = time.perf_counter() - started
        started = time.perf_counter()
        spark_summary = read_spark(spark, SparkInput("path", str(path))).summary
        first_spark = time.perf_counter() - started
        warm_spark = []
        for _ in range(options.repeat):
            started = time.perf_counter()
            read_spark(spark, SparkInput("path", str(path)))
            warm_spark.append(time.perf_counter() - started)
    mismatches = _close(duck_summary, spark_summary)
    if mismatches:
        raise SystemExit(f"DuckDB and Spark disagree: {mismatches[:5]}")

    print(f"{'':28}{'DuckDB':>10}{'Spark ' + options.spark:>18}")
    print(f"{'cold (whole CLI process)':28}{cold_duckdb:>9.2f}s{cold_spark:>17.2f}s")
    print(f"{'warm (engine up, scan)':28}{statistics.median(warm_duckdb):>9.2f}s{statistics.median(warm_spark):>17.2f}s")
    print(f"Spark session start {opened:.1f} s, first scan {first_spark:.1f} s (JIT warm-up); summaries agree to 1e-9")


if __name__ == "__main__":
    main()
