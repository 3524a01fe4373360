"""Adding a look to a stored daily experiment from its page, in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dashapp import ids
from dashapp.services import sample_files
from tests.conftest import DATA

TIMEOUT = 30
DAILY_ID = [path.name for path in sample_files()].index("sample_daily.csv") + 1  # samples are saved in order


def test_add_a_look_through_the_upload_control(dash_duo: Any, app_factory: Any, tmp_path: Path) -> None:
    later = tmp_path / "day22.csv"
    later.write_text((DATA / "sample_daily.csv").read_text(encoding="utf-8").rstrip("\n")
                     + "\n2026-11-23,control,1000,99\n2026-11-23,treatment,1000,108\n", encoding="utf-8")
    dash_duo.start_server(app_factory())
    dash_duo.wait_for_page(f"{dash_duo.server_url}/experiments/{DAILY_ID}")
    dash_duo.wait_for_text_to_equal(f"#{ids.EXPERIMENT_LOOKS_COUNT}", "1 look", timeout=TIMEOUT)
    assert "Add a look" in dash_duo.find_element(f"#{ids.EXPERIMENT_ADD_LOOK}").text
    upload = dash_duo.wait_for_element(f"#{ids.EXPERIMENT_ADD_LOOK} input[type=file]", timeout=TIMEOUT)
    upload.send_keys(str(later))
    dash_duo.wait_for_contains_text(f"#{ids.EXPERIMENT_LOOK_MESSAGE}", "as look 2", timeout=TIMEOUT)
    dash_duo.wait_for_text_to_equal(f"#{ids.EXPERIMENT_LOOKS_COUNT}", "2 looks", timeout=TIMEOUT)
    table = dash_duo.find_element(f"#{ids.EXPERIMENT_LOOKS_TABLE}").text
    assert "day22.csv" in table and "sample_daily.csv" in table
    dash_duo.wait_for_element(f"#{ids.EXPERIMENT_TIMELINE_CHART} .main-svg", timeout=TIMEOUT)
    dash_duo.wait_for_element(f"#{ids.EXPERIMENT_LOOKS_CHART} .main-svg", timeout=TIMEOUT)
    assert dash_duo.get_logs() == []
