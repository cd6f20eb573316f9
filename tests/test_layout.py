"""The layout's rules, checked on the source: who may import whom (README, Architecture)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "proxy": ("inspector_ui", "cli"),
    "inspector_ui": ("proxy", "cli"),
    "storage": ("proxy", "inspector_ui", "cli", "mitmproxy", "fastapi", "starlette"),
    "storage/pure": ("sqlalchemy", "psycopg", "storage.store", "storage.models", "storage.queries", "httpx", "socket"),
    "radar": ("proxy", "inspector_ui", "cli", "mitmproxy", "fastapi", "starlette"),
    "passageway": ("proxy", "inspector_ui", "cli", "storage", "sqlalchemy", "fastapi", "mitmproxy", "pydantic"),
}


def imported(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_what_its_role_forbids(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    broken = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in imported(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package])
    }
    assert broken == set()
