"""docs/ci.md: the GitHub Actions and GitLab CI jobs run exactly as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ci.md"


def workflow_blocks() -> list[dict[str, object]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return [yaml.safe_load(block) for block in blocks if "lrfind check" in block]


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in _strings(value)]
    return []


def check_commands() -> list[str]:
    """Return every shell line of the documented jobs that runs ``lrfind check``."""
    return [
        line.strip()
        for block in workflow_blocks()
        for text in _strings(block)
        for line in text.splitlines()
        if "lrfind check" in line
    ]


def test_doc_has_a_github_and_a_gitlab_job() -> None:
    blocks = workflow_blocks()
    assert len(blocks) == 2
    github, gitlab = blocks
    assert "jobs" in github and "lr-check" in gitlab
    assert len(check_commands()) == 2


@pytest.mark.parametrize("command", check_commands())
def test_ci_job_runs_as_written(command: str, tmp_path: Path) -> None:
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/lrfind"
    argv[0] = str(Path(sys.executable).parent / "lrfind")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    summary = tmp_path / "step-summary.md"
    env = {**os.environ, "CI": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    completed = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "PASS: suggested lr" in completed.stderr
    report = tmp_path / "lr-report"
    assert json.loads((report / "result.json").read_text())["complete"] is True
    assert (report / "lr_finder.png").stat().st_size > 10_000
    assert "<testsuite" in (report / "junit.xml").read_text()
    assert "lr_finder.png" in (report / "summary.md").read_text()
    assert "lr_finder.png" in summary.read_text()
