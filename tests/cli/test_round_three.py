"""Issue 27, through the entry point and the public API: nothing lost, nothing silently wrong."""

from __future__ import annotations

import errno
import json
import traceback
from pathlib import Path
from typing import Any

import pytest
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from typer.testing import CliRunner

from lrfind.cli.app import app
from lrfind.engine.checkpoint import SNAPSHOT_PREFIX
from lrfind.errors import SnapshotError
from tests.fixtures.tasks import classification_task

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), catch_exceptions=False)


def sweep(config: Path, *overrides: str):  # type: ignore[no-untyped-def]
    args = ["sweep", str(config), "-q"]
    for override in overrides:
        args += ["--set", override]
    return invoke(*args)


def one_line_error(result, code: int, *phrases: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def run_dirs(config: Path) -> list[Path]:
    return [p.parent for p in (config.parent / "runs").rglob("result.json")]


# --- bug 1: a disk snapshot that fails is an lrfind error -----------------------------------


def checkpoint_failure(cause: BaseException) -> CheckpointException:
    """What torch.distributed.checkpoint raises when a rank's write or read fails."""
    return CheckpointException("failed", {0: (cause, traceback.StackSummary())})


def disk_full() -> CheckpointException:
    """A full disk as torch's writer reports it: an "unexpected pos" over the ENOSPC."""
    cause = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    cause.__context__ = OSError(errno.ENOSPC, "No space left on device")
    return checkpoint_failure(cause)


def fail_saves(monkeypatch: pytest.MonkeyPatch, after: int = 0) -> None:
    """Make every disk snapshot after the first ``after`` fail as a full disk does."""
    real = dcp.save
    calls = [0]

    def save(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] > after:
            raise disk_full()
        return real(*args, **kwargs)

    monkeypatch.setattr(dcp, "save", save)


def test_a_full_disk_at_the_first_snapshot_fails_the_run_cleanly(
    tiny_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_saves(monkeypatch)
    snapshots = tmp_path / "snapshots"
    result = sweep(tiny_config, "sweep.snapshot=disk", f"sweep.snapshot_dir={snapshots}")
    one_line_error(
        result, 2, f"cannot write the disk snapshot in {snapshots}: No space left on device",
        "sweep.snapshot: memory",
    )  # fmt: skip
    (run_dir,) = run_dirs(tiny_config)
    document = json.loads((run_dir / "result.json").read_text())
    assert document["status"] == "failed" and "No space left" in document["error"]
    assert not list(snapshots.glob(f"{SNAPSHOT_PREFIX}*"))


def test_a_full_disk_after_the_sweep_keeps_the_recorded_sweep(
    tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_saves(monkeypatch, after=1)  # the sweep's own snapshot is written, the trials' fail
    result = sweep(
        tiny_config, "sweep.snapshot=disk", "suggest.refine=on", "train.steps=300",
        "suggest.budget=10",
    )  # fmt: skip
    one_line_error(result, 2, "No space left on device", "step(s) before it are in")
    (run_dir,) = run_dirs(tiny_config)
    assert json.loads((run_dir / "result.json").read_text())["status"] == "failed"
    assert (run_dir / "history.csv").is_file()


def test_a_failing_disk_snapshot_is_caught_by_except_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrfind import range_test

    task = classification_task()
    fail_saves(monkeypatch)
    caught: Exception | None = None
    try:
        range_test(
            task.model, task.optimizer, task.loss_fn, task.train_loader, steps=10,
            snapshot="disk", snapshot_dir=tmp_path,
        )  # fmt: skip
    except Exception as error:  # what a library caller writes
        caught = error
    assert isinstance(caught, SnapshotError)
    assert "No space left on device" in str(caught)
    assert list(tmp_path.iterdir()) == []


def test_a_second_ctrl_c_during_a_disk_restore_stays_an_interruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrfind.engine.state import restore_state, snapshot_state

    task = classification_task()
    snapshot = snapshot_state(task.model, task.optimizer, store="disk", folder=tmp_path)

    def load(*args: Any, **kwargs: Any) -> None:
        raise checkpoint_failure(KeyboardInterrupt())

    monkeypatch.setattr(dcp, "load", load)
    try:
        with pytest.raises(KeyboardInterrupt):
            restore_state(snapshot, task.model, task.optimizer)
    finally:
        snapshot.close()


def test_a_disk_snapshot_that_cannot_be_read_back_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrfind.engine.state import restore_state, snapshot_state

    task = classification_task()
    snapshot = snapshot_state(task.model, task.optimizer, store="disk", folder=tmp_path)
    folder = snapshot.weights.folder  # type: ignore[attr-defined]

    def load(*args: Any, **kwargs: Any) -> None:
        raise checkpoint_failure(FileNotFoundError(errno.ENOENT, "No such file or directory"))

    monkeypatch.setattr(dcp, "load", load)
    try:
        with pytest.raises(SnapshotError, match=f"cannot read back the disk snapshot in {folder}"):
            restore_state(snapshot, task.model, task.optimizer)
    finally:
        snapshot.close()


# --- checks that run before the run directory exists (and in validate) ----------------------

ROUND_THREE_CODE = """\
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset


class Stream(IterableDataset):
    def __iter__(self):
        generator = torch.Generator().manual_seed(0)
        for _ in range(10_000):
            yield torch.randn(8, generator=generator), torch.randint(0, 3, (), generator=generator)


def stream(**kwargs):
    return DataLoader(Stream(), batch_size=32)


def lazy(**kwargs):
    import round3_sibling  # imported when called, not when this module is

    return round3_sibling.data()


def pairs(**kwargs):
    return TensorDataset(torch.randn(512, 8), torch.randint(0, 3, (512,)))


def refuses(rows):
    raise ValueError("bad rows")


collated = [0]


def refuses_the_sixth(rows):
    collated[0] += 1
    if collated[0] == 6:  # the probe's batch, then sweep steps 0..3: this is step 4
        raise ValueError("bad row")
    return torch.utils.data.default_collate(rows)


class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return 512

    def __getitem__(self, index):
        return {"x": torch.randn(8), "label": index % 3}


def rows(**kwargs):
    return Rows()
"""

SIBLING_CODE = """\
import torch
from torch.utils.data import TensorDataset


def data():
    return TensorDataset(torch.randn(256, 8), torch.randint(0, 3, (256,)))
"""


@pytest.fixture
def round3(tmp_path: Path) -> Path:
    (tmp_path / "round3.py").write_text(ROUND_THREE_CODE)
    (tmp_path / "round3_sibling.py").write_text(SIBLING_CODE)
    return tmp_path


def no_run_dir(config: Path) -> bool:
    return not (config.parent / "runs").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            ("train.epochs=0.5", "train.warmup=100"),
            "train.warmup: warmup of 100 steps must be below the run's 7 steps",
        ),
        (
            ("train.epochs=0.01",),
            "train.epochs: 0.01 epoch(s) of 13 batches is under one optimizer step (0.13)",
        ),
        (
            (
                (
                    "train.epochs=1",
                    "data.target=round3:stream",
                    "model.args={hidden: [16], in_features: 8, out_features: 3}",
                )
            ),
            "train.epochs needs a training loader with a length; give train.steps instead",
        ),
    ],
)
def test_a_stated_run_that_cannot_be_is_refused_before_the_run_directory(
    tiny_config: Path, round3: Path, settings: tuple[str, ...], message: str
) -> None:
    one_line_error(sweep(tiny_config, *settings), 2, message)
    assert no_run_dir(tiny_config)


def snapshot_dir_cases(tmp_path: Path) -> list[tuple[Path, str]]:
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "missing")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    return [
        (a_file, f"sweep.snapshot_dir: {a_file} is a file, not a folder"),
        (a_file / "below", f"sweep.snapshot_dir: {a_file} is a file, not a folder"),
        (dangling, f"sweep.snapshot_dir: {dangling} is a symbolic link that leads nowhere"),
        (loop, f"sweep.snapshot_dir: {loop} is a symbolic link that leads nowhere"),
    ]


def test_an_unusable_snapshot_dir_is_refused_before_the_run_directory(
    tiny_config: Path, tmp_path: Path
) -> None:
    for folder, message in snapshot_dir_cases(tmp_path):
        settings = ("sweep.snapshot=disk", f"sweep.snapshot_dir={folder}")
        one_line_error(sweep(tiny_config, *settings), 2, message)
        assert "File exists" not in message
        assert no_run_dir(tiny_config)
        checked = invoke("validate", str(tiny_config), "--set", settings[0], "--set", settings[1])
        assert checked.exit_code == 2 and message in checked.output, checked.output


def test_a_read_only_snapshot_dir_is_refused(
    tiny_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_access = os.access
    # chmod cannot make a folder read-only for root: a read-only mount is what it sees.
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != read_only and real_access(path, mode)
    )
    result = sweep(tiny_config, "sweep.snapshot=disk", f"sweep.snapshot_dir={read_only}/snaps")
    one_line_error(result, 2, f"sweep.snapshot_dir: {read_only} is not writable")
    assert no_run_dir(tiny_config)


def test_a_snapshot_dir_under_memory_snapshots_is_said(tiny_config: Path, tmp_path: Path) -> None:
    result = sweep(tiny_config, f"sweep.snapshot_dir={tmp_path / 'unused'}")
    assert result.exit_code == 0, result.stderr
    (run_dir,) = run_dirs(tiny_config)
    warnings = json.loads((run_dir / "result.json").read_text())["warnings"]
    assert "sweep.snapshot_dir is ignored: sweep.snapshot is memory (set it to disk)" in warnings
    assert not (tmp_path / "unused").exists()


def test_the_folders_a_disk_snapshot_created_are_removed(tiny_config: Path, tmp_path: Path) -> None:
    deep = tmp_path / "made" / "for" / "snapshots"
    result = sweep(tiny_config, "sweep.snapshot=disk", f"sweep.snapshot_dir={deep}")
    assert result.exit_code == 0, result.stderr
    assert not (tmp_path / "made").exists()


def test_a_killed_runs_snapshot_is_removed_by_the_next_run(tiny_config: Path) -> None:
    import socket
    import subprocess
    import sys

    # A run killed with SIGKILL (no finally runs) leaves its snapshot in its run directory.
    killed = tiny_config.parent / "runs" / "tiny" / "20200101-000000"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    host = "".join(c if c.isalnum() or c == "." else "_" for c in socket.gethostname())
    stale = killed / f"{SNAPSHOT_PREFIX}{host}-{dead.stdout.strip()}-abc123"
    (stale / "inner").mkdir(parents=True)
    alive = killed / f"{SNAPSHOT_PREFIX}{host}-1-abc123"  # pid 1 is always running
    older = killed / f"{SNAPSHOT_PREFIX}abc123"  # an older lrfind's name: not judged
    alive.mkdir()
    older.mkdir()
    assert sweep(tiny_config, "sweep.snapshot=disk").exit_code == 0
    assert not stale.exists() and alive.exists() and older.exists()


def test_a_factory_that_imports_a_sibling_when_called_works(
    tiny_config: Path, round3: Path
) -> None:
    import sys

    before = list(sys.path)
    result = sweep(tiny_config, "data.target=round3:lazy")
    assert result.exit_code in (0, 3), result.stderr  # random labels: no answer is an answer
    assert "ModuleNotFoundError" not in result.stderr and run_dirs(tiny_config)
    assert sys.path == before  # given back


def test_shard_modules_under_ddp_is_said_to_be_ignored(tiny_config: Path) -> None:
    result = sweep(tiny_config, "distributed.shard_modules=[Linear]")
    assert result.exit_code == 0, result.stderr
    (run_dir,) = run_dirs(tiny_config)
    warnings = json.loads((run_dir / "result.json").read_text())["warnings"]
    assert any(w.startswith("distributed.shard_modules is ignored") for w in warnings)


def test_shard_modules_takes_import_paths() -> None:
    from torch import nn

    from lrfind.assembly.sharding import shard_units

    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    for name in ("Linear", "torch.nn.Linear", "torch.nn:Linear", "torch.nn.modules.linear.Linear"):
        assert len(shard_units(model, [name])) == 2, name


def test_a_full_disk_at_the_plot_keeps_the_answer(
    tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lrfind.outputs.plot.style as style
    from lrfind.errors import OutputError

    def full(path: Path, data: bytes) -> Path:
        raise OutputError(f"cannot write {path}: no space left on device")

    monkeypatch.setattr(style, "atomic_write_bytes", full)
    result = sweep(tiny_config)
    assert result.exit_code == 0, result.stderr
    (run_dir,) = run_dirs(tiny_config)
    document = json.loads((run_dir / "result.json").read_text())
    assert document["status"] == "complete" and document["suggestion"]["lr"] > 0
    assert (
        f"plot not written: cannot write {run_dir / 'lr_finder.png'}: no space left on device"
        in (document["warnings"])
    )
    assert not (run_dir / "lr_finder.png").exists()


# --- budget messages ------------------------------------------------------------------------


def test_a_budget_below_one_sweep_hints_at_a_share(tiny_config: Path) -> None:
    result = sweep(tiny_config, "suggest.budget=0.05")
    one_line_error(result, 2, "got 0.05; for a share of the run write '5%'")


def test_a_share_smaller_than_the_sweep_says_the_sweep_alone_exceeds_it(
    tiny_config: Path,
) -> None:
    result = sweep(tiny_config, "suggest.refine=on", "train.steps=1000", "suggest.budget=2%")
    assert result.exit_code == 0, result.stderr
    (run_dir,) = run_dirs(tiny_config)
    reasons = json.loads((run_dir / "result.json").read_text())["confidence"]["reasons"]
    assert any(
        "the budget (2% of the run: 20 steps) is smaller than the 40-step sweep: the sweep alone "
        "exceeds it" in reason
        for reason in reasons
    ), reasons


@pytest.mark.parametrize(
    ("warmup", "message"),
    [
        ("nan", "--warmup nan: not a finite number; give a fraction of the run below 1 (0.06)"),
        ("inf", "--warmup inf: not a finite number"),
        ("-0.1", "--warmup -0.1: must be 0 or more"),
    ],
)
def test_a_warmup_that_is_not_a_number_is_said(tmp_path: Path, warmup: str, message: str) -> None:
    from tests.fixtures.results import make_result
    from tests.fixtures.runs import save_run

    run_dir = save_run(tmp_path / "run", make_result("clean"))
    args = ("schedule", str(run_dir), "--kind", "cosine", "--total-steps", "100")
    one_line_error(invoke(*args, "--warmup", warmup), 2, message)


# --- the key that is wrong is the one named -------------------------------------------------


def test_a_raising_collate_is_named_as_data_collate(tiny_config: Path, round3: Path) -> None:
    data = ("data.target=round3:pairs",)
    first = sweep(tiny_config, *data, "data.collate=round3:refuses")
    one_line_error(
        first, 2, "data.collate: the collate function raised ValueError: bad rows (",
        "reading the first training batch",
    )  # fmt: skip
    assert no_run_dir(tiny_config)
    later = sweep(tiny_config, *data, "data.collate=round3:refuses_the_sixth")
    one_line_error(
        later, 2, "data.collate (round3:refuses_the_sixth): the collate function raised "
        "ValueError: bad row (", "at sweep step 4",
    )  # fmt: skip
    assert "data.target" not in later.stderr


def test_a_misspelt_targets_key_is_named(tiny_config: Path, round3: Path) -> None:
    result = sweep(
        tiny_config, "data.target=round3:rows", "data.inputs_key=x", "data.targets_key=lable"
    )
    one_line_error(
        result, 2, "data.targets_key: the batches have no key 'lable' (did you mean 'label'?)"
    )
