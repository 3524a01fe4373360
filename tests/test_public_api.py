"""Each package's public API is explicit, sorted and importable (STYLE rule 6)."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

#: Every module of the three packages that declares an ``__all__`` (the packages themselves must).
PACKAGES = ("analytics", "storage", "dashapp", "dashapp.memo")
MODULES_WITH_ALL = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for top in ("analytics", "storage", "dashapp") for path in (ROOT / top).rglob("*.py")
    if re.search(r"^__all__\b", path.read_text(encoding="utf-8"), re.MULTILINE))


def _source_path(module: str) -> Path:
    package = ROOT.joinpath(*module.split("."))
    return package / "__init__.py" if package.is_dir() else package.with_suffix(".py")


def _declared_all(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
                assert node.value is not None
                return list(ast.literal_eval(node.value))
    raise AssertionError("no __all__ assignment at the top level")


def _public_names(tree: ast.Module, module: str, *, is_package: bool) -> set[str]:
    """The names ``module`` defines for others (see :func:`test_all_is_exactly_the_public_names`)."""
    names: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                if isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name) \
                        and node.value.func.id == "TypeVar":
                    continue
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, ast.ImportFrom):
                own = node.level > 0 or (node.module or "").startswith(module + ".")
                for alias in node.names:
                    if (is_package and own) or alias.asname == alias.name:
                        names.add(alias.asname or alias.name)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return {name for name in names if not name.startswith("_")}


def _ruff_order(name: str) -> tuple[int, str]:
    """RUF022's isort-style order: CONSTANTS, then Classes, then everything else, each alphabetical."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_every_package_declares_its_api() -> None:
    assert set(PACKAGES) <= set(MODULES_WITH_ALL)
    assert len(MODULES_WITH_ALL) > 30  # the discovery above found the modules, not nothing


@pytest.mark.parametrize("module", MODULES_WITH_ALL)
def test_all_is_exactly_the_public_names(module: str) -> None:
    """``__all__`` is sorted (ruff's RUF022 order) and equals the set of public names the module defines.

    The rule, read from the module's source: a *public name* does not start with ``_`` and is bound
    at the module's top level (also inside a top-level ``if`` or ``try``, not under
    ``if TYPE_CHECKING``) by

    - a ``def`` or ``class`` statement, or an assignment (constants, type aliases) — except a
      ``TypeVar``, a typing helper;
    - in a package's ``__init__``: ``from <the package's own submodule> import name`` (a package
      re-exports its submodules' API);
    - anywhere: ``from elsewhere import name as name``, the explicit re-export form of PEP 484 (a
      facade such as :mod:`dashapp.formatting` says so at the import).

    Anything else a module imports (``import x``, a submodule, a name imported to be used) is not its
    API, even though ``from module import name`` would find it. Everything listed must also exist
    on the imported module."""
    tree = ast.parse(_source_path(module).read_text(encoding="utf-8"))
    declared = _declared_all(tree)
    assert declared == sorted(declared, key=_ruff_order), "__all__ is not in RUF022 (isort-style) order"
    assert len(set(declared)) == len(declared), "__all__ lists a name twice"
    expected = _public_names(tree, module, is_package=_source_path(module).name == "__init__.py")
    assert sorted(set(declared) - expected) == [], "listed in __all__ but not a public name defined here"
    assert sorted(expected - set(declared)) == [], "public names defined here but missing from __all__"
    loaded = importlib.import_module(module)
    assert [name for name in declared if not hasattr(loaded, name)] == []


def test_the_rule_finds_definitions_reexports_and_ignores_imports() -> None:
    """The rule of :func:`test_all_is_exactly_the_public_names` on a module written for it."""
    source = (
        "from __future__ import annotations\n"
        "import os\n"
        "from typing import TYPE_CHECKING, Any, TypeVar\n"
        "from pkg.sub import Own\n"
        "from other import shown as shown, hidden\n"
        "if TYPE_CHECKING:\n"
        "    from other import Checked\n"
        "T = TypeVar('T')\n"
        "LIMIT: int = 3\n"
        "Alias = dict[str, Any]\n"
        "_private = 1\n"
        "try:\n"
        "    FAST = True\n"
        "except ImportError:\n"
        "    FAST = False\n"
        "class Thing: ...\n"
        "def run() -> None: ...\n"
    )
    tree = ast.parse(source)
    assert _public_names(tree, "pkg", is_package=True) == {"Own", "shown", "LIMIT", "Alias", "FAST", "Thing", "run"}
    assert _public_names(tree, "pkg.mod", is_package=False) == {"shown", "LIMIT", "Alias", "FAST", "Thing", "run"}
    assert sorted(["run", "Thing", "LIMIT", "Alias"], key=_ruff_order) == ["LIMIT", "Alias", "Thing", "run"]


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


def test_the_cli_analyses_without_duckdb_and_imports_scipy_while_its_worker_reads() -> None:
    """``import analytics`` defers ``scipy.special`` (~0.15 s) to its first use, and ``analyze``
    without ``--save`` never loads DuckDB in its own process: a forked worker reads the file while
    this process imports SciPy (both ~0.1 s), so the two start-up costs overlap."""
    code = ("import io, sys; import analytics; before = sorted(m for m in ('scipy', 'duckdb') if m in sys.modules); "
            "from dashapp.cli import main; assert main(['analyze', 'data/sample_launch.csv'], stdout=io.StringIO()) == 0; "
            "print(before, 'scipy.special' in sys.modules, 'duckdb' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[] True False"


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
