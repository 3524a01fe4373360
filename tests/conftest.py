"""Shared fixtures: paths, the CLI in a subprocess, and JSON walking helpers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
CLI = [sys.executable, "-m", "dashapp.cli"]


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``experimentos`` in a subprocess exactly as a user would."""
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = str(ROOT)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd or ROOT, env=environment,
                          timeout=timeout, check=False)


def floats(value: Any) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from floats(item)
    elif isinstance(value, list):
        for item in value:
            yield from floats(item)


def assert_clean_json(text: str) -> list[dict[str, Any]]:
    """Parse JSON or JSON Lines strictly (NaN / Infinity are rejected) and check every float."""
    def reject(constant: str) -> None:
        raise AssertionError(f"non-finite constant {constant} in JSON")

    documents = [json.loads(line, parse_constant=reject) for line in text.splitlines() if line.strip()] \
        if text.lstrip().startswith("{") and "\n{" in text else [json.loads(text, parse_constant=reject)]
    for document in documents:
        assert all(math.isfinite(v) for v in floats(document))
    return documents


@pytest.fixture
def cli() -> Any:
    return run_cli
