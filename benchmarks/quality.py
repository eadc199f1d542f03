"""Recommendation-quality benchmark: does each suggestion rule land on an LR that trains best?

Ground truth (cached in ``quality_ground_truth.json``): for every task and seed, train at each
constant LR of a quarter-decade grid (10**(k/4), 1e-6 .. 10) for the task's fixed budget (and, for
the tasks that have it, with a one-cycle schedule peaking at each grid value); record the final
validation loss. A seed sets the initial weights and the batch order, the same at every LR, so the
seeds are *paired* across LRs.

Primary metric, the *noise-aware band*: with m(lr) the mean over seeds of the final val loss
(inf where any seed diverged) and b the grid LR with the lowest mean, an LR *hits* when

    m(lr) <= (1 + 1%) * m(b)   or   m(lr) - m(b) <= 2 * SE(lr)

where SE(lr) is the standard error of the mean per-seed paired difference L_s(lr) - L_s(b)
(std with ddof=1 over sqrt(seeds)); unpaired seeds would use sqrt(se(lr)**2 + se(b)**2).
Off the grid, m and SE are interpolated linearly in log10(lr) between the neighbouring grid
points. Guard: with 5+ paired seeds, an LR where every seed is worse than at b is significantly
worse whatever the SE (a sign test, p <= 1/32; against heavy-tailed blow-ups).
Secondary: the *5% band* (regret (m(lr) - m(b)) / m(b) <= 5%), the median regret, and
for the one-cycle curve the share of max_lr values in its 5% band. No answer is a miss with
infinite regret.

Scoring: per task and seed, one ``range_test`` (library defaults, refine on, the seed's model and
batch order); every rule is read off that same sweep, plus the refine stage's final answer:
``steepest``, ``minimum``, ``valley`` and ``lrfind`` via lrfind's ``analyze(history, method)``,
``fastai-minimum`` and ``fastai-valley`` re-implemented here from fastai 2.7's ``lr_find`` on the
recorded smoothed losses, and ``lrfind+refine`` (the range test's answer). The cost multiple
divides a rule's compute by the plain sweep's: in steps (training steps plus validation
batches, each counted as one step) and in wall time.

    OMP_NUM_THREADS=1 is recommended: every process uses one torch thread anyway.

    python benchmarks/quality.py                       # score against the cached ground truth
    python benchmarks/quality.py --json runs/q.json    # ... and write every case (and trial)
    python benchmarks/quality.py --rescore runs/q.json # reprint the tables from such a file
    python benchmarks/quality.py --regenerate --tasks text-gru --schedules constant
    python benchmarks/quality.py --tasks digits-mlp --seeds 0 1
    python benchmarks/quality.py --seed-offset 100     # range tests on seeds the truth never saw
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_tasks import TASKS, TASKS_BY_NAME, BatchLoader, Split, Task

GROUND_TRUTH_PATH = Path(__file__).resolve().parent / "quality_ground_truth.json"
GRID_EXPONENTS = range(-24, 5)  # 10**(k/4): 1e-6 .. 10
GRID: tuple[float, ...] = tuple(10 ** (k / 4) for k in GRID_EXPONENTS)
SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
SCHEDULES: tuple[str, ...] = ("constant", "onecycle")
#: The 5% band (secondary metric): relative regret at most this.
BAND = 0.05
#: Noise-aware band: within this relative margin of the best mean ...
NOISE_RELATIVE = 0.01
#: ... or at most this many standard errors of the paired difference above it.
NOISE_STANDARD_ERRORS = 2.0
#: The ground truth's seeds share the initial weights and batch order across LRs: paired.
PAIRED_SEEDS = True
#: ... or, with paired seeds, worse on every seed when that alone is this significant (a sign
#: test; it guards against heavy tails: at LR 10, diabetes-mlp's losses span 1e7-2e8, so the
#: mean difference is "within 2 SE" although every seed is 1e7 times worse).
SIGN_TEST_P = 1 / 32
#: The ``linear`` schedule's warmup, as a fraction of the run (a common fine-tuning choice).
LINEAR_WARMUP = 0.06
#: lrfind's refine trials evaluate at most this many validation batches (engine default).
MAX_VAL_BATCHES = 50


def _lrfind_api() -> tuple[tuple[str, ...], Callable[..., Any]]:
    """lrfind's analysis internals used here: ``(METHODS, analyze)``, wherever they live."""
    try:
        from lrfind.analysis import METHODS, analyze  # type: ignore[attr-defined]
    except ImportError:  # lrfind/analysis/ became a package with a ``suggest`` module
        from lrfind.analysis.suggest import METHODS, analyze
    return METHODS, analyze


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

    ``schedule`` is "constant" (LR fixed at ``lr``), "onecycle" (``OneCycleLR`` peaking at
    ``lr`` with torch's defaults, momentum not cycled so every optimizer is treated alike) or
    "linear" (warmup over LINEAR_WARMUP of the run to ``lr``, then linear decay to 0).
    """
    budget = task.budget_steps
    return validation_curve(task, split, lr, seed, {budget}, schedule)[budget]


def validation_curve(
    task: Task,
    split: Split,
    lr: float,
    seed: int,
    checkpoints: set[int],
    schedule: str = "constant",
    total_steps: int | None = None,
) -> dict[int, float]:
    """Train ``task`` from ``seed`` up to the last checkpoint; the full val loss at each one.

    A checkpoint after the training loss turned non-finite (or with a non-finite val loss) is
    inf. ``schedule`` as in ``train_and_validate``, or "cosine" (warmup over LINEAR_WARMUP of
    the run, then a half cosine to 0); its total steps are ``total_steps`` (default: the
    task's budget).
    """
    torch.manual_seed(seed)
    model = task.build_model()
    optimizer = task.make_optimizer(list(model.parameters()), lr)
    scheduler: Any = None
    total = total_steps or task.budget_steps
    if schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=total, cycle_momentum=False
        )
    elif schedule in ("linear", "cosine"):
        # Hugging Face's defaults: linear warmup over LINEAR_WARMUP of the run, then linear
        # (get_linear_schedule_with_warmup) or half-cosine (get_cosine_schedule_with_warmup)
        # decay to 0, written with torch's LambdaLR.
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, functools.partial(_warmup_decay, total, schedule)
        )
    loader = BatchLoader(split.x_train, split.y_train, task.batch_size, seed)
    state: dict[str, Any] = {}
    losses = dict.fromkeys(checkpoints, math.inf)
    for step in range(1, max(checkpoints) + 1):
        model.train()
        inputs, targets = _next_batch(loader, state)
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss_fn(model(inputs), targets)
        if not torch.isfinite(loss):
            break
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if step in checkpoints:
            model.eval()
            with torch.no_grad():
                value = float(task.loss_fn(model(split.x_val), split.y_val))
            losses[step] = value if math.isfinite(value) else math.inf
    return losses


def _warmup_decay(total: int, shape: str, step: int) -> float:
    """The LR factor at ``step`` of a ``total``-step run: LINEAR_WARMUP warmup, then ``shape``
    ("linear" or "cosine") decay to 0."""
    warmup = round(LINEAR_WARMUP * total)
    if step < warmup:
        return step / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(0.0, 1.0 - progress)


def _grid_job(job: tuple[str, int, str]) -> tuple[str, int, str, list[float], float]:
    name, seed, schedule = job
    torch.set_num_threads(1)
    task = TASKS_BY_NAME[name]
    split = task.data()
    started = time.perf_counter()
    losses = [train_and_validate(task, split, lr, seed, schedule) for lr in GRID]
    return name, seed, schedule, losses, time.perf_counter() - started


def _map(function: Callable[[Any], Any], jobs: Sequence[Any], workers: int) -> Iterator[Any]:
    """``map`` in this process (workers <= 1) or over a process pool, in order."""
    if workers <= 1:
        yield from map(function, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(function, jobs)


def regenerate(
    tasks: Sequence[Task],
    seeds: Sequence[int],
    workers: int = 1,
    schedules: Sequence[str] = SCHEDULES,
) -> dict[str, Any]:
    """Train every task x seed x schedule over the grid; return ``{task name: entry}``.

    Each entry holds, per schedule, the per-seed final val losses (None where diverged), their
    mean, the best grid LR and the contiguous 5% band, plus the seeds, the seconds it took and,
    for tasks with a ``fingerprint``, the fingerprint of their data.
    """
    jobs = [
        (task.name, seed, schedule) for task in tasks for seed in seeds for schedule in schedules
    ]
    runs: dict[str, dict[str, dict[int, list[float]]]] = {
        task.name: {schedule: {} for schedule in schedules} for task in tasks
    }
    seconds: dict[str, float] = {task.name: 0.0 for task in tasks}
    started = time.perf_counter()
    for done, (name, seed, schedule, losses, took) in enumerate(_map(_grid_job, jobs, workers), 1):
        runs[name][schedule][seed] = losses
        seconds[name] += took
        print(
            f"[{done}/{len(jobs)}] {name} seed={seed} {schedule}: {took:.0f}s "
            f"({time.perf_counter() - started:.0f}s in all)",
            file=sys.stderr,
        )
    entries: dict[str, Any] = {}
    for task in tasks:
        entry: dict[str, Any] = {
            "kind": task.kind,
            "optimizer": task.optimizer_name,
            "batch_size": task.batch_size,
            "budget_steps": task.budget_steps,
            "seeds": list(seeds),
            "seconds": round(seconds[task.name], 1),
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
        if task.fingerprint is not None:
            entry["fingerprint"] = task.fingerprint()
        for schedule in schedules:
            per_seed = [runs[task.name][schedule][seed] for seed in seeds]
            mean = mean_curve(per_seed)
            best = int(np.argmin(mean))
            entry[schedule] = {
                "per_seed": [[_json_loss(v) for v in curve] for curve in per_seed],
                "mean": [_json_loss(v) for v in mean],
                "best_lr": GRID[best],
                "best_loss": mean[best],
                "band": list(band_interval(mean)),
            }
        entries[task.name] = entry
    return entries


def write_ground_truth(entries: dict[str, Any], path: Path, seconds: float) -> dict[str, Any]:
    """Merge freshly generated task entries into the ground-truth file at ``path``.

    Tasks not in ``entries`` keep their cached entries (and, if they have none, their seeds
    are the document's ``seeds``). A file on another grid is replaced.
    """
    document: dict[str, Any] = {
        "description": "final val loss after a fixed budget at each constant LR / one-cycle max_lr",
        "grid": list(GRID),
        "seeds": list(SEEDS),
        "band": BAND,
        "seconds": 0.0,
        "torch": torch.__version__,
        "tasks": {},
    }
    if path.exists():
        previous = json.loads(path.read_text())
        if previous.get("grid") == document["grid"]:
            document = previous
    document["tasks"] = {**document["tasks"], **entries}
    document["seconds"] = round(float(document.get("seconds", 0.0)) + seconds, 1)
    path.write_text(json.dumps(document, indent=1) + "\n")
    return document


def _json_loss(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 6)


def _loss_from_json(value: float | None) -> float:
    return math.inf if value is None else float(value)


def mean_curve(curves: Sequence[Sequence[float]]) -> list[float]:
    """Mean over seeds at each grid LR; a divergence in any seed makes that LR inf."""
    return [float(np.mean(values)) for values in zip(*curves, strict=True)]


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


# --------------------------------------------------------------------------- ground truth


def _grid_position(lr: float) -> tuple[int, int, float]:
    """``lr``'s neighbouring grid indices and its fraction of the way between them in log10(lr);
    clamped at the grid's ends, and one index when it is on the grid (up to rounding)."""
    position = (math.log10(lr) - math.log10(GRID[0])) * 4
    if position <= 0:
        return 0, 0, 0.0
    if position >= len(GRID) - 1:
        return len(GRID) - 1, len(GRID) - 1, 0.0
    if abs(position - round(position)) < 1e-6:
        return round(position), round(position), 0.0
    low = math.floor(position)
    return low, low + 1, position - low


def interpolate(values: Sequence[float], lr: float) -> float:
    """``values`` (one per grid LR) at ``lr``, linear in log10(lr), clamped at the grid's ends.

    Between two grid points either of which is inf (diverged), the result is inf.
    """
    low, high, fraction = _grid_position(lr)
    a, b = values[low], values[high]
    if low == high:
        return a
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return a + fraction * (b - a)


def difference_standard_errors(
    per_seed: Sequence[Sequence[float]], best: int, *, paired: bool = PAIRED_SEEDS
) -> list[float]:
    """Standard error of mean(L(lr)) - mean(L(best)) at each grid LR (inf where any diverged).

    Paired seeds: std (ddof=1) of the per-seed differences over sqrt(seeds). Unpaired:
    sqrt(se(lr)**2 + se(best)**2), each the std of the losses over sqrt(seeds).
    """
    losses = np.asarray(per_seed, dtype=float)  # seeds x grid
    seeds = losses.shape[0]
    errors: list[float] = []
    for index in range(losses.shape[1]):
        column, reference = losses[:, index], losses[:, best]
        if seeds < 2 or not (np.all(np.isfinite(column)) and np.all(np.isfinite(reference))):
            errors.append(math.inf)
        elif paired:
            errors.append(float(np.std(column - reference, ddof=1) / math.sqrt(seeds)))
        else:
            variance = np.var(column, ddof=1) + np.var(reference, ddof=1)
            errors.append(float(math.sqrt(variance / seeds)))
    return errors


def unanimously_worse(
    per_seed: Sequence[Sequence[float]], best: int, *, paired: bool = PAIRED_SEEDS
) -> list[bool]:
    """Per grid LR: is every seed's loss above its loss at ``best``, with enough seeds (5+) for
    that to be significant by itself (exact one-sided sign test, p = 2**-seeds <= 1/32)?"""
    losses = np.asarray(per_seed, dtype=float)
    if not paired or 2.0 ** -losses.shape[0] > SIGN_TEST_P:
        return [False] * losses.shape[1]
    return [bool(np.all(losses[:, i] > losses[:, best])) for i in range(losses.shape[1])]


@dataclass(frozen=True)
class Truth:
    """One task's ground truth on the grid and the hit rules read off it."""

    name: str
    optimizer: str
    mean: tuple[float, ...]
    standard_error: tuple[float, ...]
    unanimous: tuple[bool, ...]
    best: int
    seeds: int
    onecycle_mean: tuple[float, ...] | None = None

    @classmethod
    def from_entry(cls, name: str, entry: dict[str, Any]) -> Truth:
        """Build from a ground-truth task entry (null losses mean diverged)."""
        per_seed = [[_loss_from_json(v) for v in curve] for curve in entry["constant"]["per_seed"]]
        mean = mean_curve(per_seed)
        best = int(np.argmin(mean))
        onecycle = entry.get("onecycle")
        return cls(
            name=name,
            optimizer=entry["optimizer"],
            mean=tuple(mean),
            standard_error=tuple(difference_standard_errors(per_seed, best)),
            unanimous=tuple(unanimously_worse(per_seed, best)),
            best=best,
            seeds=len(per_seed),
            onecycle_mean=(
                tuple(_loss_from_json(v) for v in onecycle["mean"]) if onecycle else None
            ),
        )

    @property
    def best_lr(self) -> float:
        """The grid LR with the lowest mean val loss."""
        return GRID[self.best]

    @property
    def best_loss(self) -> float:
        """The lowest mean val loss on the grid."""
        return self.mean[self.best]

    def regret(self, lr: float | None) -> float:
        """Relative excess mean val loss over the best: (m(lr) - best) / best; inf without lr."""
        if lr is None or not lr > 0:
            return math.inf
        return (interpolate(self.mean, lr) - self.best_loss) / abs(self.best_loss)

    def noise_hit(self, lr: float | None) -> bool:
        """Whether ``lr`` is in the noise-aware band (see the module docstring)."""
        if lr is None or not lr > 0:
            return False
        excess = interpolate(self.mean, lr) - self.best_loss
        if not math.isfinite(excess):
            return False
        if excess <= NOISE_RELATIVE * abs(self.best_loss) * (1 + 1e-9):
            return True
        low, high, _ = _grid_position(lr)
        if self.unanimous[low] and self.unanimous[high]:
            return False  # every seed is worse there: significant whatever the SE says
        return excess <= NOISE_STANDARD_ERRORS * interpolate(self.standard_error, lr) * (1 + 1e-9)

    def band_hit(self, lr: float | None) -> bool:
        """Whether ``lr`` is in the 5% band."""
        return self.regret(lr) <= BAND

    def onecycle_hit(self, max_lr: float | None) -> bool | None:
        """Whether ``max_lr`` is in the one-cycle curve's 5% band; None without that curve."""
        if self.onecycle_mean is None:
            return None
        if max_lr is None or not max_lr > 0:
            return False
        best = min(self.onecycle_mean)
        return (interpolate(self.onecycle_mean, max_lr) - best) / abs(best) <= BAND

    def noise_band(self) -> list[float]:
        """The grid LRs in the noise-aware band."""
        return [lr for lr in GRID if self.noise_hit(lr)]

    def five_percent_band(self) -> list[float]:
        """The grid LRs in the 5% band."""
        return [lr for lr in GRID if self.band_hit(lr)]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the curves and both bands, enough to score new rules offline."""
        return {
            "optimizer": self.optimizer,
            "grid": list(GRID),
            "mean": [_json_loss(v) for v in self.mean],
            "difference_standard_error": [_json_loss(v) for v in self.standard_error],
            "unanimously_worse": list(self.unanimous),
            "best_lr": self.best_lr,
            "best_loss": self.best_loss,
            "seeds": self.seeds,
            "noise_band": self.noise_band(),
            "band_5pct": self.five_percent_band(),
        }


def load_ground_truth(path: Path = GROUND_TRUTH_PATH) -> dict[str, Truth]:
    """Read the cached ground truth; warn when a task's data fingerprint no longer matches."""
    document: dict[str, Any] = json.loads(path.read_text())
    truths: dict[str, Truth] = {}
    for name, entry in document["tasks"].items():
        task = TASKS_BY_NAME.get(name)
        if task is not None and task.fingerprint is not None and "fingerprint" in entry:
            current = task.fingerprint()
            if current != entry["fingerprint"]:
                print(
                    f"warning: {name}'s data differs from its ground truth's "
                    f"({current[:12]} != {entry['fingerprint'][:12]}; another Python version?)",
                    file=sys.stderr,
                )
        truths[name] = Truth.from_entry(name, entry)
    return truths


# --------------------------------------------------------------------------- fastai's rules


def _fastai_curve(history: Any, planned_steps: int | None) -> tuple[list[float], list[float]]:
    """fastai 2.7 ``Learner.lr_find``: the recorded (smoothed) losses ``[num_it//10:-5]``,
    cut at the first NaN (non-finite here); num_it is the planned steps (else those recorded)."""
    start = (planned_steps or history.steps) // 10
    lrs = list(history.lrs[start:-5])
    losses = list(history.smoothed_losses[start:-5])
    for index, loss in enumerate(losses):
        if not math.isfinite(loss):
            return lrs[:index], losses[:index]
    return lrs, losses


def fastai_minimum(history: Any, planned_steps: int | None) -> float | None:
    """fastai's ``minimum``: the LR of the lowest smoothed loss, divided by 10."""
    lrs, losses = _fastai_curve(history, planned_steps)
    return lrs[int(np.argmin(losses))] / 10 if losses else None


def fastai_valley(history: Any, planned_steps: int | None) -> float | None:
    """fastai's ``valley`` (its default), line for line: the longest decreasing subsequence of
    the smoothed loss, then the point about half-way along it."""
    lrs, losses = _fastai_curve(history, planned_steps)
    n = len(losses)
    if n == 0:
        return None
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    index = max_start + int(sections) + int(sections / 2)
    return float(lrs[index])


# --------------------------------------------------------------------------- running the cases

SWEEP_ROWS: tuple[str, ...] = ("steepest", "minimum", "valley", "lrfind")
FASTAI_ROWS: tuple[str, ...] = ("fastai-minimum", "fastai-valley")
REFINE_ROW = "lrfind+refine"
ROWS: tuple[str, ...] = (*SWEEP_ROWS, *FASTAI_ROWS, REFINE_ROW)


class RecordingValLoader:
    """The validation split in fixed batches; every pass over it records each batch's loss.

    ``RecordingLoss`` appends ``(loss, batch size)`` to the current pass whenever it runs
    without autograd (lrfind evaluates under ``torch.no_grad``), so the refine trials' per-batch
    validation losses can be kept without touching lrfind.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
        self.batches = [
            (x[start : start + batch_size], y[start : start + batch_size])
            for start in range(0, len(x), batch_size)
        ]
        if len(self.batches) > MAX_VAL_BATCHES:
            raise ValueError(f"{len(self.batches)} validation batches: lrfind reads only 50")
        self.passes: list[list[tuple[float, int]]] = []

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.passes.append([])
        yield from self.batches


class RecordingLoss(nn.Module):
    """``loss_fn`` that records its value into ``loader``'s current pass when grad is off."""

    def __init__(self, loss_fn: nn.Module, loader: RecordingValLoader) -> None:
        super().__init__()
        self.loss_fn = loss_fn
        self.loader = loader

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = self.loss_fn(output, target)
        if not torch.is_grad_enabled() and self.loader.passes:
            self.loader.passes[-1].append((float(loss), len(target)))
        return loss


def _trial_batches(
    trials: Sequence[Any], passes: Sequence[list[tuple[float, int]]]
) -> list[list[tuple[float, int]] | None]:
    """Each trial's recorded validation pass: the next unused pass whose sample-weighted mean
    is the trial's val loss (None for trials without one)."""
    found: list[list[tuple[float, int]] | None] = []
    cursor = 0
    for trial in trials:
        match = None
        if trial.val_loss is not None:
            for index in range(cursor, len(passes)):
                batches = passes[index]
                samples = sum(size for _, size in batches)
                if samples and math.isclose(
                    sum(loss * size for loss, size in batches) / samples,
                    trial.val_loss,
                    rel_tol=1e-5,
                ):
                    match, cursor = batches, index + 1
                    break
        found.append(match)
    return found


def _refinement_record(
    refinement: Any, passes: Sequence[list[tuple[float, int]]]
) -> dict[str, Any] | None:
    """The refine (or search) stage as lrfind records it, every trial with its per-batch
    validation losses: lrfind's own when it keeps them, else those recorded here."""
    if refinement is None:
        return None
    record: dict[str, Any] = refinement.to_dict()
    record.setdefault("seconds", round(refinement.seconds, 3))
    for trial, item, batches in zip(
        refinement.trials, record["trials"], _trial_batches(refinement.trials, passes), strict=True
    ):
        if getattr(trial, "val_batch_losses", ()):
            item["val_batch_losses"] = [float(f"{v:.7g}") for v in trial.val_batch_losses]
            item["val_batch_sizes"] = list(trial.val_batch_sizes)
        elif batches:
            item["val_batch_losses"] = [float(f"{loss:.7g}") for loss, _ in batches]
            item["val_batch_sizes"] = [size for _, size in batches]
        else:
            item["val_batch_losses"] = item["val_batch_sizes"] = None
    return record


@dataclass(frozen=True)
class Case:
    """One task x seed: each row's suggestion and max_lr, its seconds and cost, and the record.

    ``cost_steps`` / ``cost_wall``: the row's compute over the plain sweep's (1 for rules read
    off the sweep). ``record`` is the JSON detail: the sweep curve and the refine trials.
    """

    task: str
    seed: int
    lrs: dict[str, float | None]
    max_lrs: dict[str, float | None]
    seconds: dict[str, float]
    cost_steps: dict[str, float]
    cost_wall: dict[str, float]
    confidence: str
    record: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        """Build from ``asdict`` output (the ``--json`` file's ``cases``)."""
        return cls(**data)


def run_case(job: tuple[str, int, int]) -> Case:
    """Run one range test (defaults, refine on) for a task and seed; read every rule off it.

    ``job`` is (task name, case seed, seed offset): the range test uses seed + offset for the
    initial weights, the batch order and ``range_test(seed=...)``.
    """
    from lrfind import range_test

    methods, analyze = _lrfind_api()
    name, seed, offset = job
    torch.set_num_threads(1)
    task = TASKS_BY_NAME[name]
    split = task.data()
    run_seed = seed + offset
    torch.manual_seed(run_seed)
    model = task.build_model()
    optimizer = task.make_optimizer(list(model.parameters()), 1e-3)
    train_loader = BatchLoader(split.x_train, split.y_train, task.batch_size, run_seed)
    val_loader = RecordingValLoader(split.x_val, split.y_val, task.batch_size)
    loss_fn = RecordingLoss(task.loss_fn, val_loader)
    started = time.perf_counter()
    result = range_test(
        model, optimizer, loss_fn, train_loader, val_loader=val_loader, refine="on", seed=run_seed
    )
    total = time.perf_counter() - started
    history = result.history
    refinement = result.refinement
    sweep_seconds = total - (refinement.seconds if refinement is not None else 0.0)
    sweep_steps = max(history.steps, 1)

    lrs: dict[str, float | None] = {}
    max_lrs: dict[str, float | None] = {}
    for method in SWEEP_ROWS:
        if method not in methods:
            continue
        analysis = analyze(history, method)
        lrs[method] = analysis.suggestion.lr
        max_lrs[method] = analysis.lr_range.max_lr
    planned = result.info.planned_steps or history.steps
    lrs["fastai-minimum"] = fastai_minimum(history, planned)
    lrs["fastai-valley"] = fastai_valley(history, planned)
    max_lrs["fastai-minimum"] = max_lrs["fastai-valley"] = None
    lrs[REFINE_ROW] = result.suggestion.lr
    max_lrs[REFINE_ROW] = result.lr_range.max_lr

    # Cost in steps, counted here rather than trusted: the trials' training steps plus every
    # validation batch lrfind read (each counted as one step), over the sweep's steps.
    trial_steps = sum(t.steps for t in refinement.trials) if refinement is not None else 0
    val_batches = sum(len(batches) for batches in val_loader.passes)
    seconds = {row: sweep_seconds for row in lrs}
    seconds[REFINE_ROW] = total
    cost_steps = {row: 1.0 for row in lrs}
    cost_steps[REFINE_ROW] = (sweep_steps + trial_steps + val_batches) / sweep_steps
    cost_wall = {row: 1.0 for row in lrs}
    cost_wall[REFINE_ROW] = total / sweep_seconds if sweep_seconds > 0 else math.nan
    record = {
        "range_test_seed": run_seed,
        "sweep": {
            "lrs": list(history.lrs),
            "losses": [_json_loss(v) for v in history.losses],
            "smoothed_losses": [_json_loss(v) for v in history.smoothed_losses],
            "stop_reason": history.stop_reason,
            "planned_steps": planned,
            "seconds": round(sweep_seconds, 3),
        },
        "refinement": _refinement_record(refinement, val_loader.passes),
        "val_batches_read": val_batches,
        "min_lr": result.lr_range.min_lr,
        "confidence_reasons": list(result.confidence.reasons),
    }
    return Case(
        task=name,
        seed=seed,
        lrs=lrs,
        max_lrs=max_lrs,
        seconds=seconds,
        cost_steps=cost_steps,
        cost_wall=cost_wall,
        confidence=result.confidence.level,
        record=record,
    )


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class RowScore:
    """One row of the quality table."""

    row: str
    noise_hit_rate: float
    band_hit_rate: float
    answered: int
    median_regret: float
    worst_spread: float
    seconds: float
    cost_steps: float
    cost_wall: float
    onecycle_hit_rate: float | None


def score_row(row: str, cases: Sequence[Case], truths: dict[str, Truth]) -> RowScore:
    """Score one row over every case (no answer: a miss with infinite regret)."""
    noise_hits, band_hits, regrets, onecycle_hits = [], [], [], []
    by_task: dict[str, list[float]] = {}
    for case in cases:
        truth = truths[case.task]
        lr = case.lrs.get(row)
        noise_hits.append(truth.noise_hit(lr))
        band_hits.append(truth.band_hit(lr))
        regrets.append(truth.regret(lr))
        onecycle = truth.onecycle_hit(case.max_lrs.get(row))
        if onecycle is not None and row not in FASTAI_ROWS:
            onecycle_hits.append(onecycle)
        if lr is not None:
            by_task.setdefault(case.task, []).append(lr)
    spreads = [max(v) / min(v) for v in by_task.values() if len(v) > 1]
    return RowScore(
        row=row,
        noise_hit_rate=float(np.mean(noise_hits)),
        band_hit_rate=float(np.mean(band_hits)),
        answered=sum(case.lrs.get(row) is not None for case in cases),
        median_regret=float(np.median(regrets)),
        worst_spread=max(spreads) if spreads else math.nan,
        seconds=statistics.fmean(case.seconds[row] for case in cases),
        cost_steps=statistics.fmean(case.cost_steps[row] for case in cases),
        cost_wall=statistics.fmean(case.cost_wall[row] for case in cases),
        onecycle_hit_rate=float(np.mean(onecycle_hits)) if onecycle_hits else None,
    )


def _fmt_lr(lr: float | None) -> str:
    return "-" if lr is None else f"{lr:.2g}"


def format_lr_set(lrs: Sequence[float]) -> str:
    """Grid LRs as runs of consecutive grid values: ``0.0032-0.01, 0.032``."""
    if not lrs:
        return "-"
    indices = sorted(round((math.log10(lr) - math.log10(GRID[0])) * 4) for lr in lrs)
    runs: list[list[int]] = [[indices[0], indices[0]]]
    for index in indices[1:]:
        if index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ", ".join(
        _fmt_lr(GRID[a]) if a == b else f"{_fmt_lr(GRID[a])}-{_fmt_lr(GRID[b])}" for a, b in runs
    )


def format_table(scores: Sequence[RowScore], cases: int) -> str:
    """The quality table as Markdown."""
    lines = [
        "| method | hit (noise-aware) | hit 5% band | answered | median regret "
        "| worst seed spread | s / recommendation | cost x sweep (steps) | cost x sweep (wall) "
        "| max_lr in 1cycle band |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        onecycle = "-" if s.onecycle_hit_rate is None else f"{s.onecycle_hit_rate:.0%}"
        lines.append(
            f"| {s.row} | {s.noise_hit_rate:.0%} | {s.band_hit_rate:.0%} | {s.answered}/{cases} "
            f"| {s.median_regret:.1%} | {s.worst_spread:.3g}x | {s.seconds:.2f} "
            f"| {s.cost_steps:.1f} | {s.cost_wall:.1f} | {onecycle} |"
        )
    return "\n".join(lines)


def format_task_hits(cases: Sequence[Case], truths: dict[str, Truth]) -> str:
    """Noise-aware hits per task (rows) and method (columns) as Markdown."""
    lines = ["| task | " + " | ".join(ROWS) + " |", "|---|" + "---|" * len(ROWS)]
    for name in _task_order(cases):
        mine = [c for c in cases if c.task == name]
        cells = [
            f"{sum(truths[name].noise_hit(c.lrs.get(row)) for c in mine)}/{len(mine)}"
            for row in ROWS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_tasks(cases: Sequence[Case], truths: dict[str, Truth], row: str) -> str:
    """Per-task detail for one row as Markdown: both bands, the seeds' answers, hits."""
    lines = [
        "| task | optimizer | best LR | noise-aware band | 5% band | suggested (per seed) "
        "| noise-aware hits | 5% hits | max_lr (per seed) | 1cycle hits |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in _task_order(cases):
        truth = truths[name]
        mine = [c for c in cases if c.task == name]
        noise = sum(truth.noise_hit(c.lrs.get(row)) for c in mine)
        band = sum(truth.band_hit(c.lrs.get(row)) for c in mine)
        onecycle = [truth.onecycle_hit(c.max_lrs.get(row)) for c in mine]
        onecycle_text = (
            "-"
            if any(hit is None for hit in onecycle)
            else f"{sum(bool(hit) for hit in onecycle)}/{len(mine)}"
        )
        lines.append(
            f"| {name} | {truth.optimizer} | {_fmt_lr(truth.best_lr)} "
            f"| {format_lr_set(truth.noise_band())} | {format_lr_set(truth.five_percent_band())} "
            f"| {' '.join(_fmt_lr(c.lrs.get(row)) for c in mine)} | {noise}/{len(mine)} "
            f"| {band}/{len(mine)} | {' '.join(_fmt_lr(c.max_lrs.get(row)) for c in mine)} "
            f"| {onecycle_text} |"
        )
    return "\n".join(lines)


def _task_order(cases: Sequence[Case]) -> list[str]:
    names = {case.task for case in cases}
    known = [task.name for task in TASKS if task.name in names]
    return known + sorted(names - set(known))


def case_results(case: Case, truths: dict[str, Truth]) -> dict[str, Any]:
    """A case's JSON form: per method the LR, hit flags, regret, seconds and cost; the record."""
    truth = truths.get(case.task)
    methods: dict[str, Any] = {}
    for row in ROWS:
        lr = case.lrs.get(row)
        regret = truth.regret(lr) if truth is not None else math.nan
        methods[row] = {
            "lr": lr,
            "max_lr": case.max_lrs.get(row),
            "noise_hit": truth.noise_hit(lr) if truth is not None else None,
            "band_hit": truth.band_hit(lr) if truth is not None else None,
            "regret": regret if math.isfinite(regret) else None,
            "onecycle_hit": (
                truth.onecycle_hit(case.max_lrs.get(row))
                if truth is not None and row not in FASTAI_ROWS
                else None
            ),
            "seconds": round(case.seconds[row], 3),
            "cost_steps": case.cost_steps[row],
            "cost_wall": case.cost_wall[row],
        }
    return {"task": case.task, "seed": case.seed, "methods": methods}


def lrfind_source() -> dict[str, Any]:
    """Which lrfind was measured: its version, the checkout's commit (and whether lrfind/ had
    uncommitted changes) and a sha256 over its .py sources."""
    import hashlib
    import subprocess

    import lrfind

    root = Path(lrfind.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    info: dict[str, Any] = {"version": lrfind.__version__, "sources_sha256": digest.hexdigest()}
    try:
        git = ["git", "-C", str(root.parent)]
        info["commit"] = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", root.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        info["uncommitted_changes"] = bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def write_json(
    path: Path, cases: Sequence[Case], truths: dict[str, Truth], settings: dict[str, Any]
) -> None:
    """Write every case (raw fields for ``--rescore``, and scored per method) and the truths."""
    names = _task_order(cases)
    document = {
        "settings": settings,
        "truth": {name: truths[name].to_dict() for name in names if name in truths},
        "results": [case_results(case, truths) for case in cases],
        "cases": [asdict(case) for case in cases],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, separators=(",", ":")) + "\n")


def report(cases: Sequence[Case], truths: dict[str, Truth]) -> str:
    """The three Markdown tables: all rules, noise-aware hits per task, lrfind+refine detail."""
    scores = [score_row(row, cases, truths) for row in ROWS]
    return "\n\n".join(
        [
            format_table(scores, len(cases)),
            format_task_hits(cases, truths),
            format_tasks(cases, truths, REFINE_ROW),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--regenerate", action="store_true", help="rebuild the ground truth of --tasks first"
    )
    parser.add_argument(
        "--schedules",
        nargs="+",
        choices=SCHEDULES,
        default=list(SCHEDULES),
        help="with --regenerate: the schedules to train (default: both)",
    )
    parser.add_argument("--tasks", nargs="*", default=None, help="task names (default: all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="seeds (default: 0-4)")
    parser.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        help="the range test of case seed s uses seed s + OFFSET (default 0: the ground truth's)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes (one thread each)")
    parser.add_argument("--truth", type=Path, default=GROUND_TRUTH_PATH, help="ground-truth file")
    parser.add_argument("--json", type=Path, default=None, help="write every case to this file")
    parser.add_argument(
        "--rescore", type=Path, default=None, help="reprint the tables from a --json file"
    )
    parser.add_argument("--no-score", action="store_true", help="with --regenerate: stop there")
    args = parser.parse_args(argv)
    unknown = [name for name in args.tasks or () if name not in TASKS_BY_NAME]
    if unknown:
        parser.error(
            f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS_BY_NAME)}"
        )
    tasks = [TASKS_BY_NAME[name] for name in args.tasks] if args.tasks else list(TASKS)
    seeds = tuple(args.seeds) if args.seeds else SEEDS
    torch.set_num_threads(1)
    if args.regenerate:
        started = time.perf_counter()
        entries = regenerate(tasks, seeds, args.workers, args.schedules)
        took = time.perf_counter() - started
        write_ground_truth(entries, args.truth, took)
        print(f"wrote {args.truth} ({', '.join(entries)}) in {took:.0f}s", file=sys.stderr)
        if args.no_score:
            return 0
    truths = load_ground_truth(args.truth)
    measured: dict[str, Any] = {}
    offset = args.seed_offset
    if args.rescore is not None:
        saved = json.loads(args.rescore.read_text())
        measured = saved.get("settings", {}).get("lrfind", {})
        offset = saved.get("settings", {}).get("seed_offset", offset)
        cases = [Case.from_dict(item) for item in saved["cases"]]
        cases = [c for c in cases if c.task in {t.name for t in tasks} and c.seed in seeds]
    else:
        missing = [task.name for task in tasks if task.name not in truths]
        if missing:
            parser.error(f"no ground truth for {', '.join(missing)}: run with --regenerate")
        measured = lrfind_source()  # before the run: the checkout may change under it
        jobs = [(task.name, seed, offset) for task in tasks for seed in seeds]
        started = time.perf_counter()
        cases = []
        for case in _map(run_case, jobs, args.workers):
            cases.append(case)
            print(
                f"[{len(cases)}/{len(jobs)}] {case.task} seed={case.seed}: "
                f"{case.seconds[REFINE_ROW]:.1f}s",
                file=sys.stderr,
            )
        print(f"{len(cases)} cases in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    print(report(cases, truths))
    if args.json is not None:
        settings = {
            "seeds": list(seeds),
            "seed_offset": offset,
            "truth": str(args.truth),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "noise_relative": NOISE_RELATIVE,
            "noise_standard_errors": NOISE_STANDARD_ERRORS,
            "paired_seeds": PAIRED_SEEDS,
            "band": BAND,
            "lrfind": measured,
        }
        write_json(args.json, cases, truths, settings)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
