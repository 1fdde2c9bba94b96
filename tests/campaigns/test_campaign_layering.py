"""The campaigns core imports only numpy, pandas, the stdlib, tzfpy and the project's public packages."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import campaigns

ALLOWED = {"numpy", "pandas", "tzfpy", "campaigns", "proximity", "geofences", "beacons", "__future__"}


def test_campaigns_imports_no_framework_or_storage_library():
    root = Path(campaigns.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in {"sqlite3", "redis", "fastapi", "starlette", "httpx", "uvicorn"}, name
                assert top in ALLOWED or top in sys.stdlib_module_names, f"{path.name} imports {name}"
                if top == "proximity":
                    assert name.startswith("proximity.core"), f"{path.name} imports {name}: only proximity.core"


def test_public_api_is_importable():
    for name in campaigns.__all__:
        assert getattr(campaigns, name) is not None
