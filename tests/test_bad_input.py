"""Bad input through the real CLI: one clear line on stderr, the right exit code, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrfind.cli.app import app

runner = CliRunner()

USER_CODE = """\
import torch
from torch.utils.data import TensorDataset


def raises(**kwargs):
    raise RuntimeError("database unreachable")


def wrong_type(**kwargs):
    return 42


def empty(**kwargs):
    return TensorDataset(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long))


class PerSampleLoss(torch.nn.CrossEntropyLoss):
    def __init__(self):
        super().__init__(reduction="none")


def nan_loss(outputs, targets):
    return outputs.sum() * float("nan")


class Frozen(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.layer = torch.nn.Linear(8, 3)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return self.layer(x)
"""


@pytest.fixture
def user_code(tmp_path: Path) -> Path:
    (tmp_path / "usercode.py").write_text(USER_CODE)
    return tmp_path


def sweep(config: Path, *overrides: str):  # type: ignore[no-untyped-def]
    args = ["sweep", str(config), "-q"]
    for override in overrides:
        args += ["--set", override]
    return runner.invoke(app, args, catch_exceptions=False)


def assert_one_line_error(result, code: int, *phrases: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("overrides", "phrases"),
    [
        (("model.target=nosuchmodule:Net",), ("model.target", "nosuchmodule")),
        (("model.target=usercode:NoSuchThing",), ("model.target", "NoSuchThing")),
        (("data.target=usercode:raises",), ("data.target", "database unreachable")),
        (("data.target=usercode:wrong_type",), ("data.target", "int")),
        (("data.target=usercode:empty",), ("data",)),
        (("data.args.size=10", "data.batch_size=64", "data.drop_last=true"), ("batch",)),
        (("data.target=csv", "data.args={path: missing.csv, target: y}"), ("missing.csv",)),
        (("model.args.in_features=5",), ("model",)),
        (("loss={target: 'usercode:PerSampleLoss'}",), ("not a scalar",)),
        (("model.target=usercode:Frozen",), ("trainable",)),
        (("model.args.bogus=1",), ("model.args", "bogus")),
        (("optimizer.args.momentun=0.9",), ("optimizer.args", "momentun")),
        (("sweep.start_lr=1", "sweep.end_lr=0.1"), ("start_lr (1) must be below end_lr (0.1)",)),
        (("sweep.steps=4",), ("sweep.steps",)),
        (("sweep.smoothing=1",), ("sweep.smoothing",)),
        (("device=cuda",), ("CUDA is not available",)),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    tiny_config: Path, user_code: Path, overrides: tuple[str, ...], phrases: tuple[str, ...]
) -> None:
    assert_one_line_error(sweep(tiny_config, *overrides), 2, *phrases)


def test_unreadable_csv(tiny_config: Path) -> None:
    (tiny_config.parent / "bad.csv").write_bytes(b"\xff\xfe\x00garbage\x00\n\x00")
    result = sweep(tiny_config, "data.target=csv", "data.args={path: bad.csv, target: y}")
    assert_one_line_error(result, 2, "bad.csv")


def test_nan_from_first_step_exits_3(tiny_config: Path, user_code: Path) -> None:
    result = sweep(tiny_config, "loss={target: 'usercode:nan_loss'}")
    assert result.exit_code == 3, result.stderr
    assert "Traceback" not in result.stderr


def test_output_dir_that_is_a_file(tiny_config: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = sweep(tiny_config, f"output.dir={tmp_path / 'afile'}")
    assert_one_line_error(result, 2, "cannot write")


def test_debug_shows_the_traceback(tiny_config: Path, user_code: Path) -> None:
    result = runner.invoke(
        app,
        ["sweep", str(tiny_config), "-q", "--debug", "--set", "data.target=usercode:raises"],
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "database unreachable" in result.stderr


def test_full_disk_keeps_earlier_results(
    tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    assert sweep(tiny_config).exit_code == 0
    root = tiny_config.parent / "runs" / "tiny"
    (first,) = root.iterdir()
    saved = {p.name: p.read_bytes() for p in first.iterdir()}

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    result = sweep(tiny_config)
    assert_one_line_error(result, 2, "no space left on device")
    assert {p.name: p.read_bytes() for p in first.iterdir()} == saved
    leftovers = [p for p in root.rglob(".*.tmp")]
    assert leftovers == []
    json.loads((first / "result.json").read_text())
