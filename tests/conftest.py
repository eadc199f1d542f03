"""Shared fixtures: tiny configs that sweep in about a second."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.configs import tiny_config_text


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """A config that runs a 40-step sweep on a generated 3-class task (outputs under tmp_path)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_config_text(tmp_path / "runs"), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_ci_side_effects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never append to a real GitHub step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
