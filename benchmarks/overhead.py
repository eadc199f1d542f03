"""Overhead benchmark: what does lrfind cost on top of the training steps it runs?

For each task the same steps (same model, optimizer, batches and exponential LR ladder) are run
by five contenders, interleaved in one process after a warm-up (rotating the order each round),
repeated, and compared by their median time per step and their median paired ratio to the bare
loop (run time / the bare loop's run time in the same round), with the ratios' interquartile
range. Each contender has its own identical copy of the task (model, optimizer, batches): a tool
that patches the optimizer (torch-lr-finder's LR scheduler wraps ``optimizer.step``) must not
slow down the others. Times are CPU time of the process
(``time.process_time``; torch runs on one thread, so that is the work done) with wall-clock
ratios alongside: on a shared machine CPU time is the steadier measure.

* ``bare``       a hand-written PyTorch loop: set the LR, forward, backward, step, ``loss.item()``
* ``bare again`` the same loop timed as a separate contender: its ratio shows the noise floor
* ``engine``     ``lrfind.engine.loop.sweep_loop`` (the sweep loop alone)
* ``range_test`` ``lrfind.range_test(..., refine="off")``: snapshot, sweep, analysis, restore
* ``torch-lr-finder`` ``LRFinder.range_test`` + ``reset()`` (optional: ``pip install
  torch-lr-finder -c constraints.txt``; its column is skipped with a note when it is missing)

Batches are pre-built in memory and cycled, so the data pipeline costs (almost) nothing and the
ratios show the tools' own overhead at its most visible. No contender diverges (the LR range
stays trainable and the divergence thresholds are out of reach), so all run every step.

torch runs on a fixed number of intra-op threads (``--threads``, default 1): on a small shared
machine multi-threaded kernels add more timing noise than the effect being measured.

Also measured: CLI start-up (``lrfind --help`` and ``lrfind validate``) in fresh subprocesses,
and whether either imports torch or matplotlib (via ``python -X importtime``).

    python benchmarks/overhead.py                    # both tasks, 100 steps, 15 repeats, 1 thread
    python benchmarks/overhead.py --repeats 5 --steps 50 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import itertools
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
START_LR, END_LR = 1e-5, 1e-1

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Task:
    """A model, an SGD optimizer, a loss and pre-built batches, reset before every run."""

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    batches: list[Batch]
    initial_model: dict[str, torch.Tensor]
    initial_optimizer: dict[str, Any]

    def reset(self) -> None:
        """Put the weights and optimizer state back (outside the timed region)."""
        self.model.load_state_dict(self.initial_model)
        self.optimizer.load_state_dict(copy.deepcopy(self.initial_optimizer))
        self.optimizer.zero_grad(set_to_none=True)


def _batches(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int) -> list[Batch]:
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(0))
    inputs, targets = inputs[order], targets[order]
    return [
        (inputs[i : i + batch_size].contiguous(), targets[i : i + batch_size].contiguous())
        for i in range(0, len(inputs) - batch_size + 1, batch_size)
    ]


def _make_task(name: str, model: nn.Module, batches: list[Batch]) -> Task:
    optimizer = torch.optim.SGD(model.parameters(), lr=START_LR, momentum=0.9)
    return Task(
        name=name,
        model=model,
        optimizer=optimizer,
        loss_fn=nn.CrossEntropyLoss(),
        batches=batches,
        initial_model=copy.deepcopy(model.state_dict()),
        initial_optimizer=copy.deepcopy(optimizer.state_dict()),
    )


def digits_mlp() -> Task:
    """sklearn's 8x8 digits as 64 standardised features; MLP 64-512-256-10, batch 128."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    features = torch.tensor(digits.data, dtype=torch.float32)
    features = (features - features.mean(0)) / (features.std(0) + 1e-6)
    labels = torch.tensor(digits.target, dtype=torch.long)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)
    )
    return _make_task("digits-mlp (batch 128)", model, _batches(features, labels, 128))


def images_cnn() -> Task:
    """Synthetic 1x28x28 images, 10 classes; conv16-conv32-fc CNN, batch 64."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (2048,), generator=generator)
    prototypes = torch.randn(10, 1, 28, 28, generator=generator)
    images = prototypes[labels] + torch.randn(2048, 1, 28, 28, generator=generator)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )
    return _make_task("images-cnn (batch 64)", model, _batches(images, labels, 64))


def tiny_mlp() -> Task:
    """A 16-32-4 MLP, batch 32: steps of a few hundred microseconds expose fixed per-step costs."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(1024, 16, generator=generator)
    labels = torch.randint(0, 4, (1024,), generator=generator)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    return _make_task("tiny-mlp (batch 32)", model, _batches(inputs, labels, 32))


def _ladder(steps: int) -> list[float]:
    from lrfind.engine.ladder import lr_ladder

    return lr_ladder(steps, START_LR, END_LR, "exp")


# --- the contenders ----------------------------------------------------------------------------


def run_bare(task: Task, steps: int) -> list[float]:
    """The loop a careful user would write by hand."""
    model, optimizer, loss_fn = task.model, task.optimizer, task.loss_fn
    stream = itertools.cycle(task.batches)
    losses: list[float] = []
    model.train()
    for lr in _ladder(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, targets = next(stream)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _options(steps: int) -> Any:
    from lrfind.engine.options import SweepOptions

    return SweepOptions(
        start_lr=START_LR, end_lr=END_LR, steps=steps, smoothing=0.98, diverge_factor=1e9
    )


def run_engine(task: Task, steps: int) -> list[float]:
    """lrfind's sweep loop alone (no snapshot, restore or analysis)."""
    from lrfind.engine.loop import sweep_loop
    from lrfind.engine.steps import make_compute_loss

    outcome = sweep_loop(
        task.model,
        task.optimizer,
        make_compute_loss(task.loss_fn),
        task.batches,
        _options(steps),
        torch.device("cpu"),
    )
    return list(outcome.history.losses)


def run_range_test(task: Task, steps: int) -> list[float]:
    """The public API, state snapshot and restore included (refine off)."""
    from lrfind import range_test

    result = range_test(
        task.model,
        task.optimizer,
        task.loss_fn,
        task.batches,
        start_lr=START_LR,
        end_lr=END_LR,
        steps=steps,
        diverge_factor=1e9,
        refine="off",
        device="cpu",
    )
    return list(result.history.losses)


def run_torch_lr_finder(task: Task, steps: int) -> list[float]:
    """torch-lr-finder with its defaults (state cached in memory, tqdm bar) and ``reset()``."""
    from torch_lr_finder import LRFinder, TrainDataLoaderIter

    finder = LRFinder(task.model, task.optimizer, task.loss_fn, device="cpu")
    # Its progress bar (stderr) and closing message (stdout).
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        finder.range_test(
            TrainDataLoaderIter(task.batches),
            start_lr=START_LR,
            end_lr=END_LR,
            num_iter=steps,
            step_mode="exp",
            smooth_f=0.02,
            diverge_th=1e9,
        )
    finder.reset()
    return list(finder.history["loss"])


Contender = Callable[[Task, int], list[float]]


def contenders() -> tuple[dict[str, Contender], list[str]]:
    """Return the contenders that can run here and notes about those that cannot."""
    found: dict[str, Contender] = {
        "bare": run_bare,
        "bare again": run_bare,  # an A/A control: its ratio is the measurement's noise floor
        "engine": run_engine,
        "range_test": run_range_test,
    }
    notes: list[str] = []
    try:
        import torch_lr_finder  # noqa: F401
    except ImportError:
        notes.append(
            "torch-lr-finder not installed (pip install torch-lr-finder -c constraints.txt): "
            "its column is skipped"
        )
    else:
        found["torch-lr-finder"] = run_torch_lr_finder
    return found, notes


# --- timing ------------------------------------------------------------------------------------


def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


@dataclass
class Timings:
    """Per-run seconds of one contender: wall clock and this process's CPU time."""

    wall: list[float]
    cpu: list[float]


def time_task(
    tasks: dict[str, Task], runners: dict[str, Contender], steps: int, repeats: int, warmup: int
) -> dict[str, Timings]:
    """Time every contender (on its own copy of the task) ``repeats`` times, interleaved."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            tasks[name].reset()
            _seed()
            runners[name](tasks[name], steps)
    timings = {name: Timings([], []) for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            task = tasks[name]
            task.reset()
            _seed()
            wall, cpu = time.perf_counter(), time.process_time()
            losses = runners[name](task, steps)
            timings[name].cpu.append(time.process_time() - cpu)
            timings[name].wall.append(time.perf_counter() - wall)
            if len(losses) != steps:
                raise RuntimeError(f"{name} ran {len(losses)} of {steps} steps on {task.name}")
    return timings


def _check_same_losses(task: Task, steps: int) -> float:
    """Largest relative difference between the bare loop's and the engine's losses."""
    task.reset()
    _seed()
    bare = run_bare(task, steps)
    task.reset()
    _seed()
    engine = run_engine(task, steps)
    return max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(bare, engine, strict=True))


def _paired_ratios(values: list[float], bare: list[float]) -> list[float]:
    """Per round, contender / bare within the same round: slow drifts in load cancel."""
    return [v / b for v, b in zip(values, bare, strict=True)]


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, median, high


def print_table(results: dict[str, dict[str, Timings]], steps: int) -> None:
    """Median CPU ms per step and each contender's paired ratio to the bare loop (CPU, wall)."""
    print(
        "\n| task | contender | CPU ms/step | x bare (CPU) | IQR of x (CPU) | x bare (wall) |"
        "\n|---|---|---|---|---|---|"
    )
    for task_name, timings in results.items():
        bare = timings["bare"]
        for name, timing in timings.items():
            per_step = statistics.median(timing.cpu) / steps * 1e3
            if name == "bare":
                print(f"| {task_name} | bare | {per_step:.3f} | 1 | | 1 |")
                continue
            low, cpu_ratio, high = _quartiles(_paired_ratios(timing.cpu, bare.cpu))
            wall_ratio = statistics.median(_paired_ratios(timing.wall, bare.wall))
            print(
                f"| | {name} | {per_step:.3f} | {cpu_ratio:.3f} | {low:.3f}-{high:.3f} "
                f"| {wall_ratio:.3f} |"
            )
    print(
        "\nCPU ms/step = median over runs of the process's CPU time per optimizer step; "
        "x bare = median over rounds of the run's time divided by the bare loop's in the same "
        "round (IQR: its interquartile range over rounds). `bare again` is the bare loop timed "
        "as a second contender: its x is the noise floor."
    )


# --- CLI start-up ------------------------------------------------------------------------------


def _lrfind_command() -> list[str]:
    script = Path(sys.executable).parent / "lrfind"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lrfind"]


def startup(repeats: int = 10) -> None:
    """Time ``lrfind --help`` / ``lrfind validate`` and list heavy modules they import."""
    config = ROOT / "configs" / "quickstart.yaml"
    commands = {
        "lrfind --help": ["--help"],
        f"lrfind validate {config.relative_to(ROOT)}": ["validate", str(config)],
    }
    env = {**os.environ, "NO_COLOR": "1"}
    print("\n| command | median wall time | fastest | imports torch | imports matplotlib |")
    print("|---|---|---|---|---|")
    for label, args in commands.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(
                [*_lrfind_command(), *args], capture_output=True, check=True, env=env, cwd=ROOT
            )
            times.append(time.perf_counter() - started)
        traced = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "lrfind", *args],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=ROOT,
        )
        imported = {
            line.rsplit("|", 1)[-1].strip().split(".")[0]
            for line in traced.stderr.splitlines()
            if line.startswith("import time:")
        }
        torch_seen = "yes" if "torch" in imported else "no"
        mpl_seen = "yes" if "matplotlib" in imported else "no"
        print(
            f"| `{label}` | {statistics.median(times):.3f} s | {min(times):.3f} s "
            f"| {torch_seen} | {mpl_seen} |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per contender")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per contender")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--tasks", nargs="*", default=["mlp", "cnn"], choices=["mlp", "cnn", "tiny"]
    )
    parser.add_argument("--no-startup", action="store_true", help="skip the CLI start-up part")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    runners, notes = contenders()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs; "
        f"{args.steps} steps per run, {args.repeats} timed runs (median), "
        f"{args.warmup} warm-up runs, contenders interleaved; {os.getloadavg()[0]:.1f} load"
    )
    for note in notes:
        print(f"note: {note}")
    builders = {"mlp": digits_mlp, "cnn": images_cnn, "tiny": tiny_mlp}
    results: dict[str, dict[str, Timings]] = {}
    for key in args.tasks:
        tasks = {name: builders[key]() for name in runners}
        task = tasks["bare"]
        difference = _check_same_losses(task, args.steps)
        print(f"{task.name}: bare vs engine losses differ by at most {difference:.1e} (relative)")
        results[task.name] = time_task(tasks, runners, args.steps, args.repeats, args.warmup)
    print_table(results, args.steps)
    if not args.no_startup:
        startup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
