"""Running untrusted work (reading an uploaded file, analysing it, rendering a PDF) in a worker process.

A native fault in DuckDB or WeasyPrint (SIGFPE, SIGSEGV), a memory blow-up or a render that never
ends must not take the ``serve`` process (or the CLI) with it. :func:`run_isolated` calls a function
in a fresh worker process and returns its (picklable, plain-data) result; the worker runs under

- a data-segment limit (``RLIMIT_DATA``: the heap and every private anonymous mapping; not
  ``RLIMIT_AS``, which DuckDB exceeds at once by reserving address space it never touches) and
  DuckDB's own ``memory_limit`` (a share of it) and ``threads``, so DuckDB stops with its own
  out-of-memory error before the kernel limit bites;
- a CPU-time limit (``RLIMIT_CPU``; SIGXCPU, then SIGKILL);
- a wall-clock limit, after which the parent kills the worker's whole process group with SIGKILL.

The worker is a new interpreter (fork + exec, as multiprocessing's ``spawn`` start method does, never
a fork of the multi-threaded server). It is started with :class:`subprocess.Popen` rather than a
``multiprocessing`` spawn context because Popen puts it in a session of its own *before* it runs
any code (``start_new_session``), so ``killpg`` reaches it and every process it may have started,
with no window in which it is unreachable; and it starts no ``resource_tracker`` process that would
outlive the job. Results and progress come back over a socket pair as pickles
(:mod:`multiprocessing.connection`), standard output goes to ``/dev/null`` (native code must not
write into ``analyze --format json > out``) and standard error to a temporary file, kept for the
error message.

Starting an interpreter and importing DuckDB, NumPy, SciPy and the analytics takes about 0.5 s, the
whole budget the dashboard may add to the analysis of a small file; so :class:`WorkerPool` keeps
``warm`` idle workers that have done their imports and wait for one job each. A worker runs
exactly one job and is then killed (a fresh heap, fresh limits, nothing left from another user's
file); a replacement is started after the job ends, so it never competes with it for a core.

Outcomes other than a result are named exceptions (:mod:`dashapp.errors`), all :class:`IsolationError`:
:class:`WorkerCrashedError` (killed by a signal or exited without an answer),
:class:`WorkerOutOfMemoryError`, :class:`WorkerTimeoutError` (wall clock or CPU time). An exception
the function raises is raised again in the caller as itself.

Limits come from environment variables (see :meth:`Limits.from_environment`).
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import math
import os
import pickle
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import IO, Any, Generic, TypeVar

from dashapp.errors import IsolationError, WorkerCrashedError, WorkerOutOfMemoryError, WorkerTimeoutError

__all__ = [
    "CPU_ENV",
    "CPU_GRACE_SECONDS",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_PRELOAD",
    "DEFAULT_TIMEOUT_SECONDS",
    "DUCKDB_MEMORY_ENV",
    "DUCKDB_MEMORY_SHARE",
    "DUCKDB_THREADS_ENV",
    "FORK_SERVER_ENV",
    "MAX_WORKERS_ENV",
    "MEMORY_ENV",
    "THREADS_ENV",
    "TIMEOUT_ENV",
    "WARM_ENV",
    "Job",
    "Limits",
    "WorkerPool",
    "default_pool",
    "run_isolated",
]

T = TypeVar("T")

#: Environment variables that set the limits (read by :meth:`Limits.from_environment`).
MEMORY_ENV = "EXPERIMENTOS_WORKER_MEMORY_MB"
CPU_ENV = "EXPERIMENTOS_WORKER_CPU_SECONDS"
TIMEOUT_ENV = "EXPERIMENTOS_WORKER_TIMEOUT_SECONDS"
THREADS_ENV = "EXPERIMENTOS_WORKER_THREADS"
WARM_ENV = "EXPERIMENTOS_WORKERS_WARM"
MAX_WORKERS_ENV = "EXPERIMENTOS_WORKERS_MAX"
FORK_SERVER_ENV = "EXPERIMENTOS_FORK_SERVER"  # 0: warm interpreters instead of a fork server
#: How the worker tells :class:`storage.ingest.FileReader` DuckDB's limits (read when it connects).
DUCKDB_MEMORY_ENV = "EXPERIMENTOS_DUCKDB_MEMORY_LIMIT"
DUCKDB_THREADS_ENV = "EXPERIMENTOS_DUCKDB_THREADS"

DEFAULT_MEMORY_MB = 2048
DEFAULT_TIMEOUT_SECONDS = 300.0
DUCKDB_MEMORY_SHARE = 0.6  # the rest is Python's: the rows of an aggregated file, the report, pickling it
CPU_GRACE_SECONDS = 5  # between SIGXCPU (soft limit) and SIGKILL (hard limit)
#: What an idle worker imports before it waits for a job: the analysis path (the reader and
#: ``scipy.special``, which services and analytics import at their first use), then the PDF path's.
DEFAULT_PRELOAD = ("dashapp.services", "storage.ingest", "scipy.special", "dashapp.memo.render")
_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Limits:
    """The limits one job runs under.

    ``memory_bytes``: ``RLIMIT_DATA`` of the worker (``None``: none); DuckDB gets
    :data:`DUCKDB_MEMORY_SHARE` of it as ``memory_limit``. ``cpu_seconds``: ``RLIMIT_CPU`` counted
    from the start of the job, all threads together (``None``: twice the wall limit times the
    threads). ``wall_seconds``: after this the worker's process group is killed. ``threads``:
    DuckDB's ``threads``."""

    memory_bytes: int | None = DEFAULT_MEMORY_MB * 2**20
    cpu_seconds: float | None = None
    wall_seconds: float = DEFAULT_TIMEOUT_SECONDS
    threads: int = 2

    def __post_init__(self) -> None:
        if self.memory_bytes is not None and self.memory_bytes < 64 * 2**20:
            raise ValueError(f"memory_bytes must be at least 64 MiB, got {self.memory_bytes}")
        if not self.wall_seconds > 0:
            raise ValueError(f"wall_seconds must be positive, got {self.wall_seconds}")
        if self.cpu_seconds is not None and not self.cpu_seconds > 0:
            raise ValueError(f"cpu_seconds must be positive, got {self.cpu_seconds}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")

    @property
    def cpu_limit(self) -> int:
        """The CPU seconds the job may use (``cpu_seconds`` or its default)."""
        seconds = self.cpu_seconds if self.cpu_seconds is not None else 2 * self.wall_seconds * self.threads
        return max(1, math.ceil(seconds))

    @classmethod
    def from_environment(cls, *, wall_seconds: float | None = None) -> Limits:
        """Limits from ``EXPERIMENTOS_WORKER_MEMORY_MB`` (default 2048; 0: none),
        ``EXPERIMENTOS_WORKER_CPU_SECONDS`` (default: 2 × timeout × threads),
        ``EXPERIMENTOS_WORKER_TIMEOUT_SECONDS`` (default 300; ``wall_seconds`` wins when given) and
        ``EXPERIMENTOS_WORKER_THREADS`` (default: the cores, at most 2). Raises ``ValueError``
        naming the variable when one is not a number."""
        memory = _number(MEMORY_ENV, DEFAULT_MEMORY_MB)
        cpu = os.environ.get(CPU_ENV, "").strip()
        return cls(memory_bytes=int(memory * 2**20) if memory > 0 else None,
                   cpu_seconds=_number(CPU_ENV, 0) if cpu else None,
                   wall_seconds=wall_seconds if wall_seconds is not None else _number(TIMEOUT_ENV,
                                                                                      DEFAULT_TIMEOUT_SECONDS),
                   threads=int(_number(THREADS_ENV, min(2, os.cpu_count() or 1))))


def _number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None


# -- the parent's side ---------------------------------------------------------------------------


def _start_interpreter(entry: str, preload: Sequence[str], stderr: IO[bytes] | int
                       ) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """A fresh interpreter running this module's ``entry`` function in a session of its own, with
    the child end of a socket pair as ``argv[1]`` and ``preload`` as ``argv[2]``; returns it and the
    parent's end of the socket."""
    parent, child = socket.socketpair()
    # The interpreter must import what the caller can: the test tree, a source checkout.
    path = os.pathsep.join(p for p in sys.path if p)
    env = {**os.environ, "PYTHONPATH": path, "PYTHONFAULTHANDLER": "1"}
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", f"from dashapp.isolation import {entry}; {entry}()",
             str(child.fileno()), ",".join(preload)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, pass_fds=(child.fileno(),),
            start_new_session=True, env=env, close_fds=True)
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return process, parent


class _Worker:
    """One started worker process and the parent's end of its socket."""

    def __init__(self, preload: Sequence[str]) -> None:
        # Closed by close_stderr() once the job's error message has been built.
        self.stderr: IO[bytes] = tempfile.TemporaryFile(prefix="experimentos-worker-")  # noqa: SIM115
        self.process, parent = _start_interpreter("_worker_main", preload, self.stderr)
        self.connection = Connection(parent.detach())
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker's process group (the worker and anything it started), then reap it.

        The group is killed before the worker is reaped, so its id cannot have been reused."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        self.connection.close()

    def stderr_tail(self, limit: int = 2000) -> str:
        try:
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - limit))
            return self.stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def close_stderr(self) -> None:
        with contextlib.suppress(OSError):
            self.stderr.close()


class _ForkedProcess:
    """The ``Popen`` interface :class:`_Worker` uses, for a child made by :func:`os.fork`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class _ForkedWorker(_Worker):
    """A worker forked from a single-threaded caller (the CLI) that has already imported the job's
    modules: no interpreter start and no imports, a few milliseconds instead of about half a
    second. Never used by the multi-threaded server (a fork copies locks other threads hold)."""

    def __init__(self, preload: Sequence[str]) -> None:
        parent, child = socket.socketpair()
        self.stderr = tempfile.TemporaryFile(prefix="experimentos-worker-")  # noqa: SIM115
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                parent.close()
                os.setsid()  # its own process group, as a Popen worker's: killpg reaches what it starts
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(self.stderr.fileno(), 2)
                # A native crash's Python traceback goes to this worker's standard error, kept for
                # the error (as a fresh worker's PYTHONFAULTHANDLER does), not to the caller's terminal.
                faulthandler.enable()
                # The caller's heap came with the fork: the job's memory limit counts beyond it.
                _serve_one_job(Connection(child.detach()), inherited_bytes=_data_segment_bytes())
                code = 0
            finally:
                os._exit(code)
        child.close()
        self.process = _ForkedProcess(pid)  # type: ignore[assignment]
        self.connection = Connection(parent.detach())
        self.pid = pid


class _Zygote:
    """A fork server: a fresh interpreter (started as a :class:`_Worker` is) that imports the job
    code once, then forks one worker per job on request. It is single-threaded, so its forks are
    safe; a job then starts in milliseconds instead of an interpreter's half second of imports,
    and costs no CPU beyond its own work. It reaps its children and writes each one's wait
    status to the status pipe the server handed over with the job."""

    def __init__(self, preload: Sequence[str]) -> None:
        self.process, self.control = _start_interpreter("_zygote_main", preload, subprocess.DEVNULL)
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.process.poll() is None

    def fork(self, job: socket.socket, stderr: IO[bytes], status: int) -> int:
        """A new worker serving ``job``, writing to ``stderr``; returns its pid (its own process group)."""
        with self.lock:
            socket.send_fds(self.control, [b"f"], [job.fileno(), stderr.fileno(), status])
            answer = self.control.recv(16)
        if len(answer) != 8:
            raise OSError("the fork server did not start a worker")
        return int.from_bytes(answer, "little", signed=True)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.control.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class _ZygoteProcess:
    """The ``Popen`` interface :class:`_Worker` uses, for a worker forked by a :class:`_Zygote`:
    not this process's child, so its exit status comes through the status pipe."""

    def __init__(self, pid: int, status: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._status = status

    def _read(self, timeout: float | None) -> None:
        if self.returncode is not None or self._status < 0:
            return
        ready, _, _ = select.select([self._status], [], [], timeout)
        if not ready:
            return
        data = os.read(self._status, 8)
        os.close(self._status)
        self._status = -1
        # The zygote died before reaping it: treat as killed.
        self.returncode = os.waitstatus_to_exitcode(int.from_bytes(data, "little")) if len(data) == 8 \
            else -signal.SIGKILL

    def poll(self) -> int | None:
        self._read(0)
        return self.returncode

    def wait(self) -> int | None:
        self._read(10.0)  # the zygote reaps within a few ms of the death
        if self.returncode is None and self._status >= 0:
            os.close(self._status)
            self._status = -1
            self.returncode = -signal.SIGKILL
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)


class _ZygoteWorker(_Worker):
    """A worker forked by the pool's :class:`_Zygote`."""

    def __init__(self, zygote: _Zygote) -> None:
        parent, child = socket.socketpair()
        self.stderr = tempfile.TemporaryFile(prefix="experimentos-worker-")  # noqa: SIM115
        read_status, write_status = os.pipe()
        try:
            pid = zygote.fork(child, self.stderr, write_status)
        except BaseException:
            os.close(read_status)
            parent.close()
            raise
        finally:
            child.close()
            os.close(write_status)
        self.process = _ZygoteProcess(pid, read_status)  # type: ignore[assignment]
        self.connection = Connection(parent.detach())
        self.pid = pid


class WorkerPool:
    """Runs jobs in worker processes, keeping ``warm`` idle ones ready and at most ``max_workers``
    running at once (further jobs wait for a slot). Thread-safe; each worker runs one job.

    A used worker is replaced when its job ends, so the replacement's imports never compete with a
    job for a core; with ``ahead`` (a batch, such as the CLI's files) it is replaced when the job
    starts, so the next job finds a worker ready.

    ``fork=True`` forks each worker from the caller at the job instead (no warm workers): for a
    single-threaded caller that has imported the job's code already, such as the CLI, where
    starting and importing a fresh interpreter would cost more than the analysis.

    ``fork_server=True`` (the server's pool) keeps one :class:`_Zygote` instead of warm workers:
    every job gets a freshly forked worker of an interpreter that did its imports once, so jobs
    in quick succession never wait for (or pay the CPU of) a new interpreter."""

    def __init__(self, *, warm: int = 1, max_workers: int = 2, preload: Sequence[str] = DEFAULT_PRELOAD,
                 ahead: bool = False, fork: bool = False, fork_server: bool = False) -> None:
        if warm < 0 or max_workers < 1:
            raise ValueError(f"warm must be >= 0 and max_workers >= 1, got {warm} and {max_workers}")
        if (fork or fork_server) and (warm or ahead):
            raise ValueError("a forking pool keeps no warm workers: use warm=0 and ahead=False")
        if fork and fork_server:
            raise ValueError("choose fork or fork_server, not both")
        self._fork = fork
        self._fork_server = fork_server
        self._zygote: _Zygote | None = None
        self._warm = warm
        self._ahead = ahead
        self._preload = tuple(preload)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_workers)
        self._max_workers = max_workers
        self._owner = os.getpid()
        self._closed = False

    def start(self) -> WorkerPool:
        """Start the warm workers (or the fork server) now rather than at the first job; returns the pool."""
        if self._fork_server:
            self._zygote_ready()
        self._refill()
        return self

    def _zygote_ready(self) -> _Zygote:
        with self._lock:
            if os.getpid() != self._owner:  # a forked copy of the pool: the fork server is the parent's
                self._zygote, self._idle, self._owner = None, [], os.getpid()
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    self._zygote.close()
                self._zygote = _Zygote(self._preload)
            return self._zygote

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the idle workers; a job still running ends as it would."""
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
            zygote, self._zygote = self._zygote, None
        for worker in idle:
            worker.kill()
            worker.close_stderr()
        if zygote is not None:
            zygote.close()

    @property
    def max_workers(self) -> int:
        """How many jobs run at once (a further :meth:`submit` waits for a slot)."""
        return self._max_workers

    def idle_pids(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(w.pid for w in self._idle)

    def _take(self) -> _Worker:
        with self._lock:
            if os.getpid() != self._owner:  # a forked copy of the pool: the workers are the parent's
                self._idle, self._owner = [], os.getpid()
            while self._idle:
                worker = self._idle.pop(0)
                if worker.alive():
                    return worker
                worker.kill()
                worker.close_stderr()
        if self._fork_server:
            try:
                return _ZygoteWorker(self._zygote_ready())
            except OSError:  # the fork server died meanwhile: one more try with a new one
                with self._lock:
                    if self._zygote is not None:
                        self._zygote.close()
                        self._zygote = None
                return _ZygoteWorker(self._zygote_ready())
        return _ForkedWorker(self._preload) if self._fork else _Worker(self._preload)

    def _refill(self) -> None:
        with self._lock:
            missing = 0 if self._closed else self._warm - len(self._idle)
        started = [_Worker(self._preload) for _ in range(max(0, missing))]
        with self._lock:
            self._idle.extend(started)

    def run(self, function: Callable[..., T], *args: Any, limits: Limits | None = None,
            on_progress: Callable[[float], None] | None = None, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` in a worker under ``limits`` (default:
        :meth:`Limits.from_environment`); returns its result.

        ``function`` must be importable by name (a module-level function) and its arguments and
        result picklable. With ``on_progress``, the function is also given ``on_progress=``, a
        callable whose values are passed to ``on_progress`` here, in the calling thread.

        Raises :class:`WorkerCrashedError`, :class:`WorkerOutOfMemoryError`,
        :class:`WorkerTimeoutError`, or what ``function`` raised."""
        return self.submit(function, *args, limits=limits, progress=on_progress is not None,
                           **kwargs).result(on_progress)

    def submit(self, function: Callable[..., T], *args: Any, limits: Limits | None = None, progress: bool = False,
               **kwargs: Any) -> Job[T]:
        """Start ``function(*args, **kwargs)`` in a worker and return at once: the caller works on
        (a CLI analyses the previous file while the worker reads the next) and takes the answer
        with :meth:`Job.result`. It holds one of the pool's ``max_workers`` slots until then.
        ``progress``: give the function ``on_progress=`` (see :meth:`run`)."""
        limits = limits or Limits.from_environment()
        self._slots.acquire()
        try:
            worker = self._take()
        except BaseException:
            self._slots.release()
            raise
        if self._ahead:
            self._refill()
        # If the worker died before the job reached it, its exit status tells why (Job.result).
        with contextlib.suppress(OSError):
            worker.connection.send((function, args, kwargs, limits, progress))
        return Job(self, worker, limits)

    def _finish(self, worker: _Worker) -> None:
        """A job's end, answered or not: its worker is killed and the slot freed."""
        worker.kill()
        worker.close_stderr()
        self._slots.release()
        self._refill()


class Job(Generic[T]):
    """A job :meth:`WorkerPool.submit` started: :meth:`result` waits for its answer (or
    :meth:`cancel` kills it); either ends the worker and frees its slot, once."""

    def __init__(self, pool: WorkerPool, worker: _Worker, limits: Limits) -> None:
        self._pool = pool
        self._worker: _Worker | None = worker
        self._limits = limits
        self._deadline = time.monotonic() + limits.wall_seconds

    def result(self, on_progress: Callable[[float], None] | None = None) -> T:
        """The function's result; its progress values go to ``on_progress`` meanwhile. Raises
        what :meth:`WorkerPool.run` raises, and ``RuntimeError`` when the job already ended."""
        worker = self._worker
        if worker is None:
            raise RuntimeError("this job has already ended: its result was taken or it was cancelled")
        self._worker = None
        try:
            return _await_answer(worker, self._deadline, self._limits, on_progress)
        finally:
            self._pool._finish(worker)

    def cancel(self) -> None:
        """Kill the worker if the job has not ended (no answer will be taken)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            self._pool._finish(worker)


def _await_answer(worker: _Worker, deadline: float, limits: Limits,
                  on_progress: Callable[[float], None] | None) -> T:
    answer: tuple[str, Any] | None = None
    while answer is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            worker.kill()
            raise WorkerTimeoutError(f"the work did not finish within {limits.wall_seconds:g} s and was stopped",
                                     seconds=limits.wall_seconds, stderr=worker.stderr_tail())
        try:
            ready = worker.connection.poll(min(remaining, _POLL_SECONDS))
        except OSError:
            break
        if not ready:
            if not worker.alive():
                # It may have answered just before it exited: read what is left.
                with contextlib.suppress(OSError):
                    if worker.connection.poll(0):
                        continue
                break
            continue
        try:
            kind, payload = worker.connection.recv()
        except (EOFError, OSError):
            break
        if kind == "progress":
            if on_progress is not None:
                on_progress(payload)
            continue
        answer = (kind, payload)
    if answer is None:
        worker.kill()
        raise _death(worker, limits)
    kind, payload = answer
    if kind == "ok":
        return payload  # type: ignore[no-any-return]
    if kind == "memory":
        raise WorkerOutOfMemoryError(_memory_message(limits), limit_bytes=limits.memory_bytes,
                                     stderr=worker.stderr_tail())
    if kind == "error":
        raise payload
    raise WorkerCrashedError(f"the worker failed: {payload}", stderr=worker.stderr_tail())


def _memory_message(limits: Limits) -> str:
    limit = f"{limits.memory_bytes / 2**20:,.0f} MB" if limits.memory_bytes else "the memory available"
    return f"the work needed more memory than its limit of {limit}"


def _death(worker: _Worker, limits: Limits) -> IsolationError:
    """The named error for a worker that exited without an answer."""
    code = worker.process.returncode
    tail = worker.stderr_tail()
    if code is not None and code < 0:
        number = -code
        if number == signal.SIGXCPU or (number == signal.SIGKILL and "CPU time limit" in tail):
            return WorkerTimeoutError(f"the work used more than {limits.cpu_limit} s of CPU time and was stopped",
                                      seconds=limits.cpu_limit, cpu=True, stderr=tail)
        if "MemoryError" in tail or "bad_alloc" in tail or "Cannot allocate memory" in tail:
            return WorkerOutOfMemoryError(_memory_message(limits), limit_bytes=limits.memory_bytes, stderr=tail)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return WorkerCrashedError(f"the worker crashed (signal {number}, {name})", signal_number=number, stderr=tail)
    if "MemoryError" in tail:
        return WorkerOutOfMemoryError(_memory_message(limits), limit_bytes=limits.memory_bytes, stderr=tail)
    return WorkerCrashedError(f"the worker exited with status {code} without an answer", exit_code=code, stderr=tail)


@functools.lru_cache(maxsize=1)
def _default_pool(owner: int) -> WorkerPool:
    most = int(_number(MAX_WORKERS_ENV, max(2, os.cpu_count() or 1)))
    if os.environ.get(FORK_SERVER_ENV, "1").strip() != "0":
        return WorkerPool(warm=0, max_workers=max(1, most), fork_server=True)
    warm = int(_number(WARM_ENV, 1))
    return WorkerPool(warm=max(0, warm), max_workers=max(1, most))


def default_pool() -> WorkerPool:
    """The process's pool (one per process id, so a forked child never uses its parent's workers):
    ``EXPERIMENTOS_WORKERS_WARM`` idle workers (default 1), ``EXPERIMENTOS_WORKERS_MAX`` at once
    (default: the cores, at least 2)."""
    return _default_pool(os.getpid())


def run_isolated(function: Callable[..., T], *args: Any, limits: Limits | None = None,
                 on_progress: Callable[[float], None] | None = None, **kwargs: Any) -> T:
    """:meth:`WorkerPool.run` on :func:`default_pool`."""
    return default_pool().run(function, *args, limits=limits, on_progress=on_progress, **kwargs)


# -- the worker's side ---------------------------------------------------------------------------


def _data_segment_bytes() -> int:
    """This process's data segment now (``VmData``: what ``RLIMIT_DATA`` counts), 0 if unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _apply_limits(limits: Limits, inherited_bytes: int = 0) -> None:
    """The job's limits; ``inherited_bytes``: the data a forked worker got from its caller, which
    the memory limit comes on top of (a CLI forks from ~0.1 GB, a test process from several)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not write a multi-GB core file
    if limits.memory_bytes is not None:
        data = limits.memory_bytes + inherited_bytes
        resource.setrlimit(resource.RLIMIT_DATA, (data, data))
        duckdb_mb = max(32, int(limits.memory_bytes * DUCKDB_MEMORY_SHARE / 2**20))
        os.environ[DUCKDB_MEMORY_ENV] = f"{duckdb_mb}MB"
    os.environ[DUCKDB_THREADS_ENV] = str(limits.threads)
    # RLIMIT_CPU counts from the process's start: the imports already done are added.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + limits.cpu_limit
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + CPU_GRACE_SECONDS))


def _worker_main() -> None:
    """The worker process: import ``argv[2]``'s modules, take one job from the socket ``argv[1]``,
    answer ``("ok", result)``, ``("error", exception)`` or ``("memory", None)``, exit."""
    connection = Connection(int(sys.argv[1]))
    for module in filter(None, sys.argv[2].split(",") if len(sys.argv) > 2 else ()):
        with contextlib.suppress(ImportError):
            __import__(module)
    _serve_one_job(connection)


def _zygote_main() -> None:
    """The fork server: import ``argv[2]``'s modules, then for each request on the control socket
    ``argv[1]`` (a byte and three descriptors: the job's socket, standard error, a status pipe)
    fork a worker, answer its pid, and write each reaped worker's wait status to its pipe. Exits
    when the server closes the control socket (or dies)."""
    control = socket.socket(fileno=int(sys.argv[1]))
    for module in filter(None, sys.argv[2].split(",") if len(sys.argv) > 2 else ()):
        with contextlib.suppress(ImportError):
            __import__(module)
    statuses: dict[int, int] = {}
    while True:
        ready, _, _ = select.select([control], [], [], 0.02 if statuses else None)
        while statuses:  # reap: each worker's status goes to the pipe the server reads
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if not pid:
                break
            pipe = statuses.pop(pid, None)
            if pipe is not None:
                with contextlib.suppress(OSError):
                    os.write(pipe, status.to_bytes(8, "little"))
                os.close(pipe)
        if not ready:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(control, 16, 3)
        except OSError:
            return
        if not message or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return  # the server is gone: idle, no job to finish
        job, stderr, status_pipe = fds
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                control.close()
                os.close(status_pipe)
                os.setsid()  # its own process group: the server's killpg reaches what it starts
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(stderr, 2)
                os.close(stderr)
                _serve_one_job(Connection(job))
                code = 0
            finally:
                os._exit(code)
        os.close(job)
        os.close(stderr)
        statuses[pid] = status_pipe
        control.sendall(pid.to_bytes(8, "little", signed=True))


def _serve_one_job(connection: Connection, *, inherited_bytes: int = 0) -> None:
    """Take one job from ``connection`` and answer it (see :func:`_worker_main`); ``inherited_bytes``:
    see :func:`_apply_limits`."""
    try:
        function, args, kwargs, limits, progress = connection.recv()
    except (EOFError, OSError):
        return  # the pool closed, or the parent is gone
    _apply_limits(limits, inherited_bytes)
    sending = threading.Lock()

    def send(message: tuple[str, Any]) -> None:
        with sending:
            connection.send(message)

    if progress:
        kwargs = {**kwargs, "on_progress": lambda value: send(("progress", value))}
    try:
        result = function(*args, **kwargs)
    except MemoryError:
        send(("memory", None))
        return
    except BaseException as error:  # raised again in the caller
        send(("error", _transferable(error)))
        return
    try:
        send(("ok", result))
    except MemoryError:
        send(("memory", None))


def _transferable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling (with its message), else a ``RuntimeError`` naming it."""
    error.__traceback__ = None
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # any failure to pickle means: send a plain copy
        return RuntimeError(f"{type(error).__name__}: {error}")
