"""Ground truth of the fine-tuning task (``finetune-transformer``) at its budget and 4x it.

The task (``quality_tasks.py``) is the text transformer pretrained on the stdlib corpus (cached
weights) and fine-tuned on pydoc's English topics. Its ground truth is built like the others':
constant LR over the quarter-decade grid, seeds 0-2, the full validation loss at the checkpoints
``horizon_truth.py`` uses (25 ... budget, 2x and 4x the budget) from one 4x-budget run per LR and
seed. To save compute only a window of the grid is trained: a seed-0 scan at the budget over
half-decade LRs finds the best, the window is six quarter-decades below it to one above
(``horizon_truth.py``'s), and it grows one step at a time while the best at any checkpoint, or
the noise-aware band, touches one of its ends. LRs outside it are null ("not trained", never
in a band), as in ``quality_ground_truth_long.json``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/finetune_truth.py             # ~20 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/finetune_truth.py --merge     # see below
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/finetune_truth.py --score     # range tests

Writes ``quality_ground_truth_finetune.json`` (``horizon_truth.py``'s format: per checkpoint
``{"per_seed": [[loss or null per grid LR] per seed]}``, plus the scan and the pretraining info)
and merges the budget into ``quality_ground_truth.json`` as the task's ``constant`` entry, on
the full grid with seeds 0-4 like the other tasks' (``budget_full_grid``: what the long runs
lack trained for the budget alone, about 8 more minutes). ``--merge`` adds the task to
``quality_ground_truth_long.json`` (once horizon_truth.py has written it). Finished runs are
appended to ``quality_ground_truth_finetune.partial.jsonl``; a rerun skips them (the file is
removed once the truth is written). ``--score`` runs lrfind's range test on seeds 0-2 with and
without ``train_steps`` (the budget, and 4x it with ``--long``) and says whether each answer is
in the noise-aware band at that horizon.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality
from horizon_truth import LONG_TRUTH_PATH, checkpoints_for
from quality_tasks import PRETRAINED_CACHE, TASKS_BY_NAME, pretrained_state

NAME = "finetune-transformer"
HERE = Path(__file__).resolve().parent
TRUTH_PATH = HERE / "quality_ground_truth_finetune.json"
PARTIAL_PATH = TRUTH_PATH.with_suffix(".partial.jsonl")
SEEDS = (0, 1, 2)


def _grid_index(lr: float) -> int:
    """The index of the grid LR nearest ``lr``."""
    return min(range(len(quality.GRID)), key=lambda i: abs(math.log10(quality.GRID[i] / lr)))


#: The budget's full-grid ground truth (quality_ground_truth.json) has five seeds, like the others.
BUDGET_SEEDS = (0, 1, 2, 3, 4)
#: The seed-0 scan at the budget: every other grid LR from 1e-5 to 0.1.
SCAN = tuple(range(_grid_index(1e-5), _grid_index(0.1) + 1, 2))
BELOW, ABOVE = 6, 1
#: The window never grows past this many grid LRs (compute cap).
MAX_WINDOW = 12


def _run(index: int, seed: int, points: Sequence[int]) -> tuple[dict[int, float], float]:
    task = TASKS_BY_NAME[NAME]
    started = time.perf_counter()
    curve = quality.validation_curve(task, task.data(), quality.GRID[index], seed, set(points))
    return curve, time.perf_counter() - started


class Runs:
    """Finished runs, ``(kind, grid index, seed) -> curve``, kept in the partial file."""

    def __init__(self) -> None:
        self.curves: dict[tuple[str, int, int], dict[int, float]] = {}
        self.seconds = 0.0
        if PARTIAL_PATH.exists():
            for line in PARTIAL_PATH.read_text().splitlines():
                kind, index, seed, curve, took = json.loads(line)
                self.curves[(kind, index, seed)] = {int(k): v for k, v in curve.items()}
                self.seconds += took

    def get(self, kind: str, index: int, seed: int, points: Sequence[int]) -> dict[int, float]:
        key = (kind, index, seed)
        if key not in self.curves:
            curve, took = _run(index, seed, points)
            self.curves[key] = curve
            self.seconds += took
            with PARTIAL_PATH.open("a") as partial:
                partial.write(json.dumps([kind, index, seed, curve, took]) + "\n")
            print(
                f"{kind} lr={quality.GRID[index]:.3g} seed={seed}: "
                + ", ".join(f"{p}:{v:.4f}" for p, v in sorted(curve.items()))
                + f" ({took:.0f}s)",
                file=sys.stderr,
            )
        return self.curves[key]


def _per_seed(runs: Runs, window: range, point: int) -> list[list[float]]:
    return [
        [
            runs.curves[("curve", i, seed)][point]
            if i in window and ("curve", i, seed) in runs.curves
            else math.inf
            for i in range(len(quality.GRID))
        ]
        for seed in SEEDS
    ]


def _touches_edge(runs: Runs, window: range, points: Sequence[int], budget: int) -> str | None:
    """ "low"/"high" when the best at a checkpoint >= the budget, or the noise-aware band at the
    budget or 4x, sits on the window's lowest/highest LR (None when the window holds them)."""
    for point in points:
        if point < budget:
            continue
        per_seed = _per_seed(runs, window, point)
        mean = quality.mean_curve(per_seed)
        best = int(np.argmin(mean))
        indices = {best}
        if point in (budget, 4 * budget):
            truth = quality.Truth.from_entry(NAME, {"optimizer": "", "constant": _json(per_seed)})
            indices |= {i for i in window if truth.noise_hit(quality.GRID[i])}
        if min(indices) <= window.start and window.start > 0:
            return "low"
        if max(indices) >= window.stop - 1 and window.stop < len(quality.GRID):
            return "high"
    return None


def _json(per_seed: list[list[float]]) -> dict[str, Any]:
    return {"per_seed": [[quality._json_loss(v) for v in row] for row in per_seed]}


def generate() -> dict[str, Any]:
    """Train the scan and the window (growing it as needed); the task's long-truth entry."""
    task = TASKS_BY_NAME[NAME]
    budget = task.budget_steps
    points = checkpoints_for(budget)
    pretrained_state()  # pretrain (and cache) first when needed, outside the timings
    runs = Runs()
    started = time.perf_counter()
    scan = {i: runs.get("scan", i, 0, [budget])[budget] for i in SCAN}
    scan_best = min(scan, key=lambda i: scan[i])
    window = range(max(0, scan_best - BELOW), min(len(quality.GRID), scan_best + ABOVE + 1))
    while True:
        for seed in SEEDS:
            for index in window:
                runs.get("curve", index, seed, points)
        edge = _touches_edge(runs, window, points, budget)
        if edge is None or len(window) >= MAX_WINDOW:
            if edge is not None:
                print(f"window capped at {MAX_WINDOW} LRs; the {edge} end is open", file=sys.stderr)
            break
        window = (
            range(window.start - 1, window.stop)
            if edge == "low"
            else range(window.start, window.stop + 1)
        )
    info = torch.load(PRETRAINED_CACHE, weights_only=True)["info"]
    entry: dict[str, Any] = {
        "budget_steps": budget,
        "checkpoints": points,
        "trained": [quality.GRID[window.start], quality.GRID[window.stop - 1]],
        "seconds": round(runs.seconds, 1),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "fingerprint": task.fingerprint() if task.fingerprint else None,
        "pretraining": {k: round(float(v), 4) for k, v in info.items()},
        "scan_seed0_at_budget": {
            f"{quality.GRID[i]:.4g}": quality._json_loss(v) for i, v in scan.items()
        },
    }
    for point in points:
        entry[str(point)] = _json(_per_seed(runs, window, point))
    print(f"trained in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return entry


def fill_budget(entry: dict[str, Any]) -> None:
    """Add ``budget_full_grid``: the loss at the budget at every grid LR for ``BUDGET_SEEDS``,
    the window's seeds 0-2 from the long runs and everything else trained for the budget alone
    (seed 0 reuses the scan), so that ``quality_ground_truth.json`` holds the full grid and five
    seeds like the other tasks' entries (with three, the band's sign-test guard is off, and LRs
    whose loss blew up on one seed only, e.g. 1 and 5.6, fall "within 2 SE" of the best)."""
    budget = entry["budget_steps"]
    low, high = (_grid_index(lr) for lr in entry["trained"])
    scan = {_grid_index(float(lr)): loss for lr, loss in entry["scan_seed0_at_budget"].items()}
    done = entry.get("budget_full_grid", {}).get("per_seed", [])
    rows = [list(row) for row in done]
    rows += [[None] * len(quality.GRID) for _ in BUDGET_SEEDS[len(done) :]]
    runs = Runs()
    for position, seed in enumerate(BUDGET_SEEDS):
        if position < len(done):
            continue
        for index in range(len(quality.GRID)):
            if seed in SEEDS and low <= index <= high:
                rows[position][index] = entry[str(budget)]["per_seed"][position][index]
            elif seed == 0 and index in scan:
                rows[position][index] = scan[index]
            else:
                loss = runs.get("budget", index, seed, [budget])[budget]
                rows[position][index] = quality._json_loss(loss)
    entry["budget_seeds"] = list(BUDGET_SEEDS)
    entry["budget_full_grid"] = {"per_seed": rows}
    entry["seconds"] = round(entry["seconds"] + runs.seconds, 1)


def budget_entry(long_entry: dict[str, Any]) -> dict[str, Any]:
    """The task's ``quality_ground_truth.json`` entry (constant LR at the budget), in
    ``quality.regenerate``'s form; LRs outside the trained window are null."""
    task = TASKS_BY_NAME[NAME]
    budget = task.budget_steps
    rows = long_entry.get("budget_full_grid", long_entry[str(budget)])["per_seed"]
    per_seed = [[quality._loss_from_json(v) for v in row] for row in rows]
    mean = quality.mean_curve(per_seed)
    best = int(np.argmin(mean))
    return {
        "kind": task.kind,
        "optimizer": task.optimizer_name,
        "batch_size": task.batch_size,
        "budget_steps": budget,
        "seeds": long_entry.get("budget_seeds", list(SEEDS)),
        "seconds": long_entry["seconds"],
        "torch": long_entry["torch"],
        "python": long_entry["python"],
        "fingerprint": long_entry["fingerprint"],
        "note": "finetune_truth.py: the budget checkpoint of quality_ground_truth_finetune.json",
        "constant": {
            "per_seed": [[quality._json_loss(v) for v in row] for row in per_seed],
            "mean": [quality._json_loss(v) for v in mean],
            "best_lr": quality.GRID[best],
            "best_loss": mean[best],
            "band": list(quality.band_interval(mean)),
        },
    }


def merge_long(entry: dict[str, Any]) -> None:
    """Add the task to ``quality_ground_truth_long.json`` (which must exist)."""
    document = json.loads(LONG_TRUTH_PATH.read_text())
    if document.get("grid") != list(quality.GRID):
        raise SystemExit(f"{LONG_TRUTH_PATH.name} is on another grid")
    # The budget's full grid lives in quality_ground_truth.json: keep horizon_truth.py's keys.
    document["tasks"][NAME] = {k: v for k, v in entry.items() if k not in ("budget_full_grid",)}
    LONG_TRUTH_PATH.write_text(json.dumps(document, indent=1) + "\n")
    print(f"merged {NAME} into {LONG_TRUTH_PATH}", file=sys.stderr)


def describe(entry: dict[str, Any]) -> str:
    """The best LR and the noise-aware band at every checkpoint."""
    lines = [f"pretraining: {entry['pretraining']}", f"trained LRs: {entry['trained']}"]
    for point in entry["checkpoints"]:
        truth = quality.Truth.from_entry(NAME, {"optimizer": "", "constant": entry[str(point)]})
        lines.append(
            f"  {point:5d} steps: best {truth.best_lr:.3g} (loss {truth.best_loss:.4f}); "
            f"noise-aware band {quality.format_lr_set(truth.noise_band())}; "
            f"5% band {quality.format_lr_set(truth.five_percent_band())}"
        )
    return "\n".join(lines)


def score(entry: dict[str, Any], seeds: Sequence[int], long: bool) -> str:
    """lrfind's answer per seed without and with ``train_steps``, scored at that horizon."""
    import horizon_quality

    budget = entry["budget_steps"]
    rows: list[tuple[str, dict[str, Any], int]] = [
        ("default (no run stated)", {"budget": 4.0}, budget),
        ("train_steps=budget", {"train_steps": budget, "budget": 4.0}, budget),
    ]
    if long:
        rows.append(("train_steps=4x", {"train_steps": 4 * budget, "budget": 4.0}, 4 * budget))
    lines = [
        "| run stated | scored at | band | answers (per seed) | hits | cost x sweep |",
        "|---|---|---|---|---|---|",
    ]
    for row, options, point in rows:
        truth = quality.Truth.from_entry(NAME, {"optimizer": "", "constant": entry[str(point)]})
        cases = []
        for seed in seeds:
            case = horizon_quality.run_case((NAME, seed, row, options))
            cases.append(case)
            print(f"{row} seed={seed}: {case['lr']} ({case['seconds']:.0f}s)", file=sys.stderr)
        answers = " ".join(quality._fmt_lr(c["lr"]) for c in cases)
        hits = sum(truth.noise_hit(c["lr"]) for c in cases)
        cost = np.median([c["cost"] for c in cases])
        lines.append(
            f"| {row} | {point} steps | {quality.format_lr_set(truth.noise_band())} "
            f"| {answers} | {hits}/{len(cases)} | {cost:.1f} |"
        )
    if not long:
        truth = quality.Truth.from_entry(
            NAME, {"optimizer": "", "constant": entry[str(4 * budget)]}
        )
        lines.append(
            f"\n(at 4x, {4 * budget} steps, the noise-aware band is "
            f"{quality.format_lr_set(truth.noise_band())})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--merge", action="store_true", help="add the task to the long truth")
    parser.add_argument("--score", action="store_true", help="run and score range tests")
    parser.add_argument("--long", action="store_true", help="with --score: also train_steps=4x")
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    entry = json.loads(TRUTH_PATH.read_text())["tasks"][NAME] if TRUTH_PATH.exists() else None
    filled = len(entry.get("budget_full_grid", {}).get("per_seed", [])) if entry else 0
    if entry is None or filled < len(BUDGET_SEEDS):
        entry = generate() if entry is None else entry
        fill_budget(entry)
        document = {"grid": list(quality.GRID), "seeds": list(SEEDS), "tasks": {NAME: entry}}
        TRUTH_PATH.write_text(json.dumps(document, indent=1) + "\n")
        quality.write_ground_truth({NAME: budget_entry(entry)}, quality.GROUND_TRUTH_PATH, 0.0)
        PARTIAL_PATH.unlink(missing_ok=True)
        print(f"wrote {TRUTH_PATH.name} and {quality.GROUND_TRUTH_PATH.name}", file=sys.stderr)
    print(describe(entry))
    if args.merge:
        merge_long(entry)
    if args.score:
        print(score(entry, args.seeds, args.long))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
