"""The import contracts in pyproject.toml bite: ``lint-imports`` fails on a copy of the tree that
breaks a layer, and passes on the tree as it is.

Each case copies the packages and pyproject.toml to a temporary directory, appends one import to
one module, and runs ``lint-imports`` there (a fresh process, so the copy is what it analyses).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter is in the dev extra")

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["geofences", "proximity", "beacons", "campaigns", "simulator"]


def lint_imports(tmp_path: Path, module: str | None = None, line: str = "") -> subprocess.CompletedProcess:
    """Run ``lint-imports`` on a copy of the tree where ``module`` (a path) has ``line`` appended."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "demo"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if module is not None:
        with open(tmp_path / module, "a") as f:
            f.write(f"\n{line}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()", "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_every_contract(tmp_path):
    proc = lint_imports(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        ("beacons/__init__.py", "import proximity.service", "Layers"),
        ("proximity/core/engine.py", "import simulator", "Layers"),
        ("campaigns/__init__.py", "import proximity.storage", "Layers"),
        ("beacons/ranging.py", "import sqlite3", "import no web"),
        # Through the root: every import of proximity.core runs proximity/__init__.py first.
        ("proximity/__init__.py", "from proximity.service import create_app", "root module"),
    ],
    ids=["beacons->service", "core->simulator", "campaigns->storage", "beacons->sqlite3", "root->service"],
)
def test_a_layer_violation_fails_lint_imports(tmp_path, module, line, broken):
    proc = lint_imports(tmp_path, module, line)
    assert proc.returncode != 0, proc.stdout
    broken_lines = [ln for ln in proc.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(broken in ln for ln in broken_lines), proc.stdout
