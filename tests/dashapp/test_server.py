"""``experimentos serve`` as deployed: waitress on loopback, Host allow-list, security headers, CSP in Chromium."""

from __future__ import annotations

import http.client
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashapp import ids
from dashapp.app import LOOPBACK_HOSTS, allowed_hosts_for, create_app, waitress_options
from tests.conftest import served_in_thread

TIMEOUT = 20
HARDENING = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, int]]:
    """The real waitress server on 127.0.0.1 and a free port, in a thread for this module."""
    app = create_app(db=tmp_path_factory.mktemp("server") / "served.duckdb",
                     allowed_hosts=allowed_hosts_for("127.0.0.1"))
    with served_in_thread(app, "waitress-under-test") as port:
        yield app, port


def _get(port: int, path: str, *, host: str | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", f"127.0.0.1:{port}" if host is None else host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def _directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


@pytest.mark.parametrize("path", ["/", "/new", "/_dash-layout", "/assets/app.css", "/no-such-page"])
def test_every_response_carries_the_security_headers_and_no_banner(served: tuple[Any, int], path: str) -> None:
    _, port = served
    status, headers, _ = _get(port, path)
    assert status in (200, 404)
    for name, value in HARDENING.items():
        assert headers[name] == value, name
    assert "Server" not in headers and "Via" not in headers
    policy = _directives(headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    scripts = policy["script-src"]
    assert scripts[0] == "'self'" and all(source.startswith("'sha256-") for source in scripts[1:])
    assert not {"'unsafe-eval'", "'unsafe-inline'"} & set(scripts)
    assert not any("http" in value or value == "*" for values in policy.values() for value in values)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8050", "127.0.0.1.evil.example", "", "[::2]"])
def test_a_foreign_host_header_gets_400(served: tuple[Any, int], host: str) -> None:
    _, port = served
    status, headers, body = _get(port, "/_dash-layout", host=host)
    assert status == 400
    assert b"allowed-host" in body and b"Experiment" not in body
    assert headers["X-Frame-Options"] == "DENY" and "Server" not in headers


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
def test_the_loopback_names_are_allowed_on_any_port(served: tuple[Any, int], host: str) -> None:
    _, port = served
    for name in (host, f"{host}:{port}"):
        status, _, body = _get(port, "/_dash-layout", host=name)
        assert status == 200, name
        assert b"props" in body


def test_allowed_hosts_follow_the_bound_address() -> None:
    assert set(allowed_hosts_for("127.0.0.1")) == set(LOOPBACK_HOSTS)
    assert allowed_hosts_for("10.0.0.5") == ("10.0.0.5",)
    assert allowed_hosts_for("10.0.0.5", ["Ab.Example"]) == ("ab.example", "10.0.0.5")
    assert allowed_hosts_for("0.0.0.0", ["ab.example"]) == ("ab.example",)
    assert "[::1]" in allowed_hosts_for("::1")
    assert allowed_hosts_for("::", ["fe80::1"]) == ("[fe80::1]",)


def test_waitress_limits_match_the_streamed_upload_limit(served: tuple[Any, int]) -> None:
    app, _ = served
    options = waitress_options(app)
    large = app.server.config["EXPERIMENTOS_LARGE_UPLOAD_LIMIT"]
    assert large < options["max_request_body_size"] <= large + (1 << 20)
    assert options["ident"] == "" and 0 < options["channel_timeout"] <= 120
    assert options["connection_limit"] > options["threads"] > 0


@pytest.mark.browser
def test_the_dashboard_runs_under_its_csp_in_chromium(served: tuple[Any, int], tmp_path: Path) -> None:
    """No CSP violation while loading a sample, viewing the charts, the memo preview (an iframe srcdoc
    that inherits the policy), the history grid and a stored experiment."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("needs Debian's chromium and chromium-driver")
    _, port = served
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--no-first-run", "--window-size=1366,768",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(TIMEOUT)
    wait = WebDriverWait(driver, TIMEOUT)

    def click(by: str, selector: str) -> None:  # a DOM click: no waiting for charts to stop moving the page
        driver.execute_script("arguments[0].click();", wait.until(
            expected_conditions.presence_of_element_located((by, selector))))
    try:
        driver.get(f"http://127.0.0.1:{port}/new")
        wait.until(expected_conditions.element_to_be_clickable((By.ID, ids.LOAD_SAMPLE)))
        driver.execute_script(
            "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
            "s.dispatchEvent(new Event('change', {bubbles: true}));", ids.SAMPLE_SELECT, "sample_launch.csv")
        time.sleep(0.2)
        click(By.ID, ids.LOAD_SAMPLE)
        wait.until(expected_conditions.presence_of_element_located((By.ID, ids.HEALTH_STATUS)))
        click(By.CSS_SELECTOR, "a.nav-link[href='/results']")
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".js-plotly-plot .main-svg")))
        click(By.CSS_SELECTOR, "a.nav-link[href='/memo']")
        frame = wait.until(expected_conditions.presence_of_element_located((By.ID, ids.MEMO_PREVIEW)))
        wait.until(lambda _: frame.get_attribute("srcdoc"))
        driver.switch_to.frame(frame)
        wait.until(lambda d: "LAUNCH" in d.find_element(By.TAG_NAME, "body").text.upper())
        styled = driver.execute_script("return document.styleSheets.length")
        driver.switch_to.default_content()
        # the history grid (AG Grid with cell renderers) and a stored memo in its iframe
        click(By.CSS_SELECTOR, "a.nav-link[href='/history']")
        wait.until(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, f"#{ids.HISTORY_TABLE} .ag-center-cols-container .ag-row")))
        driver.get(f"http://127.0.0.1:{port}/experiments/1")
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "iframe.memo-frame")))
        logs = driver.get_log("browser")
    finally:
        driver.quit()
    assert styled >= 1, "the memo's inline CSS was blocked"
    violations = [entry["message"] for entry in logs
                  if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]]
    assert violations == []
    assert [entry["message"] for entry in logs if entry["level"] == "SEVERE"] == []


def test_serve_takes_repeatable_allowed_hosts() -> None:
    from dashapp.cli import build_parser

    args = build_parser().parse_args(["serve", "--allowed-host", "ab.example", "--allowed-host", "cd.example"])
    assert args.allowed_host == ["ab.example", "cd.example"]
    assert build_parser().parse_args(["serve"]).allowed_host == []
