"""The README's Hugging Face and Schedules sections run as written."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from lrfind.cli.app import app
from tests.fixtures.configs import tiny_config_dict
from tests.fixtures.results import make_result
from tests.fixtures.runs import save_run
from tests.test_readme import code_blocks, section

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("datasets")


def test_trainer_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer_example = code_blocks(section("Hugging Face"), "python")[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(trainer_example, "README.md", "exec"), namespace)
    result, trainer = namespace["result"], namespace["trainer"]
    assert result.suggestion.lr is not None
    assert trainer.args.learning_rate == result.suggestion.lr
    assert trainer.state.global_step == 32  # 2 epochs of 16 batches: it trained


def test_accelerate_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    accelerate_example = code_blocks(section("Hugging Face"), "python")[1]
    namespace: dict[str, Any] = {}
    exec(compile(accelerate_example, "README.md", "exec"), namespace)
    assert namespace["result"].suggestion.lr is not None
    assert "sweep [" in capsys.readouterr().err  # progress=True


def test_schedule_command_and_its_output_run_as_pasted(tmp_path: Path) -> None:
    text = section("Schedules")
    (command,) = code_blocks(text, "bash")
    shown = code_blocks(text, "python")[0]
    run_dir = save_run(tmp_path / "run", make_result(name="tiny"), tiny_config_dict())
    argv = shlex.split(command)
    assert argv[:2] == ["lrfind", "schedule"]
    argv[2] = str(run_dir)
    done = CliRunner().invoke(app, argv[1:], catch_exceptions=False)
    assert done.exit_code == 0
    assert done.stdout == shown  # the README shows exactly what the command prints
    namespace: dict[str, Any] = {
        "optimizer": torch.optim.AdamW(torch.nn.Linear(2, 1).parameters(), lr=0.5)
    }
    exec(compile(shown, "README.md", "exec"), namespace)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), **namespace["training_args"])
    assert (args.lr_scheduler_type, args.max_steps) == ("linear", 1000)
    assert namespace["scheduler"].get_last_lr() == [0.0]  # the warm-up starts from 0
