"""Faults of the experiment database: a full disk, a damaged file, a writer holding the lock,
a report above the size cap. Each gives its own clear error, and nothing committed is lost."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage.errors
from storage.database import ExperimentDatabase, NewAnalysis, NewExperiment
from storage.errors import (
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseLockedError,
    DiskFullError,
    ReportTooLargeError,
)
from tests.conftest import ROOT
from tests.storage.writer import REPORT


def _analysis(name: str, size: int = 100) -> tuple[NewExperiment, NewAnalysis]:
    content = name.encode() + os.urandom(size)
    report = {**REPORT, "experiment": {**REPORT["experiment"], "name": name},
              "input": {**REPORT["input"], "sha256": hashlib.sha256(content).hexdigest()}}
    return NewExperiment(name=name), NewAnalysis(report, {}, {}, name + ".csv", content)


def _names(path: Path) -> list[str]:
    return sorted(row.name for row in ExperimentDatabase(path).history().rows)


@contextlib.contextmanager
def small_disk_at(folder: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of ``megabytes`` mounted at ``folder`` while the block runs; skips the test when
    mounting is not permitted."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small disk to fill")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({result.stderr.strip() or result.returncode}); "
                    "the disk-full tests need root or CAP_SYS_ADMIN")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until the disk is full; returns it (delete it to free the space)."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(descriptor, b"\0" * 65536)
    except OSError as error:
        assert error.errno == 28, error  # ENOSPC
    try:
        while True:  # the last few bytes below a 64 KiB chunk
            os.write(descriptor, b"\0" * 512)
    except OSError:
        pass
    os.close(descriptor)
    return filler


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk_at(tmp_path / "disk", 16) as folder:
        yield folder


def test_the_error_tree_in_the_docstring_names_every_error() -> None:
    for name in storage.errors.__all__:
        assert name in (storage.errors.__doc__ or ""), name
        assert getattr(storage.errors, name).__doc__, name


def test_a_full_disk_is_a_clear_error_and_loses_nothing(small_disk: Path) -> None:
    path = small_disk / "db.duckdb"
    database = ExperimentDatabase(path)
    before = [database.save_analysis(*_analysis(f"kept-{i}")) for i in range(3)]
    filler = fill(small_disk)
    for size in (100, 300_000):
        started = time.monotonic()
        with pytest.raises(DiskFullError) as raised:
            database.save_analysis(*_analysis(f"lost-{size}", size))
        message = str(raised.value)
        assert "full" in message and str(path) in message and "free space" in message
        assert "conflict" not in message  # not mistaken for a write-write conflict (and not retried)
        assert time.monotonic() - started < 5
    assert _names(path) == ["kept-0", "kept-1", "kept-2"]  # reads still work on a full disk
    filler.unlink()
    assert _names(path) == ["kept-0", "kept-1", "kept-2"]
    experiment_id, _ = database.save_analysis(*_analysis("after"))
    assert experiment_id not in [e for e, _ in before]
    assert _names(path) == ["after", "kept-0", "kept-1", "kept-2"]


def test_a_large_input_on_a_full_disk_is_a_disk_full_error(small_disk: Path) -> None:
    path = small_disk / "db.duckdb"
    database = ExperimentDatabase(path, inline_input_limit=1000)  # inputs above 1 KB go to <db>.inputs/
    database.save_analysis(*_analysis("kept"))
    filler = fill(small_disk)
    with pytest.raises(DiskFullError, match="full"):
        database.save_analysis(*_analysis("large", 200_000))
    filler.unlink()
    assert not list(database.inputs_dir.glob("*.part"))  # the partial input file was removed
    assert _names(path) == ["kept"]


def test_a_truncated_database_is_reported_as_damaged_and_left_untouched(tmp_path: Path) -> None:
    source = tmp_path / "full.duckdb"
    database = ExperimentDatabase(source)
    # Incompressible reports of ~40 KB spread the analyses over many blocks; half of them are cut off.
    padded = [(experiment, NewAnalysis({**analysis.report, "segments": [{"note": os.urandom(20_000).hex()}]}, {}, {},
                                       analysis.filename, analysis.content))
              for experiment, analysis in (_analysis(f"e{i}") for i in range(40))]
    database.save_analyses(padded)
    database.checkpoint()
    damaged = tmp_path / "damaged.duckdb"
    shutil.copyfile(source, damaged)
    with open(damaged, "r+b") as handle:
        handle.truncate(source.stat().st_size // 2)
    size = damaged.stat().st_size
    with pytest.raises(DatabaseCorruptError) as raised:
        ExperimentDatabase(damaged).history()
    message = str(raised.value)
    assert str(damaged) in message and "backup" in message and "left untouched" in message
    assert damaged.stat().st_size == size


def _hold_lock_file(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding ``<db>.lock`` (as a long save does) for ``seconds``."""
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('ready', flush=True); time.sleep(float(sys.argv[2]))",
                               str(path.with_name(path.name + ".lock")), str(seconds)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    return holder


def test_reads_give_up_after_their_short_deadline_behind_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    ExperimentDatabase(path).save_analysis(*_analysis("one"))
    holder = _hold_lock_file(path, 10)
    try:
        database = ExperimentDatabase(path, read_timeout=0.5)
        for read in (database.history, database.count_experiments, lambda: database.experiment(1)):
            started = time.monotonic()
            with pytest.raises(DatabaseBusyError, match="try again in a moment"):
                read()
            assert time.monotonic() - started < 1.5
        # A read with the writers' deadline (the CLI's) reports the lock as writers do.
        with pytest.raises(DatabaseLockedError, match="locked by another process") as raised:
            ExperimentDatabase(path, lock_timeout=0.3).history()
        assert not isinstance(raised.value, DatabaseBusyError)
    finally:
        holder.kill()
        holder.wait()
    assert ExperimentDatabase(path, read_timeout=0.5).count_experiments() == 1


def test_a_report_above_the_cap_is_refused_and_nothing_is_stored(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "db.duckdb"
    experiment, analysis = _analysis("big")
    padded = NewAnalysis({**analysis.report, "segments": [{"note": "x" * 2000}] * 100}, {}, {}, analysis.filename,
                         analysis.content)
    with pytest.raises(ReportTooLargeError, match=r"above the 0\.1 MB"):
        ExperimentDatabase(path, report_limit=100 * 1024).save_analysis(experiment, padded)
    monkeypatch.setenv("EXPERIMENTOS_REPORT_LIMIT_MB", "0.1")
    with pytest.raises(ReportTooLargeError, match="EXPERIMENTOS_REPORT_LIMIT_MB"):
        ExperimentDatabase(path).save_analysis(experiment, padded)
    assert ExperimentDatabase(path).count_experiments() == 0
    monkeypatch.delenv("EXPERIMENTOS_REPORT_LIMIT_MB")
    ExperimentDatabase(path).save_analysis(experiment, padded)  # 0.2 MB is well under the 5 MB default
    assert _names(path) == ["big"]
