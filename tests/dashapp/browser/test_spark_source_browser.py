"""New Experiment with a Spark remote (issue 15), in headless Chromium: the third source runs a
query on Spark as a background job with progress, and a Spark error is one red banner."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from dashapp import ids
from dashapp.spark_panel import SPARK_SERVICE_KEY
from tests.conftest import SPARK_GROUP

TIMEOUT = 120  # the first queries on a just-started JVM, on a loaded 2-core machine
pytestmark = SPARK_GROUP


def _click(dash_duo: Any, element: Any) -> None:
    """A DOM click (the data card sits below the fold, under the page's sticky outcome bar)."""
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", element)


def test_a_spark_query_from_new_experiment(dash_duo: Any, app_factory: Any, spark: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    n = 3_000
    variant = rng.choice(["control", "treatment"], n)
    path = tmp_path / "users.parquet"
    pd.DataFrame({"user_id": np.arange(n), "variant": variant,
                  "converted": rng.binomial(1, np.where(variant == "treatment", 0.16, 0.12))}).to_parquet(path)
    app = app_factory(spark_remote=spark.address)  # a Connect session of its own to the test's local Spark
    # Opened (and its gRPC threads started) before the server: dash[testing] stops the server by
    # killing every thread started after it, and a gRPC thread ending meanwhile fails the teardown.
    app.server.config[SPARK_SERVICE_KEY].connection().session.sql("SELECT 1").collect()
    try:
        dash_duo.start_server(app)
        dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
        assert dash_duo.wait_for_element(f"#{ids.SPARK_PANEL}", timeout=TIMEOUT).is_displayed()
        _click(dash_duo, dash_duo.driver.find_element(By.XPATH, "//label[text()='SQL query']"))
        dash_duo.find_element(f"#{ids.SPARK_QUERY}").send_keys(f"SELECT * FROM parquet.`{path}`", Keys.TAB)
        time.sleep(1.0)  # the renderer's copy of the typed text, which the click's callback reads as State
        _click(dash_duo, dash_duo.find_element(f"#{ids.SPARK_RUN}"))
        dash_duo.wait_for_contains_text(f"#{ids.SPARK_MESSAGE}", "Analysed SQL: SELECT", timeout=TIMEOUT)
        dash_duo.wait_for_text_to_equal(f"#{ids.HEALTH_STATUS}", "Healthy", timeout=TIMEOUT)
        _click(dash_duo, dash_duo.driver.find_element(By.XPATH, "//label[text()='Table']"))
        query = dash_duo.find_element(f"#{ids.SPARK_QUERY}")
        query.send_keys(Keys.CONTROL, "a")
        query.send_keys(Keys.DELETE)
        query.send_keys("nowhere.users", Keys.TAB)
        time.sleep(1.0)
        _click(dash_duo, dash_duo.find_element(f"#{ids.SPARK_RUN}"))
        dash_duo.wait_for_contains_text(f"#{ids.SPARK_MESSAGE}", "does not exist in Spark", timeout=TIMEOUT)
        assert "alert-danger" in dash_duo.find_element(f"#{ids.SPARK_MESSAGE} .alert").get_attribute("class")
    finally:
        dash_duo.server.stop()
        app.server.config[SPARK_SERVICE_KEY].close()  # its own session only: the shared server stays up
    assert spark.session.sql("SELECT 1").collect()
