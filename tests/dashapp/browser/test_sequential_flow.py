"""Issue 13's walk in headless Chromium: upload a daily export, turn on sequential inference, see
the timeline with both bands, save, add a second look from the experiment page, see two looks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dashapp import ids
from tests.conftest import DATA
from tests.dashapp.browser.test_dashboard import TIMEOUT, _click, _navigate


def test_daily_upload_sequential_save_and_a_second_look(dash_duo: Any, app_factory: Any, tmp_path: Path) -> None:
    daily = (DATA / "sample_daily.csv").read_text(encoding="utf-8").rstrip("\n").split("\n")
    first = tmp_path / "checkout_daily.csv"  # the first 20 days (not the sample itself, already in History)
    first.write_text("\n".join(daily[:-2]) + "\n", encoding="utf-8")
    later = tmp_path / "checkout_day22.csv"
    later.write_text("\n".join(daily) + "\n2026-11-23,control,1000,99\n2026-11-23,treatment,1000,108\n",
                     encoding="utf-8")
    dash_duo.start_server(app_factory())
    dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
    name = dash_duo.wait_for_element(f"#{ids.EXPERIMENT_NAME}", timeout=TIMEOUT)
    name.send_keys("Checkout, looked at daily")
    dash_duo.wait_for_element(f"#{ids.UPLOAD_DATA} input[type=file]", timeout=TIMEOUT).send_keys(str(first))
    dash_duo.wait_for_element(f"#{ids.HEALTH_STATUS}", timeout=TIMEOUT)

    # Fixed-horizon first: the timeline has one band per arm.
    _navigate(dash_duo, "/results", f"#{ids.TIMELINE_CHART} .main-svg")
    dash_duo.wait_for_contains_text(f"#{ids.TIMELINE_CHART}", "fixed-horizon 95%", timeout=TIMEOUT)
    assert "always-valid" not in dash_duo.find_element(f"#{ids.TIMELINE_CHART}").text

    # Turning the switch on re-runs the loaded file with always-valid inference.
    _navigate(dash_duo, "/new", f"#{ids.SEQUENTIAL}")
    _click(dash_duo, f"#{ids.SEQUENTIAL}")
    dash_duo.wait_for_contains_text(f"#{ids.NEXT_STEP}", "always-valid inference", timeout=TIMEOUT)
    _navigate(dash_duo, "/results", f"#{ids.TIMELINE_CHART} .main-svg")
    dash_duo.wait_for_contains_text(f"#{ids.TIMELINE_CHART}", "always-valid 95%", timeout=TIMEOUT)
    assert "fixed-horizon 95%" in dash_duo.find_element(f"#{ids.TIMELINE_CHART}").text
    assert "always-valid p" in dash_duo.find_element(f"#{ids.RESULTS_BODY}").text

    _click(dash_duo, f"#{ids.SAVE_EXPERIMENT}")
    dash_duo.wait_for_contains_text(f"#{ids.SAVE_MESSAGE}", "Saved as experiment", timeout=TIMEOUT)
    saved = re.search(r"experiment (\d+)", dash_duo.find_element(f"#{ids.SAVE_MESSAGE}").text)
    assert saved is not None

    dash_duo.wait_for_page(f"{dash_duo.server_url}/experiments/{saved.group(1)}")
    dash_duo.wait_for_text_to_equal(f"#{ids.EXPERIMENT_LOOKS_COUNT}", "1 look", timeout=TIMEOUT)
    dash_duo.wait_for_element(f"#{ids.EXPERIMENT_ADD_LOOK} input[type=file]", timeout=TIMEOUT).send_keys(str(later))
    dash_duo.wait_for_contains_text(f"#{ids.EXPERIMENT_LOOK_MESSAGE}", "as look 2", timeout=TIMEOUT)
    dash_duo.wait_for_text_to_equal(f"#{ids.EXPERIMENT_LOOKS_COUNT}", "2 looks", timeout=TIMEOUT)
    table = dash_duo.find_element(f"#{ids.EXPERIMENT_LOOKS_TABLE}").text
    assert "checkout_daily.csv" in table and "checkout_day22.csv" in table
    assert table.count("always-valid") >= 2  # the second look kept the first one's sequential policy
    dash_duo.wait_for_contains_text(f"#{ids.EXPERIMENT_TIMELINE_CHART}", "always-valid 95%", timeout=TIMEOUT)
    assert dash_duo.get_logs() == []
