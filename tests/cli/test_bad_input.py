"""Bad input through the real CLI: one clear line on stderr, the right exit code, no traceback."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lrfind.cli.app import app
from lrfind.errors import OutputError
from lrfind.outputs import runs

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


def test_nan_from_first_step_is_a_data_or_model_error(tiny_config: Path, user_code: Path) -> None:
    result = sweep(tiny_config, "loss={target: 'usercode:nan_loss'}")
    assert_one_line_error(result, 2, "NaN/inf on the first training batch at the initial weights")
    assert not (tiny_config.parent / "runs").exists()


def test_output_dir_that_is_a_file(tiny_config: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = sweep(tiny_config, f"output.dir={tmp_path / 'afile'}")
    assert_one_line_error(result, 2, "afile is a file, not a folder")


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


# --- issue 13: hostile inputs --------------------------------------------------------------

HOSTILE_CODE = """\
import os
import signal
import sys
import time

import torch
from torch.utils.data import Dataset, TensorDataset


class Broken(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, index):
        raise KeyError("image_0042.png")


def broken(**kwargs):
    return Broken()


def exits(**kwargs):
    sys.exit("factory gave up")


def nan_in_batch_3(**kwargs):
    inputs = torch.randn(256, 8)
    inputs[100, 2] = float("nan")  # row 100: batch 3 at batch_size 32
    return TensorDataset(inputs, torch.randint(0, 3, (256,)))


def gapped(**kwargs):
    targets = torch.randint(0, 2, (256,))
    targets[5] = 7
    return TensorDataset(torch.randn(256, 8), targets)


def slow(**kwargs):
    time.sleep(4)
    return TensorDataset(torch.randn(256, 8), torch.randint(0, 3, (256,)))


calls = [0]


def interrupt_at_step_11(outputs, targets):
    calls[0] += 1
    if calls[0] == 12:  # the probe's call, then steps 0..10
        os.kill(os.getpid(), signal.SIGINT)
    return torch.nn.functional.cross_entropy(outputs, targets)
"""


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    (tmp_path / "hostile.py").write_text(HOSTILE_CODE)
    (tmp_path / "exit0.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "exitmsg.py").write_text("import sys\nsys.exit('not today')\n")
    return tmp_path


def laughs(levels: int = 9) -> str:
    rows = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    rows += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


def invoke(*args: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), catch_exceptions=False, **kwargs)  # type: ignore[arg-type]


def no_runs(config: Path) -> bool:
    folder = config.parent / "runs"
    return not folder.exists() or not any(folder.rglob("result.json"))


@pytest.mark.parametrize(
    ("overrides", "phrases"),
    [
        (("seed=99999999999999999999999",), ("--set: seed", "less than or equal")),
        (("data.batch_size=99999999999999999999999",), ("--set: data.batch_size",)),
        (("sweep.steps=5",), ("sweep.steps", "greater than or equal to 10")),
        (("model.args.hidden=[1,2",), ("--set model.args.hidden=[1,2", "not valid YAML")),
        (("optimizer.args.lr=0.1",), ("--set optimizer.args.lr", "do not set 'lr'")),
        (("model.args.hidden=[.inf]",), ("model.args.hidden.0 must be a finite number",)),
        (("data.args.size=1000000000000",), ("data.args.size must be at most",)),
        (("model.args=&x {a: *x}",), ("recursive alias",)),
        (("model.target=exit0:Net",), ("model.target", "exit0", "sys.exit(0)")),
        (("model.target=exitmsg:Net",), ("model.target", "exitmsg", "sys.exit('not today')")),
        (("data.target=hostile:exits",), ("data.target", "hostile:exits", "sys.exit(")),
        (("data.target=hostile:broken",), ("data.target", "KeyError", "image_0042.png")),
        (
            ("data.target=hostile:nan_in_batch_3", "data.shuffle=false", "data.val_fraction=0",
             "sweep.start_lr=1e-12", "sweep.end_lr=1e-11"),
            ("NaN/inf at step 3", "check training batch 3"),
        ),
    ],
)  # fmt: skip
def test_hostile_input_exits_2_with_one_clear_line(
    tiny_config: Path, hostile: Path, overrides: tuple[str, ...], phrases: tuple[str, ...]
) -> None:
    result = sweep(tiny_config, *overrides)
    assert_one_line_error(result, 2, *phrases)
    if "nan_in_batch_3" not in overrides[0]:
        assert no_runs(tiny_config)


def test_method_errors_name_the_option(tiny_config: Path) -> None:
    result = invoke("sweep", str(tiny_config), "-q", "--method", "nope")
    assert_one_line_error(result, 2, "--method: suggest.method")


@pytest.mark.parametrize("command", ["validate", "sweep"])
def test_billion_laughs_is_refused_at_once(tmp_path: Path, command: str) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs())
    started = time.perf_counter()
    result = invoke(command, str(bomb))
    assert time.perf_counter() - started < 5
    assert_one_line_error(result, 2, "aliases expand this config to more than 100,000 values")


def test_recursive_alias_names_its_line(tmp_path: Path) -> None:
    config = tmp_path / "rec.yaml"
    config.write_text("name: x\nmodel: &m {target: mlp, args: {self: *m}}\ndata: {target: csv}\n")
    result = invoke("validate", str(config), "--json")
    assert result.exit_code == 2
    assert "recursive alias at line 2" in result.stderr and "Traceback" not in result.stderr
    document = json.loads(result.stdout)
    assert document["valid"] is False and document["error"]["code"] == 2


@pytest.mark.parametrize(
    ("override", "key"),
    [("train.steps=-3", "train.steps"), ("train.schedule=bogus", "train.schedule")],
)
def test_a_json_error_names_the_key_of_every_config_section(
    tiny_config: Path, override: str, key: str
) -> None:
    # The key pattern is derived from Config's fields: train: (once missed) is named too.
    result = invoke("sweep", str(tiny_config), "--set", override, "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["key"] == key


def test_csv_cells_rows_and_labels(tiny_config: Path) -> None:
    folder = tiny_config.parent
    rows = [f"{i % 7 / 7},{i % 5 / 5},{i % 2}" for i in range(60)]
    (folder / "inf.csv").write_text("a,b,y\n" + "\n".join([*rows[:9], "inf,1,0", *rows[9:]]))
    (folder / "one.csv").write_text("a,b,y\n1,2,0\n")
    (folder / "seven.csv").write_text("a,b,y\n" + "\n".join([*rows[:5], "0.5,0.5,7", *rows[5:]]))
    csv = ("data.target=csv", "data.batch_size=8")
    inf = sweep(tiny_config, *csv, "data.args={path: inf.csv, target: y}")
    assert_one_line_error(inf, 2, "inf.csv line 11, column 'a': 'inf' is not a finite number")
    one = sweep(tiny_config, *csv, "data.args={path: one.csv, target: y}")
    assert_one_line_error(one, 2, "one.csv has only 1 data row")
    seven = sweep(tiny_config, *csv, "data.args={path: seven.csv, target: y}")
    assert seven.exit_code in (0, 3), seven.stderr
    (run_dir,) = [p.parent for p in (folder / "runs").rglob("result.json")]
    warnings = json.loads((run_dir / "result.json").read_text())["warnings"]
    assert any("not 0..2" in w and "7->2" in w and "one row only" in w for w in warnings)


def test_npz_class_ids_with_gaps_are_refused(tiny_config: Path) -> None:
    targets = np.arange(64) % 2
    targets[3] = 7
    np.savez(tiny_config.parent / "gap.npz", x=np.random.rand(64, 8), y=targets)
    result = sweep(tiny_config, "data.target=npz", "data.args={path: gap.npz}")
    assert_one_line_error(result, 2, "largest is 7", "data.args.classes")
    declared = sweep(tiny_config, "data.target=npz", "data.args={path: gap.npz, classes: 8}")
    assert declared.exit_code in (0, 3), declared.stderr


def test_user_class_ids_with_gaps_are_said(tiny_config: Path, hostile: Path) -> None:
    result = invoke(
        "sweep", str(tiny_config), "-q", "--json", "--set", "data.target=hostile:gapped"
    )
    assert result.exit_code in (0, 3), result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert any("largest is 7" in w and "8 outputs" in w for w in warnings)


def test_a_sliver_of_lrs_answers_none_with_a_range_to_try(tiny_config: Path) -> None:
    result = invoke(
        "sweep", str(tiny_config), "-q", "--json",
        "--set", "sweep.start_lr=1e-3", "--set", "sweep.end_lr=1.0000001e-3",
    )  # fmt: skip
    assert result.exit_code == 3, result.stderr
    document = json.loads(result.stdout)
    assert document["suggestion"]["lr"] is None
    assert document["confidence"]["level"] == "none" and document["confidence"]["try_range"]
    assert document["error"]["code"] == 3


def test_an_interrupted_sweep_says_interrupted(tiny_config: Path, hostile: Path) -> None:
    result = invoke(
        "sweep", str(tiny_config), "-q", "--json",
        "--set", "loss={target: 'hostile:interrupt_at_step_11'}",
    )  # fmt: skip
    assert result.exit_code == 130, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "interrupted" and document["error"]["code"] == 130
    assert document["suggestion"]["reason"].startswith("interrupted after 11 step(s)")
    assert "diverged" not in document["suggestion"]["reason"]
    assert document["confidence"]["try_range"] is None


def test_check_numbers_are_validated_before_any_work(tiny_config: Path) -> None:
    for option, value in (
        ("--expect-max", "nan"),
        ("--expect-min", "-inf"),
        ("--tolerance", "nan"),
    ):
        result = invoke("check", str(tiny_config), "-q", option, value)
        assert_one_line_error(result, 2, option)
        assert no_runs(tiny_config)


def test_check_junit_folder_fails_before_the_sweep(tiny_config: Path, tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    result = invoke(
        "check", str(tiny_config), "-q", "--json", "--expect-max", "100",
        "--junit", str(tmp_path / "reports"),
    )  # fmt: skip
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert "passed" not in result.stdout and document["error"]["code"] == 2
    assert "--junit" in document["error"]["message"] and no_runs(tiny_config)


def test_step_summary_names_the_plot_instead_of_embedding_it(
    tiny_config: Path, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    result = invoke(
        "check", str(tiny_config), "-q", "--expect-max", "100",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    text = summary.read_text()
    assert "![" not in text and "lr_finder.png" in text and "artifact" in text


def test_validate_says_it_imports_or_does_not(tiny_config: Path, tmp_path: Path) -> None:
    (tmp_path / "marker.py").write_text(
        "from pathlib import Path\nPath(__file__).with_name('ran').touch()\n"
        "def build(**kwargs):\n    pass\n"
    )
    listed = invoke(
        "validate", str(tiny_config), "--no-import", "--set", "model.target=marker:build"
    )
    assert listed.exit_code == 0 and "not imported" in listed.stderr
    assert not (tmp_path / "ran").exists()
    checked = invoke("validate", str(tiny_config), "--set", "model.target=marker:build")
    assert checked.exit_code == 0 and "top-level code ran" in checked.stderr
    assert (tmp_path / "ran").exists()


def test_report_writes_the_format_its_suffix_names(tiny_config: Path, tmp_path: Path) -> None:
    assert sweep(tiny_config).exit_code == 0
    (run_dir,) = [p.parent for p in (tmp_path / "runs").rglob("result.json")]
    svg = invoke("report", str(run_dir), "--png", str(tmp_path / "r.svg"))
    assert svg.exit_code == 0, svg.stderr
    assert b"<svg" in (tmp_path / "r.svg").read_bytes()[:400]
    pdf = invoke("report", str(run_dir), "--png", str(tmp_path / "r.pdf"))
    assert pdf.exit_code == 0 and (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    jpg = invoke("report", str(run_dir), "--png", str(tmp_path / "r.jpg"))
    assert_one_line_error(jpg, 2, ".png, .svg or .pdf")
    assert not (tmp_path / "r.jpg").exists()
    folder = invoke("report", str(run_dir), "--out", str(tmp_path / "r2.svg"))
    assert_one_line_error(folder, 2, "--out")


def test_a_run_that_failed_writing_says_failed(
    tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = runs.atomic_write_text

    def full_disk(path: Path, text: str) -> Path:
        if Path(path).name == runs.HISTORY_FILE:
            raise OutputError(f"cannot write {path}: no space left on device") from OSError(
                errno.ENOSPC, "full"
            )
        return real(path, text)

    monkeypatch.setattr(runs, "atomic_write_text", full_disk)
    result = sweep(tiny_config)
    assert_one_line_error(result, 2, "no space left on device")
    monkeypatch.undo()
    (run_dir,) = [p.parent for p in (tiny_config.parent / "runs").rglob("result.json")]
    document = json.loads((run_dir / "result.json").read_text())
    assert document["status"] == "failed" and "no space left" in document["error"]
    shown = invoke("report", str(run_dir))
    assert_one_line_error(shown, 2, "the run failed", "no space left")


def _json_cases(tmp_path: Path, config: Path) -> list[tuple[list[str], int]]:
    (tmp_path / "existing.yaml").write_text("x")
    missing = str(tmp_path / "no-such-run")
    return [
        (["sweep", str(config), "--set", "sweep.steps=5"], 2),
        (["sweep", str(config), "--set", "model.args.hidden=[1,2"], 2),
        (["check", str(config), "--expect-max", "nan"], 2),
        (["check", str(config), "--expect-max", "not-a-number"], 2),
        (["validate", str(tmp_path / "missing.yaml")], 2),
        (["verify", missing], 2),
        (["report", missing], 2),
        (["schedule", missing, "--kind", "onecycle", "--total-steps", "100"], 2),
        (["compare", str(config), "--vary", "optimizer.name"], 2),
        (["init", str(tmp_path / "existing.yaml")], 2),
    ]


def test_every_json_error_path_prints_one_document(tiny_config: Path, tmp_path: Path) -> None:
    # The real entry point: option-parsing errors never reach the commands CliRunner calls.
    for args, code in _json_cases(tmp_path, tiny_config):
        completed = subprocess.run(
            [sys.executable, "-c", "from lrfind.cli.app import main; main()", *args, "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert completed.returncode == code, (args, completed.stderr)
        document = json.loads(completed.stdout)  # exactly one document, nothing else
        assert document["error"]["code"] == code, args
        assert document["error"]["message"], args
        assert completed.stderr.startswith("error: ") and "Traceback" not in completed.stderr


def test_ctrl_c_during_a_slow_data_factory_is_acknowledged_at_once(
    tiny_config: Path, hostile: Path
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from lrfind.cli.app import main; main()", "sweep",
         str(tiny_config), "--set", "data.target=hostile:slow"],
        stderr=subprocess.PIPE, text=True, cwd=hostile,
    )  # fmt: skip
    assert process.stderr is not None
    assert "building" in process.stderr.readline()
    sent = time.perf_counter()
    os.kill(process.pid, signal.SIGINT)
    acknowledged = process.stderr.readline()
    assert time.perf_counter() - sent < 2.0 and acknowledged.startswith("stopping: ")
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130
    assert "interrupted while setting up" in rest and no_runs(tiny_config)


def test_json_outcomes_of_a_real_check(tiny_config: Path) -> None:
    passed = invoke("check", str(tiny_config), "-q", "--json", "--expect-max", "100")
    assert passed.exit_code == 0, passed.stderr
    document = json.loads(passed.stdout)
    assert document["check"]["passed"] is True and "error" not in document
    failed = invoke("check", str(tiny_config), "-q", "--json", "--expect-max", "1e-9")
    assert failed.exit_code == 1, failed.stderr
    document = json.loads(failed.stdout)
    assert document["check"]["passed"] is False
    assert document["error"] == {"code": 1, "message": document["check"]["message"]}
