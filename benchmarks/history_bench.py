"""History queries over 10,000 stored experiments, each against its floor, in one run.

Fills a fresh database with 10,000 experiments (one analysis each, realistic report
JSON) through the repository API in one bulk transaction per 1,000, then times each
query (median of 20 runs, fresh connection each time as the dashboard does):
first page, filtered by decision, text search, the portfolio summary above the History table,
and a 50-experiment comparison.

The floor of each query is bare DuckDB doing the same work: open the file, run the very
statements the repository ran (recorded from its connection), fetch every row, close. The
ratio is what the repository adds — its process and file locks, the migrations check, mapping
rows to records.

    .venv/bin/python benchmarks/history_bench.py [--experiments 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from dashapp.services import AnalysisRequest, analyze_path, report_json
from storage.database import ExperimentDatabase, HistoryQuery, NewAnalysis, NewExperiment

DATA = Path(__file__).resolve().parent.parent / "data"
WORDS = ["banner", "checkout", "onboarding", "pricing", "search", "홈화면", "recommendations", "email", "push"]


def fill(database: ExperimentDatabase, count: int) -> None:
    template = report_json(analyze_path(DATA / "sample_launch.csv", AnalysisRequest()))
    rng = random.Random(1)
    batch = []
    for index in range(count):
        report = json.loads(json.dumps(template))
        report["decision"]["outcome"] = rng.choice(["launch", "hold", "hold", "rollback"])
        report["input"]["sha256"] = f"{index:064x}"
        name = f"{rng.choice(WORDS)} test {index}"
        batch.append((NewExperiment(name=name, hypothesis=f"{rng.choice(WORDS)} improves conversion",
                                    tags=(rng.choice(WORDS),)),
                      NewAnalysis(report, {"name": name}, {}, "x.csv", f"variant,users\n{index}".encode())))
        if len(batch) == 1_000:
            database.save_analyses(batch)
            batch = []
    if batch:
        database.save_analyses(batch)


class _Recording:
    """A DuckDB connection that notes every statement executed on it."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, log: list[tuple[Any, ...]]) -> None:
        self._connection, self._log = connection, log

    def execute(self, *arguments: Any) -> Any:
        self._log.append(arguments)
        return self._connection.execute(*arguments)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def statements(call: Callable[[], object]) -> list[tuple[Any, ...]]:
    """The statements (SQL and parameters) ``call`` runs on the repository's connections."""
    log: list[tuple[Any, ...]] = []
    opened = ExperimentDatabase._open

    def recording(self: ExperimentDatabase, deadline: float | None = None) -> Any:
        return _Recording(opened(self, deadline), log)

    ExperimentDatabase._open = recording  # type: ignore[method-assign]
    try:
        call()
    finally:
        ExperimentDatabase._open = opened  # type: ignore[method-assign]
    return log


def bare(path: Path, recorded: list[tuple[Any, ...]]) -> None:
    """The floor: DuckDB alone opens the file, runs the statements, fetches every row, closes."""
    connection = duckdb.connect(str(path))
    for arguments in recorded:
        connection.execute(*arguments).fetchall()
    connection.close()


def timed(function: object, repeats: int = 20) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database = ExperimentDatabase(Path(folder) / "bench.duckdb")
        started = time.perf_counter()
        fill(database, args.experiments)
        filling = time.perf_counter() - started
        database.checkpoint()
        ids = [r.experiment_id for r in database.history(HistoryQuery(limit=50, offset=100)).rows]
        queries: dict[str, Callable[[], object]] = {
            "history, first page (50)": lambda: database.history(HistoryQuery(limit=50)),
            "history, decision = rollback": lambda: database.history(HistoryQuery(decision="rollback")),
            "history, text search 'checkout'": lambda: database.history(HistoryQuery(text="checkout")),
            "history, page 100 (offset 4950)": lambda: database.history(HistoryQuery(limit=50, offset=4950)),
            "portfolio summary (History's header)": lambda: database.portfolio(HistoryQuery()),
            "compare 50 experiments": lambda: database.compare(ids),
            "open connection only": database.schema_version,
        }
        path = Path(folder) / "bench.duckdb"
        results = {}
        for name, query in queries.items():
            recorded = statements(query)
            results[name] = (timed(query), timed(lambda recorded=recorded: bare(path, recorded)))
        size = (Path(folder) / "bench.duckdb").stat().st_size
        started = time.perf_counter()
        for index in range(20):
            database.save_analysis(NewExperiment(name=f"single {index}"),
                                   NewAnalysis(report_json(analyze_path(DATA / "sample_launch.csv", AnalysisRequest())),
                                               {}, {}, "sample_launch.csv", (DATA / "sample_launch.csv").read_bytes()))
        single = (time.perf_counter() - started) / 20
    print(f"stored experiments: {args.experiments} (bulk-saved in {filling:.1f} s; file {size / 1e6:.1f} MB)")
    print(f"{'single save (own connection)':38s} mean   {single * 1000:6.1f} ms")
    print(f"{'query (median of 20)':38s} {'ours':>9s} {'floor':>9s}  ratio   (floor: DuckDB alone, same statements)")
    for name, (value, floor) in results.items():
        print(f"{name:38s} {value:6.1f} ms {floor:6.1f} ms  {value / floor:4.2f}x")


if __name__ == "__main__":
    main()
