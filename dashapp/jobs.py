"""Background callbacks on threads of the server process.

Dash's own ``DiskcacheManager`` forks the (multi-threaded) server for every job; a forked
child inherits locks held by other threads, and WeasyPrint / DuckDB deadlocked in it here.
:class:`ThreadJobManager` implements the same manager interface with a worker thread per
job and an in-memory result store, so ``@app.callback(background=True, progress=...)``
works with no extra service: DuckDB and hashlib release the GIL, so the server keeps
answering (progress polls included) while a scan runs. Jobs run inside the Flask app
context, so callbacks can read the app's settings as they do in a request.

A thread cannot be killed: a cancelled or superseded job runs to its end and its result is
dropped after ``ttl`` seconds unread. Results live in the memory of the process that runs the
job, so several server processes behind one address need sticky sessions.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import flask
from dash.background_callback.managers import BaseBackgroundCallbackManager
from dash.background_callback.managers.diskcache_manager import _make_job_fn

__all__ = ["ThreadJobManager"]


class _Store:
    """A thread-safe dictionary whose entries expire ``ttl`` seconds after they were set."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._items: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def set(self, key: str, value: Any) -> None:
        now = time.monotonic()
        with self._lock:
            self._items[key] = (now, value)
            for stale in [k for k, (at, _) in self._items.items() if now - at > self._ttl]:
                del self._items[stale]

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            entry = self._items.get(key)
        return default if entry is None else entry[1]

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


class ThreadJobManager(BaseBackgroundCallbackManager):  # type: ignore[misc]
    """A Dash background callback manager that runs each job on a daemon thread."""

    def __init__(self, *, ttl: float = 600.0) -> None:
        self._store = _Store(ttl)
        self._jobs: dict[str, tuple[threading.Thread, str]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: flask.Flask | None = None
        self._secret: bytes | None = None
        super().__init__(cache_by=None)

    def attach(self, server: flask.Flask) -> None:
        """The Flask server whose app context the jobs run in."""
        self._server = server

    # -- running jobs -------------------------------------------------------------------------

    def make_job_fn(self, fn: Callable[..., Any], progress: bool, key: str | None = None) -> Callable[..., None]:
        # Dash's own job wrapper: sets the callback context, calls fn with set_progress when
        # asked, and stores the output (or the error and its traceback) under the result key.
        job_fn: Callable[..., None] = _make_job_fn(fn, self._store, progress)
        return job_fn

    def call_job_fn(self, key: str, job_fn: Callable[..., None], args: Any, context: Any) -> str:
        job = str(next(self._ids))
        server = self._server
        # The job outlives the request; who started it (for per-user quotas) goes with it.
        user = flask.request.environ.get("REMOTE_USER") if flask.has_request_context() else None

        def run() -> None:
            if server is None:
                job_fn(key, self._make_progress_key(key), args, context)
                return
            with server.app_context():
                flask.g.remote_user = user
                job_fn(key, self._make_progress_key(key), args, context)

        thread = threading.Thread(target=run, name=f"dash-job-{job}", daemon=True)
        with self._lock:
            # Forget finished jobs whose result nobody will collect any more (a closed tab).
            for stale in [j for j, (t, k) in self._jobs.items()
                          if not t.is_alive() and self._store.get(k, self.UNDEFINED) is self.UNDEFINED]:
                del self._jobs[stale]
            self._jobs[job] = (thread, key)
        thread.start()
        return job

    def job_running(self, job: Any) -> bool:
        with self._lock:
            entry = self._jobs.get(str(job))
        if entry is None:
            return False
        thread, key = entry
        # A job that just finished counts as running until its result is collected, so a poll
        # that looked for the result a moment before it was stored does not end the callback.
        return thread.is_alive() or self._store.get(key, self.UNDEFINED) is not self.UNDEFINED

    def terminate_job(self, job: Any) -> None:
        if job is None:
            return
        with self._lock:
            self._jobs.pop(str(job), None)

    def terminate_unhealthy_job(self, job: Any) -> bool:
        with self._lock:
            entry = self._jobs.get(str(job))
        if entry is not None and not entry[0].is_alive() and self._store.get(entry[1], self.UNDEFINED) is self.UNDEFINED:
            self.terminate_job(job)
            return True
        return False

    # -- results and progress -----------------------------------------------------------------

    def get_progress(self, key: str) -> Any:
        progress_key = self._make_progress_key(key)
        value = self._store.get(progress_key)
        if value:
            self._store.delete(progress_key)
        return value

    def result_ready(self, key: str) -> bool:
        return self._store.get(key) is not None

    def get_result(self, key: str, job: Any) -> Any:
        result = self._store.get(key, self.UNDEFINED)
        if result is self.UNDEFINED:
            return self.UNDEFINED
        self.clear_cache_entry(key)
        self.clear_cache_entry(self._make_progress_key(key))
        if job:
            self.terminate_job(job)
        return result

    def get_updated_props(self, key: str) -> Any:
        set_props_key = self._make_set_props_key(key)
        result = self._store.get(set_props_key, self.UNDEFINED)
        if result is self.UNDEFINED:
            return {}
        self.clear_cache_entry(set_props_key)
        return result

    def clear_cache_entry(self, key: str) -> None:
        self._store.delete(key)

    def get_or_create_signing_secret(self, generate: Callable[[], bytes]) -> bytes:
        with self._lock:
            if self._secret is None:
                self._secret = generate()
            return self._secret
