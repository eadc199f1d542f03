"""The public Python API: every CLI command has a library twin exported from ``lrfind``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in commands:
        twin = getattr(lrfind, name)
        assert callable(twin), name
        assert twin.__doc__, f"lrfind.{name} has no docstring"
        assert f"lrfind.{name}(" in readme, f"the README's Python API does not show lrfind.{name}"


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
