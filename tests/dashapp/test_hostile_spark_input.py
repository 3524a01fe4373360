"""A file that looks like a stored Spark input (a query and its statistics) is untrusted like any
upload: a broken or tampered one is a Blocked report with a message, never a traceback or a NaN."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from storage.ingest import FileReader
from storage.spark import SparkInput, input_content
from tests.conftest import assert_clean_json, run_cli


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A genuine stored input, made from a DuckDB scan of a small user-level file."""
    folder = tmp_path_factory.mktemp("spark-input")
    generator = np.random.default_rng(7)
    rows = [f"{i},{'control' if i % 2 else 'treatment'},{int(generator.random() < 0.1)},{generator.gamma(2, 3):.3f}"
            for i in range(2000)]
    (folder / "users.csv").write_text("user_id,variant,converted,revenue\n" + "\n".join(rows) + "\n")
    with FileReader() as reader:
        summary = reader.read_path(folder / "users.csv").user_level
    assert summary is not None
    document: dict[str, Any] = json.loads(input_content(SparkInput("sql", "SELECT * FROM exposures"), summary))
    return document


def _analyse(document: dict[str, Any] | str, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "stored.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    result = run_cli("analyze", str(path))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return assert_clean_json(result.stdout)[0]


def test_a_genuine_stored_input_is_analysed(stored: dict[str, Any], tmp_path: Path) -> None:
    report = _analyse(stored, tmp_path)
    assert report["health"]["status"] != "blocked" and report["input"]["kind"] == "user_level"


@pytest.mark.parametrize("tamper", ["negative count", "nan sum", "more successes than users", "huge sum",
                                    "missing part", "broken json"])
def test_a_tampered_stored_input_is_blocked_with_a_message(stored: dict[str, Any], tmp_path: Path,
                                                          tamper: str) -> None:
    document: dict[str, Any] | str = copy.deepcopy(stored)
    assert isinstance(document, dict)
    columns = document["summary"]["variants"][0]["columns"]
    if tamper == "negative count":
        document["summary"]["variants"][0]["n"] = -5
    elif tamper == "nan sum":
        columns["revenue"][2] = float("nan")
    elif tamper == "more successes than users":
        columns["converted"][3] = 10**12
    elif tamper == "huge sum":  # a total that is not mean × count (a variance of 1e308 is possible)
        columns["revenue"][3] = 1e308
    elif tamper == "missing part":
        del document["input"]
    else:
        document = json.dumps(stored)[:200]
    report = _analyse(document, tmp_path)
    assert report["health"]["status"] == "blocked"
    blocked = [issue for issue in report["health"]["issues"] if issue["severity"] == "blocked"]
    assert blocked and all(issue["message"] for issue in blocked)
    if tamper in ("nan sum", "more successes than users", "huge sum", "missing part"):
        assert "invalid_spark_input" in {issue["code"] for issue in blocked}
