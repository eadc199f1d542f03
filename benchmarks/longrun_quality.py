"""Recommendation quality for long stated runs: lrfind with ``train:`` against the long-run
ground truth (``longrun_truth.py``: runs of 10x to 100x a 100-step sweep), beside the
one-sweep rules read off the same sweeps.

Per task of ``longrun_tasks.py`` and seed (0-2), one range test with no run stated, then one
per stated run: constant LR at 1k, 4k and 10k steps; linear and cosine (6% warmup, decay to 0;
the answer is the peak) at 1k and 4k. Each uses the default budget for that run (what a user
who states the run and nothing else gets). Scored at the stated run's horizon on the ground
truth: the noise-aware band (``quality.Truth.noise_hit``), regret, and the seed spread (the
largest max/min ratio of a task's answers). The one-sweep rules (fastai's minimum and valley,
the steepest-descent rule of Lightning and torch-lr-finder, lrfind's sweep-only rule) and the
answer with no run stated are scored against the same horizons. Confidence is calibrated:
the share of answers in the band per confidence level.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/longrun_quality.py --workers 2   # ~10 min
    .venv/bin/python benchmarks/longrun_quality.py --rescore    # from the cached cases

Writes ``benchmarks/longrun_quality_cases.json`` (every answer, for rescoring) and prints the
tables README/benchmarks/README.md show.
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality
from longrun_tasks import LONG_TASKS_BY_NAME
from longrun_truth import SEEDS, TRUTH_PATH
from quality_tasks import BatchLoader

CASES_PATH = Path(__file__).resolve().parent / "longrun_quality_cases.json"
#: Stated runs: (schedule, steps). The answer for a schedule is its peak LR.
RUNS: tuple[tuple[str, int], ...] = (
    ("constant", 1000),
    ("constant", 4000),
    ("constant", 10000),
    ("linear", 1000),
    ("linear", 4000),
    ("cosine", 1000),
    ("cosine", 4000),
)
WARMUP = quality.LINEAR_WARMUP
ONE_SWEEP_ROWS = ("fastai-minimum", "fastai-valley", "steepest", "lrfind")


class FixedBatches:
    """The validation split in fixed batches (at most 32 of them)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
        size = max(batch_size, math.ceil(len(x) / 32))
        self.batches = [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Any:
        return iter(self.batches)


def run_case(job: tuple[str, int, dict[str, float]]) -> dict[str, Any]:
    """Every range test of one task and seed: no run stated, then each of RUNS.

    The job's third part overrides module constants of ``lrfind.analysis.horizon`` by name (a
    what-if run: ``--set DRIFT_PRIOR_WEIGHT=0``); ``drift_prior`` is range_test's keyword.
    """
    import lrfind.analysis.horizon as horizon
    from lrfind import range_test

    _, analyze = quality._lrfind_api()
    name, seed, overrides = job
    keywords: dict[str, Any] = {}
    for key, value in overrides.items():
        if key == "drift_prior":
            keywords[key] = value
        else:
            setattr(horizon, key, value)
    torch.set_num_threads(1)
    task = LONG_TASKS_BY_NAME[name]
    split = task.data()
    record: dict[str, Any] = {"task": name, "seed": seed, "runs": {}}
    for schedule, steps in [("none", 0), *RUNS]:
        torch.manual_seed(seed)
        model = task.build_model()
        optimizer = task.make_optimizer(list(model.parameters()), 1e-3)
        train = BatchLoader(split.x_train, split.y_train, task.batch_size, seed)
        val = FixedBatches(split.x_val, split.y_val, task.batch_size)
        stated: dict[str, Any] = {}
        if schedule != "none":
            stated = {"train_steps": steps, "train_schedule": schedule}
            if schedule != "constant":
                stated["train_warmup"] = WARMUP
        started = time.perf_counter()
        result = range_test(
            model, optimizer, task.loss_fn, train, val_loader=val, seed=seed, **stated, **keywords
        )
        seconds = time.perf_counter() - started
        refinement = result.refinement
        key = "none" if schedule == "none" else f"{schedule}@{steps}"
        record["runs"][key] = {
            "lr": result.suggestion.lr,
            "confidence": result.confidence.level,
            "reasons": list(result.confidence.reasons),
            "answer_steps": result.answer_steps,
            "stage": refinement.stage if refinement else None,
            "cost_steps": refinement.cost_steps if refinement else 0.0,
            "sweep_steps": result.history.steps,
            "rungs": [
                [[t.lr, t.steps, t.val_loss] for t in rung] for rung in (refinement.rungs or ())
            ]
            if refinement
            else [],
            "seconds": round(seconds, 2),
            "drift": refinement.drift.to_dict() if refinement and refinement.drift else None,
            "finalist_steps": refinement.longest_trial if refinement else 0,
        }
        if schedule == "none":
            history = result.history
            planned = result.info.planned_steps or history.steps
            record["one_sweep"] = {
                "fastai-minimum": quality.fastai_minimum(history, planned),
                "fastai-valley": quality.fastai_valley(history, planned),
                "steepest": analyze(history, "steepest").suggestion.lr,
                "lrfind": analyze(history, "lrfind").suggestion.lr,
            }
    return record


def truths(path: Path = TRUTH_PATH) -> dict[str, dict[str, quality.Truth]]:
    """Per task, a Truth per horizon key ("constant@1000", "linear@4000", ...)."""
    document = json.loads(path.read_text())
    found: dict[str, dict[str, quality.Truth]] = {}
    for name, entry in document["tasks"].items():
        per_key: dict[str, quality.Truth] = {}
        entry.setdefault("optimizer", "")
        for step, values in entry["constant"].items():
            per_key[f"constant@{step}"] = quality.Truth.from_entry(
                name, {"optimizer": entry["optimizer"], "constant": values}
            )
        for key, values in entry.get("schedules", {}).items():
            per_key[key] = quality.Truth.from_entry(
                name, {"optimizer": entry["optimizer"], "constant": values}
            )
        found[name] = per_key
    return found


def _answers(cases: Sequence[dict[str, Any]], key: str, row: str) -> list[tuple[str, float | None]]:
    """(task, answer) of ``row`` for the stated run ``key``."""
    found = []
    for case in cases:
        if row == "stated":
            found.append((case["task"], case["runs"][key]["lr"]))
        elif row == "no run stated":
            found.append((case["task"], case["runs"]["none"]["lr"]))
        else:
            found.append((case["task"], case["one_sweep"][row]))
    return found


def score(answers: Sequence[tuple[str, float | None]], key: str, truth: Any) -> dict[str, Any]:
    """Hit rate (noise-aware), median regret and worst seed spread of answers at ``key``."""
    hits, regrets, by_task = [], [], {}
    for task, lr in answers:
        if key not in truth.get(task, {}):
            continue  # a ground truth still being made
        entry = truth[task][key]
        hits.append(entry.noise_hit(lr))
        regrets.append(entry.regret(lr))
        by_task.setdefault(task, []).append(lr)
    spreads = [max(lrs) / min(lrs) if all(lrs) else math.inf for lrs in by_task.values()]
    return {
        "hit": sum(hits) / len(hits),
        "regret": statistics.median(regrets),
        "spread": max(spreads),
        "n": len(hits),
    }


def report(cases: Sequence[dict[str, Any]], truth_path: Path = TRUTH_PATH) -> str:
    """The tables: per stated run, each row's hits, regret and spread; then calibration."""
    truth = truths(truth_path)
    keys = [f"{schedule}@{steps}" for schedule, steps in RUNS]
    rows = ["stated", "no run stated", *ONE_SWEEP_ROWS]
    lines = [
        "| stated run | " + " | ".join(rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for key in keys:
        cells = []
        for row in rows:
            s = score(_answers(cases, key, row), key, truth)
            cells.append(f"{s['hit']:.0%} ({s['regret']:.1%}, {s['spread']:.1f}x)")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: noise-aware hits (median regret, worst seed spread).", ""]
    levels: dict[str, list[bool]] = {}
    for case in cases:
        for key in keys:
            run = case["runs"][key]
            if key not in truth.get(case["task"], {}):
                continue
            levels.setdefault(run["confidence"], []).append(
                truth[case["task"]][key].noise_hit(run["lr"])
            )
    lines += ["| confidence | answers | in the band |", "|---|---|---|"]
    for level in ("high", "medium", "low", "none"):
        if level in levels:
            got = levels[level]
            lines.append(f"| {level} | {len(got)} | {sum(got) / len(got):.0%} |")
    costs = [
        (case["runs"][key]["cost_steps"] + case["runs"][key]["sweep_steps"]) / 100
        for case in cases
        for key in keys
    ]
    lines += ["", f"Cost: median {statistics.median(costs):.1f} sweeps, max {max(costs):.1f}."]
    per_task = []
    for task in sorted({c["task"] for c in cases}):
        mine = [c for c in cases if c["task"] == task]
        hits = [
            truth[task][k].noise_hit(c["runs"][k]["lr"])
            for c in mine
            for k in keys
            if k in truth.get(task, {})
        ]
        per_task.append(f"{task} {sum(hits)}/{len(hits)}")
    lines += ["", "Stated-run hits per task: " + ", ".join(per_task)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rescore", action="store_true", help="score the cached cases")
    parser.add_argument("--cases", type=Path, default=CASES_PATH, help="where the cases go")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="what-if: override drift_prior or a constant of lrfind.analysis.horizon",
    )
    parser.add_argument("--truth", type=Path, default=TRUTH_PATH, help="the ground truth")
    args = parser.parse_args(argv)
    overrides = {k: float(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.rescore:
        cases = json.loads(args.cases.read_text())["cases"]
    else:
        names = args.tasks or list(LONG_TASKS_BY_NAME)
        jobs = [(name, seed, overrides) for name in names for seed in args.seeds]
        started = time.perf_counter()
        with ProcessPoolExecutor(args.workers) as pool:
            cases = list(pool.map(run_case, jobs))
        document = {
            "lrfind": quality.lrfind_source(),
            "wall_seconds": round(time.perf_counter() - started),
            "overrides": overrides,
            "cases": cases,
        }
        args.cases.write_text(json.dumps(document, indent=1) + "\n")
    print(report(cases, args.truth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
