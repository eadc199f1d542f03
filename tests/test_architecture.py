"""The architecture is kept by tools: import-linter contracts, docs/architecture.md naming
every module that exists (and none that does not), and every dotted ``lrfind.x.y`` name in the
package's docstrings and comments resolving."""

from __future__ import annotations

import ast
import importlib
import io
import re
import shutil
import subprocess
import sys
import tokenize
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


#: ``lrfind.x.y`` in prose; not part of a path, a file name or a longer dotted name.
DOTTED_NAME = re.compile(r"(?<![\w./-])lrfind(?:\.[A-Za-z_]\w*)+")


def _prose(path: Path) -> list[tuple[int, str]]:
    """The comments and docstrings of one module, with the line each starts on."""
    source = path.read_text("utf-8")
    found = [
        (token.start[0], token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                found.append((node.body[0].lineno, docstring))
    return found


def _resolves(name: str) -> bool:
    """Whether ``name`` is a module, or an attribute (or model field) reached from one."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            fields = getattr(target, "model_fields", None) or {}
            if attribute in fields or attribute in getattr(target, "__dataclass_fields__", {}):
                return True  # a field: what follows is its value's, unchecked
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_every_dotted_lrfind_name_in_docstrings_and_comments_resolves() -> None:
    """Moved code leaves pointers behind (``lrfind.components``, ``lrfind.console``): none stay."""
    stale = [
        f"{path.relative_to(ROOT).as_posix()}:{line}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, text in _prose(path)
        for name in sorted(set(DOTTED_NAME.findall(text)))
        if not _resolves(name)
    ]
    assert stale == []


def test_the_dotted_name_check_catches_a_stale_pointer() -> None:
    assert DOTTED_NAME.findall("see ``lrfind.console.SweepProgress``.") == [
        "lrfind.console.SweepProgress"
    ]
    assert not _resolves("lrfind.console.SweepProgress")
    assert not _resolves("lrfind.analysis.analyze")
    assert _resolves("lrfind.analysis.suggest.analyze")
    assert _resolves("lrfind.range_test")
    assert DOTTED_NAME.findall("runs/lrfind.yaml and lrfind-report.png") == []


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
