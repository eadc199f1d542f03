"""Issue 21, through the real CLI: nothing lost, nothing silently wrong."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrfind.cli.app import app
from tests.fixtures.results import make_result
from tests.fixtures.runs import save_run

runner = CliRunner()

ROUND_TWO_CODE = """\
import os
import signal
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

print("round2 imported")
calls = [0]


def signalled_at_step_11(*signals):
    def loss(outputs, targets):
        calls[0] += 1
        if calls[0] == 12:  # the probe's call, then steps 0..10
            for sig in signals:
                os.kill(os.getpid(), sig)
        return torch.nn.functional.cross_entropy(outputs, targets)

    return loss


hangup = signalled_at_step_11(signal.SIGHUP)
twice = signalled_at_step_11(signal.SIGINT, signal.SIGINT)


def data(**kwargs):
    return TensorDataset(torch.randn(256, 8), torch.randint(0, 3, (256,)))


def moving(**kwargs):
    elsewhere = Path(__file__).with_name("elsewhere")
    elsewhere.mkdir(exist_ok=True)
    os.chdir(elsewhere)
    return data()


def chatty(**kwargs):
    print("chatty factory")
    return data()


class FailsAt15(torch.nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.layer = torch.nn.Linear(in_features, out_features)
        self.calls = 0

    def forward(self, inputs):
        self.calls += 1
        if self.calls == 17:  # the probe's call, then sweep steps 0..14: this is step 15
            raise RuntimeError("boom")
        return self.layer(inputs)
"""


@pytest.fixture
def round2(tmp_path: Path) -> Path:
    (tmp_path / "round2.py").write_text(ROUND_TWO_CODE)
    return tmp_path


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), catch_exceptions=False)


def sweep(config: Path, *overrides: str, json_output: bool = False):  # type: ignore[no-untyped-def]
    args = ["sweep", str(config), "-q", *(["--json"] if json_output else [])]
    for override in overrides:
        args += ["--set", override]
    return invoke(*args)


def one_line_error(result, code: int, *phrases: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def test_a_csv_with_a_repeated_column_name_is_refused(tiny_config: Path) -> None:
    rows = [f"{i % 7},{i % 5},{i % 3}" for i in range(60)]
    (tiny_config.parent / "twice.csv").write_text("a,a,label\n" + "\n".join(rows) + "\n")
    result = sweep(tiny_config, "data.target=csv", "data.args={path: twice.csv, target: label}")
    one_line_error(result, 2, "twice.csv has the column name 'a' twice (columns 1 and 2")


def test_a_component_that_changes_directory_does_not_move_the_run(
    tiny_config: Path, round2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(round2)
    result = invoke(
        "sweep", str(tiny_config), "-q", "-o", "rel_out", "--set", "data.target=round2:moving"
    )
    assert result.exit_code in (0, 3), result.stderr
    assert (round2 / "rel_out" / "result.json").is_file()
    assert not (round2 / "elsewhere" / "rel_out").exists()
    assert Path.cwd() == round2  # the working directory is given back too


def test_an_error_mid_sweep_keeps_the_steps_before_it(tiny_config: Path, round2: Path) -> None:
    model = ("model.target=round2:FailsAt15", "model.args={}")
    result = sweep(tiny_config, *model, "data.target=round2:data")
    one_line_error(
        result, 2, "model.target (round2:FailsAt15)", "forward raised RuntimeError: boom",
        "at sweep step 15",
    )  # fmt: skip
    assert "unexpected error" not in result.stderr
    (run_dir,) = [p.parent for p in (tiny_config.parent / "runs").rglob("result.json")]
    document = json.loads((run_dir / "result.json").read_text())
    assert document["status"] == "failed" and "boom" in document["error"]
    assert document["failed_at_step"] == 15 and document["steps_recorded"] == 15
    with (run_dir / "history.csv").open() as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == list(range(15))


def test_json_stdout_stays_one_document_when_user_code_prints(
    tiny_config: Path, round2: Path
) -> None:
    swept = sweep(tiny_config, "data.target=round2:chatty", json_output=True)
    assert swept.exit_code in (0, 3), swept.stderr
    assert "suggestion" in json.loads(swept.stdout)
    assert "chatty factory" in swept.stderr and "round2 imported" in swept.stderr
    validated = invoke("validate", str(tiny_config), "--json", "--set", "data.target=round2:chatty")
    assert validated.exit_code == 0, validated.stderr
    assert json.loads(validated.stdout)["valid"] is True


@pytest.mark.parametrize(("overrides", "code"), [((), 0), (("sweep.steps=5",), 2)])
def test_a_closed_pipe_keeps_the_exit_code(
    tiny_config: Path, overrides: tuple[str, ...], code: int
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone, as with `| true`
    sets = [arg for override in overrides for arg in ("--set", override)]
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "lrfind", "validate", str(tiny_config), "--json", *sets],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert completed.returncode == code, completed.stderr
    assert "Traceback" not in completed.stderr and "BrokenPipe" not in completed.stderr


def test_validate_reports_every_bad_component_argument(tiny_config: Path) -> None:
    result = invoke(
        "validate", str(tiny_config),
        "--set", "model.args.hiddn=[8]", "--set", "data.args.sizee=100",
        "--set", "optimizer.args.betass=[0.9, 0.99]", "--set", "model.args.hidden=abc",
    )  # fmt: skip
    one_line_error(
        result, 2, "4 problems",
        "model 'mlp' has no argument 'hiddn' (did you mean 'hidden'?)",
        "dataset 'synthetic_classification' has no argument 'sizee'",
        "SGD has no argument 'betass'",
        "model.args.hidden: model 'mlp' takes Sequence[int] | int, got 'abc'",
    )  # fmt: skip
    swept = sweep(tiny_config, "model.args.hiddn=[8]", "data.args.sizee=100")
    one_line_error(swept, 2, "2 problems", "'hiddn'", "'sizee'")


def test_validate_checks_user_arguments_only_when_it_may_import(
    tiny_config: Path, tmp_path: Path
) -> None:
    (tmp_path / "marker.py").write_text(
        "from pathlib import Path\nPath(__file__).with_name('ran').touch()\n"
        "def build(in_features, out_features, width=8):\n    pass\n"
    )
    bad = ("--set", "model.target=marker:build", "--set", "model.args={widht: 3}")
    listed = invoke("validate", str(tiny_config), "--no-import", *bad)
    assert listed.exit_code == 0, listed.stderr
    assert not (tmp_path / "ran").exists()
    checked = invoke("validate", str(tiny_config), *bad)
    one_line_error(
        checked, 2, "model.args: 'build' has no argument 'widht' (did you mean 'width'?)"
    )


@pytest.mark.parametrize("loss", ["hangup", "twice"])
def test_a_hangup_or_a_second_ctrl_c_ends_like_sigterm(
    tiny_config: Path, round2: Path, loss: str
) -> None:
    result = sweep(tiny_config, f"loss={{target: 'round2:{loss}'}}", json_output=True)
    assert result.exit_code == 130, result.stderr
    assert json.loads(result.stdout)["status"] == "interrupted"
    (run_dir,) = [p.parent for p in (tiny_config.parent / "runs").rglob("result.json")]
    document = json.loads((run_dir / "result.json").read_text())
    assert document["status"] == "interrupted"
    assert (run_dir / "history.csv").is_file() and (run_dir / "lr_finder.png").is_file()


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("suggestion.lr", "0.1", "field 'suggestion.lr' must be a number or null, got \"0.1\""),
        ("range", "abc", "field 'range' must be a mapping or null, got \"abc\""),
        ("confidence.level", 3, "field 'confidence.level' must be text, got 3"),
    ],
)
@pytest.mark.parametrize("command", ["report", "schedule"])
def test_a_hand_edited_result_names_the_malformed_field(
    tmp_path: Path, field: str, value: object, said: str, command: str
) -> None:
    run_dir = save_run(tmp_path / "run", make_result())
    document = json.loads((run_dir / "result.json").read_text())
    *parents, name = field.split(".")
    section = document
    for parent in parents:
        section = section[parent]
    section[name] = value
    (run_dir / "result.json").write_text(json.dumps(document))
    extra = ["--kind", "onecycle", "--total-steps", "100"] if command == "schedule" else []
    result = invoke(command, str(run_dir), *extra)
    one_line_error(result, 2, said, "edited by hand")


def test_what_stands_in_the_way_of_an_output_is_named(tiny_config: Path, tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    looped = invoke("sweep", str(tiny_config), "-q", "-o", str(tmp_path / "loop"))
    one_line_error(looped, 2, "is a symbolic link that leads nowhere (a loop")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tiny").write_text("not a folder")
    blocked = sweep(tiny_config, f"output.dir={tmp_path / 'out'}")
    one_line_error(blocked, 2, f"{tmp_path / 'out' / 'tiny'} is a file, not a folder")
    (tmp_path / "configs").mkdir()
    for force in ([], ["--force"]):
        into_folder = invoke("init", str(tmp_path / "configs"), *force)
        one_line_error(into_folder, 2, "is a directory: give the config file's name, e.g. ")
    long_name = invoke("validate", str(tiny_config), "--set", f"name={'a' * 101}")
    one_line_error(long_name, 2, "101 characters, the limit is 100")


FORWARD_CODE = """\
import torch


class NoReturn(torch.nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.layer = torch.nn.Linear(in_features, out_features)

    def forward(self, inputs):
        self.layer(inputs)


class Empty(torch.nn.Module):
    def forward(self, inputs):
        return inputs
"""


def test_a_forward_without_return_and_a_model_without_parameters_are_said(
    tiny_config: Path, tmp_path: Path
) -> None:
    (tmp_path / "forwards.py").write_text(FORWARD_CODE)
    none = sweep(tiny_config, "model.target=forwards:NoReturn", "model.args={}")
    one_line_error(none, 2, "forward returned None (NoneType)", "is a `return` missing")
    assert "output_key" not in none.stderr
    empty = sweep(tiny_config, "model.target=forwards:Empty", "model.args={}")
    one_line_error(empty, 2, "(Empty) has no parameters at all")
    assert "requires_grad" not in empty.stderr
