"""Several processes and threads writing one database file; a writer killed mid-flight."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from storage.database import ExperimentDatabase
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _writer(path: Path, prefix: str, threads: int, per_thread: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.storage.writer", str(path), prefix, str(threads),
                             str(per_thread)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_two_processes_and_eight_threads_save_400_analyses(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    writers = [_writer(path, f"p{i}", threads=4, per_thread=50) for i in range(2)]
    outputs = [w.communicate(timeout=600) for w in writers]
    for writer, (stdout, stderr) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, stderr + stdout[-2000:]
        assert "error" not in stdout
    saved = [line.split()[2] for stdout, _ in outputs for line in stdout.splitlines() if line.startswith("saved")]
    assert len(saved) == 400
    with duckdb.connect(str(path), read_only=True) as connection:
        names = [r[0] for r in connection.execute("SELECT name FROM experiments").fetchall()]
        analyses = connection.execute("SELECT count(*), count(DISTINCT experiment_id) FROM analyses").fetchone()
    assert sorted(names) == sorted(saved)
    assert len(set(names)) == 400
    assert analyses == (400, 400)


def test_every_returned_save_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.duckdb"
    ExperimentDatabase(path).schema_version()
    rng = random.Random(20261127)
    confirmed: set[str] = set()
    for round_number in range(20):
        writer = _writer(path, f"r{round_number}", threads=1, per_thread=0)
        assert writer.stdout is not None
        first = writer.stdout.readline()  # wait until it is saving
        assert first.startswith("saved"), first + (writer.stderr.read() if writer.stderr else "")
        time.sleep(rng.uniform(0.0, 0.6))
        os.kill(writer.pid, signal.SIGKILL)
        rest, _ = writer.communicate()
        lines = [first, *rest.splitlines()]
        # A line cut by the kill has no final "ok" and does not count as returned.
        confirmed.update(line.split()[2] for line in lines if line.startswith("saved") and line.split()[-1:] == ["ok"])
        database = ExperimentDatabase(path)
        page = database.history()
        assert page.total >= len(confirmed)
        with duckdb.connect(str(path), read_only=True) as connection:
            stored = {r[0] for r in connection.execute("SELECT name FROM experiments").fetchall()}
        assert confirmed <= stored, f"round {round_number}: lost {sorted(confirmed - stored)[:5]}"
    assert len(confirmed) > 20
