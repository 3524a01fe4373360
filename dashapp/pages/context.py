"""Server-side settings of the running app, read inside callbacks (never module globals)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import flask

from dashapp.faults import DEFAULT_READ_TIMEOUT, DashboardDatabase, read_cache
from storage.database import ExperimentDatabase

__all__ = ["database", "large_upload_limit", "session_secret", "staging_dir", "upload_limit"]


def database() -> ExperimentDatabase:
    """The experiment database as pages use it: reads wait at most ``EXPERIMENTOS_READ_TIMEOUT``
    seconds (2) for a writer, then answer from the app's read cache (see :mod:`dashapp.faults`)."""
    config = flask.current_app.config
    return DashboardDatabase(config["EXPERIMENTOS_DB"], cache=read_cache(flask.current_app),
                             read_timeout=float(config.get("EXPERIMENTOS_READ_TIMEOUT", DEFAULT_READ_TIMEOUT)))


def staging_dir() -> Path:
    return Path(flask.current_app.config["EXPERIMENTOS_STAGING"])


def upload_limit() -> int:
    return int(flask.current_app.config["EXPERIMENTOS_UPLOAD_LIMIT"])


def large_upload_limit() -> int:
    return int(flask.current_app.config["EXPERIMENTOS_LARGE_UPLOAD_LIMIT"])


def session_secret() -> bytes:
    """The key that signs the analysis ids this app hands to browser sessions.

    ``EXPERIMENTOS_SESSION_SECRET`` in the app's config when set (bytes or text), else the
    ``EXPERIMENTOS_SECRET_KEY`` environment variable (to share it between worker processes and
    across restarts), else 32 random bytes made on first use and kept in this app's config: a
    restart then asks open sessions to reopen their experiment before adding notes."""
    config = flask.current_app.config
    if not config.get("EXPERIMENTOS_SESSION_SECRET"):
        fallback = os.environ.get("EXPERIMENTOS_SECRET_KEY") or secrets.token_bytes(32)
        if "EXPERIMENTOS_SESSION_SECRET" in config:  # set, but empty
            config["EXPERIMENTOS_SESSION_SECRET"] = fallback
        # setdefault: two first requests at once agree on one key.
        config.setdefault("EXPERIMENTOS_SESSION_SECRET", fallback)
    secret = config["EXPERIMENTOS_SESSION_SECRET"]
    return secret.encode() if isinstance(secret, str) else bytes(secret)
