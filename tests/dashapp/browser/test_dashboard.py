"""The dashboard as a user meets it, in headless Chromium (dash[testing])."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
from selenium.webdriver.common.keys import Keys

from dashapp import ids
from dashapp.services import sample_files
from tests.conftest import DATA, run_cli

TIMEOUT = 20
SAMPLES = len(sample_files())  # a new database holds every sample as an experiment
NEW_ID = SAMPLES + 1  # the id of the first experiment a test saves


def _wait_for_download(folder: str, suffix: str, timeout: float = 30) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        files = [p for p in Path(folder).glob(f"*{suffix}") if p.stat().st_size > 0]
        if files:
            time.sleep(0.3)  # let Chromium finish renaming the .crdownload
            return files[0]
        time.sleep(0.2)
    raise AssertionError(f"no {suffix} file was downloaded to {folder}: {list(Path(folder).iterdir())}")


def _click(dash_duo: Any, selector: str) -> None:
    """Scroll an element to the middle of the window and click it as a user would, waiting while
    the page is still moving (charts rendering push content down)."""
    deadline = time.time() + TIMEOUT
    while True:
        element = dash_duo.wait_for_element(selector, timeout=TIMEOUT)
        dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});",
                                       element)
        time.sleep(0.15)
        try:
            element.click()
            return
        except (ElementClickInterceptedException, StaleElementReferenceException):
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def _load_sample(dash_duo: Any, sample: str, name: str | None = None) -> None:
    dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
    dash_duo.wait_for_element(f"#{ids.SAMPLE_SELECT}", timeout=TIMEOUT)
    if name is not None:
        field = dash_duo.find_element(f"#{ids.EXPERIMENT_NAME}")
        field.clear()
        field.send_keys(name)
    dash_duo.driver.execute_script(
        "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
        "s.dispatchEvent(new Event('change', {bubbles: true}));", ids.SAMPLE_SELECT, sample)
    _click(dash_duo, f"#{ids.LOAD_SAMPLE}")
    dash_duo.wait_for_element(f"#{ids.HEALTH_STATUS}", timeout=TIMEOUT)


def _navigate(dash_duo: Any, path: str, selector: str) -> None:
    """Client-side navigation through the navbar keeps the tab's session store."""
    dash_duo.driver.execute_script("window.scrollTo({top: 0, behavior: 'instant'});")
    time.sleep(0.1)
    dash_duo.wait_for_element(f"a.nav-link[href='{path}']", timeout=TIMEOUT).click()
    dash_duo.wait_for_element(selector, timeout=TIMEOUT)


def test_full_flow_sample_to_results_memo_and_pdf(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    _load_sample(dash_duo, "sample_launch.csv", name="Banner test")
    dash_duo.wait_for_text_to_equal(f"#{ids.HEALTH_STATUS}", "Healthy", timeout=TIMEOUT)
    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    dash_duo.wait_for_text_to_equal(f"#{ids.DECISION_BADGE}", "LAUNCH", timeout=TIMEOUT)
    assert "Rule 6" in dash_duo.find_element(f"#{ids.RESULTS_BODY}").text
    _click(dash_duo, f"#{ids.SAVE_EXPERIMENT}")
    dash_duo.wait_for_contains_text(f"#{ids.SAVE_MESSAGE}", f"Saved as experiment {NEW_ID}", timeout=TIMEOUT)
    _navigate(dash_duo, "/memo", f"#{ids.DOWNLOAD_PDF}")
    _click(dash_duo, f"#{ids.DOWNLOAD_PDF}")
    pdf = _wait_for_download(dash_duo.download_path, ".pdf", timeout=60)
    assert pdf.read_bytes().startswith(b"%PDF")
    _click(dash_duo, f"#{ids.DOWNLOAD_MD}")
    markdown = _wait_for_download(dash_duo.download_path, ".md")
    assert "Decision: LAUNCH" in markdown.read_text(encoding="utf-8")
    _click(dash_duo, f"#{ids.DOWNLOAD_HTML}")
    html = _wait_for_download(dash_duo.download_path, ".html")
    assert "Banner test" in html.read_text(encoding="utf-8")
    assert dash_duo.get_logs() == []


def test_csv_picked_through_the_upload_control(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
    upload = dash_duo.wait_for_element(f"#{ids.UPLOAD_DATA} input[type=file]", timeout=TIMEOUT)
    upload.send_keys(str(DATA / "sample_guardrail_severe.csv"))
    dash_duo.wait_for_text_to_equal(f"#{ids.HEALTH_STATUS}", "Healthy", timeout=TIMEOUT)
    assert "sample_guardrail_severe" in dash_duo.find_element(f"#{ids.HEALTH_PANEL}").text
    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    dash_duo.wait_for_text_to_equal(f"#{ids.DECISION_BADGE}", "ROLLBACK", timeout=TIMEOUT)
    assert "SEVERE" in dash_duo.find_element(f"#{ids.GUARDRAIL_TABLE}").text
    assert dash_duo.get_logs() == []


def test_navigation_guards_on_results_and_memo(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    for path, word in (("/results", "results"), ("/memo", "decision memo")):
        dash_duo.wait_for_page(f"{dash_duo.server_url}{path}")
        guard = dash_duo.wait_for_element(".data-guard", timeout=TIMEOUT)
        assert f"No experiment loaded for the {word} yet" in guard.text
    _click(dash_duo, ".data-guard a[href='/new']")
    dash_duo.wait_for_element(f"#{ids.UPLOAD_DATA}", timeout=TIMEOUT)
    assert dash_duo.get_logs() == []


def test_blocked_file_shows_the_banner_and_every_message(dash_duo: Any, app_factory: Any, tmp_path: Path) -> None:
    bad = tmp_path / "broken.csv"
    bad.write_text("variant,users,conversions,notes\ncontrol,1000,1200,x\ntreatment,abc,12,y\n")
    dash_duo.start_server(app_factory())
    dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
    dash_duo.wait_for_element(f"#{ids.UPLOAD_DATA} input[type=file]", timeout=TIMEOUT).send_keys(str(bad))
    dash_duo.wait_for_text_to_equal(f"#{ids.HEALTH_STATUS}", "Blocked", timeout=TIMEOUT)
    panel = dash_duo.find_element(f"#{ids.HEALTH_PANEL}").text
    assert "not a number" in panel and "ignored" in panel
    _navigate(dash_duo, "/results", f"#{ids.STATUS_BANNER}")
    banner = dash_duo.find_element(f"#{ids.STATUS_BANNER}").text
    assert "Blocked" in banner and "not a number" in banner
    # a data hold is not an inconclusive test: it says why, in grey, not the yellow HOLD (issue 11)
    dash_duo.wait_for_text_to_equal(f"#{ids.DECISION_BADGE}", "HOLD — DATA BLOCKED", timeout=TIMEOUT)
    assert "bg-warning" not in dash_duo.find_element(f"#{ids.DECISION_BADGE}").get_attribute("class")
    assert dash_duo.get_logs() == []


def test_power_calculator_matches_the_cli(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
    for element_id, value in ((ids.PLAN_BASELINE, "0.08"), (ids.PLAN_MDE, "0.1"), (ids.PLAN_DAILY_USERS, "3000")):
        field = dash_duo.wait_for_element(f"#{element_id}", timeout=TIMEOUT)
        field.clear()
        field.send_keys(value)
    cli = json.loads(run_cli("plan", "--baseline", "0.08", "--mde", "0.1", "--relative", "--daily-users", "3000",
                             "--format", "json").stdout)
    expected = f"{cli['control_n']:,} users in control and {cli['treatment_n']:,} in treatment"
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_RESULT}", expected, timeout=TIMEOUT)
    assert f"about {cli['duration_days']} day(s)" in dash_duo.find_element(f"#{ids.PLAN_RESULT}").text
    _click(dash_duo, f"#{ids.PLAN_METRIC_TYPE} input[value='mean']")
    for element_id, value in ((ids.PLAN_MEAN, "12.4"), (ids.PLAN_STD, "30.1"), (ids.PLAN_MDE, "1")):
        field = dash_duo.find_element(f"#{element_id}")
        field.clear()
        field.send_keys(value)
    _click(dash_duo, f"#{ids.PLAN_RELATIVE} input")
    cli = json.loads(run_cli("plan", "--mean", "12.4", "--std", "30.1", "--mde", "1", "--daily-users", "3000",
                             "--format", "json").stdout)
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_RESULT}", f"{cli['control_n']:,} users in control", timeout=TIMEOUT)


def test_history_search_and_compare(dash_duo: Any, app_factory: Any) -> None:
    from dashapp.pages import history

    app = app_factory()
    with app.server.app_context():
        launches = len(history.history_rows(None, "launch", None, None)[0])
    dash_duo.start_server(app)
    dash_duo.wait_for_page(f"{dash_duo.server_url}/history")
    dash_duo.wait_for_contains_text(f"#{ids.HISTORY_COUNT}", f"{SAMPLES} experiment(s)", timeout=TIMEOUT)
    search = dash_duo.find_element(f"#{ids.HISTORY_SEARCH}")
    search.send_keys("negative\n")
    dash_duo.wait_for_contains_text(f"#{ids.HISTORY_COUNT}", "1 experiment(s)", timeout=TIMEOUT)
    assert "sample_negative" in dash_duo.find_element(f"#{ids.HISTORY_TABLE}").text
    search.send_keys(Keys.CONTROL, "a")  # the search filters as the user types: erase it as a user would
    search.send_keys(Keys.BACKSPACE)
    dash_duo.wait_for_contains_text(f"#{ids.HISTORY_COUNT}", f"{SAMPLES} experiment(s)", timeout=TIMEOUT)
    dash_duo.driver.execute_script(
        "const s = document.getElementById(arguments[0]); s.value = 'launch';"
        "s.dispatchEvent(new Event('change', {bubbles: true}));", ids.HISTORY_DECISION)
    dash_duo.wait_for_contains_text(f"#{ids.HISTORY_COUNT}", f"{launches} experiment(s)", timeout=TIMEOUT)
    boxes = dash_duo.find_elements(f"#{ids.HISTORY_TABLE} .ag-center-cols-container .ag-row, "
                                   f"#{ids.HISTORY_TABLE} .ag-pinned-left-cols-container .ag-row")
    assert boxes
    checkboxes = dash_duo.find_elements(f"#{ids.HISTORY_TABLE} .ag-row .ag-selection-checkbox input")
    assert len(checkboxes) >= 3
    for checkbox in checkboxes[:2]:
        dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", checkbox)
        checkbox.click()
    _click(dash_duo, f"#{ids.COMPARE_BUTTON}")
    dash_duo.wait_for_contains_text(f"#{ids.COMPARE_MESSAGE}", "Comparing 2 experiment(s)", timeout=TIMEOUT)
    points = dash_duo.driver.execute_script(  # one panel per metric: count the points of every trace
        "return document.querySelector('#compare-chart .js-plotly-plot').data"
        ".filter(t => t.type === 'scatter' && t.error_x).reduce((n, t) => n + t.y.length, 0);")
    assert points == 2
    assert dash_duo.get_logs() == []


def test_hostile_experiment_name_never_executes(dash_duo: Any, app_factory: Any) -> None:
    payload = '<img src=x onerror="window.__x=1">'
    dash_duo.start_server(app_factory())
    _load_sample(dash_duo, "sample_launch.csv", name=payload)
    dash_duo.wait_for_contains_text(f"#{ids.HEALTH_PANEL}", payload, timeout=TIMEOUT)
    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    assert payload in dash_duo.find_element(f"#{ids.RESULTS_BODY}").text
    _click(dash_duo, f"#{ids.SAVE_EXPERIMENT}")
    dash_duo.wait_for_contains_text(f"#{ids.SAVE_MESSAGE}", "Saved as", timeout=TIMEOUT)
    _navigate(dash_duo, "/memo", f"#{ids.MEMO_PREVIEW}")
    time.sleep(1.5)
    _navigate(dash_duo, "/history", f"#{ids.HISTORY_TABLE}")
    dash_duo.find_element(f"#{ids.HISTORY_SEARCH}").send_keys("onerror\n")  # the grid shows only some rows
    dash_duo.wait_for_contains_text(f"#{ids.HISTORY_TABLE}", payload, timeout=TIMEOUT)
    _navigate(dash_duo, "/", ".card")
    dash_duo.wait_for_page(f"{dash_duo.server_url}/experiments/{NEW_ID}")
    dash_duo.wait_for_contains_text("h2", payload, timeout=TIMEOUT)
    assert dash_duo.driver.execute_script("return typeof window.__x") == "undefined"


def test_no_console_errors_on_any_page(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    for path, selector in (("/", ".card"), ("/new", f"#{ids.UPLOAD_DATA}"), ("/results", ".data-guard"),
                           ("/memo", ".data-guard"), ("/history", f"#{ids.HISTORY_TABLE}"),
                           ("/experiments/3", f"#{ids.DECISION_BADGE}"), ("/experiments/999", ".alert"),
                           ("/experiments/abc", ".alert")):
        dash_duo.wait_for_page(f"{dash_duo.server_url}{path}")
        dash_duo.wait_for_element(selector, timeout=TIMEOUT)
        time.sleep(0.5)
        assert dash_duo.get_logs() == [], path
    _load_sample(dash_duo, "sample_multi_arm.csv")
    for path, selector in (("/results", f"#{ids.DECISION_BADGE}"), ("/memo", f"#{ids.MEMO_PREVIEW}"),
                           ("/", ".card")):
        _navigate(dash_duo, path, selector)
        time.sleep(0.5)
        assert dash_duo.get_logs() == [], path


def test_two_tabs_keep_their_own_experiment(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    _load_sample(dash_duo, "sample_launch.csv")
    first = dash_duo.driver.current_window_handle
    dash_duo.driver.switch_to.new_window("tab")
    _load_sample(dash_duo, "sample_negative.csv")
    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    dash_duo.wait_for_text_to_equal(f"#{ids.DECISION_BADGE}", "ROLLBACK", timeout=TIMEOUT)
    dash_duo.driver.switch_to.window(first)
    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    dash_duo.wait_for_text_to_equal(f"#{ids.DECISION_BADGE}", "LAUNCH", timeout=TIMEOUT)


def test_notes_become_memo_versions_and_show_on_the_experiment_page(dash_duo: Any, app_factory: Any) -> None:
    dash_duo.start_server(app_factory())
    _load_sample(dash_duo, "sample_inconclusive.csv", name="실험 노트")
    _navigate(dash_duo, "/memo", f"#{ids.MEMO_NOTES}")
    notes = dash_duo.find_element(f"#{ids.MEMO_NOTES}")
    notes.send_keys("Reviewed with the PM; wait two more weeks.")
    _click(dash_duo, f"#{ids.SAVE_NOTES}")
    dash_duo.wait_for_contains_text(f"#{ids.NOTES_MESSAGE}", f"Saved memo version 1 of experiment {NEW_ID}", timeout=TIMEOUT)
    notes.send_keys(" Agreed.")
    _click(dash_duo, f"#{ids.SAVE_NOTES}")
    dash_duo.wait_for_contains_text(f"#{ids.NOTES_MESSAGE}", "Saved memo version 2", timeout=TIMEOUT)
    dash_duo.wait_for_page(f"{dash_duo.server_url}/experiments/{NEW_ID}")
    dash_duo.wait_for_contains_text("body", "Memo versions", timeout=TIMEOUT)
    body = dash_duo.find_element("body").text
    assert "실험 노트" in body and "Agreed." in body
    _click(dash_duo, f"#{ids.OPEN_IN_WORKSPACE}")
    dash_duo.wait_for_element(f"#{ids.RESULTS_BODY} #{ids.DECISION_BADGE}", timeout=TIMEOUT)
    dash_duo.wait_for_text_to_equal(f"#{ids.DECISION_BADGE}", "HOLD", timeout=TIMEOUT)
    assert f"Saved as experiment {NEW_ID}" in dash_duo.find_element(f"#{ids.SAVE_MESSAGE}").text


def test_upload_above_the_limit_is_refused_with_a_message(dash_duo: Any, app_factory: Any, tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_text("variant,users,conversions\n" + "control,100,10\n" * 20_000)
    dash_duo.start_server(app_factory(upload_limit_bytes=100_000))
    dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
    dash_duo.wait_for_element(f"#{ids.UPLOAD_DATA} input[type=file]", timeout=TIMEOUT).send_keys(str(big))
    dash_duo.wait_for_contains_text(f"#{ids.UPLOAD_LIMIT_MESSAGE}", "above the upload limit", timeout=TIMEOUT)
    assert "No data yet" in dash_duo.find_element(f"#{ids.HEALTH_PANEL}").text


def test_a_user_level_upload_shows_progress_then_cuped_and_segments(dash_duo: Any, app_factory: Any, tmp_path: Path,
                                                                      monkeypatch: Any) -> None:
    """The analysis runs as a background callback: while it runs the page shows its progress and
    the load buttons are disabled; then the results carry CUPED and the segment table."""
    import numpy as np
    import pandas as pd

    from dashapp.pages import new as new_page

    rng = np.random.default_rng(4)
    n = 20_000
    variant = rng.choice(["control", "treatment"], n)
    pre = rng.gamma(2.0, 5.0, n)
    pd.DataFrame({"user_id": np.arange(n), "variant": variant,
                  "converted": rng.binomial(1, np.where(variant == "treatment", 0.16, 0.12)),
                  "revenue": 0.8 * pre + rng.normal(0, 3, n), "pre_revenue": pre,
                  "segment_country": rng.choice(["KR", "JP", "US"], n)}).to_csv(tmp_path / "users.csv", index=False)
    # The real scan of 20,000 users takes milliseconds; hold each reported step long enough to see.
    real = new_page.upload_into_session

    def slow(*args: Any, on_progress: Any = None, **kwargs: Any) -> Any:
        for done in (20.0, 60.0):
            on_progress(done)
            time.sleep(1.0)
        return real(*args, on_progress=on_progress, **kwargs)

    monkeypatch.setattr(new_page, "upload_into_session", slow)
    app = app_factory()
    dash_duo.start_server(app)
    dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
    dash_duo.wait_for_element(f"#{ids.PRIMARY_METRIC}", timeout=TIMEOUT).send_keys("revenue")
    dash_duo.wait_for_element(f"#{ids.UPLOAD_DATA} input[type=file]", timeout=TIMEOUT).send_keys(
        str(tmp_path / "users.csv"))
    dash_duo.wait_for_contains_text(f"#{ids.ANALYSIS_PROGRESS_TEXT}", "Scanning users.csv", timeout=TIMEOUT)
    assert dash_duo.find_element(f"#{ids.ANALYSIS_PROGRESS_BOX}").is_displayed()
    assert dash_duo.find_element(f"#{ids.LOAD_SAMPLE}").get_attribute("disabled") is not None
    dash_duo.wait_for_contains_text(f"#{ids.ANALYSIS_PROGRESS}", "60%", timeout=TIMEOUT)
    dash_duo.wait_for_text_to_equal(f"#{ids.HEALTH_STATUS}", "Healthy", timeout=TIMEOUT)
    dash_duo.wait_for_style_to_equal(f"#{ids.ANALYSIS_PROGRESS_BOX}", "display", "none", timeout=TIMEOUT)
    assert dash_duo.find_element(f"#{ids.LOAD_SAMPLE}").get_attribute("disabled") is None
    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    table = dash_duo.wait_for_element(f"#{ids.SEGMENT_TABLE}", timeout=TIMEOUT)
    dash_duo.wait_for_contains_text(f"#{ids.SEGMENT_TABLE}", "segment_country", timeout=TIMEOUT)
    assert all(country in table.text for country in ("KR", "JP", "US"))
    assert "CUPED with pre_revenue" in dash_duo.find_element(f"#{ids.RESULTS_BODY}").text
    dash_duo.driver.get(f"{dash_duo.server_url}/new")  # the session store survives a reload of the tab
    dash_duo.wait_for_element(f"#{ids.HEALTH_STATUS}", timeout=TIMEOUT)
    assert dash_duo.get_logs() == []


def test_a_large_file_is_streamed_to_the_server_then_analysed(dash_duo: Any, app_factory: Any, tmp_path: Path) -> None:
    """The large-file button sends the raw bytes to /upload/large (never through the page's
    memory) and the staged file is analysed like any upload; an oversized file is refused."""
    lines = ["user_id,variant,converted,revenue,segment_platform"] + [
        f"{i},{'control' if i % 2 else 'treatment'},{int(i % 7 == 0)},{(i % 23) * 0.75},{'ios' if i % 3 else 'android'}"
        for i in range(200_000)]
    path = tmp_path / "export.csv"
    path.write_text("\n".join(lines) + "\n")
    dash_duo.start_server(app_factory(large_upload_limit_bytes=64 * 2**20))
    dash_duo.wait_for_page(f"{dash_duo.server_url}/new")
    dash_duo.wait_for_element(f"#{ids.LARGE_UPLOAD_BUTTON}", timeout=TIMEOUT)
    dash_duo.wait_for_element(f"#{ids.LARGE_UPLOAD_INPUT}", timeout=TIMEOUT).send_keys(str(path))
    dash_duo.wait_for_text_to_equal(f"#{ids.HEALTH_STATUS}", "Healthy", timeout=TIMEOUT)
    assert "export" in dash_duo.find_element(f"#{ids.HEALTH_PANEL}").text
    dash_duo.wait_for_contains_text(f"#{ids.UPLOAD_MESSAGE}", "Analysed export.csv", timeout=TIMEOUT)
    assert not dash_duo.find_element(f"#{ids.LARGE_UPLOAD_BOX}").is_displayed()
    _navigate(dash_duo, "/results", f"#{ids.DECISION_BADGE}")
    dash_duo.wait_for_contains_text(f"#{ids.SEGMENT_TABLE}", "segment_platform", timeout=TIMEOUT)
    _click(dash_duo, f"#{ids.SAVE_EXPERIMENT}")
    dash_duo.wait_for_contains_text(f"#{ids.SAVE_MESSAGE}", "Saved as experiment", timeout=TIMEOUT)
    big = tmp_path / "huge.csv"
    with open(big, "wb") as handle:
        handle.truncate(65 * 2**20)
    _navigate(dash_duo, "/new", f"#{ids.LARGE_UPLOAD_BUTTON}")
    dash_duo.find_element(f"#{ids.LARGE_UPLOAD_INPUT}").send_keys(str(big))
    dash_duo.wait_for_contains_text(f"#{ids.LARGE_UPLOAD_MESSAGE}", "above the large-file limit", timeout=TIMEOUT)
    assert dash_duo.get_logs() == []
