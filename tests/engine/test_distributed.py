"""Several processes: lock-step decisions, the launcher, and real 2-process runs (gloo, CPU).

The tests that start processes are marked ``slow`` and carry ``ddp`` in their names
(``pytest -k ddp`` runs them alone); they run in the normal suite too. Processes are started with
``lrfind.distributed.launch`` (what ``--nproc`` uses) and with torchrun: the library in a user's
torchrun script (DDP and FSDP2, ``ranks_library.py``), and the CLI on two "nodes" of one machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from lrfind.engine import collectives, distributed
from lrfind.engine.loop import sweep_loop
from lrfind.engine.options import StopFlag, SweepOptions
from lrfind.engine.session import Session
from lrfind.engine.state import snapshot_state
from lrfind.engine.steps import make_compute_loss
from lrfind.engine.trials import run_trial
from lrfind.errors import DataError, DistributedError
from tests.fixtures.tasks import classification_task

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
BATCH_SIZE = 32


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """Tiny models on a shared CPU: extra intra-op threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- in one process: what keeps ranks in lock-step ---------------------------------------------


class _OtherRankAsksToStop:
    """A stand-in for the all-reduce: on chunk ``at``, another rank's stop request arrives."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.calls: list[int] = []

    def __call__(self, chunk: torch.Tensor) -> torch.Tensor:
        self.calls.append(chunk.numel())
        reduced = chunk.clone()
        if len(self.calls) == self.at:
            reduced[-1] = 0.5  # the mean of (0, 1) over two ranks
        return reduced


def test_a_stop_request_from_another_rank_stops_this_one_at_the_same_step() -> None:
    task = classification_task()
    reduce = _OtherRankAsksToStop(at=4)
    stop = StopFlag()
    outcome = sweep_loop(
        task.model,
        task.optimizer,
        make_compute_loss(task.loss_fn),
        task.train_loader,
        SweepOptions(steps=30),
        CPU,
        reduce=reduce,
        stop=stop,
    )
    assert outcome.history.stop_reason == "interrupted"
    assert outcome.history.steps == 4
    # One collective per chunk (check_every 1 on CPU): the loss and the stop flag together.
    assert reduce.calls == [2, 2, 2, 2]
    assert not stop.raised and stop.requested  # agreed, though not asked here


def test_chunked_reads_reduce_whole_chunks_and_cut_the_history_the_same() -> None:
    def sweep(check_every: int, reduce: Any) -> Any:
        task = classification_task()
        return sweep_loop(
            task.model,
            task.optimizer,
            make_compute_loss(task.loss_fn),
            task.train_loader,
            SweepOptions(start_lr=1e-3, end_lr=1e3, steps=40, check_every=check_every),
            CPU,
            reduce=reduce,
        ).history

    sizes: list[int] = []

    def identity(chunk: torch.Tensor) -> torch.Tensor:
        sizes.append(chunk.numel())
        return chunk.clone()

    reference = sweep(1, None)
    chunked = sweep(6, identity)
    assert chunked == reference
    assert reference.stop_reason in ("diverged", "non_finite")
    assert set(sizes[:-1]) == {7}  # six losses and the stop flag


def test_a_local_stop_request_only_counts_once_every_rank_knows_it() -> None:
    stop = StopFlag()
    stop.share()
    stop.request("SIGTERM")
    assert stop.raised and not stop.requested
    stop.agree(False)
    assert not stop.requested
    stop.agree(True)
    assert stop.requested and stop.reason == "SIGTERM"


def test_trial_stops_on_an_agreed_request_and_the_refine_loop_sees_it() -> None:
    task = classification_task()
    snapshot = snapshot_state(task.model, task.optimizer, [task.train_loader])
    stop = StopFlag()
    trial = run_trial(
        task.model,
        task.optimizer,
        make_compute_loss(task.loss_fn),
        task.train_loader,
        task.val_loader,
        0.05,
        20,
        snapshot,
        SweepOptions(),
        CPU,
        reduce=_OtherRankAsksToStop(at=3),
        stop=stop,
    )
    assert trial.steps == 3
    assert stop.requested


def _sharded_loader(rank: int) -> DataLoader:
    dataset = classification_task().train_loader.dataset
    sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
    return DataLoader(dataset, batch_size=16, sampler=sampler)


def test_restore_rewinds_a_distributed_samplers_epoch() -> None:
    # 96 samples per rank, batches of 16: a 20-step trial runs through 4 epochs.
    task = classification_task()
    loader = _sharded_loader(rank=0)
    snapshot = snapshot_state(task.model, task.optimizer, [loader])
    trials = [
        run_trial(
            task.model,
            task.optimizer,
            make_compute_loss(task.loss_fn),
            loader,
            None,
            0.05,
            20,
            snapshot,
            SweepOptions(),
            CPU,
        )
        for _ in range(2)
    ]
    assert loader.sampler.epoch == 3  # type: ignore[attr-defined]
    assert trials[0] == trials[1]


def test_single_process_context_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(distributed, "_CONTEXT", None)
    context = distributed.current()
    model = torch.nn.Linear(2, 1)
    session = context.session("ddp")
    assert context.world_size == 1 and context.is_main
    assert session == Session() and session.reduce is None and session.recorded is None
    assert context.wrap_model(model, CPU, session) is model
    assert context.resolve_device("cpu") == CPU
    distributed.shutdown()  # nothing joined, nothing to leave


def test_asking_who_is_rank_0_joins_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed, "_CONTEXT", None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    launch = distributed.launched()
    assert launch == distributed.Launch(1, 2, 1, by_launcher=True) and not launch.is_main
    assert distributed._CONTEXT is None and not torch.distributed.is_initialized()
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(DistributedError, match=r"RANK=2 is outside \[0, WORLD_SIZE=2\)"):
        distributed.launched()


def test_a_session_read_off_the_users_model() -> None:
    plain = torch.nn.Linear(2, 1)
    assert Session.of(plain) == Session()
    assert Session.of(plain).inner(plain) is plain
    ddp = Session("ddp", rank=0, world_size=2)
    wrapper = torch.nn.Module()
    wrapper.module = plain
    assert ddp.inner(wrapper) is plain and ddp.recorded == "ddp" and not ddp.sharded
    assert ddp.reduce is not None and Session("fsdp", 1, 2).sharded
    with pytest.raises(DistributedError, match="process_group was given"):
        Session.of(plain, process_group=object())


def test_the_outermost_session_leaves_the_group_once(monkeypatch: pytest.MonkeyPatch) -> None:
    left: list[bool | None] = []
    monkeypatch.setattr(distributed, "shutdown", lambda failed=None: left.append(failed))
    with distributed.session():
        with distributed.session():  # check's sweep
            pass
        assert left == []
    assert left == [False]
    with pytest.raises(DataError), distributed.session():
        raise DataError("boom")
    assert left == [False, True]


def test_the_workflows_leave_the_group_for_python_callers(
    monkeypatch: pytest.MonkeyPatch, tiny_config: Path, tmp_path: Path
) -> None:
    """The cleanup ``lrfind sweep`` and ``lrfind check`` get is in ``lrfind.sweep``/``check``."""
    import lrfind

    left: list[bool | None] = []
    monkeypatch.setattr(distributed, "shutdown", lambda failed=None: left.append(failed))
    lrfind.sweep(tiny_config, out=tmp_path / "sweep")
    assert left == [False]
    lrfind.check(tiny_config, lr_max=100.0, out=tmp_path / "check")
    assert left == [False, False]  # once for the check, not again for its sweep
    with pytest.raises(lrfind.LrfindError):
        lrfind.check(tiny_config, lr_max=1e-9, min_confidence="nope")
    assert left == [False, False, True]


def test_worker_environment_is_what_torchrun_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = distributed.worker_environment(1, 2, 29501)
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"]) == ("1", "1", "2")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("127.0.0.1", "29501")
    assert int(env["OMP_NUM_THREADS"]) >= 1


# --- the --nproc launcher ----------------------------------------------------------------------

FAKE_WORKER = """
import os, signal, sys, time
rank = int(os.environ["RANK"])
behaviour = sys.argv[1]
if behaviour == "rank1-fails":
    if rank == 1:
        sys.stderr.write("rank 1 broke\\n")
        sys.exit(5)
    time.sleep(60)
elif behaviour == "rank0-no-answer":
    sys.exit(3 if rank == 0 else 0)
elif behaviour == "interrupt":
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    if rank == 0:
        time.sleep(0.5)
        os.kill(os.getppid(), signal.SIGINT)
    time.sleep(60)
"""


@pytest.fixture
def fake_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "fake_worker.py").write_text(FAKE_WORKER, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(distributed, "FAILURE_PATIENCE_SECONDS", 0.2)
    return "fake_worker"


def test_launcher_returns_the_failing_ranks_code_and_shows_its_error(
    fake_worker: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert distributed.launch(2, ["rank1-fails"], module=fake_worker) == 5
    assert "rank 1 broke" in capfd.readouterr().err


def test_launcher_returns_rank_0s_code(fake_worker: str) -> None:
    assert distributed.launch(2, ["rank0-no-answer"], module=fake_worker) == 3


def test_launcher_passes_sigint_on_to_every_rank(fake_worker: str) -> None:
    assert distributed.launch(2, ["interrupt"], module=fake_worker) == 130


def test_launcher_keeps_lrfind_exit_codes(capfd: pytest.CaptureFixture[str]) -> None:
    # Every rank fails the same way: each exits 2, and the error is printed once (rank 0's).
    assert distributed.launch(2, ["validate", "no-such-config.yaml"]) == 2
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == ["error: no such config file: no-such-config.yaml"]


# --- real processes (gloo on CPU) --------------------------------------------------------------


def _torchrun() -> list[str]:
    script = Path(sys.executable).parent / "torchrun"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "torch.distributed.run"]


def _lrfind() -> list[str]:
    script = Path(sys.executable).parent / "lrfind"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lrfind"]


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("WORLD_SIZE", "RANK")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=240, check=False
    )


CLI_CONFIG = """
name: ddp-tiny
seed: 0
device: cpu
model:
  target: mlp
  args: {hidden: [16]}
data:
  target: synthetic_classification
  args: {size: 512, features: 8, classes: 3}
  batch_size: %d
optimizer: {name: sgd, args: {momentum: 0.9}}
sweep: {start_lr: 1.0e-4, end_lr: 10.0, steps: 40}
suggest: {refine: "on", refine_candidates: 2, refine_steps: 10}
output: {dir: runs}
"""


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "ddp-tiny.yaml"
    path.write_text(CLI_CONFIG % BATCH_SIZE, encoding="utf-8")
    return path


def _only_run_dir(base: Path) -> Path:
    runs = [path for path in (base / "runs" / "ddp-tiny").iterdir()]
    assert len(runs) == 1, runs
    return runs[0]


def _check_two_process_run(completed: subprocess.CompletedProcess[str], base: Path) -> None:
    assert completed.returncode == 0, completed.stderr[-3000:]
    run_dir = _only_run_dir(base)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete"
    assert result["world_size"] == 2
    assert result["batch_size"] == BATCH_SIZE
    assert result["global_batch_size"] == 2 * BATCH_SIZE


@pytest.mark.slow
def test_ddp_cli_sweep_with_nproc_and_one_process_run(tiny_config: Path, tmp_path: Path) -> None:
    completed = _run([*_lrfind(), "sweep", "--nproc", "2", tiny_config.name, "-q"], tmp_path)
    _check_two_process_run(completed, tmp_path)

    from lrfind.config.load import load_config
    from lrfind.workflows import sweep as workflows

    single = tmp_path / "single"
    single.mkdir()
    config_path = single / tiny_config.name
    shutil.copy(tiny_config, config_path)
    config = load_config(config_path, [f"output.dir={single / 'runs'}"])
    run = workflows.sweep(config)
    assert run.result.info.world_size == 1
    assert run.result.info.global_batch_size == BATCH_SIZE
    assert _only_run_dir(single).joinpath("result.json").is_file()


@pytest.mark.slow
def test_ddp_and_fsdp2_range_test_under_torchrun_agree_and_restore_exactly(tmp_path: Path) -> None:
    """The library in a user's torchrun script: DDP and FSDP2, fresh and stepped Adam, memory
    and disk snapshots. Before lrfind all-reduced on its own, DDP hung and FSDP2 aborted."""
    command = [
        *_torchrun(),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "tests.engine.ranks_library",
    ]
    completed = _run([*command, str(tmp_path)], ROOT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0 == rank1  # every rank returns the same answer
    stopped = rank0.pop("stopped")
    uneven = rank0.pop("uneven")
    assert rank0.pop("mismatched") == [
        "the ranks called range_test with different budget, steps: every rank must pass the "
        "same options",
        True,
    ]
    assert len(rank0) == 5
    for case, record in rank0.items():
        assert record["exact"], case  # weights, optimizer state and LRs bit-exact
        assert record["suggestion"] is not None and record["trials"], case
        assert record["strategy"] == case.split("-")[0]
        # The run's real size: 2 ranks of 16 samples a step (issue 27: was 1 and 16).
        assert record["world"] == [2, 32], case
    snapshots = tmp_path / "snapshots"
    assert not snapshots.exists() or not list(snapshots.iterdir())
    # Rank 1 alone was asked to stop after step 5; both stopped after step 6, together.
    assert stopped == [7, "interrupted", False]
    assert any(
        "the ranks' data differ in size: training samples (rank 0: 256, rank 1: 96)" in note
        for note in uneven
    )


FLAKY_MODELS = """
import os

import torch
from torch import nn


class Flaky(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.calls = 0

    def forward(self, inputs):
        self.calls += 1
        if os.environ["RANK"] == "1" and self.calls == 12:
            raise ValueError("rank one's batch is broken")
        return self.linear(inputs)

"""


def _user_config(folder: Path, model: str, data: str) -> Path:
    (folder / "flaky.py").write_text(FLAKY_MODELS, encoding="utf-8")
    config = CLI_CONFIG % BATCH_SIZE
    config = config.replace("target: mlp\n  args: {hidden: [16]}", model)
    config = config.replace(
        "target: synthetic_classification\n  args: {size: 512, features: 8, classes: 3}", data
    )
    path = folder / "user.yaml"
    path.write_text(config, encoding="utf-8")
    return path


@pytest.mark.slow
def test_ddp_a_failure_on_rank_1_alone_is_reported_with_its_rank_and_message(
    tmp_path: Path,
) -> None:
    config = _user_config(
        tmp_path,
        "target: flaky:Flaky\n  args: {in_features: 8, out_features: 3}",
        "target: synthetic_classification\n  args: {size: 512, features: 8, classes: 3}",
    )
    completed = _run([*_lrfind(), "sweep", "--nproc", "2", config.name, "-q"], tmp_path)
    assert completed.returncode == 2, completed.stderr[-3000:]
    assert "rank 1 failed: " in completed.stderr
    assert "rank one's batch is broken" in completed.stderr
    assert "Connection closed" not in completed.stderr


def test_ranks_that_built_data_of_different_sizes_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the all-reduce of every rank's sizes returns when rank 1's data factory gave less.
    monkeypatch.setattr(
        collectives, "gather_counts", lambda counts, group=None: [counts, [448, 14, *counts[2:]]]
    )
    task = classification_task(samples=512)
    with pytest.raises(DataError) as raised:
        collectives.refuse_uneven_data(task.train_loader, None)
    assert str(raised.value).startswith(
        "data: the ranks built data of different sizes: training samples (rank 0: 384, rank 1: "
        "448); training batches (rank 0: 12, rank 1: 14)."
    )
    monkeypatch.setattr(collectives, "gather_counts", lambda counts, group=None: [counts, counts])
    collectives.refuse_uneven_data(task.train_loader, task.val_loader)  # the same everywhere


@pytest.mark.slow
def test_ddp_sigterm_stops_the_run_and_removes_the_disk_snapshot(tiny_config: Path) -> None:
    base = tiny_config.parent
    command = [*_lrfind(), "sweep", "--nproc", "2", tiny_config.name, "-q"]
    longer = ["--set", "sweep.snapshot=disk", "--set", "sweep.steps=3000"]
    launcher = subprocess.Popen(
        [*command, *longer, "--set", "suggest.refine=off", "--set", "sweep.end_lr=1.0e-2"],
        cwd=base,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(base.glob("runs/*/*/.lrfind-snapshot-*")):
            time.sleep(0.1)
        assert list(base.glob("runs/*/*/.lrfind-snapshot-*")), "no disk snapshot appeared"
        time.sleep(0.5)  # into the sweep
        launcher.send_signal(signal.SIGTERM)
        _, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 130, stderr[-3000:]
    run_dir = _only_run_dir(base)
    assert json.loads((run_dir / "result.json").read_text())["status"] == "interrupted"
    assert not list(run_dir.glob(".lrfind-snapshot-*"))


@pytest.mark.slow
def test_ddp_two_nodes_under_torchrun_with_fsdp2_and_a_disk_snapshot(tiny_config: Path) -> None:
    """torchrun --nnodes 2: two launchers, one per "node", meeting at a c10d rendezvous; the
    model sharded with FSDP2, its snapshot on disk."""
    port = distributed._free_port()
    options = ["--set", "distributed.strategy=fsdp", "--set", "sweep.snapshot=disk", "-q"]
    launchers = [
        subprocess.Popen(
            [
                *_torchrun(),
                "--nnodes=2",
                "--nproc_per_node=1",
                f"--node_rank={node}",
                "--rdzv_backend=c10d",
                f"--rdzv_endpoint=127.0.0.1:{port}",
                "--rdzv_id=lrfind-test",
                *("-m", "lrfind", "sweep", tiny_config.name, *options),
            ],
            cwd=tiny_config.parent,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in (0, 1)
    ]
    outputs = [launcher.communicate(timeout=240) for launcher in launchers]
    for launcher, (_, stderr) in zip(launchers, outputs, strict=True):
        assert launcher.returncode == 0, stderr[-3000:]
    _check_two_process_run(
        subprocess.CompletedProcess([], 0, outputs[0][0], outputs[0][1]), tiny_config.parent
    )
    run_dir = _only_run_dir(tiny_config.parent)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["strategy"] == "fsdp"
    assert result["suggestion"]["lr"] is not None
    assert not list(run_dir.glob(".lrfind-snapshot-*"))  # the disk snapshot is gone


def test_sigterm_constant_matches_the_launcher_convention() -> None:
    assert distributed._exit_code(-signal.SIGTERM) == 128 + signal.SIGTERM
