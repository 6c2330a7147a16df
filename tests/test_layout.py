"""The shape of the package, so that it cannot rot: the import-linter contracts of pyproject.toml hold (the
pipeline's layers, analysis apart from training, no cycles), no function is longer than one screen, and
the top level of qa_lab/ keeps only the faces."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.unit

PACKAGE = ROOT / "qa_lab"
MAX_FUNCTION_LINES = 60
TOP_LEVEL = {"__init__.py", "cli.py", "entry.py", "pipeline.py"}  # the package's face, the command, run.py's wrapper


def test_the_import_contracts_hold():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is missing: `make setup` installs it"
    done = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def test_the_top_level_keeps_only_the_faces():
    assert {path.name for path in PACKAGE.glob("*.py")} == TOP_LEVEL
    for package in (path for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"):
        assert (package / "__init__.py").is_file(), f"{package} is not a package"
        assert ast.get_docstring(ast.parse((package / "__init__.py").read_text())), f"{package}/__init__.py says nothing of what it holds"


def test_every_package_has_its_tests_folder():
    """tests/<package>/ holds the tests of qa_lab/<package>/ (a fresh contributor finds them by name)."""
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    missing = sorted(name for name in packages if not list((ROOT / "tests" / name).glob("test_*.py")))
    assert not missing, missing
