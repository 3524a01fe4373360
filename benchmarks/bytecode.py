"""Byte-compile the project's sources before a benchmark times whole processes.

A process started with ``PYTHONDONTWRITEBYTECODE=1`` (set on some CI and container images) never
writes ``__pycache__``, so without this each start would compile ``analytics``, ``storage`` and
``dashapp`` from source again (~0.1 s): not what a user's installed copy pays. ``make install``
compiles them the same way.
"""

from __future__ import annotations

import compileall
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("analytics", "storage", "dashapp")


def byte_compile() -> None:
    """Write current ``.pyc`` files for the three packages (no output; a no-op when up to date)."""
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)
