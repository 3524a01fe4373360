"""Sign in as a viewer, an analyst and an admin in Chromium: each sees and may do what the role
allows, and nothing more (the server refuses the rest: tests/dashapp/test_auth.py)."""

from __future__ import annotations

from typing import Any

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from dashapp import ids
from storage.database import ExperimentDatabase, HistoryQuery
from storage.users import AuditQuery, UserDirectory
from tests.dashapp.browser.test_dashboard import TIMEOUT, _click

PORT = 18131
USERS = {"vera": ("viewer", "viewer-password"), "anna": ("analyst", "analyst-password"),
         "adam": ("admin", "admin-password")}


def _base(dash_duo: Any) -> str:
    return str(dash_duo.server.url).rstrip("/")


def _sign_in(dash_duo: Any, name: str) -> None:
    dash_duo.driver.get(f"{_base(dash_duo)}/login")
    dash_duo.wait_for_element(f"#{ids.LOGIN_FORM}", timeout=TIMEOUT)
    dash_duo.find_element(f"#{ids.LOGIN_NAME}").send_keys(name)
    dash_duo.find_element(f"#{ids.LOGIN_PASSWORD}").send_keys(USERS[name][1])
    dash_duo.find_element(f"#{ids.LOGIN_SUBMIT}").click()
    dash_duo.wait_for_contains_text(f"#{ids.NAVBAR_USER}", f"{name} · {USERS[name][0]}", timeout=TIMEOUT)


def _sign_out(dash_duo: Any) -> None:
    _click(dash_duo, f"#{ids.SIGN_OUT}")
    dash_duo.wait_for_element(f"#{ids.LOGIN_FORM}", timeout=TIMEOUT)


def _nav_links(dash_duo: Any) -> set[str]:
    return {link.text for link in dash_duo.find_elements(f"#{ids.NAVBAR} .nav-link")}


def _open(dash_duo: Any, path: str, selector: str) -> None:
    dash_duo.driver.get(f"{_base(dash_duo)}{path}")
    dash_duo.wait_for_element(selector, timeout=TIMEOUT)


def _enabled(dash_duo: Any, selector: str) -> bool:
    """Whether the element becomes enabled. A button with a `running` state is disabled while its callback's
    first call (fired when the page inserts it, because its store output was already there) is in flight."""
    try:
        WebDriverWait(dash_duo.driver, TIMEOUT).until(lambda driver: driver.find_element(By.CSS_SELECTOR, selector)
                                                      .is_enabled())
    except TimeoutException:
        return False
    return True


def _absent(dash_duo: Any, selector: str) -> bool:
    return not dash_duo.driver.find_elements(By.CSS_SELECTOR, selector)


def test_each_role_sees_and_does_what_it_may_and_nothing_more(dash_duo: Any, app_factory: Any) -> None:
    app = app_factory()
    database = ExperimentDatabase(app.server.config["EXPERIMENTOS_DB"])
    directory = UserDirectory(database)
    for name, (role, password) in USERS.items():
        directory.add(name, role, password)
    experiment_id = database.history().rows[0].experiment_id
    total = database.history().total
    dash_duo.start_server(app, navigate=False, port=PORT)  # "/" would redirect to /login

    # Anonymous: the dashboard sends the browser to the sign-in page.
    dash_duo.driver.get(f"{_base(dash_duo)}/history")
    dash_duo.wait_for_element(f"#{ids.LOGIN_FORM}", timeout=TIMEOUT)
    assert "/login?next=%2Fhistory" in dash_duo.driver.current_url

    # Viewer: browses and downloads; no upload, save, notes, look, archive or admin.
    _sign_in(dash_duo, "vera")
    assert _nav_links(dash_duo) == {"Home", "Results", "Decision Memo", "History"}
    _open(dash_duo, "/new", ".role-refusal")
    assert "Viewers cannot upload, analyse, save or add notes" in dash_duo.find_element(".role-refusal").text
    assert _absent(dash_duo, f"#{ids.UPLOAD_DATA}")
    _open(dash_duo, f"/experiments/{experiment_id}", f"#{ids.OPEN_IN_WORKSPACE}")
    assert _absent(dash_duo, f"#{ids.EXPERIMENT_ADD_LOOK}") and _absent(dash_duo, f"#{ids.EXPERIMENT_ARCHIVE}")
    assert "Viewers cannot" in dash_duo.find_element(f"#{ids.ROLE_NOTICE}").text
    assert dash_duo.find_element(f"#{ids.EXPERIMENT_DOWNLOAD_MD}").is_enabled()
    _click(dash_duo, f"#{ids.OPEN_IN_WORKSPACE}")  # viewing a stored analysis in the workspace is browsing
    dash_duo.wait_for_element(f"#{ids.EFFECT_CHART}", timeout=TIMEOUT)
    assert _absent(dash_duo, f"#{ids.SAVE_EXPERIMENT}")
    _open(dash_duo, "/memo", f"#{ids.ROLE_NOTICE}")
    assert _absent(dash_duo, f"#{ids.SAVE_NOTES}")
    assert "Viewers cannot" in dash_duo.find_element(f"#{ids.ROLE_NOTICE}").text
    assert dash_duo.find_element(f"#{ids.DOWNLOAD_MD}").is_enabled()
    _open(dash_duo, "/admin", ".role-refusal")
    assert _absent(dash_duo, f"#{ids.ADMIN_AUDIT_TABLE}")
    _sign_out(dash_duo)

    # Analyst: uploads and adds notes; no archive, no admin.
    _sign_in(dash_duo, "anna")
    assert _nav_links(dash_duo) == {"Home", "New Experiment", "Results", "Decision Memo", "History"}
    _open(dash_duo, "/new", f"#{ids.UPLOAD_DATA}")
    _open(dash_duo, f"/experiments/{experiment_id}", f"#{ids.EXPERIMENT_ADD_LOOK}")
    assert _absent(dash_duo, f"#{ids.EXPERIMENT_ARCHIVE}")
    _click(dash_duo, f"#{ids.OPEN_IN_WORKSPACE}")
    dash_duo.wait_for_element(f"#{ids.SAVE_EXPERIMENT}", timeout=TIMEOUT)
    _open(dash_duo, "/memo", f"#{ids.SAVE_NOTES}")
    assert _enabled(dash_duo, f"#{ids.SAVE_NOTES}") and _absent(dash_duo, f"#{ids.ROLE_NOTICE}")
    dash_duo.find_element(f"#{ids.MEMO_NOTES}").send_keys("Checked with finance.")
    _click(dash_duo, f"#{ids.SAVE_NOTES}")
    dash_duo.wait_for_contains_text(f"#{ids.NOTES_MESSAGE}", "Saved memo version", timeout=TIMEOUT)
    _open(dash_duo, "/admin", ".role-refusal")
    assert "Analysts cannot manage users" in dash_duo.find_element(".role-refusal").text
    _sign_out(dash_duo)
    memo = database.memos(database.latest_analysis(experiment_id).id)[-1]
    assert (memo.author, memo.notes) == ("anna", "Checked with finance.")

    # Admin: the audit log and users, and archiving.
    _sign_in(dash_duo, "adam")
    assert _nav_links(dash_duo) == {"Home", "New Experiment", "Results", "Decision Memo", "History", "Admin"}
    _open(dash_duo, "/admin", f"#{ids.ADMIN_AUDIT_TABLE} table")
    audit = dash_duo.find_element(f"#{ids.ADMIN_AUDIT_TABLE}").text
    assert "annotated" in audit and "anna" in audit and "signed_in" in audit
    assert {"vera", "anna", "adam"} <= set(dash_duo.find_element(f"#{ids.ADMIN_USERS_TABLE}").text.split())
    _open(dash_duo, f"/experiments/{experiment_id}", f"#{ids.EXPERIMENT_ARCHIVE}")
    _click(dash_duo, f"#{ids.EXPERIMENT_ARCHIVE}")
    dash_duo.wait_for_text_to_equal(f"#{ids.EXPERIMENT_ARCHIVE}", "Unarchive", timeout=TIMEOUT)
    _open(dash_duo, "/history", f"#{ids.HISTORY_SHOW_ARCHIVED}")
    dash_duo.wait_for_contains_text(f"#{ids.HISTORY_COUNT}", f"{total - 1} experiment(s)", timeout=TIMEOUT)
    _click(dash_duo, f"#{ids.HISTORY_SHOW_ARCHIVED}")
    dash_duo.wait_for_contains_text(f"#{ids.HISTORY_COUNT}", f"{total} experiment(s)", timeout=TIMEOUT)
    _sign_out(dash_duo)

    assert database.history(HistoryQuery(include_archived=True)).total == total == database.history().total + 1
    events = {(r.event, r.actor) for r in directory.audit_log(AuditQuery(limit=1000)).rows}
    assert {("signed_in", "vera"), ("signed_in", "anna"), ("signed_in", "adam"), ("annotated", "anna"),
            ("archived", "adam")} <= events
    assert not {e for e in events if e[1] == "vera" and e[0] != "signed_in"}  # the viewer changed nothing
    # The pages never asked the server for a callback the role may not run (no 403 in the console).
    assert [e for e in dash_duo.driver.get_log("browser") if " 403 " in e["message"] or "(FORBIDDEN)" in e["message"]] \
        == []
