"""Each metric's direction and margins, edited on New Experiment, in headless Chromium."""

from __future__ import annotations

import json
from typing import Any

from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from dashapp import ids
from tests.dashapp.browser.test_dashboard import NEW_ID, TIMEOUT, _click, _load_sample, _navigate


def _cell(kind: str, metric: str) -> str:
    """The CSS selector of a pattern-matching element (Dash writes its id as sorted, compact JSON)."""
    return f"[id='{json.dumps({'metric': metric, 'type': kind}, sort_keys=True, separators=(',', ':'))}']"


def _type(dash_duo: Any, kind: str, metric: str, text: str) -> None:
    """Replace a margin as a user does: select it, type, leave the field (the input is debounced)."""
    field = dash_duo.wait_for_element(_cell(kind, metric), timeout=TIMEOUT)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", field)
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text, Keys.TAB)


def test_editing_direction_and_margin_changes_the_decision_and_is_stored(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    _load_sample(dash_duo, "sample_guardrail_worsened.csv", name="Cancel margin")
    dash_duo.wait_for_element(_cell(ids.METRIC_MARGIN, "cancel"), timeout=TIMEOUT)
    dash_duo.wait_for_contains_text(f"#{ids.METRICS_DECISION}", "HOLD", timeout=TIMEOUT)
    table = dash_duo.find_element(f"#{ids.METRICS_TABLE}").text
    assert "conversions" in table and "guardrail" in table and "default" in table
    assert dash_duo.find_element(_cell(ids.METRIC_MARGIN, "cancel")).get_attribute("value") == "0.001"

    # A margin that cannot be read, then one above the severe margin: inline messages, no re-run.
    _type(dash_duo, ids.METRIC_MARGIN, "cancel", "lots")
    dash_duo.wait_for_contains_text(_cell(ids.METRIC_MARGIN_HINT, "cancel"), "is not a margin", timeout=TIMEOUT)
    dash_duo.wait_for_contains_text(f"#{ids.METRICS_MESSAGE}", "Not applied", timeout=TIMEOUT)
    assert "is-invalid" in dash_duo.find_element(_cell(ids.METRIC_MARGIN, "cancel")).get_attribute("class")
    _type(dash_duo, ids.METRIC_MARGIN, "cancel", "0.005")
    dash_duo.wait_for_contains_text(_cell(ids.METRIC_SEVERE_MARGIN_HINT, "cancel"), "must not be smaller",
                                    timeout=TIMEOUT)
    assert "HOLD" in dash_duo.find_element(f"#{ids.METRICS_DECISION}").text

    # Raising the severe margin too makes the +0.2 pp cancellations minor: Launch.
    _type(dash_duo, ids.METRIC_SEVERE_MARGIN, "cancel", "0.01")
    dash_duo.wait_for_contains_text(f"#{ids.METRICS_DECISION}", "LAUNCH", timeout=TIMEOUT)
    assert "default 0.001" in dash_duo.find_element(_cell(ids.METRIC_MARGIN_HINT, "cancel")).text
    assert dash_duo.find_element(f"#{ids.METRICS_MESSAGE}").text == ""

    # Lower is better for the primary metric: its significant rise is now a significant harm.
    select = dash_duo.find_element(_cell(ids.METRIC_BETTER, "conversions"))
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", select)
    Select(select).select_by_value("lower")
    dash_duo.wait_for_contains_text(f"#{ids.METRICS_DECISION}", "ROLLBACK", timeout=TIMEOUT)

    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    dash_duo.wait_for_text_to_equal(f"#{ids.DECISION_BADGE}", "ROLLBACK", timeout=TIMEOUT)
    assert "lower is better" in dash_duo.find_element(f"#{ids.PRIMARY_CARD}").text
    guardrails = dash_duo.find_element(f"#{ids.GUARDRAIL_TABLE}").text
    assert "MINOR" in guardrails and "0.5" in guardrails and "default" in guardrails  # error keeps its defaults
    _click(dash_duo, f"#{ids.SAVE_EXPERIMENT}")
    dash_duo.wait_for_contains_text(f"#{ids.SAVE_MESSAGE}", f"Saved as experiment {NEW_ID}", timeout=TIMEOUT)

    # Back on New Experiment the form starts a new experiment: no table of the saved one.
    _navigate(dash_duo, "/new", f"#{ids.EXPERIMENT_NAME}")
    dash_duo.wait_for_element(f"#{ids.EXPERIMENT_NAME}", timeout=TIMEOUT)
    assert not dash_duo.driver.find_elements("css selector", _cell(ids.METRIC_MARGIN, "cancel"))

    # The stored experiment shows the same settings and decision.
    dash_duo.wait_for_page(f"{dash_duo.server_url}/experiments/{NEW_ID}")
    dash_duo.wait_for_element(f"#{ids.STORED_METRICS}", timeout=TIMEOUT)
    dash_duo.wait_for_text_to_equal(f"#{ids.DECISION_BADGE}", "ROLLBACK", timeout=TIMEOUT)
    stored = {row.text.split()[0]: row.text for row in
              dash_duo.find_elements(f"#{ids.STORED_METRICS} tbody tr")}
    assert "primary lower is better" in stored["conversions"] and stored["conversions"].count("default") == 2
    assert "0.5" in stored["cancel"] and "1.0" in stored["cancel"]
    assert stored["error"].count("default") == 3
    assert dash_duo.get_logs() == []
