"""The staging folder of uploads: who staged which file, a per-user quota, and cleanup while serving.

Uploads are kept content-addressed in the staging folder (``<sha256>.bin``) until they are
saved or pruned. This module adds:

* **Ownership.** Staging a file leaves an empty marker ``.owners/<user key>/<sha256>`` (the key
  is a hash of the user name, whose plain text is in ``.owners/<user key>/user``): creating a
  file is atomic, so concurrent uploads need no shared index to rewrite.
* **A per-user quota** (``EXPERIMENTOS_STAGING_QUOTA_MB``, 2048 MB by default) on the staged files a
  user holds, checked before a file is received (``/upload/large``) or stored (normal uploads and
  looks); a file is charged to every user who staged it, once each. A refusal says how much
  the user holds and when it is freed. The user is ``REMOTE_USER`` as set by sign-in, else
  ``"local"``.
* **Pruning while serving**: every ``EXPERIMENTOS_PRUNE_MINUTES`` (10) a request runs
  :meth:`StagingArea.prune`: uploads older than ``EXPERIMENTOS_STAGING_DAYS`` (7), leftovers
  of interrupted writes (``.part``, ``.tmp``) older than an hour — in the staging folder and
  in the database's ``.inputs`` folder — and markers of files that are gone.

The :class:`StagingArea` lives on the Flask app (``server.extensions``), never in a module global.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import flask

from dashapp.errors import QuotaExceededError

__all__ = [
    "DEFAULT_PRUNE_MINUTES",
    "DEFAULT_QUOTA_BYTES",
    "DEFAULT_STAGING_DAYS",
    "OWNERS_FOLDER",
    "PARTIAL_MAX_AGE_SECONDS",
    "StagingArea",
    "admit_upload",
    "current_user",
    "install_staging",
    "prune_staging",
    "staging_area",
]

DEFAULT_QUOTA_BYTES = 2 * 1024**3
DEFAULT_PRUNE_MINUTES = 10.0
DEFAULT_STAGING_DAYS = 7.0
#: A ``.part`` / ``.tmp`` file not written to for this long belongs to a write that died.
PARTIAL_MAX_AGE_SECONDS = 3600.0
OWNERS_FOLDER = ".owners"
_EXTENSION = "experimentos.staging"
_PARTIAL_SUFFIXES = (".part", ".tmp")


def current_user() -> str:
    """Who an upload is charged to: ``REMOTE_USER`` of the request (set by sign-in), the user a
    background job was started for, else ``"local"``."""
    if flask.has_request_context():
        return str(flask.request.environ.get("REMOTE_USER") or "local")
    if flask.has_app_context():
        return str(flask.g.get("remote_user") or "local")
    return "local"


def _megabytes(size: float) -> str:
    return f"{size / 2**20:,.1f} MB"


@dataclass
class StagingArea:
    """The staging folder with its quota and pruning schedule (see the module docstring).

    ``partial_folders``: other folders whose stale ``.part`` files are removed too (the
    database's ``.inputs``). ``clock`` is wall-clock time (file ages are compared with mtimes)."""

    folder: Path
    quota_bytes: int = DEFAULT_QUOTA_BYTES
    days: float = DEFAULT_STAGING_DAYS
    prune_every_seconds: float = DEFAULT_PRUNE_MINUTES * 60
    partial_folders: Sequence[Path] = ()
    clock: Callable[[], float] = time.time
    last_pruned: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pruning: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _reserved: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    # -- who staged what ---------------------------------------------------------------------
    def _owner_folder(self, user: str) -> Path:
        return self.folder / OWNERS_FOLDER / hashlib.sha256(user.encode()).hexdigest()[:32]

    def staged_by(self, user: str) -> dict[str, int]:
        """sha256 → size of the staged files ``user`` holds (files pruned since are left out)."""
        owned = self._owner_folder(user)
        if not owned.is_dir():
            return {}
        files: dict[str, int] = {}
        for marker in owned.iterdir():
            if marker.name == "user":
                continue
            try:
                files[marker.name] = (self.folder / f"{marker.name}.bin").stat().st_size
            except OSError:
                continue  # pruned, or never written (the analysis failed)
        return files

    def usage(self, user: str) -> int:
        """Bytes ``user`` holds in staging, uploads being received included."""
        with self._lock:
            reserved = sum(self._reserved.get(user, {}).values())
        return sum(self.staged_by(user).values()) + reserved

    def record(self, user: str, sha256: str) -> None:
        """Note that ``user`` staged the file ``<sha256>.bin``."""
        owned = self._owner_folder(user)
        owned.mkdir(parents=True, exist_ok=True)
        name_file = owned / "user"
        if not name_file.exists():
            name_file.write_text(user + "\n", encoding="utf-8")
        (owned / sha256).touch()

    def _refusal(self, user: str, size: int, held: int) -> QuotaExceededError:
        return QuotaExceededError(
            f"this upload ({_megabytes(size)}) would take your staged files past your quota: you hold "
            f"{_megabytes(held)} of {_megabytes(self.quota_bytes)} in uploads not yet pruned (they are removed "
            f"{self.days:g} days after upload); save or wait for older uploads to expire, or ask an admin to raise "
            "EXPERIMENTOS_STAGING_QUOTA_MB")

    def admit(self, user: str, size: int, sha256: str | None = None) -> None:
        """Check that ``user`` may stage ``size`` more bytes and, given its ``sha256``, record the
        file as theirs. A file the user already holds costs nothing again. Raises
        :class:`QuotaExceededError`."""
        if sha256 is not None and sha256 in self.staged_by(user):
            return
        held = self.usage(user)
        if held + size > self.quota_bytes:
            raise self._refusal(user, size, held)
        if sha256 is not None:
            self.record(user, sha256)

    @contextmanager
    def reserve(self, user: str, size: int) -> Iterator[None]:
        """Hold ``size`` bytes of ``user``'s quota while a streamed upload arrives, so two uploads
        at once cannot both pass the check. Raises :class:`QuotaExceededError`."""
        token = uuid.uuid4().hex
        with self._lock:
            reserved = self._reserved.setdefault(user, {})
            held = sum(self.staged_by(user).values()) + sum(reserved.values())
            if held + size > self.quota_bytes:
                raise self._refusal(user, size, held)
            reserved[token] = size
        try:
            yield
        finally:
            with self._lock:
                self._reserved.get(user, {}).pop(token, None)

    # -- cleanup -----------------------------------------------------------------------------
    def prune(self) -> int:
        """Remove expired uploads, stale partial files (here and in ``partial_folders``) and the
        markers of files that are gone; returns how many files went."""
        now = self.clock()
        removed = prune_staging(self.folder, days=self.days, now=now, partial_hours=PARTIAL_MAX_AGE_SECONDS / 3600)
        for folder in self.partial_folders:
            removed += _remove_stale_partials(folder, now)
        owners = self.folder / OWNERS_FOLDER
        if owners.is_dir():
            for owned in owners.iterdir():
                try:
                    for marker in owned.iterdir():
                        if marker.name != "user" and not (self.folder / f"{marker.name}.bin").exists():
                            marker.unlink(missing_ok=True)
                    if [m.name for m in owned.iterdir()] in ([], ["user"]):
                        (owned / "user").unlink(missing_ok=True)
                        owned.rmdir()
                except OSError:
                    continue  # another process is recording into it right now
        self.last_pruned = now
        return removed

    def prune_if_due(self) -> bool:
        """Prune when the last run is ``prune_every_seconds`` old (one thread at a time; the
        others go on at once); returns whether it pruned."""
        last = self.last_pruned
        if last is not None and self.clock() - last < self.prune_every_seconds:
            return False
        if not self._pruning.acquire(blocking=False):
            return False
        try:
            self.prune()
        finally:
            self._pruning.release()
        return True


def prune_staging(staging: Path, *, days: float, now: float | None = None, partial_hours: float = 24.0) -> int:
    """Delete uploads kept longer than ``days`` (and leftovers of interrupted ones after
    ``partial_hours``); returns how many files went. Saved analyses keep their own copy in the
    database, and a tab that still names a pruned file is asked to upload it again."""
    if not staging.is_dir():
        return 0
    now = time.time() if now is None else now
    removed = 0
    for path in staging.iterdir():
        limit = days * 86_400 if path.suffix == ".bin" else partial_hours * 3600
        try:
            if path.is_file() and now - path.stat().st_mtime > limit:
                path.unlink()
                removed += 1
        except OSError:
            continue  # another process removed it, or it is not ours to delete
    return removed


def _remove_stale_partials(folder: Path, now: float) -> int:
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        try:
            if path.suffix in _PARTIAL_SUFFIXES and path.is_file() \
                    and now - path.stat().st_mtime > PARTIAL_MAX_AGE_SECONDS:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if value > 0 else default


def install_staging(server: flask.Flask, folder: Path, *, partial_folders: Sequence[Path] = (),
                    clock: Callable[[], float] = time.time) -> StagingArea:
    """Keep a :class:`StagingArea` on ``server`` (settings from the environment, see the module
    docstring), prune it now, and again every ``EXPERIMENTOS_PRUNE_MINUTES`` from a request."""
    area = StagingArea(folder, quota_bytes=int(_env_number("EXPERIMENTOS_STAGING_QUOTA_MB", DEFAULT_QUOTA_BYTES / 2**20)
                                               * 2**20),
                       days=_env_number("EXPERIMENTOS_STAGING_DAYS", DEFAULT_STAGING_DAYS),
                       prune_every_seconds=_env_number("EXPERIMENTOS_PRUNE_MINUTES", DEFAULT_PRUNE_MINUTES) * 60,
                       partial_folders=tuple(partial_folders), clock=clock)
    server.extensions[_EXTENSION] = area
    area.prune()

    @server.before_request
    def prune_staging_when_due() -> None:
        area.prune_if_due()

    return area


def staging_area(server: flask.Flask | None = None) -> StagingArea:
    """The app's staging area (``server`` defaults to the current app)."""
    app = server or flask.current_app
    area = app.extensions.get(_EXTENSION)
    if area is None:  # an app built without install_staging (tests of single pages)
        area = app.extensions.setdefault(_EXTENSION, StagingArea(Path(app.config["EXPERIMENTOS_STAGING"])))
    assert isinstance(area, StagingArea)
    return area


def admit_upload(content: bytes) -> None:
    """Charge a normal upload (its bytes, before they are staged) to the current user; raises
    :class:`QuotaExceededError` (an :class:`UploadRejectedError`) when it does not fit."""
    staging_area().admit(current_user(), len(content), hashlib.sha256(content).hexdigest())
