"""How far can short constant-LR trials see? The best LR by training length, per task.

lrfind's trials after a sweep train each candidate LR for a few dozen steps (the budget allows
about 3 sweeps' worth of steps in all); the benchmark's ground truth (quality.py) trains for the
task's full budget (300-400 steps). This script measures what that gap costs, independently of
any choice rule: for each task of ``quality_tasks.py`` it trains the grid LRs around the ground
truth's best (six quarter-decade steps below, four above) from seeds 0-2, records the full
validation loss at 25, 50, 100 and 200 steps and at the budget, and prints

* per task: the best LR (lowest mean over the seeds) at each horizon, and
* the **ceiling of a trial-based rule**: for trials of h steps, how often the LR that is best at
  h steps (per seed, on the full validation set, with every grid LR tried: more than any trial
  plan affords) is in the ground truth's noise-aware band (quality.py's primary metric).

No rule that picks among h-step trials can do better on average than that ceiling row, so it is
the yardstick for the recommendation's hit rate at a given trial length.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/horizon.py             # all tasks, ~5 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/horizon.py --carried   # from the long truth
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/horizon.py --tasks markov-gru --workers 1
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality
from quality_tasks import TASKS_BY_NAME

SEEDS = (0, 1, 2)
HORIZONS = (25, 50, 100, 200)
BELOW, ABOVE = 6, 4


def val_curve(job: tuple[str, float, int]) -> dict[int, float]:
    """Train one task at one constant LR from one seed; the val loss at each horizon."""
    name, lr, seed = job
    torch.set_num_threads(1)
    task = TASKS_BY_NAME[name]
    checkpoints = {h for h in HORIZONS if h < task.budget_steps} | {task.budget_steps}
    return quality.validation_curve(task, task.data(), lr, seed, checkpoints)


def carried_table(names: Sequence[str] | None = None) -> str:
    """The ceiling table read off the long ground truth (no training), with the drift carry.

    For each trial length h and each target horizon (the budget, 4x it): how often, per seed,
    the grid LR that is best after h steps lands in the target's noise-aware band, as it is
    ("best at h") and carried to the target by ``lr * (target / h) ** -beta`` with beta the
    median drift exponent of the *other* tasks (leave-one-task-out), put back on the grid.
    This is the drift model's ceiling: every grid LR tried, the whole validation set read.
    """
    import json

    from horizon_quality import drift_exponents, long_truths, loto_priors
    from horizon_truth import LONG_TRUTH_PATH
    from horizon_truth import SEEDS as LONG_SEEDS

    document = json.loads(LONG_TRUTH_PATH.read_text())["tasks"]
    priors = loto_priors(drift_exponents())
    targets = {"budget": quality.load_ground_truth(), "4x": long_truths(4)}
    chosen = [n for n in (names or document) if n in document]
    lines = [
        "| target | rule | " + " | ".join(f"h={h}" for h in HORIZONS) + " |",
        "|---|---|" + "---|" * len(HORIZONS),
    ]
    for target, truths in targets.items():
        for carried in (False, True):
            cells = []
            for h in HORIZONS:
                hits = []
                for name in chosen:
                    entry, truth = document[name], truths[name]
                    horizon = entry["budget_steps"] * (4 if target == "4x" else 1)
                    for seed in range(len(LONG_SEEDS)):
                        row = entry[str(h)]["per_seed"][seed]
                        scored = [(v, i) for i, v in enumerate(row) if v is not None]
                        if not scored:
                            hits.append(False)
                            continue
                        lr = quality.GRID[min(scored)[1]]
                        if carried:
                            factor = (horizon / h) ** -priors.get(name, 0.0)
                            lr = 10 ** (round(4 * math.log10(lr * factor)) / 4)
                        hits.append(truth.noise_hit(lr))
                cells.append(f"{sum(hits) / len(hits):.0%}")
            rule = "best at h, carried (LOTO prior)" if carried else "best at h"
            lines.append(f"| {target} | {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--carried",
        action="store_true",
        help="read the long ground truth (horizon_truth.py) instead of training: the ceiling "
        "at the budget and at 4x it, as is and carried by the drift prior",
    )
    args = parser.parse_args(argv)
    if args.carried:
        print(carried_table(args.tasks))
        return 0
    truths = quality.load_ground_truth()
    names = args.tasks or [n for n in TASKS_BY_NAME if n in truths]
    grids = {}
    for name in names:
        best = truths[name].best
        grids[name] = quality.GRID[max(0, best - BELOW) : best + ABOVE + 1]
    jobs = [(n, lr, s) for n in names for lr in grids[n] for s in SEEDS]
    with ProcessPoolExecutor(args.workers) as pool:
        curves = dict(zip(jobs, pool.map(val_curve, jobs), strict=True))
    labels = [*(str(h) for h in HORIZONS), "budget"]
    hits: dict[str, list[bool]] = {label: [] for label in labels}
    print("| task | " + " | ".join(f"best at {label}" for label in labels) + " | truth band |")
    print("|---|" + "---|" * (len(labels) + 1))
    for name in names:
        task, truth = TASKS_BY_NAME[name], truths[name]
        row = []
        for label, horizon in zip(labels, [*HORIZONS, task.budget_steps], strict=True):
            if horizon > task.budget_steps:
                row.append("-")
                continue

            def loss(lr: float, seed: int, at: int = horizon, task_name: str = name) -> float:
                return curves[(task_name, lr, seed)].get(at, math.inf)

            means = {lr: statistics.fmean(loss(lr, s) for s in SEEDS) for lr in grids[name]}
            row.append(quality.format_lr_set([min(means, key=means.__getitem__)]))
            for seed in SEEDS:
                hits[label].append(truth.noise_hit(min(grids[name], key=lambda x: loss(x, seed))))
        band = quality.format_lr_set(truth.noise_band())
        print(f"| {name} | " + " | ".join(row) + f" | {band} |")
    print(
        "| **ceiling: best-at-h trial hits** | "
        + " | ".join(f"{sum(h) / len(h):.0%} ({sum(h)}/{len(h)})" for h in hits.values())
        + " | |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
