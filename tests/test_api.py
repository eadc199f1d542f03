"""The public Python API: every CLI command has a library twin exported from ``lrfind``."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import lrfind
from lrfind.cli.app import app

ROOT = Path(__file__).resolve().parents[1]


def test_every_export_resolves_and_all_lists_exactly_the_exports() -> None:
    exported = {*lrfind._EXPORTS, "__version__"}
    assert set(lrfind.__all__) == exported
    assert lrfind.__all__ == sorted(lrfind.__all__)
    for name in lrfind.__all__:
        assert getattr(lrfind, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lrfind.nope  # noqa: B018


def test_the_type_checking_imports_are_the_export_list() -> None:
    """Type checkers read the TYPE_CHECKING imports, ``__getattr__`` reads ``_EXPORTS``: the
    same names from the same modules, each re-exported explicitly (``import X as X``)."""
    tree = ast.parse((ROOT / "lrfind" / "__init__.py").read_text(encoding="utf-8"))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    imported: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module is not None
        for alias in node.names:
            assert alias.asname == alias.name, f"import {alias.name} as {alias.name}"
            imported[alias.name] = node.module
    assert imported == lrfind._EXPORTS


def _names_in_source(module: ModuleType) -> dict[str, Any]:
    """Every name a module imports (those under TYPE_CHECKING too), and its own globals."""
    found: dict[str, Any] = {}
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            source = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(source, alias.name):
                    found[alias.asname or alias.name] = getattr(source, alias.name)
    return {**found, **vars(module)}


def _lrfind_types(annotation: Any, module: ModuleType) -> set[type]:
    """The lrfind classes an annotation (a string under ``from __future__``) names."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if not text:
        return set()
    names = _names_in_source(module)
    nodes = ast.walk(ast.parse(text, mode="eval"))
    named = (names.get(node.id) for node in nodes if isinstance(node, ast.Name))
    return {obj for obj in named if isinstance(obj, type) and obj.__module__.startswith("lrfind.")}


def _returned_types(obj: Any) -> set[type]:
    """What a public function returns; for a class, its fields and its methods' returns."""
    module = sys.modules[obj.__module__]
    functions: list[Callable[..., Any]] = []
    found: set[type] = set()
    if isinstance(obj, type):
        for name, member in vars(obj).items():
            if name.startswith("_"):
                continue
            member = getattr(member, "__func__", member)
            functions.append(member.fget if isinstance(member, property) else member)
        if dataclasses.is_dataclass(obj):
            for field in dataclasses.fields(obj):
                if not field.name.startswith("_"):
                    found |= _lrfind_types(field.type, module)
    else:
        functions.append(obj)
    for function in functions:
        if inspect.isfunction(function):
            returned = inspect.signature(function).return_annotation
            if returned is not inspect.Signature.empty:
                found |= _lrfind_types(returned, module)
    return found


def test_every_type_a_public_function_returns_is_exported() -> None:
    """``lrfind.analyze`` returns an Analysis, so ``lrfind.Analysis`` exists; likewise the
    fields of every exported result (a RangeTestResult's RunInfo, a CheckRun's CheckOutcome)."""
    exported = {getattr(lrfind, name) for name in lrfind._EXPORTS}
    missing: dict[str, str] = {}
    for name in lrfind._EXPORTS:
        for kind in _returned_types(getattr(lrfind, name)):
            if kind not in exported:
                missing[f"{kind.__module__}.{kind.__qualname__}"] = name
    assert missing == {}, "returned (by the export on the right) but not exported"


def test_every_cli_command_has_a_documented_library_twin() -> None:
    commands = {command.name for command in app.registered_commands}
    assert commands == {
        "sweep",
        "check",
        "validate",
        "init",
        "report",
        "compare",
        "verify",
        "schedule",
    }
    guide = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    for name in commands:
        twin = getattr(lrfind, name)
        assert callable(twin), name
        assert twin.__doc__, f"lrfind.{name} has no docstring"
        assert f"lrfind.{name}(" in guide, f"docs/python-api.md does not show lrfind.{name}"


def test_import_lrfind_is_light() -> None:
    code = (
        "import sys, lrfind; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'pydantic') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert completed.stdout.strip() == "[]"


def test_init_validate_sweep_check_and_schedule_from_python(tmp_path: Path) -> None:
    config_path = lrfind.init(tmp_path / "starter.yaml", model="logistic", dataset="sklearn")
    assert config_path.read_text(encoding="utf-8").startswith("#")
    report = lrfind.validate(config_path)
    assert report.ok and report.to_dict()["valid"] is True
    overrides = [
        f"output.dir={tmp_path / 'runs'}",
        "sweep.steps=40",
        "suggest.refine=off",
        "data.args.name=iris",
    ]
    run = lrfind.sweep(config_path, overrides=overrides)
    assert run.run_dir is not None and (run.run_dir / "result.json").exists()
    lr = run.result.suggestion.lr
    assert lr is not None
    config = lrfind.load_config(config_path, overrides)
    checked = lrfind.check(
        config,
        lr_min=lr / 100,
        lr_max=lr * 100,
        summary_md=tmp_path / "summary.md",
        junit=tmp_path / "junit.xml",
    )
    assert checked.outcome is not None and checked.outcome.passed
    assert checked.reports == (tmp_path / "summary.md", tmp_path / "junit.xml")
    assert "<testsuite" in (tmp_path / "junit.xml").read_text(encoding="utf-8")
    document = checked.to_dict()
    assert document["check"]["passed"] is True
    json.dumps(document, allow_nan=False)
    snippet = lrfind.schedule(run.run_dir, "plateau", "json")
    assert json.loads(snippet)["lr_scheduler"]["class_path"].endswith("ReduceLROnPlateau")
