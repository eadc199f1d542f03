"""`train:` through the entry point: the stated run drives the trials and is recorded."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lrfind.cli.app import app

runner = CliRunner()


def sweep(config: Path, out: Path, *settings: str):  # type: ignore[no-untyped-def]
    args = ["sweep", str(config), "--out", str(out), "--set", "suggest.refine=on"]
    for setting in settings:
        args += ["--set", setting]
    return runner.invoke(app, args, catch_exceptions=False)


def test_a_stated_run_is_answered_for_and_recorded(tiny_config: Path, tmp_path: Path) -> None:
    result = sweep(
        tiny_config, tmp_path / "run", "train.steps=300", "train.schedule=cosine",
        "suggest.budget=10",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "horizon planned:" in result.stderr
    assert "a 300-step cosine run" in " ".join(result.stderr.split())
    document = json.loads((tmp_path / "run" / "result.json").read_text())
    assert document["train"] == {
        "steps": 300, "schedule": "cosine", "warmup": 0.0, "warmup_steps": 0,
    }  # fmt: skip
    assert document["answer_steps"] == 300
    assert document["refine"]["stage"] == "horizon"
    assert document["suggestion"]["method"] == "lrfind+horizon"
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "train:" in config and "schedule: cosine" in config


def test_epochs_become_steps_with_the_loader_and_accumulation(
    tiny_config: Path, tmp_path: Path
) -> None:
    # 512 samples, 20% held out for validation by default -> 410 training samples, batch 32:
    # 12 full batches and a last partial one per epoch; 2 micro-batches per step.
    result = sweep(
        tiny_config, tmp_path / "run", "train.epochs=4", "sweep.accumulation_steps=2",
        "suggest.refine=off",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    document = json.loads((tmp_path / "run" / "result.json").read_text())
    batches = document["batches_per_epoch"]
    assert document["train"]["steps"] == -(-4 * batches // 2)


def test_without_a_run_the_answer_says_what_it_is_for(tiny_config: Path, tmp_path: Path) -> None:
    result = sweep(tiny_config, tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert "for yours, set train.steps" in " ".join(result.stderr.split())
    document = json.loads((tmp_path / "run" / "result.json").read_text())
    assert document["train"] is None
    assert document["answer_steps"] == max(t["steps"] for t in document["refine"]["trials"])


def test_a_budget_too_small_for_trials_says_so(tiny_config: Path, tmp_path: Path) -> None:
    result = sweep(tiny_config, tmp_path / "run", "train.steps=100", "suggest.budget=10%")
    assert result.exit_code == 0, result.stderr
    document = json.loads((tmp_path / "run" / "result.json").read_text())
    assert document["refine"] is None
    assert any("no trials toward" in r for r in document["confidence"]["reasons"])
    assert document["confidence"]["level"] != "high"


def test_a_budget_too_small_for_rungs_runs_refine_and_says_so(
    tiny_config: Path, tmp_path: Path
) -> None:
    # 4 sweeps of a 40-step sweep leave rungs whose finalists would train a dozen steps.
    result = sweep(tiny_config, tmp_path / "run", "train.steps=2000")
    assert result.exit_code == 0, result.stderr
    document = json.loads((tmp_path / "run" / "result.json").read_text())
    assert document["refine"]["stage"] == "refine"
    assert any("affords no rungs toward" in r for r in document["confidence"]["reasons"])
    assert document["confidence"]["level"] != "high"


def test_bad_runs_are_one_line_errors(tiny_config: Path, tmp_path: Path) -> None:
    cases = {
        ("suggest.budget=5%",): "is a share of the run: describe the run in train:",
        ("train.steps=10", "train.warmup=20"): "warmup of 20 steps must be below the run's 10",
        ("train.steps=10", "train.warmup=2.5"): "warmup of 2.5 steps must be a whole number",
        ("train.steps=100", "train.warmup=0.9999"): (
            "warmup of 0.9999 of the run (100 steps) must be below the run's 100 steps"
        ),
        ("train.steps=10", "train.epochs=2"): "give the run's length as steps or as epochs",
        ("train.steps=100", "train.schedule=step"): "train.schedule",
        ("suggest.budget=abc",): "budget must be a number of sweeps",
    }
    for settings, message in cases.items():
        result = sweep(tiny_config, tmp_path / "never", *settings)
        assert result.exit_code == 2, (settings, result.stderr)
        assert message in result.stderr, (settings, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "never").exists()
