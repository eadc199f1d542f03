"""Start-up stays light: `lrfind --help` and `lrfind validate` import no torch or matplotlib.

Checked deterministically (which modules get imported), never by timing: fresh interpreters
via ``python -X importtime`` for the real commands, and ``sys.modules`` after the library calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "matplotlib")

BUILTIN_CONFIG = """
name: startup
model: {target: mlp}
data: {target: synthetic_classification, batch_size: 32}
optimizer: {name: adam}
sweep: {steps: 20}
"""


@pytest.fixture
def builtin_config(tmp_path: Path) -> Path:
    path = tmp_path / "startup.yaml"
    path.write_text(BUILTIN_CONFIG, encoding="utf-8")
    return path


def _imported_modules(args: list[str], cwd: Path) -> set[str]:
    """Top-level packages imported by ``python -m lrfind ARGS`` (from -X importtime)."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "lrfind", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    names = set()
    for line in completed.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[-1].strip().split(".")[0])
    assert "lrfind" in names  # the trace really covers the command
    return names


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["sweep", "--help"]])
def test_help_imports_neither_torch_nor_matplotlib(args: list[str]) -> None:
    imported = _imported_modules(args, ROOT)
    assert not imported & set(HEAVY)


def test_validate_command_imports_neither_torch_nor_matplotlib(builtin_config: Path) -> None:
    imported = _imported_modules(["validate", builtin_config.name], builtin_config.parent)
    assert not imported & set(HEAVY)


def test_validate_library_call_leaves_torch_and_matplotlib_unimported(
    builtin_config: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        import lrfind.cli.app
        from lrfind.workflows.validate import validate
        report = validate({str(builtin_config)!r})
        assert report.ok, report.problems
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        print(json.dumps(heavy))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout) == []


def test_nproc_launcher_module_does_not_import_torch() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, lrfind.cli.common, lrfind.engine.distributed; "
            "print(any(m.split('.')[0] == 'torch' for m in sys.modules))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == "False"
