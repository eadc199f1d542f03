"""Scratch evaluation of the default recommendation against quality.py's ground truth.

Runs one ``range_test`` per task x seed (like ``quality.py``'s ``run_case``) with the library
found on ``sys.path`` (set PYTHONPATH to an older checkout to measure "before"), and scores the
default answer, the sweep-only ``lrfind`` rule and fastai's "minimum" with quality.py's
noise-aware band. The cost multiple is the range test's own record when it has one
(``refinement.cost_multiple``), else training steps plus every validation batch read, over the
sweep's steps. ``--json`` keeps every case's trials for offline replays of choice rules.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/recommend_eval.py --json runs/after.json
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/before .venv/bin/python benchmarks/recommend_eval.py
    .venv/bin/python benchmarks/recommend_eval.py --rescore runs/after.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality
from quality_tasks import TASKS_BY_NAME, BatchLoader

ROWS = ("default", "lrfind", "fastai-minimum")


def run_case(name: str, seed: int, offset: int, options: dict[str, Any]) -> dict[str, Any]:
    """One range test; every row's LR, the cost multiple, seconds and the trials."""
    from lrfind import range_test

    _, analyze = quality._lrfind_api()
    torch.set_num_threads(1)
    task = TASKS_BY_NAME[name]
    split = task.data()
    run_seed = seed + offset
    torch.manual_seed(run_seed)
    model = task.build_model()
    optimizer = task.make_optimizer(list(model.parameters()), 1e-3)
    train = BatchLoader(split.x_train, split.y_train, task.batch_size, run_seed)
    val = quality.RecordingValLoader(split.x_val, split.y_val, task.batch_size)
    started = time.perf_counter()
    result = range_test(
        model, optimizer, task.loss_fn, train, val_loader=val, seed=run_seed, **options
    )
    seconds = time.perf_counter() - started
    history = result.history
    refinement = result.refinement
    multiple = 1.0
    trials: list[dict[str, Any]] = []
    if refinement is not None:
        multiple = getattr(refinement, "cost_multiple", None) or (
            1
            + sum(t.steps + (len(val) if t.val_loss is not None else 0) for t in refinement.trials)
            / max(history.steps, 1)
        )
        trials = [t.to_dict() for t in refinement.trials]
    return {
        "task": name,
        "seed": seed,
        "lrs": {
            "default": result.suggestion.lr,
            "lrfind": analyze(history, "lrfind").suggestion.lr,
            "fastai-minimum": quality.fastai_minimum(history, result.info.planned_steps),
        },
        "method": result.suggestion.method,
        "confidence": result.confidence.level,
        "reasons": list(result.confidence.reasons),
        "cost_multiple": multiple,
        "seconds": seconds,
        "stage": getattr(refinement, "stage", "refine") if refinement is not None else None,
        "steps_per_trial": refinement.steps_per_trial if refinement is not None else None,
        "trials": trials,
    }


def score(cases: list[dict[str, Any]], truths: dict[str, Any]) -> str:
    """The table: per row, noise-aware hit, 5% band, answered, median regret, spread, cost."""
    lines = [
        "| row | noise-aware hit | 5% band | answered | median regret | worst spread "
        "| median cost x | max cost x |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        hits, bands, regrets, answered = [], [], [], 0
        by_task: dict[str, list[float]] = {}
        for case in cases:
            truth = truths[case["task"]]
            lr = case["lrs"][row]
            hits.append(truth.noise_hit(lr))
            bands.append(truth.band_hit(lr))
            regrets.append(truth.regret(lr))
            if lr is not None:
                answered += 1
                by_task.setdefault(case["task"], []).append(lr)
        spread = max((max(v) / min(v) for v in by_task.values() if len(v) > 1), default=1.0)
        costs = [c["cost_multiple"] for c in cases] if row == "default" else [1.0]
        lines.append(
            f"| {row} | {sum(hits) / len(hits):.0%} | {sum(bands) / len(bands):.0%} "
            f"| {answered}/{len(cases)} | {statistics.median(regrets):.1%} | {spread:.2f}x "
            f"| {statistics.median(costs):.2f} | {max(costs):.2f} |"
        )
    return "\n".join(lines)


def per_task(cases: list[dict[str, Any]], truths: dict[str, Any]) -> str:
    """Per task: default hits and the chosen LRs."""
    lines = []
    for name in dict.fromkeys(c["task"] for c in cases):
        mine = [c for c in cases if c["task"] == name]
        truth = truths[name]
        hits = sum(truth.noise_hit(c["lrs"]["default"]) for c in mine)
        lrs = " ".join(
            "none" if c["lrs"]["default"] is None else f"{c['lrs']['default']:.2g}" for c in mine
        )
        band = " ".join(f"{lr:.2g}" for lr in truth.noise_band())
        lines.append(f"{name}: {hits}/{len(mine)} chose [{lrs}] band [{band}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--seeds", nargs="*", type=int, default=list(quality.SEEDS))
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--rescore", type=Path, default=None)
    parser.add_argument("--set", nargs="*", default=[], help="range_test options, key=value")
    args = parser.parse_args(argv)
    truths = quality.load_ground_truth()
    if args.rescore is not None:
        cases = json.loads(args.rescore.read_text())["cases"]
    else:
        options: dict[str, Any] = {"refine": "on"}
        for item in args.set:
            key, value = item.split("=", 1)
            options[key] = value if value in ("on", "off", "auto") else float(value)
            if key in ("refine_steps", "refine_candidates"):
                options[key] = int(float(value))
        names = args.tasks or [n for n in TASKS_BY_NAME if n in truths]
        cases = []
        started = time.perf_counter()
        for name in names:
            for seed in args.seeds:
                cases.append(run_case(name, seed, args.seed_offset, options))
        print(f"{len(cases)} cases in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"options": options, "cases": cases}, indent=1))
    print(score(cases, truths))
    print(per_task(cases, truths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
