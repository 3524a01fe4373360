"""Functions the isolation tests run in worker processes (a worker imports its target by name)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable


def add(a: int, b: int) -> int:
    return a + b


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def raise_signal(number: int) -> None:
    """A native fault, as DuckDB's SIGFPE on a very wide file was."""
    os.kill(os.getpid(), number)
    time.sleep(5)


def loop_forever() -> None:
    while True:
        pass


def sleep_with_grandchild(path: str) -> None:
    """Start a grandchild (its pid written to ``path``) that would outlive the worker, then hang."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(path, "w") as handle:
        handle.write(str(child.pid))
    time.sleep(120)


def allocate(megabytes: int) -> int:
    """Touch ``megabytes`` of memory (pages written, so they count)."""
    chunks = [bytearray(2**20) for _ in range(megabytes)]
    return len(chunks)


def report_progress(steps: int, on_progress: Callable[[float], None] | None = None) -> str:
    for step in range(steps):
        if on_progress is not None:
            on_progress(100.0 * (step + 1) / steps)
    return "done"


def own_pid() -> int:
    return os.getpid()


def duckdb_settings() -> tuple[str, str]:
    """DuckDB's memory_limit and threads as :class:`storage.ingest.FileReader` sets them in a worker."""
    from storage.ingest import FileReader

    with FileReader() as reader:
        connection = reader._connection
        memory = connection.execute("SELECT current_setting('memory_limit')").fetchone()
        threads = connection.execute("SELECT current_setting('threads')").fetchone()
    assert memory is not None and threads is not None
    return str(memory[0]), str(threads[0])


def slow_pdf(*args: object, **kwargs: object) -> bytes:
    """A PDF render that never ends (a forged heavy memo), busy on a core."""
    loop_forever()
    return b""


def crashing_reader(path: str, filename: str, request: object, on_progress: Callable[[float], None] | None = None
                    ) -> dict[str, object]:
    """Stands in for :func:`dashapp.services.analyze_file_report` or :func:`~dashapp.services.read_file`: DuckDB
    dying of SIGFPE on a file."""
    os.kill(os.getpid(), signal.SIGFPE)
    time.sleep(5)
    return {}


def heavy_modules_loaded() -> list[str]:
    """Which of the modules a dashboard analysis needs the worker had before its job started."""
    return sorted(name for name in ("duckdb", "scipy.special", "storage.ingest", "dashapp.services")
                  if name in sys.modules)
