"""A child process for the concurrency and crash tests: saves analyses in a loop.

    python -m tests.storage.writer DB_PATH PREFIX THREADS PER_THREAD

Prints ``saved <experiment id> <name> ok`` after each save has returned (flushed), so a
parent that kills this process knows exactly which saves completed.
"""

from __future__ import annotations

import sys
import threading

from storage.database import ExperimentDatabase, NewAnalysis, NewExperiment

REPORT = {
    "schema_version": 1, "analytics_version": "test", "input": {"kind": "aggregated", "rows": 2, "sha256": ""},
    "decision": {"outcome": "hold", "rule": "inconclusive", "reasons": [], "winner": None, "arms": []},
    "health": {"status": "healthy", "issues": [], "srm": None}, "comparisons": [],
    "experiment": {"name": "", "hypothesis": None, "primary_metric": "conversions"},
}


def main() -> None:
    path, prefix, threads, per_thread = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    database = ExperimentDatabase(path, lock_timeout=120)
    output = threading.Lock()
    failures: list[BaseException] = []

    def work(thread: int) -> None:
        for index in range(per_thread if per_thread > 0 else 10**9):
            name = f"{prefix}-{thread}-{index}"
            content = name.encode()
            report = {**REPORT, "experiment": {**REPORT["experiment"], "name": name},
                      "input": {**REPORT["input"], "sha256": __import__("hashlib").sha256(content).hexdigest()}}
            try:
                experiment_id, _ = database.save_analysis(NewExperiment(name=name),
                                                          NewAnalysis(report, {}, {}, name + ".csv", content))
            except BaseException as error:  # reported to the parent, which fails the test
                failures.append(error)
                with output:
                    print(f"error {type(error).__name__}: {error}", flush=True)
                return
            with output:
                print(f"saved {experiment_id} {name} ok", flush=True)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
