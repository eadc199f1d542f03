"""Ground truth at several training lengths: the grid LRs around each task's best, trained 4x
as long as ``quality.py``'s ground truth, with the full validation loss at checkpoints.

A constant-LR run does not know how long it will last, so one run of ``4 x budget`` steps gives
the ground truth at every checkpoint along the way: at the task's budget (the horizon
``quality.py`` scores) and at 2x and 4x it (the "runs 3x as long" case). Per task: seeds 0-2,
the quarter-decade grid LRs from five steps below the budget's best to one above (the best LR
falls with training length, so the window leans down). LRs outside the window are recorded as
not trained (null), which the scoring reads as "not in any band".

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/horizon_truth.py --workers 2   # ~25 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/horizon_truth.py --linear     # ~10 min

Each finished run is appended to ``quality_ground_truth_long.partial.jsonl`` as it ends, and a
rerun skips what is there (the file is removed once the ground truth is written).

Writes ``benchmarks/quality_ground_truth_long.json``: per task, ``checkpoints`` and for each
checkpoint ``{"per_seed": [[loss or null per grid LR] per seed]}`` (``quality.Truth`` reads one
such entry as ``{"constant": ...}``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality
from quality_tasks import TASKS_BY_NAME

LONG_TRUTH_PATH = Path(__file__).resolve().parent / "quality_ground_truth_long.json"
PARTIAL_PATH = LONG_TRUTH_PATH.with_suffix(".partial.jsonl")
SEEDS = (0, 1, 2)
BELOW, ABOVE = 5, 1
#: Checkpoints as multiples of the task's budget, plus the short horizons horizon.py reads.
MULTIPLES = (1, 2, 4)
SHORT = (25, 50, 100, 200)


def checkpoints_for(budget: int) -> list[int]:
    """The steps at which a task's runs read the full validation loss."""
    return sorted({*SHORT, *(m * budget for m in MULTIPLES)})


def _job(job: tuple[str, int, int]) -> tuple[str, int, int, dict[int, float], float]:
    name, index, seed = job
    torch.set_num_threads(1)
    task = TASKS_BY_NAME[name]
    started = time.perf_counter()
    curve = quality.validation_curve(
        task, task.data(), quality.GRID[index], seed, set(checkpoints_for(task.budget_steps))
    )
    return name, index, seed, curve, time.perf_counter() - started


SCHEDULE_TRUTH_PATH = Path(__file__).resolve().parent / "quality_ground_truth_linear.json"


def _schedule_job(job: tuple[str, int, int]) -> tuple[str, int, int, float]:
    name, index, seed = job
    torch.set_num_threads(1)
    task = TASKS_BY_NAME[name]
    loss = quality.train_and_validate(task, task.data(), quality.GRID[index], seed, "linear")
    return name, index, seed, loss


def linear_truth(names: Sequence[str], workers: int) -> None:
    """Ground truth for a ``linear`` run (warmup, then decay to 0) of each task's budget: the
    peak LRs from two grid steps below the constant best to six above, seeds 0-2; written to
    ``quality_ground_truth_linear.json`` in quality_ground_truth.json's format."""
    truths = quality.load_ground_truth()
    jobs = []
    for name in names:
        best = truths[name].best
        low, high = max(0, best - 2), min(len(quality.GRID) - 1, best + 6)
        jobs += [(name, i, s) for i in range(low, high + 1) for s in SEEDS]
    losses: dict[tuple[str, int, int], float] = {}
    with ProcessPoolExecutor(workers) as pool:
        for name, index, seed, loss in pool.map(_schedule_job, jobs):
            losses[(name, index, seed)] = loss
    document: dict[str, Any] = {
        "description": f"final val loss of a linear run (warmup {quality.LINEAR_WARMUP:g})",
        "grid": list(quality.GRID),
        "seeds": list(SEEDS),
        "tasks": {},
    }
    for name in names:
        per_seed = [
            [
                quality._json_loss(losses[(name, i, s)]) if (name, i, s) in losses else None
                for i in range(len(quality.GRID))
            ]
            for s in SEEDS
        ]
        document["tasks"][name] = {
            "optimizer": TASKS_BY_NAME[name].optimizer_name,
            "budget_steps": TASKS_BY_NAME[name].budget_steps,
            "linear": {"per_seed": per_seed},
        }
    SCHEDULE_TRUTH_PATH.write_text(json.dumps(document, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--linear", action="store_true", help="the linear-schedule ground truth instead"
    )
    args = parser.parse_args(argv)
    truths = quality.load_ground_truth()
    names = args.tasks or list(truths)
    if args.linear:
        linear_truth(names, args.workers)
        return 0
    jobs = []
    for name in names:
        best = truths[name].best
        low, high = max(0, best - BELOW), min(len(quality.GRID) - 1, best + ABOVE)
        jobs += [(name, i, s) for i in range(low, high + 1) for s in SEEDS]
    # Longest first so the pool's tail is short.
    jobs.sort(key=lambda j: -TASKS_BY_NAME[j[0]].budget_steps * (3 if "text" in j[0] else 1))
    results: dict[str, dict[tuple[int, int], dict[int, float]]] = {n: {} for n in names}
    seconds = dict.fromkeys(names, 0.0)
    if PARTIAL_PATH.exists():
        for line in PARTIAL_PATH.read_text().splitlines():
            name, index, seed, curve, took = json.loads(line)
            if name in results:
                results[name][(index, seed)] = {int(k): v for k, v in curve.items()}
                seconds[name] += took
    jobs = [(n, i, s) for n, i, s in jobs if (i, s) not in results[n]]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool, PARTIAL_PATH.open("a") as partial:
        for done, (name, index, seed, curve, took) in enumerate(pool.map(_job, jobs), 1):
            results[name][(index, seed)] = curve
            seconds[name] += took
            partial.write(json.dumps([name, index, seed, curve, took]) + "\n")
            partial.flush()
            if done % 20 == 0 or done == len(jobs):
                print(f"[{done}/{len(jobs)}] {time.perf_counter() - started:.0f}s", file=sys.stderr)
    document: dict[str, Any] = {"grid": list(quality.GRID), "seeds": list(SEEDS), "tasks": {}}
    if LONG_TRUTH_PATH.exists():
        previous = json.loads(LONG_TRUTH_PATH.read_text())
        if previous.get("grid") == document["grid"]:
            document = previous
    for name in names:
        task = TASKS_BY_NAME[name]
        points = checkpoints_for(task.budget_steps)
        entry: dict[str, Any] = {
            "budget_steps": task.budget_steps,
            "checkpoints": points,
            "seconds": round(seconds[name], 1),
            "torch": torch.__version__,
        }
        for point in points:
            per_seed = []
            for seed in SEEDS:
                row: list[float | None] = []
                for index in range(len(quality.GRID)):
                    curve = results[name].get((index, seed))
                    row.append(None if curve is None else quality._json_loss(curve[point]))
                per_seed.append(row)
            entry[str(point)] = {"per_seed": per_seed}
        document["tasks"][name] = entry
    LONG_TRUTH_PATH.write_text(json.dumps(document, indent=1) + "\n")
    PARTIAL_PATH.unlink(missing_ok=True)
    print(f"wrote {LONG_TRUTH_PATH} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
