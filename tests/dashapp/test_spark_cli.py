"""``experimentos analyze --engine spark`` and replay of a Spark analysis (issue 15).

Errors a user can act on are one line and exit 2: no Java, Spark unreachable, a missing table
or column, no remote. The Spark runs use the session-wide local[2] server through its
``sc://localhost:15002`` address, as a cluster would be used.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dashapp.cli import main
from tests.conftest import SPARK_GROUP, run_cli


def _users(folder: Path, seed: int = 3, n: int = 1_000, lift: float = 0.04) -> Path:
    rng = np.random.default_rng(seed)
    variant = rng.choice(["control", "treatment"], n)
    frame = pd.DataFrame({"user_id": np.arange(n), "variant": variant,
                          "converted": rng.binomial(1, np.where(variant == "treatment", 0.12 + lift, 0.12)),
                          "revenue": rng.gamma(2.0, 6.0, n)})
    path = folder / "users.parquet"
    frame.to_parquet(path, index=False)
    return path


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_local_spark_without_java_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = _users(tmp_path)
    bare = tmp_path / "bin"  # a PATH with no java on it (the CLI itself runs as sys.executable)
    bare.mkdir()
    result = run_cli("analyze", "--engine", "spark", "--spark-remote", "local[2]", str(path),
                     env={"PATH": str(bare), "JAVA_HOME": str(tmp_path / "no-java")})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Java 17" in result.stderr and "openjdk-17-jre-headless" in result.stderr


def test_an_unreachable_spark_and_a_missing_remote_are_one_line_and_exit_2(tmp_path: Path) -> None:
    path = _users(tmp_path)
    code, _, err = _run("analyze", "--engine", "spark", "--spark-remote", "sc://127.0.0.1:9", str(path))
    assert code == 2 and err.count("\n") == 1 and "cannot reach the Spark Connect server at 127.0.0.1:9" in err
    environment = os.environ.pop("SPARK_REMOTE", None)
    try:
        code, _, err = _run("analyze", "--table", "db.users")
    finally:
        if environment is not None:
            os.environ["SPARK_REMOTE"] = environment
    assert code == 2 and "--spark-remote" in err and err.count("\n") == 1


@SPARK_GROUP
def test_missing_table_column_or_variant_are_one_line_and_exit_2(spark: Any, tmp_path: Path) -> None:
    path = _users(tmp_path)
    remote = spark.address
    cases = {
        ("--table", "nowhere.users"): "does not exist in Spark",
        ("--sql", f"SELECT user_id, variant, nope FROM parquet.`{path}`"): "a column does not exist",
        ("--sql", f"SELECT user_id, converted FROM parquet.`{path}`"): "has no variant column",
        (str(tmp_path / "missing.parquet"),): "Path does not exist",
    }
    for args, expected in cases.items():
        code, _, err = _run("analyze", "--engine", "spark", "--spark-remote", remote, *args)
        assert code == 2 and err.count("\n") == 1 and expected in err, (args, err)
    assert spark.session.sql("SELECT 1").collect()  # the shared server survived every client


@SPARK_GROUP
def test_a_saved_spark_analysis_replays_and_reports_changed_data(spark: Any, tmp_path: Path) -> None:
    path = _users(tmp_path)
    database = tmp_path / "experiments.duckdb"
    query = f"SELECT * FROM parquet.`{path}`"
    code, out, err = _run("analyze", "--sql", query, "--spark-remote", spark.address, "--save", "--db", str(database),
                          "--name", "checkout")
    assert code == 0, err
    report = json.loads(out)
    assert report["input"]["kind"] == "user_level" and report["input"]["rows"] == 1_000
    assert report["experiment"]["name"] == "checkout"
    code, out, _ = _run("replay", "1", "--db", str(database), "--spark-remote", spark.address)
    assert code == 0 and "the query gives the same statistics" in out and "replay identical" in out
    _users(tmp_path, seed=4, n=1_100)  # the table moved on
    code, out, _ = _run("replay", "1", "--db", str(database), "--spark-remote", spark.address)
    assert code == 0 and "DATA CHANGED" in out and "replay identical" in out and "statistics.rows" in out
