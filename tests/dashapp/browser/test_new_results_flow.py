"""Issue 11 in the browser: a fresh New Experiment after a save, the outcome in view, the calculator,
and screenshots of the New Experiment / Results states at 1366×768 for review."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dashapp import ids
from tests.dashapp.browser.conftest import ARTIFACTS
from tests.dashapp.browser.test_dashboard import TIMEOUT, _click, _load_sample, _navigate

FORM_FIELDS = (ids.EXPERIMENT_NAME, ids.HYPOTHESIS, ids.OWNER, ids.PRIMARY_METRIC, ids.TAGS, ids.PLANNED_MDE)


def _viewport(dash_duo: Any) -> None:
    dash_duo.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False})


def _type(dash_duo: Any, element_id: str, text: str) -> None:
    field = dash_duo.wait_for_element(f"#{element_id}", timeout=TIMEOUT)
    field.clear()
    field.send_keys(text)


def _fill_charter(dash_duo: Any) -> None:
    for element_id, text in ((ids.HYPOTHESIS, "A bigger banner raises sign-ups"), (ids.OWNER, "kim"),
                             (ids.TAGS, "home, banner"), (ids.PLANNED_MDE, "+5%")):
        _type(dash_duo, element_id, text)


def _values(dash_duo: Any) -> dict[str, str]:
    return {element_id: dash_duo.find_element(f"#{element_id}").get_attribute("value") for element_id in FORM_FIELDS}


def _assert_empty_form(dash_duo: Any) -> None:
    dash_duo.wait_for_contains_text(f"#{ids.HEALTH_PANEL}", "No data yet", timeout=TIMEOUT)
    deadline = time.time() + TIMEOUT
    while any(_values(dash_duo).values()) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_values(dash_duo).values()), _values(dash_duo)
    assert dash_duo.find_elements(f"#{ids.METRICS_TABLE} select") == []  # no metric settings left over


def _shoot(dash_duo: Any, name: str) -> Path:
    time.sleep(0.8)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    dash_duo.driver.save_screenshot(str(path))
    return path


def test_new_experiment_starts_empty_after_a_save(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    _load_sample(dash_duo, "sample_launch.csv", name="Banner test")
    _fill_charter(dash_duo)
    _navigate(dash_duo, "/results", f"#{ids.SAVE_EXPERIMENT}")
    _click(dash_duo, f"#{ids.SAVE_EXPERIMENT}")
    dash_duo.wait_for_contains_text(f"#{ids.SAVE_MESSAGE}", "Saved as experiment", timeout=TIMEOUT)
    _click(dash_duo, f"#{ids.RESULTS_NEW_EXPERIMENT}")
    dash_duo.wait_for_element(f"#{ids.EXPERIMENT_NAME}", timeout=TIMEOUT)
    _assert_empty_form(dash_duo)
    dash_duo.wait_for_contains_text(f"#{ids.LAST_SAVED}", "“Banner test” is saved as experiment", timeout=TIMEOUT)
    # and through the navbar too, the saved experiment's charter never comes back
    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    _navigate(dash_duo, "/new", f"#{ids.EXPERIMENT_NAME}")
    _assert_empty_form(dash_duo)
    assert dash_duo.get_logs() == []


def test_start_a_new_experiment_clears_the_form_and_the_loaded_file(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    _load_sample(dash_duo, "sample_multi_arm.csv", name="Three arms")
    _fill_charter(dash_duo)
    _type(dash_duo, ids.PRIMARY_METRIC, "conversions")
    dash_duo.wait_for_element(f"#{ids.METRICS_TABLE} select", timeout=TIMEOUT)
    _click(dash_duo, f"#{ids.NEW_EXPERIMENT}")
    _assert_empty_form(dash_duo)
    assert dash_duo.find_element(f"#{ids.UPLOAD_MESSAGE}").text == ""
    _navigate(dash_duo, "/results", ".data-guard")
    assert dash_duo.get_logs() == []


def test_the_outcome_is_in_view_after_load_sample_at_1366x768(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    _viewport(dash_duo)
    _load_sample(dash_duo, "sample_launch.csv")
    dash_duo.driver.execute_script("window.scrollTo({top: 0, behavior: 'instant'});")
    bar = dash_duo.wait_for_element(f"#{ids.NEXT_STEP}", timeout=TIMEOUT)
    dash_duo.wait_for_contains_text(f"#{ids.NEXT_STEP}", "See results", timeout=TIMEOUT)
    top, bottom, height = dash_duo.driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.top, r.bottom, window.innerHeight];", bar)
    assert top >= 0 and bottom <= height, (top, bottom, height)
    assert "Healthy" in bar.text and "LAUNCH" in bar.text
    _shoot(dash_duo, "11-new-experiment-after-load-sample")


def test_the_power_calculator_modes_validation_persistence_and_confirmation(dash_duo: Any,
                                                                           app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    _viewport(dash_duo)
    dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_RESULT}", "users in control", timeout=TIMEOUT)
    _type(dash_duo, ids.PLAN_POWER, "80")
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_RESULT}", "power 80 read as 80% (0.8)", timeout=TIMEOUT)
    _type(dash_duo, ids.PLAN_POWER, "250")
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_RESULT}", "Cannot plan", timeout=TIMEOUT)
    assert "users in control" not in dash_duo.find_element(f"#{ids.PLAN_RESULT}").text
    _type(dash_duo, ids.PLAN_POWER, "0.9")
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_RESULT}", "users in control", timeout=TIMEOUT)
    _click(dash_duo, f"label[for='{ids.PLAN_METRIC_TYPE}-1'], #{ids.PLAN_METRIC_TYPE} input[value='mean']")
    dash_duo.wait_for_style_to_equal(f"#{ids.PLAN_BASELINE_BOX}", "display", "none", timeout=TIMEOUT)
    assert dash_duo.find_element(f"#{ids.PLAN_MEAN}").is_displayed()
    _type(dash_duo, ids.PLAN_MEAN, "12.4")
    _type(dash_duo, ids.PLAN_STD, "30")
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_RESULT}", "users in control", timeout=TIMEOUT)
    _click(dash_duo, f"label[for='{ids.PLAN_USE}']")
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_CONFIRM}", "Recorded", timeout=TIMEOUT)
    dash_duo.driver.execute_script("window.scrollTo({top: 0, behavior: 'instant'});")
    _shoot(dash_duo, "12-power-calculator-mean-mode")
    answer = dash_duo.find_element(f"#{ids.PLAN_RESULT}").text
    _navigate(dash_duo, "/history", f"#{ids.HISTORY_TABLE}")
    _navigate(dash_duo, "/new", f"#{ids.PLAN_RESULT}")
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_RESULT}", "users in control", timeout=TIMEOUT)
    assert dash_duo.find_element(f"#{ids.PLAN_POWER}").get_attribute("value") == "0.9"
    assert dash_duo.find_element(f"#{ids.PLAN_MEAN}").get_attribute("value") == "12.4"
    assert not dash_duo.find_element(f"#{ids.PLAN_BASELINE}").is_displayed()
    dash_duo.wait_for_text_to_equal(f"#{ids.PLAN_RESULT}", answer, timeout=TIMEOUT)
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_CONFIRM}", "Recorded", timeout=TIMEOUT)
    assert dash_duo.get_logs() == []


def test_results_screenshots_blocked_srm_and_three_arms(dash_duo: Any, app_factory: Any, tmp_path: Path) -> None:
    blocked = tmp_path / "user_level_blocked.csv"
    blocked.write_text("variant,users,conversions\ncontrol,1000,abc\ntreatment,1000,12\n")
    dash_duo.start_server(app_factory())
    _viewport(dash_duo)
    dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
    dash_duo.wait_for_element(f"#{ids.UPLOAD_DATA} input[type=file]", timeout=TIMEOUT).send_keys(str(blocked))
    dash_duo.wait_for_text_to_equal(f"#{ids.HEALTH_STATUS}", "Blocked", timeout=TIMEOUT)
    message = dash_duo.find_element(f"#{ids.UPLOAD_MESSAGE} .alert")
    assert "alert-danger" in message.get_attribute("class") and "Analysed" not in message.text
    _shoot(dash_duo, "13-new-experiment-blocked")
    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    dash_duo.wait_for_text_to_equal(f"#{ids.DECISION_BADGE}", "HOLD — DATA BLOCKED", timeout=TIMEOUT)
    assert "bg-secondary" in dash_duo.find_element(f"#{ids.DECISION_BADGE}").get_attribute("class")
    _shoot(dash_duo, "14-results-blocked")

    _navigate(dash_duo, "/new", f"#{ids.SAMPLE_SELECT}")
    _load_sample(dash_duo, "sample_srm_warning.csv")
    _navigate(dash_duo, "/results", f"#{ids.UNTRUSTED_NOTE}")
    assert "not trustworthy: sample ratio mismatch" in dash_duo.find_element(f"#{ids.UNTRUSTED_NOTE}").text
    _shoot(dash_duo, "15-results-srm-top")
    dash_duo.driver.execute_script("document.getElementById(arguments[0]).scrollIntoView({behavior: 'instant'});",
                                   ids.PRIMARY_CARD)
    _shoot(dash_duo, "16-results-srm-effects")

    _navigate(dash_duo, "/new", f"#{ids.SAMPLE_SELECT}")
    _load_sample(dash_duo, "sample_multi_arm.csv")
    _navigate(dash_duo, "/results", f"#{ids.POSTERIOR_TITLE}")
    dash_duo.wait_for_element(f"#{ids.POSTERIOR_CHART} .js-plotly-plot", timeout=TIMEOUT)
    assert "treatment_b > 99.9%" in dash_duo.find_element(f"#{ids.POSTERIOR_TITLE}").text
    dash_duo.driver.execute_script("document.getElementById(arguments[0]).scrollIntoView({behavior: 'instant'});",
                                   ids.EFFECT_TITLE)
    dash_duo.driver.execute_script("window.scrollBy(0, -70);")
    # the tool bar shows on hover only: hovering the chart must not cover the title in the card header
    dash_duo.driver.execute_script(
        "arguments[0].dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));",
        dash_duo.find_element(f"#{ids.POSTERIOR_CHART} .js-plotly-plot"))
    _shoot(dash_duo, "17-results-three-arms-charts")
    assert dash_duo.get_logs() == []
