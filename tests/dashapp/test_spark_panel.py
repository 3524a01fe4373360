"""New Experiment's "Spark table or SQL" source (issue 15): job with progress, saved and replayable,
and a banner for a Spark error. The callback is called as a plain function in the app's context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dashapp.app import create_app
from dashapp.pages import context
from dashapp.services import replay_analysis
from dashapp.spark_panel import SPARK_SERVICE_KEY, panel, run_spark_source
from dashapp.spark_source import SparkService
from dashapp.state import FormValues, save_session
from tests.conftest import SPARK_GROUP


class _Shared(SparkService):
    """The test session's Spark, never closed by the app."""

    def __init__(self, connection: Any) -> None:
        super().__init__(connection.address)
        self._shared = connection

    def connection(self) -> Any:
        return self._shared

    def close(self) -> None:
        pass


def test_without_a_spark_remote_the_source_is_hidden(tmp_path: Path) -> None:
    app = create_app(db=tmp_path / "ui.duckdb", load_sample_experiments=False)
    with app.server.app_context():
        assert panel().style == {"display": "none"}


def test_the_footer_says_where_data_is_scanned(tmp_path: Path) -> None:
    """"data stays on this machine" is true only without a Spark remote."""
    app = create_app(db=tmp_path / "ui.duckdb", load_sample_experiments=False)
    client = app.server.test_client()
    assert "data stays on this machine" in client.get("/_dash-layout").get_data(as_text=True)
    app.server.config[SPARK_SERVICE_KEY] = SparkService("local[2]")  # opens a session only when used
    footer = client.get("/_dash-layout").get_data(as_text=True)
    assert "data stays on this machine" not in footer and "scanned by the Spark server" in footer


@SPARK_GROUP
def test_a_spark_query_is_analysed_with_progress_saved_and_replayed(spark: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 1_200
    variant = rng.choice(["control", "treatment"], n)
    path = tmp_path / "users.parquet"
    pd.DataFrame({"user_id": np.arange(n), "variant": variant, "converted": rng.binomial(1, 0.2, n),
                  "segment_country": rng.choice(["KR", "JP"], n)}).to_parquet(path, index=False)
    app = create_app(db=tmp_path / "ui.duckdb", load_sample_experiments=False)
    app.server.config[SPARK_SERVICE_KEY] = _Shared(spark)
    seen: list[tuple[float, str]] = []
    with app.server.app_context():
        assert panel().style == {}
        state, message = run_spark_source("sql", f"SELECT * FROM parquet.`{path}`", FormValues(name="spark checkout"),
                                          lambda done, what: seen.append((done, what)))
        assert state["report"]["input"]["kind"] == "user_level" and state["report"]["input"]["rows"] == n
        assert state["report"]["experiment"]["name"] == "spark checkout"
        assert seen and all("on Spark" in what for _, what in seen)
        assert "Analysed SQL: SELECT" in str(message)
        saved = save_session(state, context.database(), staging=context.staging_dir(), secret=b"k" * 32)
        analysis_id = saved["saved"]["analysis_id"]
        result = replay_analysis(context.database(), analysis_id, spark_remote=spark.address)
        assert result.identical and not result.data_changed and "same statistics" in result.data_note
        _, banner = run_spark_source("table", "nowhere.users", FormValues())
        assert "does not exist in Spark" in str(banner) and "danger" in str(banner)


@pytest.mark.parametrize("kind", ["table", "sql"])
def test_an_empty_query_does_nothing(tmp_path: Path, kind: str) -> None:
    from dash.exceptions import PreventUpdate

    app = create_app(db=tmp_path / "ui.duckdb", load_sample_experiments=False)
    app.server.config[SPARK_SERVICE_KEY] = SparkService("sc://127.0.0.1:9")
    with app.server.app_context(), pytest.raises(PreventUpdate):
        run_spark_source(kind, "  ", FormValues())
