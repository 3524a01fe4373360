"""Shared fixtures: paths, the CLI in a subprocess, and JSON walking helpers."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import threading
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


@contextlib.contextmanager
def served_in_thread(app: Any, name: str) -> Iterator[int]:
    """The real waitress server for ``app`` on 127.0.0.1, on a port the kernel picks (a port probed
    free and bound a moment later was once taken in between), in a thread of this process; yields
    the port."""
    from dashapp.app import make_server

    server = make_server(app, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    try:
        yield int(server.effective_port)
    finally:
        server.close()
        thread.join(timeout=5)


def press(client: Any, output: str, values: dict[str, Any], changed: str) -> Any:
    """POST the Dash callback that writes ``output`` (``"<id>.<property>"``) as the browser would,
    with ``values`` (``"<id>.<property>"`` → value; the rest None) and ``changed`` the trigger."""
    spec = next(d for d in client.get("/_dash-dependencies").get_json() if output in d["output"])
    identifier, prop = output.rsplit(".", 1)
    return client.post("/_dash-update-component", json={
        "output": spec["output"], "outputs": {"id": identifier, "property": prop},
        "inputs": [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in spec["inputs"]],
        "state": [{**s, "value": values.get(f"{s['id']}.{s['property']}")} for s in spec["state"]],
        "changedPropIds": [changed]})


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


# -- Spark (issue 15): one local[2] Spark Connect server per test process, started on first use ----

SPARK_GROUP = pytest.mark.xdist_group("spark")  # `make test` runs with --dist loadgroup: one worker starts Spark


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` as xdist means it, on pytest 9 too: there xdist cannot tag node ids with
    their ``xdist_group`` (it sets ``item._nodeid``, which pytest 9 no longer reads), so every
    test spread like ``--dist load`` and each worker started its own Spark on the same port. Here
    the tests of the Spark test files (``test_spark_*.py``) form one group, run by one worker
    with one local Spark; every other test is its own unit, as with ``load``."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SparkTogether(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            if "@" in nodeid:
                return nodeid.rsplit("@", 1)[-1]
            return "spark" if "/test_spark_" in nodeid.split("::")[0] else nodeid

    return SparkTogether(config, log)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A ``storage.spark.SparkConnection`` to a local[2] Spark (Spark Connect), shared by the session.

    Skipped, with the reason shown, only when Java is missing; a missing pyspark is a failure
    (`make install` installs it). CLI subprocesses can use its server as ``--spark-remote
    spark.address`` (sc://localhost:15002; they inherit its token from the environment)."""
    from storage.spark import java_available, open_session

    if not java_available():
        pytest.skip("Spark tests need Java 17: apt-get install openjdk-17-jre-headless (.ci/run installs it)")
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    connection = open_session("local[2]", config={
        "spark.sql.warehouse.dir": str(warehouse),
        # Whole-stage code generation compiles Java for every new query shape: worth it on millions of
        # rows, ~1 s per query on these small files (the suite halves without it; results are the same).
        "spark.sql.codegen.wholeStage": "false",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={warehouse}",
    })
    try:
        yield connection
    finally:
        connection.close()
