"""What the dashboard shows when the experiment database cannot answer, and reads that never queue.

Faults. Every :class:`storage.errors.DatabaseError` (a full disk, a damaged file, a lock held too
long, a newer schema…) reaches the user as one card saying what happened and what to do, never
as a bare 500:

* a page layout that raises it shows :func:`fault_card` instead of the page (:func:`guard_layout`,
  applied to every page when the app registers it);
* a callback that raises it leaves its outputs as they were and shows the card in the app
  shell's banner (:func:`on_callback_error`, the app's ``on_error``);
* a custom Flask route that raises it answers 503 with the message (:func:`install_faults`).

Reads that never queue. The database lets one process at a time open the file, so a long save
(or another process holding ``<database>.lock``) would make every page wait for it. The
dashboard's database (:class:`DashboardDatabase`, from :func:`dashapp.pages.context.database`)
gives each read a short deadline (``EXPERIMENTOS_READ_TIMEOUT``, 2 s) and keeps the last
successful answer to each read in a small in-memory cache on the Flask app (:class:`ReadCache`).
When the database stays busy past the deadline the page is drawn from that answer with a banner
"showing data from HH:MM:SS, the database is busy"; with nothing cached, the read raises
:class:`storage.errors.DatabaseBusyError` and the page shows "busy, try again in a moment".
Storage knows nothing of this: it only honours ``read_timeout``.
"""

from __future__ import annotations

import collections
import functools
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import dash
import dash_bootstrap_components as dbc
import duckdb
import flask
from dash import html
from dash.exceptions import MissingCallbackContextException

from dashapp import ids
from storage.database import (
    AnalysisRecord,
    ComparisonRow,
    ExperimentDatabase,
    ExperimentRecord,
    HistoryPage,
    MemoVersion,
    PortfolioSummary,
)
from storage.errors import (
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseError,
    DatabaseLockedError,
    DiskFullError,
    SchemaTooNewError,
)

__all__ = [
    "BUSY_RETRY_SECONDS",
    "DEFAULT_READ_TIMEOUT",
    "READ_CACHE_ENTRIES",
    "CachedRead",
    "DashboardDatabase",
    "ReadCache",
    "busy_banner",
    "fault_card",
    "fault_title",
    "guard_layout",
    "install_faults",
    "on_callback_error",
    "read_cache",
    "render_failure_card",
    "stale_since",
]

#: Seconds a dashboard read waits for a writer before answering from its cache.
DEFAULT_READ_TIMEOUT = 2.0
#: Answers kept per app (least recently used go first): pages of History, experiments, compares.
READ_CACHE_ENTRIES = 256
_CACHE_EXTENSION = "experimentos.read_cache"
_STALE_KEY = "experimentos_stale_since"
_BUSY_KEY = "experimentos_database_busy"
#: Once one read of a request found the database busy, the request's other reads try only this
#: long (seconds): a page of five reads waits ~2 s in all, not 5 × 2 s.
BUSY_RETRY_SECONDS = 0.05
T = TypeVar("T")


# -- the cards ---------------------------------------------------------------------------------


def fault_title(error: DatabaseError) -> str:
    """A short headline for the kind of fault (the message itself says what to do)."""
    if isinstance(error, DiskFullError):
        return "The disk is full"
    if isinstance(error, DatabaseCorruptError):
        return "The experiment database is damaged"
    if isinstance(error, DatabaseBusyError):
        return "The database is busy"
    if isinstance(error, DatabaseLockedError):
        return "The database is locked"
    if isinstance(error, SchemaTooNewError):
        return "The database is from a newer ExperimentOS"
    return "The experiment database cannot be used"


def fault_card(error: DatabaseError, *, element_id: str | None = ids.DATABASE_FAULT) -> dbc.Alert:
    """One card: what happened (the headline), the message with what to do, and that nothing the
    user saw before was changed. ``element_id``: ``None`` for the copy shown in the shell banner."""
    busy = isinstance(error, DatabaseBusyError)
    hint = ("Nothing was lost: reload the page in a moment." if busy else
            "Pages that need the database will show this until it is fixed; nothing else was changed.")
    options: dict[str, Any] = {"id": element_id} if element_id else {}
    return dbc.Alert([html.Strong(f"{fault_title(error)}. "), html.Span(str(error)),
                      html.Div(hint, className="small mt-1")],
                     color="warning" if busy else "danger", className="text-break database-fault", **options)


def busy_banner(read_at: float) -> dbc.Alert:
    """The banner over a page drawn from data read earlier because the database is busy now."""
    shown = time.strftime("%H:%M:%S", time.localtime(read_at))
    return dbc.Alert([html.Strong(f"Showing data from {shown}, the database is busy. "),
                      html.Span("Another process is writing to it; reload in a moment for the latest data.")],
                     color="info", className="py-2 database-stale", dismissable=True)


def _show_in_shell(children: Any) -> bool:
    """Put ``children`` in the app shell's banner when called inside a Dash callback; ``False`` outside one."""
    try:
        dash.set_props(ids.FAULT_BANNER, {"children": children})
    except (LookupError, MissingCallbackContextException):  # not in a callback: a page function called directly
        return False
    return True


# -- where faults are caught -------------------------------------------------------------------


def stale_since() -> float | None:
    """When the oldest cached answer used by the current request was read (``None``: all fresh)."""
    if not flask.has_app_context():
        return None
    value = flask.g.get(_STALE_KEY)
    return float(value) if value is not None else None


def guard_layout(layout: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a page's ``layout`` so a :class:`DatabaseError` shows :func:`fault_card` instead of a 500,
    and a page drawn from cached data carries :func:`busy_banner`.

    Inside the pages router callback the banner goes to the shell (and an earlier page's banner is
    cleared); called directly, it is put above the page."""

    @functools.wraps(layout)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if flask.has_app_context():
            flask.g.pop(_STALE_KEY, None)
        try:
            content = layout(*args, **kwargs)
        except DatabaseError as error:
            _show_in_shell(None)
            return fault_card(error)
        since = stale_since()
        banner = busy_banner(since) if since is not None else None
        if not _show_in_shell(banner) and banner is not None:
            return html.Div([banner, content])
        return content

    return guarded


def render_failure_card(error: Exception) -> dbc.Alert:
    """A PDF that could not be rendered (too slow, or its worker crashed): what to do instead."""
    return dbc.Alert([html.Strong("The PDF could not be made. "), html.Span(f"{error}. "),
                      html.Span("Download the HTML memo (it prints to PDF from the browser) or the Markdown, or try "
                                "again later.")], color="warning", className="text-break render-fault")


def on_callback_error(error: Exception) -> Any:
    """The app's ``on_error``: a :class:`DatabaseError` from any callback is shown in the shell's
    banner and the callback's outputs stay as they were, and so is a PDF whose render failed
    (:class:`dashapp.errors.RenderFailedError`); anything else propagates as before."""
    from dashapp.errors import RenderFailedError

    if isinstance(error, RenderFailedError):
        _show_in_shell(render_failure_card(error))
        return None
    if not isinstance(error, DatabaseError):
        raise error
    _show_in_shell(fault_card(error, element_id=None))
    return None  # Dash: no update to the outputs


def install_faults(server: flask.Flask) -> None:
    """Set up ``server`` for this module: the read deadline (``EXPERIMENTOS_READ_TIMEOUT`` seconds,
    2 by default), the read cache, and a handler so custom routes (upload, sign-in, downloads)
    answer a :class:`DatabaseError` with 503 and its message — JSON for the upload route, plain
    text otherwise — never a traceback page."""
    try:
        timeout = float(os.environ.get("EXPERIMENTOS_READ_TIMEOUT") or DEFAULT_READ_TIMEOUT)
    except ValueError:
        timeout = DEFAULT_READ_TIMEOUT
    server.config.setdefault("EXPERIMENTOS_READ_TIMEOUT", timeout if timeout > 0 else DEFAULT_READ_TIMEOUT)
    read_cache(server)

    def database_fault(error: DatabaseError) -> tuple[Any, int]:
        message = f"{fault_title(error)}: {error}"
        if flask.request.path.startswith("/upload"):
            return {"error": message}, 503
        return flask.Response(message + "\n", mimetype="text/plain"), 503

    server.register_error_handler(DatabaseError, database_fault)


# -- reads that do not queue -------------------------------------------------------------------


@dataclass(frozen=True)
class CachedRead:
    """A read's answer and when (``time.time()``) it was read."""

    value: Any
    read_at: float


class ReadCache:
    """The last successful answer of each read, by (database, method, arguments); thread-safe,
    at most ``max_entries`` answers (the least recently used are dropped)."""

    def __init__(self, max_entries: int = READ_CACHE_ENTRIES, *, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: collections.OrderedDict[Hashable, CachedRead] = collections.OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[key] = CachedRead(value, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get(self, key: Hashable) -> CachedRead | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def read_cache(server: flask.Flask) -> ReadCache:
    """The app's read cache (made on first use and kept in ``server.extensions``)."""
    cache = server.extensions.get(_CACHE_EXTENSION)
    if cache is None:
        cache = server.extensions.setdefault(_CACHE_EXTENSION, ReadCache())
    assert isinstance(cache, ReadCache)
    return cache


class DashboardDatabase(ExperimentDatabase):
    """The experiment database as pages read it: each read gives up after ``read_timeout`` and
    then answers from ``cache`` (marking the request as showing stale data, see
    :func:`stale_since`), or raises :class:`DatabaseBusyError` when it has never been read.
    Writes behave exactly as :class:`ExperimentDatabase`'s."""

    def __init__(self, path: Any, *, cache: ReadCache, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 **options: Any) -> None:
        super().__init__(path, read_timeout=read_timeout, **options)
        self.cache = cache

    @contextmanager
    def _connection(self, *, read: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """:meth:`ExperimentDatabase._connection`, but a read gives up almost at once when an earlier
        read of the same request found the database busy (also for reads made through this object
        by other repositories, e.g. :class:`storage.users.UserDirectory`)."""
        if not read:
            with super()._connection() as connection:
                yield connection
            return
        full = self.read_timeout
        if flask.has_app_context() and flask.g.get(_BUSY_KEY):
            self.read_timeout = min(full, BUSY_RETRY_SECONDS)
        try:
            with super()._connection(read=True) as connection:
                self.read_timeout = full
                yield connection
        except DatabaseBusyError:
            if flask.has_app_context():
                setattr(flask.g, _BUSY_KEY, True)
            raise
        finally:
            self.read_timeout = full

    def _cached(self, method: str, read: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        key = (str(self.path), method, _frozen(args), _frozen(sorted(kwargs.items())))
        try:
            value = read(*args, **kwargs)
        except DatabaseBusyError:
            entry = self.cache.get(key)
            if entry is None:
                raise
            self._note_stale(entry.read_at)
            return entry.value  # type: ignore[no-any-return]
        self.cache.put(key, value)
        return value

    @staticmethod
    def _note_stale(read_at: float) -> None:
        if flask.has_app_context():
            previous = flask.g.get(_STALE_KEY)
            setattr(flask.g, _STALE_KEY, read_at if previous is None else min(previous, read_at))
        _show_in_shell(busy_banner(read_at))

    # Arguments pass through unchanged, so a parameter added to a read in storage needs nothing here.
    def experiment(self, *args: Any, **kwargs: Any) -> ExperimentRecord:
        return self._cached("experiment", super().experiment, args, kwargs)

    def analyses(self, *args: Any, **kwargs: Any) -> tuple[AnalysisRecord, ...]:
        return self._cached("analyses", super().analyses, args, kwargs)

    def analysis(self, *args: Any, **kwargs: Any) -> AnalysisRecord:
        return self._cached("analysis", super().analysis, args, kwargs)

    def memos(self, *args: Any, **kwargs: Any) -> tuple[MemoVersion, ...]:
        return self._cached("memos", super().memos, args, kwargs)

    def count_experiments(self, *args: Any, **kwargs: Any) -> int:
        return self._cached("count_experiments", super().count_experiments, args, kwargs)

    def history(self, *args: Any, **kwargs: Any) -> HistoryPage:
        return self._cached("history", super().history, args, kwargs)

    def portfolio(self, *args: Any, **kwargs: Any) -> PortfolioSummary:
        return self._cached("portfolio", super().portfolio, args, kwargs)

    def compare(self, *args: Any, **kwargs: Any) -> tuple[ComparisonRow, ...]:
        return self._cached("compare", super().compare, args, kwargs)


def _frozen(value: Any) -> Hashable:
    """``value`` as a cache key: lists and tuples (of ids, of keyword pairs) become tuples."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    return value  # type: ignore[no-any-return]
