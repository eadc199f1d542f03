"""Recommendation quality for a stated run: lrfind with ``train_steps`` against the ground truth
at that run's length, per horizon and schedule, with what each answer costs.

``quality.py`` scores the default (no run stated) against full trainings of the task's budget
(300-400 steps). This script states the run and scores the answer for it:

* ``budget``: the run is the task's budget (``train_steps=budget``), scored on
  ``quality_ground_truth.json`` (constant LR);
* ``4x``: a run four times as long, scored on ``quality_ground_truth_long.json`` at that
  checkpoint (``benchmarks/horizon_truth.py`` made it);
* ``onecycle``: a one-cycle run of the budget's length, ``suggestion.lr`` read as the peak,
  scored on the one-cycle ground truth (the first seven tasks), with the trials' schedule
  compressed to the last rung (the default) or truncated (``--truncate``);
* ``linear``: the same for a linear run (6% warmup, then decay to 0: Hugging Face's default
  shape), scored on ``quality_ground_truth_linear.json`` (``horizon_truth.py --linear``).

Rows per horizon: ``default`` (no run stated: today's answer, scored at that horizon),
``horizon, no drift`` (rungs only, ``drift_prior=None``), ``horizon (LOTO prior)`` (rungs plus
the drift carry, the prior fitted leave-one-task-out: a task is scored with the prior measured
on the other tasks' long ground truth, never its own) and ``horizon (shipped prior)``
(``DRIFT_PRIOR`` on every task). The two drift rows are derived from the no-drift cases'
recorded rungs (``recarry``: the same trials, the carry applied as ``range_test`` applies it),
which halves the training. Budgets: ``--budget`` (default 4 sweeps).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/horizon_quality.py --workers 2       # ~15 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/horizon_quality.py --horizons budget \
        --tasks markov-gru --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality
from horizon_truth import LONG_TRUTH_PATH, SCHEDULE_TRUTH_PATH
from quality_tasks import TASKS_BY_NAME, BatchLoader

from lrfind.analysis.horizon import DRIFT_PRIOR_WEIGHT

HORIZONS = ("budget", "4x", "onecycle", "linear")
SEEDS = (0, 1, 2, 3, 4)


# --------------------------------------------------------------------------- ground truths


def long_truths(multiple: int) -> dict[str, quality.Truth]:
    """The constant-LR ground truth at ``multiple`` x each task's budget (horizon_truth.py)."""
    document = json.loads(LONG_TRUTH_PATH.read_text())
    truths = {}
    for name, entry in document["tasks"].items():
        point = str(multiple * entry["budget_steps"])
        fake = {"optimizer": TASKS_BY_NAME[name].optimizer_name, "constant": entry[point]}
        truths[name] = quality.Truth.from_entry(name, fake)
    return truths


def onecycle_truths() -> dict[str, quality.Truth]:
    """The one-cycle ground truth (peak LR on the grid) read as a Truth, for noise-aware hits."""
    document = json.loads(quality.GROUND_TRUTH_PATH.read_text())
    truths = {}
    for name, entry in document["tasks"].items():
        if "onecycle" in entry:
            fake = {"optimizer": entry["optimizer"], "constant": entry["onecycle"]}
            truths[name] = quality.Truth.from_entry(name, fake)
    return truths


def linear_truths() -> dict[str, quality.Truth]:
    """The linear-schedule ground truth (horizon_truth.py --linear) read as a Truth."""
    if not SCHEDULE_TRUTH_PATH.exists():
        return {}
    document = json.loads(SCHEDULE_TRUTH_PATH.read_text())
    return {
        name: quality.Truth.from_entry(
            name, {"optimizer": entry["optimizer"], "constant": entry["linear"]}
        )
        for name, entry in document["tasks"].items()
    }


def best_lr_curve(entry: dict[str, Any], point: int) -> float | None:
    """The best LR at checkpoint ``point`` of a long-truth entry: the parabola vertex (in log
    LR) through the best mean loss over the seeds and its two neighbours."""
    per_seed = [
        [math.inf if v is None else v for v in row] for row in entry[str(point)]["per_seed"]
    ]
    mean = quality.mean_curve(per_seed)
    finite = [i for i, v in enumerate(mean) if math.isfinite(v)]
    if not finite:
        return None
    best = min(finite, key=lambda i: mean[i])
    x = math.log10(quality.GRID[best])
    if 0 < best < len(mean) - 1 and all(math.isfinite(mean[i]) for i in (best - 1, best + 1)):
        y0, y1, y2 = mean[best - 1], mean[best], mean[best + 1]
        curvature = y0 - 2 * y1 + y2
        if curvature > 0:
            x += 0.25 * (y0 - y2) / (2 * curvature)
    return float(10**x)


def drift_exponents() -> dict[str, float]:
    """Per task: beta of ``lr* ~ steps**-beta`` between the budget and 4x it (long truth)."""
    if not LONG_TRUTH_PATH.exists():
        return {}
    document = json.loads(LONG_TRUTH_PATH.read_text())
    exponents = {}
    for name, entry in document["tasks"].items():
        budget = entry["budget_steps"]
        points = [p for p in entry["checkpoints"] if p >= budget]
        xs, ys = [], []
        for point in points:
            lr = best_lr_curve(entry, point)
            if lr is not None:
                xs.append(math.log10(point))
                ys.append(math.log10(lr))
        if len(xs) >= 2:
            slope = float(np.polyfit(xs, ys, 1)[0])
            exponents[name] = min(1.0, max(0.0, -slope))
    return exponents


def loto_priors(exponents: dict[str, float]) -> dict[str, float]:
    """Each task's prior: the median exponent of the *other* tasks (leave-one-task-out)."""
    return {
        name: statistics.median([b for other, b in exponents.items() if other != name])
        for name in exponents
    }


# --------------------------------------------------------------------------- cases


def run_case(job: tuple[str, int, str, dict[str, Any]]) -> dict[str, Any]:
    """One range test for a task, seed and setting; its answer and cost."""
    from lrfind import range_test

    name, seed, row, options = job
    torch.set_num_threads(1)
    task = TASKS_BY_NAME[name]
    split = task.data()
    torch.manual_seed(seed)
    model = task.build_model()
    optimizer = task.make_optimizer(list(model.parameters()), 1e-3)
    train_loader = BatchLoader(split.x_train, split.y_train, task.batch_size, seed)
    val_loader = quality.RecordingValLoader(split.x_val, split.y_val, task.batch_size)
    started = time.perf_counter()
    result = range_test(
        model,
        optimizer,
        task.loss_fn,
        train_loader,
        val_loader=val_loader,
        refine="on",
        seed=seed,
        **options,
    )
    seconds = time.perf_counter() - started
    refinement = result.refinement
    sweep_steps = max(result.history.steps, 1)
    trained = 0
    if refinement is not None:
        rungs = refinement.rungs or (refinement.trials,)
        # A continued trial's steps count from the snapshot: only the new ones cost.
        seen: dict[float, int] = {}
        for rung in rungs:
            for trial in rung:
                trained += trial.steps - seen.get(trial.lr, 0)
                seen[trial.lr] = trial.steps
    val_batches = sum(len(batches) for batches in val_loader.passes)
    return {
        "task": name,
        "seed": seed,
        "row": row,
        "lr": result.suggestion.lr,
        "max_lr": result.lr_range.max_lr,
        "seconds": seconds,
        "cost": (sweep_steps + trained + val_batches) / sweep_steps,
        "reached": max((t.steps for t in refinement.trials), default=0) if refinement else 0,
        "drift": refinement.drift.factor if refinement and refinement.drift else None,
        "train_steps": options.get("train_steps"),
        "refinement": refinement.to_dict() if refinement is not None else None,
    }


def jobs_for(
    horizon: str,
    names: Sequence[str],
    seeds: Sequence[int],
    budget: float | str,
    priors: dict[str, float],
    shipped: float,
    truncate: bool,
) -> list[tuple[str, int, str, dict[str, Any]]]:
    """The cases of one horizon: every row for every task and seed."""
    jobs = []
    for name in names:
        steps = TASKS_BY_NAME[name].budget_steps * (4 if horizon == "4x" else 1)
        stated: dict[str, Any] = {"train_steps": steps, "budget": budget}
        if horizon == "onecycle":
            stated["train_schedule"] = "onecycle"
        if horizon == "linear":
            stated["train_schedule"] = "linear"
            stated["train_warmup"] = quality.LINEAR_WARMUP
        rows: dict[str, dict[str, Any]] = {
            "default": {"budget": budget if isinstance(budget, float) else 4.0},
            "horizon, no drift": {**stated, "drift_prior": None},
        }
        if horizon in ("onecycle", "linear") and truncate:
            rows["horizon, no drift, truncated schedule"] = {
                **stated,
                "drift_prior": None,
                "compress_schedule": False,
            }
        for row, options in rows.items():
            jobs.extend((name, seed, row, options) for seed in seeds)
    return jobs


def score(cases: Sequence[dict[str, Any]], truths: dict[str, quality.Truth], horizon: str) -> str:
    """The cost-quality table of one horizon, then hits per task."""
    rows = list(dict.fromkeys(c["row"] for c in cases))
    names = list(dict.fromkeys(c["task"] for c in cases))
    lines = [
        f"#### horizon: {horizon}",
        "",
        "| method | hit (noise-aware) | hit 5% band | answered | median regret | worst seed "
        "spread | cost x sweep (steps) | finalists' steps (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        mine = [c for c in cases if c["row"] == row and c["task"] in truths]
        hits = [truths[c["task"]].noise_hit(c["lr"]) for c in mine]
        band = [truths[c["task"]].band_hit(c["lr"]) for c in mine]
        regrets = [truths[c["task"]].regret(c["lr"]) for c in mine]
        answered = sum(c["lr"] is not None for c in mine)
        spreads = []
        for name in names:
            lrs = [c["lr"] for c in mine if c["task"] == name and c["lr"]]
            if len(lrs) > 1:
                spreads.append(max(lrs) / min(lrs))
        reached = [c["reached"] for c in mine if c["reached"]]
        lines.append(
            f"| {row} | {sum(hits) / len(mine):.0%} | {sum(band) / len(mine):.0%} | "
            f"{answered}/{len(mine)} | {100 * statistics.median(regrets):.1f}% | "
            f"{max(spreads, default=1):.2f}x | {statistics.median(c['cost'] for c in mine):.1f} | "
            f"{statistics.median(reached) if reached else 0:.0f} |"
        )
    lines += ["", "| task | band | " + " | ".join(rows) + " |", "|---|---|" + "---|" * len(rows)]
    for name in names:
        if name not in truths:
            continue
        cells = []
        for row in rows:
            mine = [c for c in cases if c["row"] == row and c["task"] == name]
            hits = sum(truths[name].noise_hit(c["lr"]) for c in mine)
            lrs = " ".join(quality._fmt_lr(c["lr"]) for c in mine)
            cells.append(f"{hits}/{len(mine)}: {lrs}")
        band = quality.format_lr_set(truths[name].noise_band())
        lines.append(f"| {name} | {band} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def recarry(case: dict[str, Any], prior: float, weight: float) -> float | None:
    """A horizon case's answer with another drift prior and weight, from its recorded rungs
    (no training): the finalists' choice carried by the re-estimated drift, on the grid."""
    from lrfind.analysis.choose import choose
    from lrfind.analysis.grid import grid_exponent, grid_lr
    from lrfind.analysis.horizon import estimate_drift
    from lrfind.results import Refinement

    record = case.get("refinement")
    if not record or not record.get("rungs") or case["lr"] is None:
        return case["lr"]
    refinement = Refinement.from_dict(record)
    chosen = choose(refinement.trials).chosen_lr
    if chosen is None:
        return None
    drift = estimate_drift(refinement.rungs, case["train_steps"], prior=prior, prior_weight=weight)
    if drift is None or drift.factor >= 1:
        return chosen
    return min(chosen, grid_lr(grid_exponent(chosen * drift.factor)))


def carried_rows(
    cases: Sequence[dict[str, Any]], priors: dict[str, float], shipped: float
) -> list[dict[str, Any]]:
    """The drift rows, derived from the "no drift" cases' recorded rungs (``recarry``): what
    ``range_test`` answers with that prior on the same trials, without training them again.
    """
    derived = []
    for case in cases:
        if not case["row"].startswith("horizon, no drift"):
            continue
        variants = {
            "LOTO prior": priors.get(case["task"], shipped),
            "shipped prior": shipped,
        }
        for label, prior in variants.items():
            row = case["row"].replace("no drift", label)
            derived.append({**case, "row": row, "lr": recarry(case, prior, DRIFT_PRIOR_WEIGHT)})
    return derived


PRIOR_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
WEIGHT_GRID = (2.0, 1e9)


def rescore_priors(path: Path) -> str:
    """Drift priors chosen leave-one-task-out on a --json file's recorded rungs (no training).

    For every (prior, weight) on PRIOR_GRID x WEIGHT_GRID, each "horizon, no drift" case is
    re-carried (``recarry``). A task is scored with the setting that hits most often on the
    *other* tasks of the same horizon (ties: the smaller prior), so no task picks its own.
    Prints, per horizon: every setting's hit rate on all tasks, and the LOTO-selected result.
    """
    saved = json.loads(path.read_text())["cases"]
    truth_sets = {
        "budget": quality.load_ground_truth(),
        "4x": long_truths(4),
        "onecycle": onecycle_truths(),
        "linear": linear_truths(),
    }
    lines = []
    for horizon, cases in saved.items():
        truths = truth_sets.get(horizon) or {}
        mine = [c for c in cases if c["row"] == "horizon, no drift" and c["task"] in truths]
        if not mine:
            continue
        settings = [(p, w) for p in PRIOR_GRID for w in WEIGHT_GRID]
        hit: dict[tuple[float, float], list[tuple[str, bool]]] = {}
        for setting in settings:
            hit[setting] = [
                (c["task"], truths[c["task"]].noise_hit(recarry(c, *setting))) for c in mine
            ]
        lines += [f"#### {horizon}", "", "| prior | weight | hit (noise-aware) |", "|---|---|---|"]
        for (prior, weight), marks in hit.items():
            rate = sum(m for _, m in marks) / len(marks)
            shown = "prior only" if weight > 1e6 else f"{weight:g}"
            lines.append(f"| {prior:g} | {shown} | {rate:.0%} |")
        loto_hits = []
        chosen = {}
        for task in dict.fromkeys(c["task"] for c in mine):

            def others(
                setting: tuple[float, float],
                held: str = task,
                table: dict[tuple[float, float], list[tuple[str, bool]]] = hit,
            ) -> float:
                return sum(m for t, m in table[setting] if t != held)

            best = max(settings, key=lambda st: (others(st), -st[0]))
            chosen[task] = best
            loto_hits += [m for t, m in hit[best] if t == task]
        picks = ", ".join(
            f"{t} {p:g}/{'prior' if w > 1e6 else int(w)}" for t, (p, w) in chosen.items()
        )
        lines += [
            "",
            f"LOTO-selected: {sum(loto_hits) / len(loto_hits):.0%} ({sum(loto_hits)}/"
            f"{len(loto_hits)}); picks: {picks}",
            "",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--horizons", nargs="*", choices=HORIZONS, default=list(HORIZONS))
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--budget", default="4", help="sweeps (4) or a share of the run (50%%)")
    parser.add_argument("--truncate", action="store_true", help="onecycle: also truncated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write every case here")
    parser.add_argument(
        "--rescore-priors", type=Path, default=None, help="re-carry a --json file's rungs"
    )
    args = parser.parse_args(argv)
    if args.rescore_priors is not None:
        print(rescore_priors(args.rescore_priors))
        return 0
    from lrfind.analysis.horizon import DRIFT_PRIOR

    budget: float | str = args.budget if args.budget.endswith("%") else float(args.budget)
    exponents = drift_exponents()
    priors = loto_priors(exponents)
    print("drift exponent between the budget and 4x it, per task (long ground truth):")
    print("  " + ", ".join(f"{n} {b:.2f}" for n, b in exponents.items()))
    if exponents:
        print(f"  median {statistics.median(exponents.values()):.2f}; shipped {DRIFT_PRIOR}")
    truth_sets = {
        "budget": quality.load_ground_truth(),
        "4x": long_truths(4) if LONG_TRUTH_PATH.exists() else {},
        "onecycle": onecycle_truths(),
        "linear": linear_truths(),
    }
    everything: dict[str, list[dict[str, Any]]] = {}
    for horizon in args.horizons:
        truths = truth_sets[horizon]
        names = [n for n in (args.tasks or TASKS_BY_NAME) if n in truths]
        jobs = jobs_for(horizon, names, args.seeds, budget, priors, DRIFT_PRIOR, args.truncate)
        started = time.perf_counter()
        with ProcessPoolExecutor(args.workers) as pool:
            cases = list(pool.map(run_case, jobs))
        cases += carried_rows(cases, priors, DRIFT_PRIOR)
        print(f"\n{len(cases)} cases in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        print(score(cases, truths, horizon))
        everything[horizon] = cases
    if args.json is not None:
        args.json.write_text(json.dumps({"budget": args.budget, "cases": everything}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
