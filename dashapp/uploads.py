"""Streaming upload of large result files (``POST /upload/large``).

``dcc.Upload`` reads the whole file into the page as base64 and sends it inside a callback
request: fine for aggregated files, but Chromium's tab runs out of memory somewhere above
150 MB. Large user-level exports are sent here instead, by ``assets/large_upload.js``: the
raw bytes in one POST, written to disk in 1 MiB chunks while their sha256 is computed, and
stored content-addressed in the staging folder like every upload. The page then analyses
the staged file by its hash (a background callback with DuckDB's progress), so the file
is never held in memory — in the browser or on the server.

The request must carry the ``X-ExperimentOS-Upload`` header: a page of another site cannot
add it without a CORS preflight that this server never grants, so it cannot drop files here.
"""

from __future__ import annotations

import hashlib
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import flask
from werkzeug.exceptions import BadRequest

from dashapp.errors import QuotaExceededError
from dashapp.staging import current_user, staging_area
from dashapp.workspace import staged_path

__all__ = ["LARGE_UPLOAD_HEADER", "LARGE_UPLOAD_ROUTE", "register_large_upload"]

LARGE_UPLOAD_ROUTE = "/upload/large"
LARGE_UPLOAD_HEADER = "X-ExperimentOS-Upload"
_CHUNK = 1 << 20


def _refuse(status: int, message: str) -> tuple[dict[str, Any], int]:
    return {"error": message}, status


def register_large_upload(server: flask.Flask) -> None:
    """Add the streaming upload route to ``server`` (limit: ``EXPERIMENTOS_LARGE_UPLOAD_LIMIT``)."""

    @server.post(LARGE_UPLOAD_ROUTE)
    def large_upload() -> tuple[dict[str, Any], int]:
        request = flask.request
        if request.headers.get(LARGE_UPLOAD_HEADER) != "1":
            return _refuse(403, "uploads come from the ExperimentOS page")
        limit = int(server.config["EXPERIMENTOS_LARGE_UPLOAD_LIMIT"])
        name = Path(request.args.get("name") or "upload.csv").name[:200] or "upload.csv"
        length = request.content_length
        if length is None:
            return _refuse(411, "the upload has no Content-Length; send the file from the New Experiment page")
        if length > limit:
            return _refuse(413, f"{name} is {length / 2**20:,.0f} MB, above the large-file limit of "
                                f"{limit / 2**20:,.0f} MB (EXPERIMENTOS_LARGE_UPLOAD_LIMIT_MB)")
        request.max_content_length = limit
        staging = Path(server.config["EXPERIMENTOS_STAGING"])
        area, user = staging_area(server), current_user()
        quota = ExitStack()
        try:  # the user's quota is held for this upload until it has arrived (or failed)
            quota.enter_context(area.reserve(user, length))
        except QuotaExceededError as error:
            return _refuse(413, f"{name} was refused: {error}")
        partial = staging / f"incoming-{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        received = 0
        try:
            staging.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as out:
                try:
                    while chunk := request.stream.read(_CHUNK):
                        received += len(chunk)
                        if received > length:
                            break
                        digest.update(chunk)
                        out.write(chunk)
                except BadRequest:  # the browser went away mid-file (werkzeug's ClientDisconnected)
                    pass
            if received != length:
                partial.unlink(missing_ok=True)
                return _refuse(400, f"the upload of {name} was interrupted ({received:,} of {length:,} bytes "
                                    "arrived); try again")
            sha256 = digest.hexdigest()
            target = staged_path(staging, sha256)
            if target.exists():
                partial.unlink()
            else:
                partial.replace(target)
            area.record(user, sha256)
        except OSError as error:
            partial.unlink(missing_ok=True)
            return _refuse(507, f"the server could not store {name} ({error.strerror or error}); free some disk "
                                "space next to the database and try again")
        finally:
            quota.close()
        return {"sha256": sha256, "filename": name, "size": received}, 200
