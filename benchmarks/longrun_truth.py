"""Ground truth in the users' regime: runs 1x to 100x a 100-step sweep (``longrun_tasks.py``).

Per task, seeds 0-2, on the quarter-decade grid:

* **constant LR**: one 10k-step run per grid LR serves every checkpoint (100, 200, 400, 1k,
  2k, 4k and 10k steps: 1x to 100x the sweep), each the full validation loss;
* **linear and cosine** (6% warmup, then decay to 0; Hugging Face's shapes), one run per peak
  LR at each horizon of ``SCHEDULE_HORIZONS``, scored by the final validation loss.

The grid window is not fixed: it starts at ``START_WINDOWS`` (constant) or around the constant
best at that horizon (schedules: one step below to three above) and widens one grid step at a
time while the best mean loss at any checkpoint sits on its edge, so every band is inside it
(an edge where every seed diverged is not widened).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/longrun_truth.py --workers 2   # ~35 min

Finished runs are appended to ``longrun_ground_truth.partial.jsonl`` as they end, and a rerun
skips them (the file is removed once the ground truth is written). Writes
``benchmarks/longrun_ground_truth.json``: per task, ``{"constant": {step: {"per_seed": ...}},
"linear@1000": {"per_seed": ...}, ...}`` with null for a diverged or untrained LR, plus the
CPU seconds it took.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality
from longrun_tasks import LONG_TASKS_BY_NAME, START_WINDOWS

TRUTH_PATH = Path(__file__).resolve().parent / "longrun_ground_truth.json"
PARTIAL_PATH = TRUTH_PATH.with_suffix(".partial.jsonl")
SEEDS = (0, 1, 2)
CHECKPOINTS = (100, 200, 400, 1000, 2000, 4000, 10000)
SCHEDULES = ("linear", "cosine")
SCHEDULE_HORIZONS = (1000, 4000)
#: Grid index of exponent k (LR 10**(k/4)).
OFFSET = -min(quality.GRID_EXPONENTS)

#: A job: (task, curve key, grid index, seed); curve key "constant" or "linear@1000"...
Job = tuple[str, str, int, int]


def _run(job: Job) -> tuple[Job, dict[int, float], float]:
    name, key, index, seed = job
    torch.set_num_threads(1)
    task = LONG_TASKS_BY_NAME[name]
    started = time.process_time()
    split = _split(name)
    lr = quality.GRID[index]
    if key == "constant":
        curve = quality.validation_curve(task, split, lr, seed, set(CHECKPOINTS))
    else:
        schedule, horizon = key.split("@")
        curve = quality.validation_curve(
            task, split, lr, seed, {int(horizon)}, schedule, total_steps=int(horizon)
        )
    return job, curve, time.process_time() - started


_SPLITS: dict[str, Any] = {}


def _split(name: str) -> Any:
    """The task's data, made once per worker process."""
    data = LONG_TASKS_BY_NAME[name].data
    key = getattr(data, "__name__", name)
    if key not in _SPLITS:
        _SPLITS[key] = data()
    return _SPLITS[key]


def mean_losses(curves: dict[tuple[int, int], dict[int, float]], step: int) -> dict[int, float]:
    """Mean loss over seeds per grid index at ``step`` (inf when any seed diverged), for the
    indices every seed has finished."""
    by_index: dict[int, list[float]] = {}
    for (index, _seed), curve in curves.items():
        by_index.setdefault(index, []).append(curve[step])
    return {
        index: float(np.mean(values)) if all(map(math.isfinite, values)) else math.inf
        for index, values in by_index.items()
        if len(values) == len(SEEDS)
    }


def widen(window: tuple[int, int], means: Sequence[dict[int, float]]) -> tuple[int, int]:
    """The window one step wider at each edge where some checkpoint's best sits on it."""
    low, high = window
    new_low, new_high = low, high
    for mean in means:
        finite = {i: v for i, v in mean.items() if math.isfinite(v)}
        if not finite:
            continue
        best = min(finite, key=finite.__getitem__)
        if best == low:
            new_low = low - 1
        if best == high:
            new_high = high + 1
    return max(0, new_low), min(len(quality.GRID) - 1, new_high)


class Curve:
    """The runs of one (task, curve key): its window and what has finished."""

    def __init__(self, name: str, key: str, window: tuple[int, int]) -> None:
        self.name, self.key, self.window = name, key, window
        self.done: dict[tuple[int, int], dict[int, float]] = {}
        self.pending: set[tuple[int, int]] = set()
        self.seconds = 0.0

    @property
    def steps(self) -> tuple[int, ...]:
        return CHECKPOINTS if self.key == "constant" else (int(self.key.split("@")[1]),)

    def wanted(self) -> list[Job]:
        """Jobs the window needs that are neither done nor running."""
        low, high = self.window
        return [
            (self.name, self.key, index, seed)
            for index in range(low, high + 1)
            for seed in SEEDS
            if (index, seed) not in self.done and (index, seed) not in self.pending
        ]

    def settle(self) -> bool:
        """When the window is complete, widen it where needed; True when it is final."""
        if self.pending or self.wanted():
            return False
        wider = widen(self.window, [mean_losses(self.done, step) for step in self.steps])
        if wider == self.window:
            return True
        self.window = wider
        return False

    def best_index(self, step: int) -> int:
        means = mean_losses(self.done, step)
        return min(means, key=means.__getitem__)


def load_partial() -> list[tuple[Job, dict[int, float], float]]:
    """Runs a previous, interrupted call finished."""
    if not PARTIAL_PATH.exists():
        return []
    runs = []
    for line in PARTIAL_PATH.read_text().splitlines():
        job, curve, seconds = json.loads(line)
        runs.append((tuple(job), {int(k): v for k, v in curve.items()}, seconds))
    return runs


def run_all(names: Sequence[str], workers: int) -> dict[tuple[str, str], Curve]:
    """Train every curve's window to completion, widening windows as results come in."""
    curves: dict[tuple[str, str], Curve] = {}
    for name in names:
        low, high = START_WINDOWS[name]
        curves[(name, "constant")] = Curve(name, "constant", (low + OFFSET, high + OFFSET))
    previous = load_partial()
    started = time.perf_counter()
    finished = 0
    with ProcessPoolExecutor(workers) as pool, PARTIAL_PATH.open("a") as partial:
        running: dict[Future[Any], Job] = {}

        def record(job: Job, curve: dict[int, float], seconds: float) -> None:
            name, key, index, seed = job
            entry = curves[(name, key)]
            entry.pending.discard((index, seed))
            entry.done[(index, seed)] = curve
            entry.seconds += seconds

        def schedule_more() -> None:
            for (name, key), entry in list(curves.items()):
                if entry.settle() and key == "constant":
                    for schedule in SCHEDULES:
                        for horizon in SCHEDULE_HORIZONS:
                            curve_key = f"{schedule}@{horizon}"
                            if (name, curve_key) not in curves:
                                best = entry.best_index(horizon)
                                curves[(name, curve_key)] = Curve(
                                    name, curve_key, (max(0, best - 1), best + 3)
                                )
            again = False
            for entry in curves.values():
                for job in entry.wanted():
                    done = next((r for r in previous if r[0] == job), None)
                    if done is not None:
                        record(*done)
                        again = True
                        continue
                    entry.pending.add((job[2], job[3]))
                    running[pool.submit(_run, job)] = job
            if again:
                schedule_more()

        schedule_more()
        while running:
            ready, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in ready:
                running.pop(future)
                job, curve, seconds = future.result()
                record(job, curve, seconds)
                partial.write(json.dumps([list(job), curve, seconds]) + "\n")
                partial.flush()
                finished += 1
                if finished % 25 == 0:
                    print(
                        f"[{finished} runs, {len(running)} running] "
                        f"{time.perf_counter() - started:.0f}s",
                        file=sys.stderr,
                    )
            schedule_more()
    return curves


def document(curves: dict[tuple[str, str], Curve], wall: float, workers: int) -> dict[str, Any]:
    """The ground truth's JSON form."""
    result: dict[str, Any] = {
        "description": (
            "final val loss per grid LR and seed: constant LR at each checkpoint, linear and "
            "cosine (6% warmup, decay to 0) by their peak at each horizon"
        ),
        "grid": list(quality.GRID),
        "seeds": list(SEEDS),
        "sweep_steps": 100,
        "checkpoints": list(CHECKPOINTS),
        "schedule_horizons": list(SCHEDULE_HORIZONS),
        "wall_seconds": round(wall),
        "workers": workers,
        "torch": torch.__version__,
        "tasks": {},
    }
    for (name, key), entry in sorted(curves.items()):
        task = LONG_TASKS_BY_NAME[name]
        record = result["tasks"].setdefault(
            name,
            {"optimizer": task.optimizer_name, "kind": task.kind, "batch_size": task.batch_size},
        )
        for step in entry.steps:
            per_seed = [
                [
                    quality._json_loss(entry.done[(i, s)][step]) if (i, s) in entry.done else None
                    for i in range(len(quality.GRID))
                ]
                for s in SEEDS
            ]
            label = str(step) if key == "constant" else key
            record.setdefault("constant" if key == "constant" else "schedules", {})[label] = {
                "per_seed": per_seed
            }
        record.setdefault("windows", {})[key] = list(entry.window)
        record.setdefault("cpu_seconds", 0.0)
        record["cpu_seconds"] = round(record["cpu_seconds"] + entry.seconds, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    names = args.tasks or list(LONG_TASKS_BY_NAME)
    started = time.perf_counter()
    curves = run_all(names, args.workers)
    truth = document(curves, time.perf_counter() - started, args.workers)
    TRUTH_PATH.write_text(json.dumps(truth, indent=1) + "\n")
    PARTIAL_PATH.unlink(missing_ok=True)
    print(f"wrote {TRUTH_PATH} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
