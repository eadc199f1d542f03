"""Shared fixtures: tiny configs that sweep in about a second."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_CONFIG = """\
name: tiny
seed: 0
device: cpu
model:
  target: mlp
  args: {hidden: [16]}
data:
  target: synthetic_classification
  args: {size: 512, features: 8, classes: 3}
  batch_size: 32
optimizer:
  name: sgd
  args: {momentum: 0.9}
sweep:
  start_lr: 1.0e-5
  end_lr: 10.0
  steps: 40
suggest:
  refine: off
output:
  dir: {output_dir}
"""


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """A config that runs a 40-step sweep on a generated 3-class task (outputs under tmp_path)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_CONFIG.replace("{output_dir}", str(tmp_path / "runs")), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_ci_side_effects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never append to a real GitHub step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
