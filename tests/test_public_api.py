"""Each package's public API is explicit, sorted and importable (STYLE rule 6)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("module", ["analytics", "storage", "dashapp.memo", "storage.errors"])
def test_all_is_sorted_and_importable(module: str) -> None:
    package = importlib.import_module(module)
    names = package.__all__
    # Ordering is enforced by ruff (RUF022, isort-style); here: no duplicates, nothing missing.
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(package, name), name


def test_analytics_does_not_import_storage_or_dashapp() -> None:
    code = ("import sys, analytics; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('storage', 'dashapp', 'duckdb', 'dash')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


def test_cli_and_renderers_do_not_import_dash() -> None:
    code = "import sys, dashapp.cli, dashapp.memo; print('dash' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"


def test_importing_analytics_and_analysing_a_csv_stay_light() -> None:
    """scipy.stats / scipy.optimize cost ~0.5 s to import; renderers and Dash are for memos and serve."""
    heavy = ("scipy.stats", "scipy.optimize", "pandas", "matplotlib", "dash", "weasyprint", "jinja2", "plotly")
    code = ("import io, sys; import analytics; first = sorted(m for m in sys.modules if m in HEAVY); "
            "from dashapp.cli import main; main(['analyze', 'data/sample_launch.csv'], stdout=io.StringIO()); "
            "print(first, sorted(m for m in sys.modules if m in HEAVY))").replace("HEAVY", repr(heavy))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[] []"


def test_the_cli_parses_its_arguments_before_importing_the_analysis() -> None:
    """``--help`` and a mistyped option answer without SciPy, DuckDB or NumPy (half a second of imports)."""
    code = ("import contextlib, io, sys; from dashapp.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "assert main(['analyze', '--no-such-option'], stderr=io.StringIO()) == 2\n"
            "print(sorted(m for m in ('analytics', 'duckdb', 'numpy', 'scipy', 'storage') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


def test_the_looks_in_the_cli_help_are_the_planner_limit() -> None:
    from analytics.power import MAX_PLANNED_LOOKS
    from dashapp.cli import MAX_LOOKS_IN_HELP

    assert MAX_LOOKS_IN_HELP == MAX_PLANNED_LOOKS
