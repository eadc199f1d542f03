"""Recommendation-quality benchmark: how close does each suggestion rule land to the best LR?

Ground truth (cached in ``quality_ground_truth.json``): for every task and seed, train at each
constant LR of a quarter-decade grid (10**(k/4), 1e-6 .. 10) for the task's fixed budget, and with
a one-cycle schedule (``OneCycleLR``, max_lr on the same grid); record the final val loss. Scores
use the mean over seeds of those curves (inf where any seed diverged), interpolated linearly in
log10(lr) between grid points. A suggestion *hits* when its regret (L(lr) - best) / best is at
most 5%, i.e. it lies in the *5% band*; a max_lr hits when its regret on the one-cycle curve is
at most 5% (the *one-cycle band*). The JSON also stores each band's contiguous grid run.

Scoring: per task and seed, one ``range_test`` (library defaults, refine on, the seed's model and
batch order), every method analysed on that same curve, plus the refine stage's final answer.
Printed as Markdown: one summary table, then the per-task detail of lrfind+refine.

    python benchmarks/quality.py                 # score against the cached ground truth (~1.5 min)
    python benchmarks/quality.py --regenerate    # rebuild the ground truth first (~25 min, 2 cores)
    python benchmarks/quality.py --tasks digits-mlp --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_tasks import TASKS, TASKS_BY_NAME, BatchLoader, Split, Task

GROUND_TRUTH_PATH = Path(__file__).resolve().parent / "quality_ground_truth.json"
GRID_EXPONENTS = range(-24, 5)  # 10**(k/4): 1e-6 .. 10
GRID: tuple[float, ...] = tuple(10 ** (k / 4) for k in GRID_EXPONENTS)
SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
BAND = 0.05
SCHEDULES = ("constant", "onecycle")


# --------------------------------------------------------------------------- training


def _next_batch(loader: BatchLoader, state: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the next batch, starting a new epoch when the current one is exhausted."""
    while True:
        if "iterator" not in state:
            state["iterator"] = iter(loader)
        try:
            return next(state["iterator"])
        except StopIteration:
            del state["iterator"]


def train_and_validate(task: Task, split: Split, lr: float, seed: int, schedule: str) -> float:
    """Train ``task`` from ``seed`` for its budget; return the final val loss (inf if diverged).

    ``schedule`` is "constant" (LR fixed at ``lr``) or "onecycle" (``OneCycleLR`` peaking at
    ``lr`` with torch's defaults, momentum not cycled so every optimizer is treated alike).
    """
    torch.manual_seed(seed)
    model = task.build_model()
    optimizer = task.make_optimizer(list(model.parameters()), lr)
    scheduler = None
    if schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=task.budget_steps, cycle_momentum=False
        )
    loader = BatchLoader(split.x_train, split.y_train, task.batch_size, seed)
    state: dict[str, Any] = {}
    model.train()
    for _ in range(task.budget_steps):
        inputs, targets = _next_batch(loader, state)
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss_fn(model(inputs), targets)
        if not torch.isfinite(loss):
            return math.inf
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    model.eval()
    with torch.no_grad():
        val_loss = float(task.loss_fn(model(split.x_val), split.y_val))
    return val_loss if math.isfinite(val_loss) else math.inf


def _grid_job(job: tuple[str, int, str]) -> tuple[str, int, str, list[float]]:
    name, seed, schedule = job
    torch.set_num_threads(1)
    task = TASKS_BY_NAME[name]
    split = task.data()
    losses = [train_and_validate(task, split, lr, seed, schedule) for lr in GRID]
    return name, seed, schedule, losses


def regenerate(tasks: Sequence[Task], seeds: Sequence[int], workers: int) -> dict[str, Any]:
    """Train every task x seed x schedule over the grid and return the ground-truth document."""
    jobs = [
        (task.name, seed, schedule) for task in tasks for seed in seeds for schedule in SCHEDULES
    ]
    per_task: dict[str, dict[str, dict[int, list[float]]]] = {
        task.name: {schedule: {} for schedule in SCHEDULES} for task in tasks
    }
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, (name, seed, schedule, losses) in enumerate(pool.map(_grid_job, jobs), 1):
            per_task[name][schedule][seed] = losses
            elapsed = time.perf_counter() - started
            print(
                f"[{done}/{len(jobs)}] {name} seed={seed} {schedule} ({elapsed:.0f}s)",
                file=sys.stderr,
            )
    document: dict[str, Any] = {
        "description": "final val loss after a fixed budget at each constant LR / one-cycle max_lr",
        "grid": list(GRID),
        "seeds": list(seeds),
        "band": BAND,
        "seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
        "tasks": {},
    }
    for task in tasks:
        entry: dict[str, Any] = {
            "kind": task.kind,
            "optimizer": task.optimizer_name,
            "batch_size": task.batch_size,
            "budget_steps": task.budget_steps,
        }
        for schedule in SCHEDULES:
            runs = per_task[task.name][schedule]
            per_seed = [[_json_loss(v) for v in runs[seed]] for seed in seeds]
            mean = mean_curve([runs[seed] for seed in seeds])
            best = int(np.argmin(mean))
            entry[schedule] = {
                "per_seed": per_seed,
                "mean": [_json_loss(v) for v in mean],
                "best_lr": GRID[best],
                "best_loss": mean[best],
                "band": list(band_interval(mean)),
            }
        document["tasks"][task.name] = entry
    return document


def _json_loss(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 6)


def _loss_from_json(value: float | None) -> float:
    return math.inf if value is None else float(value)


def mean_curve(curves: Sequence[Sequence[float]]) -> list[float]:
    """Mean over seeds at each grid LR; a divergence in any seed makes that LR inf."""
    return [float(np.mean(values)) for values in zip(*curves, strict=True)]


# --------------------------------------------------------------------------- scoring helpers


def interpolated_loss(curve: Sequence[float], lr: float) -> float:
    """Val loss at ``lr`` by linear interpolation in log10(lr) on the grid (clamped at its ends)."""
    position = (math.log10(lr) - math.log10(GRID[0])) / 0.25
    if position <= 0:
        return curve[0]
    if position >= len(GRID) - 1:
        return curve[-1]
    if abs(position - round(position)) < 1e-6:  # on the grid (up to rounding)
        return curve[round(position)]
    low = math.floor(position)
    fraction = position - low
    a, b = curve[low], curve[low + 1]
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return a + fraction * (b - a)


def regret(curve: Sequence[float], lr: float | None) -> float:
    """Relative excess val loss over the grid's best: (L(lr) - best) / best; inf when lr is None."""
    if lr is None or not lr > 0:
        return math.inf
    best = min(curve)
    return (interpolated_loss(curve, lr) - best) / best


def band_interval(curve: Sequence[float]) -> tuple[float, float]:
    """The contiguous run of grid LRs around the best whose loss is within BAND of the best."""
    best = int(np.argmin(curve))
    limit = curve[best] * (1 + BAND)
    low = high = best
    while low > 0 and curve[low - 1] <= limit:
        low -= 1
    while high < len(curve) - 1 and curve[high + 1] <= limit:
        high += 1
    return GRID[low], GRID[high]


def load_ground_truth(path: Path = GROUND_TRUTH_PATH) -> dict[str, Any]:
    """Read the cached ground truth, turning null losses back into inf."""
    document: dict[str, Any] = json.loads(path.read_text())
    for entry in document["tasks"].values():
        for schedule in SCHEDULES:
            entry[schedule]["mean"] = [_loss_from_json(v) for v in entry[schedule]["mean"]]
    return document


# --------------------------------------------------------------------------- scoring

ROWS: tuple[str, ...] = ("steepest", "minimum", "valley", "lrfind", "lrfind+refine")


@dataclass(frozen=True)
class Case:
    """One task x seed: each row's suggested LR and max_lr, and the seconds it took."""

    task: str
    seed: int
    lrs: dict[str, float | None]
    max_lrs: dict[str, float | None]
    seconds: dict[str, float]
    confidence: str


def _range_test() -> Callable[..., Any]:
    try:
        from lrfind import range_test
    except ImportError:  # the package root does not re-export it (yet)
        from lrfind.rangetest import range_test
    return range_test  # type: ignore[no-any-return]


def run_case(job: tuple[str, int]) -> Case:
    """Run one range test (defaults, refine on) for a task and seed; analyse it every way."""
    from lrfind.analysis import METHODS, analyze

    name, seed = job
    torch.set_num_threads(1)
    task = TASKS_BY_NAME[name]
    split = task.data()
    torch.manual_seed(seed)
    model = task.build_model()
    optimizer = task.make_optimizer(list(model.parameters()), 1e-3)
    train_loader = BatchLoader(split.x_train, split.y_train, task.batch_size, seed)
    val_loader = [(split.x_val, split.y_val)]
    started = time.perf_counter()
    result = _range_test()(
        model, optimizer, task.loss_fn, train_loader, val_loader=val_loader, refine="on", seed=seed
    )
    total = time.perf_counter() - started
    refine_seconds = result.refinement.seconds if result.refinement is not None else 0.0
    lrs: dict[str, float | None] = {}
    max_lrs: dict[str, float | None] = {}
    seconds: dict[str, float] = {}
    for method in METHODS:
        analysis = analyze(result.history, method)
        lrs[method] = analysis.suggestion.lr
        max_lrs[method] = analysis.lr_range.max_lr
        seconds[method] = total - refine_seconds
    lrs["lrfind+refine"] = result.suggestion.lr
    max_lrs["lrfind+refine"] = result.lr_range.max_lr
    seconds["lrfind+refine"] = total
    return Case(name, seed, lrs, max_lrs, seconds, result.confidence.level)


@dataclass(frozen=True)
class RowScore:
    """One row of the quality table."""

    row: str
    hit_rate: float
    answered: int
    median_log_error: float
    median_regret: float
    worst_spread: float
    seconds: float
    max_lr_hit_rate: float


def score_row(row: str, cases: Sequence[Case], truth: dict[str, Any]) -> RowScore:
    """Score one row over every case (a missing answer counts as a miss with infinite error)."""
    regrets, log_errors, max_lr_regrets = [], [], []
    by_task: dict[str, list[float]] = {}
    for case in cases:
        entry = truth["tasks"][case.task]
        lr = case.lrs[row]
        regrets.append(regret(entry["constant"]["mean"], lr))
        max_lr_regrets.append(regret(entry["onecycle"]["mean"], case.max_lrs[row]))
        best = entry["constant"]["best_lr"]
        log_errors.append(abs(math.log10(lr / best)) if lr else math.inf)
        if lr is not None:
            by_task.setdefault(case.task, []).append(lr)
    spreads = [max(v) / min(v) for v in by_task.values() if len(v) > 1]
    return RowScore(
        row=row,
        hit_rate=float(np.mean([r <= BAND for r in regrets])),
        answered=sum(case.lrs[row] is not None for case in cases),
        median_log_error=float(np.median(log_errors)),
        median_regret=float(np.median(regrets)),
        worst_spread=max(spreads) if spreads else math.nan,
        seconds=statistics.fmean(case.seconds[row] for case in cases),
        max_lr_hit_rate=float(np.mean([r <= BAND for r in max_lr_regrets])),
    )


def _fmt_lr(lr: float | None) -> str:
    return "-" if lr is None else f"{lr:.2g}"


def format_table(scores: Sequence[RowScore], cases: int) -> str:
    """The quality table as Markdown."""
    lines = [
        "| method | hit 5% band | answered | median abs log10(lr/best) | median regret "
        "| worst seed spread | s / recommendation | max_lr in 1cycle band |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        lines.append(
            f"| {s.row} | {s.hit_rate:.0%} | {s.answered}/{cases} | {s.median_log_error:.2f} "
            f"| {s.median_regret:.1%} | {s.worst_spread:.3g}x | {s.seconds:.2f} "
            f"| {s.max_lr_hit_rate:.0%} |"
        )
    return "\n".join(lines)


def format_tasks(cases: Sequence[Case], truth: dict[str, Any], row: str) -> str:
    """Per-task detail for one row as Markdown: band, the seeds' answers, hits."""
    lines = [
        "| task | optimizer | best LR | 5% band | 1cycle band | suggested (per seed) | hits "
        "| max_lr (per seed) | 1cycle hits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in truth["tasks"].items():
        mine = [c for c in cases if c.task == name]
        if not mine:
            continue
        constant, onecycle = entry["constant"], entry["onecycle"]
        hits = sum(regret(constant["mean"], c.lrs[row]) <= BAND for c in mine)
        oc_hits = sum(regret(onecycle["mean"], c.max_lrs[row]) <= BAND for c in mine)
        lines.append(
            f"| {name} | {entry['optimizer']} | {constant['best_lr']:.2g} "
            f"| {_fmt_lr(constant['band'][0])}-{_fmt_lr(constant['band'][1])} "
            f"| {_fmt_lr(onecycle['band'][0])}-{_fmt_lr(onecycle['band'][1])} "
            f"| {' '.join(_fmt_lr(c.lrs[row]) for c in mine)} | {hits}/{len(mine)} "
            f"| {' '.join(_fmt_lr(c.max_lrs[row]) for c in mine)} | {oc_hits}/{len(mine)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--regenerate", action="store_true", help="rebuild the ground truth first")
    parser.add_argument("--tasks", nargs="*", default=None, help="task names (default: all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="seeds (default: 0-4)")
    parser.add_argument("--workers", type=int, default=2, help="processes (one thread each)")
    args = parser.parse_args(argv)
    tasks = [TASKS_BY_NAME[name] for name in args.tasks] if args.tasks else list(TASKS)
    seeds = tuple(args.seeds) if args.seeds else SEEDS
    if args.regenerate:
        document = regenerate(tasks, seeds, args.workers)
        if GROUND_TRUTH_PATH.exists():
            # A partial rebuild (--tasks) keeps the other tasks when the grid and seeds match.
            previous = json.loads(GROUND_TRUTH_PATH.read_text())
            if previous.get("grid") == document["grid"] and previous.get("seeds") == list(seeds):
                document["tasks"] = {**previous["tasks"], **document["tasks"]}
        GROUND_TRUTH_PATH.write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {GROUND_TRUTH_PATH} in {document['seconds']:.0f}s", file=sys.stderr)
    truth = load_ground_truth()
    missing = [task.name for task in tasks if task.name not in truth["tasks"]]
    if missing:
        parser.error(f"no ground truth for {', '.join(missing)}: run with --regenerate")
    jobs = [(task.name, seed) for task in tasks for seed in seeds]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        cases = list(pool.map(run_case, jobs))
    scores = [score_row(row, cases, truth) for row in ROWS]
    print(format_table(scores, len(cases)))
    print()
    print(format_tasks(cases, truth, "lrfind+refine"))
    print(f"\n{len(cases)} cases in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
