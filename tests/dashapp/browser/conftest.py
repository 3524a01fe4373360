"""Browser tests: Debian's headless Chromium through dash[testing] (selenium)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from selenium.webdriver.chrome.options import Options

from dashapp.app import create_app

ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"


def pytest_setup_options() -> Options:
    """Chromium flags for this machine (root, no GPU, no network beyond loopback)."""
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--disable-quic", "--no-first-run", "--disable-component-update",
                 "--disable-sync", "--window-size=1366,768"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


@pytest.fixture
def app_factory(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(**options):  # type: ignore[no-untyped-def]
        return create_app(db=tmp_path / "dashboard.duckdb", **options)
    return make


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
