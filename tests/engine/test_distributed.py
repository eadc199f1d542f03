"""Multi-process data parallel: lock-step decisions, the launcher, and real 2-process runs (gloo).

The tests that start processes are marked ``slow`` and carry ``ddp`` in their names
(``pytest -k ddp`` runs them alone); they run in the normal suite too. Processes are started with
``lrfind.distributed.launch`` (what ``--nproc`` uses) and, once, with torchrun.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from lrfind.analysis.refine import REFINE_EXTRA_TRIALS
from lrfind.engine import distributed
from lrfind.engine.loop import sweep_loop
from lrfind.engine.options import StopFlag, SweepOptions
from lrfind.engine.state import snapshot_state
from lrfind.engine.steps import make_compute_loss
from lrfind.engine.trials import run_trial
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
    assert context.world_size == 1 and context.is_main and context.reduce is None
    assert context.wrap_model(model, CPU) is model
    assert context.resolve_device("cpu") == CPU
    distributed.shutdown()  # nothing joined, nothing to leave


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

LIBRARY_SCRIPT = """
import json, sys
import torch
from torch.utils.data import DataLoader, DistributedSampler
from lrfind.engine import distributed
from lrfind.engine.options import StopFlag, SweepOptions
from lrfind.engine.rangetest import RangeTest
from tests.fixtures.tasks import classification_task

context = distributed.current()
task = classification_task(samples=512, dropout=0.1)


def sharded(dataset, shuffle):
    sampler = DistributedSampler(
        dataset, num_replicas=context.world_size, rank=context.rank, shuffle=shuffle, seed=0
    )
    return DataLoader(dataset, batch_size=16, sampler=sampler)


train = sharded(task.train_loader.dataset, True)
val = sharded(task.val_loader.dataset, False)
model = context.wrap_model(task.model, torch.device("cpu"))
runner = RangeTest(
    model, task.optimizer, task.loss_fn, train, val_loader=val, reduce=context.reduce
)
full = runner.run(
    SweepOptions(start_lr=1e-4, end_lr=10.0, steps=40, accumulation_steps=2),
    refine="on", refine_steps=8, refine_candidates=3,
)
stop = StopFlag()


def progress(event):
    if context.rank == 1 and event.step == 5:
        stop.request("only rank 1 was asked")


stopped = runner.run(SweepOptions(steps=40), refine="off", progress=progress, stop=stop)
weights = [p.detach().double().sum().item() for p in task.model.parameters()]
record = {
    "world_size": context.world_size,
    "history": [list(full.history.lrs), list(full.history.losses), full.history.stop_reason],
    "trials": [[t.lr, t.train_loss, t.val_loss, t.diverged, t.steps]
               for t in full.refinement.trials],
    "suggestion": full.suggestion.lr,
    "stopped": [list(stopped.history.losses), stopped.history.stop_reason, stopped.complete],
    "weights": weights,
}
with open(f"{sys.argv[1]}/rank{context.rank}.json", "w") as handle:
    json.dump(record, handle)
del runner, model
distributed.shutdown()
"""


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


@pytest.mark.slow
def test_ddp_ranks_compute_the_same_history_trials_and_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ddp_library.py").write_text(textwrap.dedent(LIBRARY_SCRIPT), encoding="utf-8")
    for key, value in _env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))
    monkeypatch.chdir(tmp_path)
    assert distributed.launch(2, [str(tmp_path)], module="ddp_library") == 0
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0 == rank1  # bit-identical: same all-reduced curve, same decisions
    assert rank0["world_size"] == 2
    # The 3 candidates, plus the extra trials the (all-reduced, hence shared) choice asked for.
    assert 3 <= len(rank0["trials"]) <= 3 + REFINE_EXTRA_TRIALS
    losses, reason, complete = rank0["stopped"]
    # Rank 1 alone was asked to stop after step 5; both stopped after step 6, together.
    assert (len(losses), reason, complete) == (7, "interrupted", False)
    assert all(math.isfinite(w) for w in rank0["weights"])


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
def test_ddp_cli_sweep_under_torchrun(tiny_config: Path) -> None:
    command = [*_torchrun(), "--standalone", "--nproc_per_node=2", "-m", "lrfind", "sweep"]
    completed = _run([*command, tiny_config.name, "--quiet"], tiny_config.parent)
    _check_two_process_run(completed, tiny_config.parent)


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


def test_sigterm_constant_matches_the_launcher_convention() -> None:
    assert distributed._exit_code(-signal.SIGTERM) == 128 + signal.SIGTERM
