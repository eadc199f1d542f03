"""The architecture is kept by tools: import-linter contracts, and docs/architecture.md naming
every module that exists (and none that does not)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lrfind"
DOC = ROOT / "docs" / "architecture.md"
MAX_MODULE_LINES = 500


def _modules() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        if path.name == "__init__.py" and path.parent != PACKAGE:
            continue  # a subpackage's __init__ only documents the package
        found.add(relative)
    return found


def test_the_architecture_page_lists_exactly_the_modules() -> None:
    documented = set(re.findall(r"^\| `(lrfind/[\w/]+\.py)` \|", DOC.read_text("utf-8"), re.M))
    modules = _modules()
    assert sorted(modules - documented) == [], "modules missing from docs/architecture.md"
    assert sorted(documented - modules) == [], "docs/architecture.md names modules that are gone"


def test_no_module_is_over_the_line_limit() -> None:
    long = {
        path.relative_to(ROOT).as_posix(): count
        for path in PACKAGE.rglob("*.py")
        if (count := len(path.read_text("utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_every_module_has_a_docstring() -> None:
    missing = [
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "__main__.py" and not path.read_text("utf-8").lstrip().startswith('"""')
    ]
    assert missing == []


@pytest.mark.skipif(
    shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None,
    reason="import-linter is not installed",
)
def test_import_contracts_hold() -> None:
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"]
    completed = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
