"""History queries over 10,000 stored experiments.

Fills a fresh database with 10,000 experiments (one analysis each, realistic report
JSON) through the repository API in one bulk transaction per 1,000, then times each
query (median of 20 runs, fresh connection each time as the dashboard does):
first page, filtered by decision, text search, and a 50-experiment comparison.

    .venv/bin/python benchmarks/history_bench.py [--experiments 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

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
        results = {
            "history, first page (50)": timed(lambda: database.history(HistoryQuery(limit=50))),
            "history, decision = rollback": timed(lambda: database.history(HistoryQuery(decision="rollback"))),
            "history, text search 'checkout'": timed(lambda: database.history(HistoryQuery(text="checkout"))),
            "history, page 100 (offset 4950)": timed(lambda: database.history(HistoryQuery(limit=50, offset=4950))),
            "compare 50 experiments": timed(lambda: database.compare(ids)),
            "open connection only": timed(lambda: database.schema_version()),
        }
        size = (Path(folder) / "bench.duckdb").stat().st_size
        started = time.perf_counter()
        for index in range(20):
            database.save_analysis(NewExperiment(name=f"single {index}"),
                                   NewAnalysis(report_json(analyze_path(DATA / "sample_launch.csv", AnalysisRequest())),
                                               {}, {}, "sample_launch.csv", (DATA / "sample_launch.csv").read_bytes()))
        single = (time.perf_counter() - started) / 20
    print(f"stored experiments: {args.experiments} (bulk-saved in {filling:.1f} s; file {size / 1e6:.1f} MB)")
    print(f"{'single save (own connection)':34s} mean   {single * 1000:6.1f} ms")
    for name, value in results.items():
        print(f"{name:34s} median {value:6.1f} ms")


if __name__ == "__main__":
    main()
