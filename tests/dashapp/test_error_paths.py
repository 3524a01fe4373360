"""Failure paths of :mod:`dashapp.errors` as a user meets them: a PDF over its time limit (CLI and
both dashboard downloads), a replay mismatch's exit code, and the CLI's imports staying off the
dashboard's modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dashapp import ids
from dashapp.app import create_app
from dashapp.cli import EXIT_NOT_LAUNCH, EXIT_OK, EXIT_REPLAY_MISMATCH, EXIT_UNUSABLE
from dashapp.memo.render import PDF_TIMEOUT_ENV
from tests.conftest import DATA, ROOT, assert_clean_json, press, run_cli

TINY_TIMEOUT = "0.01"  # seconds: no PDF renders this fast, so the render worker is always killed


def _text(component: Any) -> str:
    if isinstance(component, dict):
        return _text(component.get("props", {}).get("children"))
    if isinstance(component, list):
        return " ".join(_text(c) for c in component)
    return "" if component is None else str(component)


# -- a PDF over its time limit ---------------------------------------------------------------------


def test_the_cli_reports_a_pdf_over_its_time_limit_in_one_line_and_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "memo.pdf"
    result = run_cli("analyze", str(DATA / "sample_launch.csv"), "--format", "pdf", "-o", str(out),
                     env={PDF_TIMEOUT_ENV: TINY_TIMEOUT})
    assert result.returncode == EXIT_UNUSABLE == 2
    line, = result.stderr.splitlines()
    assert line == ("experimentos: error: the PDF memo could not be rendered: the PDF took longer than 0.01 s to "
                    "render; try --format md or html")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists()


def test_show_reports_a_pdf_over_its_time_limit_in_one_line_and_exits_2(tmp_path: Path) -> None:
    db = str(tmp_path / "db.duckdb")
    assert run_cli("analyze", str(DATA / "sample_launch.csv"), "--save", "--db", db).returncode == 0
    result = run_cli("show", "1", "--db", db, "--format", "pdf", "-o", str(tmp_path / "m.pdf"),
                     env={PDF_TIMEOUT_ENV: TINY_TIMEOUT})
    assert result.returncode == 2
    line, = result.stderr.splitlines()
    assert "longer than 0.01 s" in line and "--format md or html" in line


def test_the_experiment_page_pdf_over_its_time_limit_shows_a_banner(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored memo's PDF download (experiment page) with a 10 ms limit: the shell's banner says
    to download the HTML memo instead, no file is sent and the server answers 200."""
    monkeypatch.setenv(PDF_TIMEOUT_ENV, TINY_TIMEOUT)
    app = create_app(db=tmp_path / "db.duckdb", load_sample_experiments=True)
    answer = press(app.server.test_client(), f"{ids.EXPERIMENT_DOWNLOAD_FILE}.data",
                   {f"{ids.EXPERIMENT_DOWNLOAD_PDF}.n_clicks": 1, f"{ids.EXPERIMENT_URL}.data": 1},
                   f"{ids.EXPERIMENT_DOWNLOAD_PDF}.n_clicks")
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    banner = _text(answer.get_json()["sideUpdate"][ids.FAULT_BANNER]["children"])
    assert "The PDF could not be made" in banner and "longer than 0.01 s" in banner and "HTML memo" in banner
    assert "data" not in (answer.get_json().get("response") or {}).get(ids.EXPERIMENT_DOWNLOAD_FILE, {})


# -- replay ------------------------------------------------------------------------------------------


def test_a_replay_mismatch_has_its_own_exit_code(tmp_path: Path) -> None:
    """Exit 3, distinct from 0 (identical), 1 (``--require-launch`` and not Launch) and 2 (unusable)."""
    assert len({EXIT_OK, EXIT_NOT_LAUNCH, EXIT_UNUSABLE, EXIT_REPLAY_MISMATCH}) == 4 and EXIT_REPLAY_MISMATCH == 3
    db = tmp_path / "db.duckdb"
    assert run_cli("analyze", str(DATA / "sample_launch.csv"), "--save", "--db", str(db)).returncode == 0
    assert run_cli("replay", "1", "--db", str(db)).returncode == 0
    with duckdb.connect(str(db)) as connection:
        stored = json.loads(connection.execute("SELECT report_json FROM analyses WHERE id = 1").fetchone()[0])
        stored["comparisons"][0]["primary"]["control"]["n"] += 1  # one user more than the stored input holds
        connection.execute("UPDATE analyses SET report_json = ? WHERE id = 1", [json.dumps(stored)])
    replay = run_cli("replay", "1", "--db", str(db))
    assert replay.returncode == 3, replay.stderr
    assert replay.stdout.startswith("REPLAY MISMATCH for experiment 1, analysis 1: 1 difference(s)\n")
    assert ".comparisons[0].primary.control.n" in replay.stdout and replay.stderr == ""


# -- the CLI does not load the dashboard ----------------------------------------------------------------


def test_analyze_does_not_import_the_dashboard_modules() -> None:
    """``experimentos analyze`` (and ``--format md``) loads the services it shares with the dashboard,
    never the dashboard's own: uploads, staging, sessions and looks (:mod:`dashapp.workspace`), Dash, Flask."""
    dashboard = ("dashapp.workspace", "dashapp.staging", "dashapp.uploads", "dashapp.state", "dashapp.app",
                 "dashapp.pages", "dash", "flask")
    code = ("import io, sys; from dashapp.cli import main\n"
            "assert main(['analyze', 'data/sample_launch.csv'], stdout=io.StringIO()) == 0\n"
            "assert main(['analyze', 'data/sample_launch.csv', '--format', 'md'], stdout=io.StringIO()) == 0\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in ('dash', 'flask') or m in {dashboard!r}\n"
            "             or m.startswith('dashapp.pages')))\n"
            "print('dashapp.services' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "True"]


@pytest.mark.parametrize(("control", "treatment"), [(0, 0), (0, 3)])
def test_quadrillions_of_users_give_a_report_not_a_traceback_or_a_hang(tmp_path: Path, control: int,
                                                                        treatment: int) -> None:
    """10¹⁵ users an arm (the most a count may be, analytics.health.MAX_COUNT) with 0 or 3
    conversions: the sparse-count Fisher test, the detectable effect of a 0% control and the
    Beta(1, 10¹⁵) posterior all used to fail (a traceback, or a Fisher test that never ended)."""
    users = 10**15
    path = tmp_path / "huge.csv"
    path.write_text(f"variant,users,conversions\ncontrol,{users},{control}\ntreatment,{users},{treatment}\n")
    result = run_cli("analyze", str(path), "--format", "json", timeout=60)
    assert result.returncode == EXIT_OK, result.stderr
    report, = assert_clean_json(result.stdout)
    primary = report["comparisons"][0]["primary"]
    assert report["decision"]["rule"] == "inconclusive"
    if treatment:
        # Given 3 conversions in all, the control's share is Binomial(3, ½) to O(1e-15): P(0) + P(3) = ¼.
        assert primary["p_value_exact"] == pytest.approx(0.25, rel=1e-9)
        # Beta(1, b) against Beta(4, b), b ≈ 10¹⁵: P(Exp(1) < Gamma(4)) = 1 − 2⁻⁴.
        assert primary["bayesian"]["prob_treatment_better"] == pytest.approx(1 - 2**-4, rel=1e-6)
    else:
        assert any("smallest effect detectable" in reason for reason in report["decision"]["reasons"])


def test_more_than_a_quadrillion_users_is_blocked_not_a_traceback(tmp_path: Path) -> None:
    """10¹⁵ + 1 users (and 10³⁰⁸, which used to overflow the SRM test): ``count_too_large``."""
    path = tmp_path / "huge.csv"
    path.write_text(f"variant,users,conversions\ncontrol,{10**15 + 1},3\ntreatment,{10**308},{10**307}\n")
    result = run_cli("analyze", str(path), "--format", "json", timeout=60)
    assert result.returncode == EXIT_OK, result.stderr
    report, = assert_clean_json(result.stdout)
    assert report["health"]["status"] == "blocked"
    assert [i["code"] for i in report["health"]["issues"]] == ["count_too_large"] * 3
    assert "Row 2, column 'users' is 1,000,000,000,000,001" in report["health"]["issues"][0]["message"]
