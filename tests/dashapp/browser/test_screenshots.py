"""Screenshots of every page at a 1366×768 viewport, saved to artifacts/screenshots for review."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PIL import Image

from dashapp import ids
from tests.dashapp.browser.conftest import ARTIFACTS
from tests.dashapp.browser.test_dashboard import TIMEOUT, _load_sample, _navigate


def _shoot(dash_duo: Any, name: str) -> Path:
    time.sleep(0.8)  # charts finish their transition
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    dash_duo.driver.save_screenshot(str(path))
    image = Image.open(path)
    assert image.size == (1366, 768), image.size
    colours = image.convert("L").getextrema()
    assert colours[0] < 80 and colours[1] > 200, f"{name} looks blank"
    return path


def test_screenshots_of_every_page(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    dash_duo.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False})
    dash_duo.wait_for_page(f"{dash_duo.server_url}/")
    dash_duo.wait_for_element(f"#{ids.LATEST_EXPERIMENTS}", timeout=TIMEOUT)
    _shoot(dash_duo, "01-home-empty-session")
    dash_duo.wait_for_page(f"{dash_duo.server_url}/results")
    dash_duo.wait_for_element(".data-guard", timeout=TIMEOUT)
    _shoot(dash_duo, "02-results-guard")
    _load_sample(dash_duo, "sample_multi_arm.csv", name="홈화면 배너 A/B 테스트")
    dash_duo.driver.execute_script("document.getElementById(arguments[0]).scrollIntoView({behavior: 'instant'});",
                                   ids.HEALTH_PANEL)
    _shoot(dash_duo, "03-new-experiment-health")
    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    dash_duo.wait_for_element(f"#{ids.EFFECT_CHART} .js-plotly-plot", timeout=TIMEOUT)
    _shoot(dash_duo, "04-results-top")
    dash_duo.driver.execute_script("document.getElementById(arguments[0]).scrollIntoView({behavior: 'instant'});",
                                   ids.EFFECT_CHART)
    _shoot(dash_duo, "05-results-charts")
    _navigate(dash_duo, "/memo", f"#{ids.MEMO_PREVIEW}")
    time.sleep(1.5)
    _shoot(dash_duo, "06-memo")
    _navigate(dash_duo, "/history", f"#{ids.HISTORY_TABLE}")
    dash_duo.wait_for_contains_text(f"#{ids.HISTORY_COUNT}", "experiment(s)", timeout=TIMEOUT)
    _shoot(dash_duo, "07-history")
    dash_duo.wait_for_page(f"{dash_duo.server_url}/experiments/6")
    dash_duo.wait_for_element(f"#{ids.DECISION_BADGE}", timeout=TIMEOUT)
    _shoot(dash_duo, "08-experiment")
    dash_duo.wait_for_page(f"{dash_duo.server_url}/experiments/12345")
    dash_duo.wait_for_element(".alert", timeout=TIMEOUT)
    _shoot(dash_duo, "09-experiment-missing")
    assert dash_duo.get_logs() == []


def test_screenshots_of_metric_settings(dash_duo: Any, app_factory: Any, tmp_path: Path) -> None:
    """The metrics table on New Experiment and the guardrails on Results, with a rate and a mean guardrail."""
    from tests.dashapp.browser.test_metrics_table import _cell, _type

    mixed = tmp_path / "checkout_speed.csv"
    mixed.write_text("variant,users,conversions,revenue_mean,revenue_std,guardrail_cancel,guardrail_load_ms_mean,"
                     "guardrail_load_ms_std\ncontrol,100000,12000,12.40,30.1,1200,850.0,300.0\n"
                     "treatment,100400,12600,12.61,30.6,1190,862.0,310.0\n")
    dash_duo.start_server(app_factory())
    dash_duo.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False})
    dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
    dash_duo.wait_for_element(f"#{ids.UPLOAD_DATA} input[type=file]", timeout=TIMEOUT).send_keys(str(mixed))
    dash_duo.wait_for_element(_cell(ids.METRIC_MARGIN, "load_ms"), timeout=TIMEOUT)
    _type(dash_duo, ids.METRIC_MARGIN, "load_ms", "2%")
    _type(dash_duo, ids.METRIC_SEVERE_MARGIN, "load_ms", "5%")
    dash_duo.wait_for_contains_text(f"#{ids.METRICS_DECISION}", "LAUNCH", timeout=TIMEOUT)
    _type(dash_duo, ids.METRIC_MARGIN, "cancel", "0,1")  # a decimal comma, to show the inline message
    dash_duo.wait_for_contains_text(_cell(ids.METRIC_MARGIN_HINT, "cancel"), "is not a margin", timeout=TIMEOUT)
    dash_duo.driver.execute_script("document.getElementById(arguments[0]).scrollIntoView({behavior: 'instant'});",
                                   ids.METRICS_CARD)
    _shoot(dash_duo, "10-new-experiment-metrics")
    _type(dash_duo, ids.METRIC_MARGIN, "cancel", "0.001")
    dash_duo.wait_for_text_to_equal(f"#{ids.METRICS_MESSAGE}", "", timeout=TIMEOUT)
    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    dash_duo.wait_for_element(f"#{ids.GUARDRAIL_CHART} .js-plotly-plot", timeout=TIMEOUT)
    _shoot(dash_duo, "11-results-top")
    dash_duo.driver.execute_script("document.getElementById(arguments[0]).scrollIntoView({behavior: 'instant'});",
                                   ids.GUARDRAIL_TABLE)
    _shoot(dash_duo, "12-results-guardrails")
    assert dash_duo.get_logs() == []
