"""Server-side settings of the running app, read inside callbacks (never module globals)."""

from __future__ import annotations

from pathlib import Path

import flask

from storage.database import ExperimentDatabase

__all__ = ["database", "large_upload_limit", "staging_dir", "upload_limit"]


def database() -> ExperimentDatabase:
    return ExperimentDatabase(flask.current_app.config["EXPERIMENTOS_DB"])


def staging_dir() -> Path:
    return Path(flask.current_app.config["EXPERIMENTOS_STAGING"])


def upload_limit() -> int:
    return int(flask.current_app.config["EXPERIMENTOS_UPLOAD_LIMIT"])


def large_upload_limit() -> int:
    return int(flask.current_app.config["EXPERIMENTOS_LARGE_UPLOAD_LIMIT"])
