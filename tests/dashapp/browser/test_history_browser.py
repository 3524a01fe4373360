"""History (live filters, portfolio summary, compare) and the stored-experiment page in Chromium."""

from __future__ import annotations

import time
from typing import Any

from selenium.webdriver.common.keys import Keys

from dashapp import ids
from tests.dashapp.browser.test_dashboard import SAMPLES, TIMEOUT, _click, _wait_for_download
from tests.dashapp.browser.test_screenshots import _shoot


def _viewport(dash_duo: Any) -> None:
    dash_duo.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False})


def _assert_quiet_console(dash_duo: Any) -> None:
    """No errors in the browser console, and no AG Grid warnings (e.g. #25: row ids must be strings)."""
    entries = dash_duo.driver.get_log("browser")
    assert [e for e in entries if e["level"] == "SEVERE" or "AG Grid" in e["message"]] == []


def _tick(dash_duo: Any, name: str) -> None:
    row = dash_duo.wait_for_element(f"#{ids.HISTORY_TABLE} .ag-center-cols-container .ag-row", timeout=TIMEOUT)
    index = next(r.get_attribute("row-index") for r in dash_duo.find_elements(
        f"#{ids.HISTORY_TABLE} .ag-center-cols-container .ag-row") if name in r.text)
    assert row is not None
    box = dash_duo.find_element(f"#{ids.HISTORY_TABLE} .ag-row[row-index='{index}'] .ag-selection-checkbox input")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", box)
    box.click()
    time.sleep(0.3)  # the grid reports its selection to Dash asynchronously


def test_history_filters_while_typing_and_compare_labels_metrics_and_arms(dash_duo: Any, app_factory: Any) -> None:
    from dashapp.pages import history

    app = app_factory()
    with app.server.app_context():
        rows, _ = history.history_rows(None, None, None, None)
    counts = {d: sum(r["decision"] == d for r in rows) for d in ("launch", "hold", "rollback")}
    dash_duo.start_server(app)
    _viewport(dash_duo)
    dash_duo.wait_for_page(f"{dash_duo.server_url}/history")
    dash_duo.wait_for_contains_text(f"#{ids.HISTORY_COUNT}", f"{SAMPLES} experiment(s)", timeout=TIMEOUT)
    dash_duo.wait_for_text_to_equal(f"#{ids.HISTORY_LAUNCHED}", str(counts["launch"]), timeout=TIMEOUT)
    assert dash_duo.find_element(f"#{ids.HISTORY_HELD}").text == str(counts["hold"])
    assert dash_duo.find_element(f"#{ids.HISTORY_ROLLED_BACK}").text == str(counts["rollback"])
    assert dash_duo.find_elements(f"#{ids.HISTORY_TIMELINE} .js-plotly-plot")
    # Decisions are badges; the SRM-held experiment shows no lift.
    badges = dash_duo.find_elements(f"#{ids.HISTORY_TABLE} .badge.text-bg-success")
    assert len(badges) >= 1 and badges[0].text == "LAUNCH"
    assert "not trustworthy (SRM)" in dash_duo.find_element(f"#{ids.HISTORY_TABLE}").text
    assert "Details" in dash_duo.find_element(f"#{ids.HISTORY_TABLE} .ag-header").text

    search = dash_duo.find_element(f"#{ids.HISTORY_SEARCH}")
    search.send_keys("negat")  # no Enter: the grid follows the typing
    dash_duo.wait_for_text_to_equal(f"#{ids.HISTORY_COUNT}", "1 experiment(s)", timeout=TIMEOUT)
    assert "sample_negative" in dash_duo.find_element(f"#{ids.HISTORY_TABLE}").text
    dash_duo.wait_for_text_to_equal(f"#{ids.HISTORY_ROLLED_BACK}", "1", timeout=TIMEOUT)
    search.send_keys(Keys.CONTROL, "a")
    search.send_keys(Keys.BACKSPACE)
    dash_duo.wait_for_text_to_equal(f"#{ids.HISTORY_COUNT}", f"{SAMPLES} experiment(s)", timeout=TIMEOUT)

    until = dash_duo.find_element(f"#{ids.HISTORY_UNTIL}")
    until.send_keys("01022000")  # typed, not picked from a calendar
    dash_duo.wait_for_text_to_equal(f"#{ids.HISTORY_COUNT}", "0 experiment(s)", timeout=TIMEOUT)
    until.send_keys(Keys.BACKSPACE, Keys.BACKSPACE, Keys.BACKSPACE)
    dash_duo.driver.execute_script("const e = document.getElementById(arguments[0]);"
                                   "Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(e, '');"
                                   "e.dispatchEvent(new Event('input', {bubbles: true}));", ids.HISTORY_UNTIL)
    dash_duo.wait_for_text_to_equal(f"#{ids.HISTORY_COUNT}", f"{SAMPLES} experiment(s)", timeout=TIMEOUT)

    for name in ("sample_launch", "sample_continuous", "sample_srm_warning"):
        _tick(dash_duo, name)
    _click(dash_duo, f"#{ids.COMPARE_BUTTON}")
    dash_duo.wait_for_contains_text(f"#{ids.COMPARE_MESSAGE}", "Comparing 3 experiment(s)", timeout=TIMEOUT)
    time.sleep(0.5)
    chart = dash_duo.find_element(f"#{ids.COMPARE_CHART}").text
    assert "conversions (rate)" in chart and "revenue (mean)" in chart
    assert "sample_launch · treatment vs control" in chart and "sample_continuous · treatment vs control" in chart
    assert "not trustworthy (SRM / blocked)" in chart and "launch" in chart  # the legend
    dash_duo.driver.execute_script("document.getElementById(arguments[0]).scrollIntoView({behavior: 'instant'});",
                                   ids.HISTORY_COUNT)
    _shoot(dash_duo, "history-01-grid")
    dash_duo.driver.execute_script("document.getElementById(arguments[0]).scrollIntoView({behavior: 'instant'});",
                                   ids.COMPARE_MESSAGE)
    _shoot(dash_duo, "history-02-compare")
    dash_duo.driver.execute_script("window.scrollTo({top: 0, behavior: 'instant'});")
    _shoot(dash_duo, "history-00-summary")
    _assert_quiet_console(dash_duo)


def test_the_experiment_page_downloads_the_stored_memo_as_pdf(dash_duo: Any, app_factory: Any) -> None:
    from dashapp.pages import history

    app = app_factory()
    with app.server.app_context():
        rows, _ = history.history_rows("sample_multi_arm", None, None, None)
    dash_duo.start_server(app)
    _viewport(dash_duo)
    dash_duo.wait_for_page(f"{dash_duo.server_url}/experiments/{rows[0]['id']}")
    dash_duo.wait_for_element(f"#{ids.EXPERIMENT_POSTERIOR_CHART} .js-plotly-plot", timeout=TIMEOUT)
    _shoot(dash_duo, "experiment-01-top")
    dash_duo.driver.execute_script("document.getElementById(arguments[0]).scrollIntoView({behavior: 'instant'});",
                                   ids.EXPERIMENT_EFFECT_CHART)
    _shoot(dash_duo, "experiment-02-charts")
    _click(dash_duo, f"#{ids.EXPERIMENT_DOWNLOAD_PDF}")
    pdf = _wait_for_download(dash_duo.download_path, ".pdf", timeout=60)
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.name == "sample_multi_arm-memo.pdf"
    _click(dash_duo, f"#{ids.EXPERIMENT_DOWNLOAD_MD}")
    markdown = _wait_for_download(dash_duo.download_path, ".md")
    assert "sample_multi_arm" in markdown.read_text(encoding="utf-8")
    _shoot(dash_duo, "experiment-03-downloads")
    dash_duo.wait_for_page(f"{dash_duo.server_url}/experiments/999")
    alert = dash_duo.wait_for_element(".alert", timeout=TIMEOUT)
    assert "experimentos" not in alert.text and "History" in alert.text
    _assert_quiet_console(dash_duo)
