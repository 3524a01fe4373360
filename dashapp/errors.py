"""Exceptions raised by :mod:`dashapp` (the CLI, the services, the dashboard and the memo renderers).

Exception tree::

    ValueError
    └── UploadRejectedError          an input refused before (or instead of) its analysis; the message
        │                            is shown as "Upload refused: …" (dashboard) or one line, exit 2 (CLI)
        ├── UnreadableFileError      its worker process crashed, ran out of memory or of time
        ├── SessionRejectedError     a session state from the browser the server will not act on
        ├── LookBlockedError         a look whose data is Blocked (not stored; carries its report)
        └── QuotaExceededError       staging it would take the user past their staging quota
    RuntimeError
    ├── IsolationError               a worker process gave no result (:mod:`dashapp.isolation`)
    │   ├── WorkerCrashedError       killed by a signal (a native fault) or exited without an answer
    │   ├── WorkerOutOfMemoryError   needed more memory than the worker's limit
    │   └── WorkerTimeoutError       ran past its wall-clock or CPU-time limit
    └── RenderFailedError            the PDF memo could not be rendered (crash or out of memory)
        └── RenderTimeoutError       rendering the PDF took longer than its time limit

:class:`IsolationError` is what :func:`dashapp.isolation.run_isolated` raises; callers turn it into
the error of their audience: the analysis of a file into :class:`UnreadableFileError`, the PDF
renderer into :class:`RenderFailedError` / :class:`RenderTimeoutError`. It never reaches a user as
itself.

Errors of the layer below, :mod:`storage.errors` (``StorageError``: an input file that cannot be
opened, the Spark engine, the experiment database, an unknown experiment, a report above the size
cap), are not wrapped: they pass through the services unchanged. The CLI prints any of them as one
line on stderr and exits 2; the dashboard shows a ``DatabaseError`` as the fault card of
:mod:`dashapp.faults` (HTTP 503 on the plain routes), the others in the callback's own message.
The CLI's ``UsageError`` (a bad argument: one line, exit 2) stays private to :mod:`dashapp.cli`.

Every message is one sentence a user can act on: what happened and what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analytics import Report

__all__ = [
    "IsolationError",
    "LookBlockedError",
    "QuotaExceededError",
    "RenderFailedError",
    "RenderTimeoutError",
    "SessionRejectedError",
    "UnreadableFileError",
    "UploadRejectedError",
    "WorkerCrashedError",
    "WorkerOutOfMemoryError",
    "WorkerTimeoutError",
]


# -- inputs refused ------------------------------------------------------------------------------


class UploadRejectedError(ValueError):
    """An upload that is refused before analysis: larger than the upload limit, no longer staged,
    or named by a session that does not name a valid staged file.

    Raised by the dashboard's services (:mod:`dashapp.workspace`); the page that took the upload
    shows "Upload refused: <message>" and keeps what it showed before. Every subclass is shown
    the same way, so a callback that catches this one shows all of them."""


class UnreadableFileError(UploadRejectedError):
    """A file whose reading or analysis failed in its worker process (a native crash, more memory
    or time than a worker may use); the server or CLI process is unharmed.

    Raised by :func:`dashapp.services.analyze_isolated` and the dashboard's staged analyses. The
    message names the file, what happened and what to do (export it again, aggregate it, or the
    limit's environment variable): the CLI prints it as one line and exits 2, the dashboard as an
    upload's refusal."""


class SessionRejectedError(UploadRejectedError):
    """A session state from the browser that the server will not act on: a saved analysis it did
    not hand out, form values that do not validate, or an input that is no longer staged.

    Raised by :func:`dashapp.workspace.verify_saved` and the callbacks that act on a session; the
    user sees the message (what to reopen or redo) where an upload's refusal is shown, and
    nothing is stored."""


class LookBlockedError(UploadRejectedError):
    """A look whose data is Blocked: it is not stored (a look that cannot be analysed would only
    hide the previous one).

    Raised by :func:`dashapp.workspace.add_look`; the experiment page says the file was not stored
    and shows the health issues of ``report``, the analysis that was refused."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


class QuotaExceededError(UploadRejectedError):
    """An upload that would take a user's staged files past their quota
    (``EXPERIMENTOS_STAGING_QUOTA_MB``).

    Raised by :mod:`dashapp.staging` before the file is stored; ``/upload/large`` answers HTTP 413
    with the message, the pages show it as an upload's refusal: how much the user holds, of how
    much, and when it is freed."""


# -- isolated workers ----------------------------------------------------------------------------


class IsolationError(RuntimeError):
    """The worker gave no result. ``stderr`` holds the end of what it wrote on standard error.

    Raised by :func:`dashapp.isolation.run_isolated` (and :class:`dashapp.isolation.WorkerPool`);
    never shown as itself: the analysis turns it into :class:`UnreadableFileError`, the PDF
    renderer into :class:`RenderFailedError`."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class WorkerCrashedError(IsolationError):
    """The worker died without answering: killed by signal ``signal_number`` (a native fault such as
    SIGFPE or SIGSEGV in DuckDB) or exited with ``exit_code``. The user is told the worker crashed
    (with the signal's name) and to export the file again."""

    def __init__(self, message: str, *, signal_number: int | None = None, exit_code: int | None = None,
                 stderr: str = "") -> None:
        super().__init__(message, stderr=stderr)
        self.signal_number = signal_number
        self.exit_code = exit_code


class WorkerOutOfMemoryError(IsolationError):
    """The job needed more memory than the worker's limit (``limit_bytes``). The user is told the
    limit and its variable (``EXPERIMENTOS_WORKER_MEMORY_MB``) and to aggregate the file."""

    def __init__(self, message: str, *, limit_bytes: int | None = None, stderr: str = "") -> None:
        super().__init__(message, stderr=stderr)
        self.limit_bytes = limit_bytes


class WorkerTimeoutError(IsolationError):
    """The job ran past its wall-clock limit (the worker's process group was killed) or used up its
    CPU time (``cpu`` is true). The user is told the limit and its variable
    (``EXPERIMENTOS_WORKER_TIMEOUT_SECONDS``) and to aggregate the file."""

    def __init__(self, message: str, *, seconds: float, cpu: bool = False, stderr: str = "") -> None:
        super().__init__(message, stderr=stderr)
        self.seconds = seconds
        self.cpu = cpu


# -- the PDF memo --------------------------------------------------------------------------------


class RenderFailedError(RuntimeError):
    """The PDF could not be rendered: its worker process crashed or ran out of memory.

    Raised by :func:`dashapp.memo.render_pdf`. The CLI prints "the PDF memo could not be rendered:
    …; try --format md or html" and exits 2; the dashboard shows
    :func:`dashapp.faults.render_failure_card` (download the HTML or Markdown memo instead) and
    keeps the page as it was."""


class RenderTimeoutError(RenderFailedError):
    """Rendering the PDF took longer than the time limit (``EXPERIMENTOS_PDF_TIMEOUT_SECONDS``, 20 s
    by default); its worker process was killed, so nothing stays busy. Shown as
    :class:`RenderFailedError` is, with the limit in the message."""
