"""Trials that reach toward the run the user will train: rungs, schedules, and the drift.

When the user states the run (``train.steps``, its schedule and warmup), the trials after the
sweep answer for that run rather than for runs as short as the trials:

* **Rungs (successive halving with continuation).** Every candidate trains ``rungs[0]`` steps
  and is scored on the validation data; the best and the LRs below it continue *from their own
  state* to the next rung (twice as long; ``keep_for_longer``), and so on while the budget
  lasts, down to two finalists. Each candidate so leaves a loss-versus-steps record at every
  doubling, and the finalists train far longer than equally-priced independent trials could
  (``plan_rungs``).
* **The user's schedule.** Trials run the stated schedule, compressed to the last rung's
  length (warmup and decay included), so the LR they compare is the schedule's peak
  (``schedule_factor``).
* **The drift of the best LR.** The best constant LR falls as training gets longer (a power law
  in steps in the literature: Bjorck et al. 2025, ``lr*(t) ~ t**-beta``). The best LR read at
  each rung gives an estimate of ``beta``; it is shrunk toward a prior, bounded, and used to
  carry the finalists' answer from the last rung to the stated run (``estimate_drift``).

Pure functions: no torch; the engine's horizon stage runs what they plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from lrfind.analysis.budget import MAX_VAL_BATCHES, MIN_VAL_BATCHES, VALIDATION_SHARE
from lrfind.analysis.choose import choose
from lrfind.analysis.grid import grid_exponent, grid_lr
from lrfind.analysis.refine import refine_candidates, without_higher_advice
from lrfind.analysis.schedule_shape import lr_at
from lrfind.analysis.suggest import ordered_range
from lrfind.format import format_lr
from lrfind.results import (
    Analysis,
    Confidence,
    ConfidenceLevel,
    Drift,
    History,
    TrainRun,
    Trial,
)
from lrfind.settings import DRIFT_PRIOR

#: Candidates of the first rung: the grid value nearest the sweep's max_lr and the quarter-
#: decade steps below it. Six span 1.25 decades: the best LR for a run far longer than the
#: sweep sits up to a decade below the peak the sweep shows.
HORIZON_CANDIDATES = 6

#: Candidates that reach the last rung: two are the fewest that still compare.
FINALISTS = 2

#: A first rung shorter than this many steps scores little but the initial loss.
MIN_FIRST_RUNG = 8

#: ... nor shorter than this share of the sweep's steps.
MIN_FIRST_RUNG_FRACTION = 0.1

#: Finalists that would train fewer than this share of the sweep's steps are no rungs worth
#: running: such short finalists hit the ground truth less often than refine's longer trials
#: (``benchmarks/horizon_quality.py --budget 50%``; the numbers: benchmarks/README.md).
MIN_FINAL_FRACTION = 0.5

#: One extra candidate one grid step past an edge of the window, run at the first rung when
#: the best first-rung candidate sits on that edge.
EDGE_EXTENSIONS = 1


#: The prior counts as this many doublings of observed drift when the two are averaged.
DRIFT_PRIOR_WEIGHT = 2.0

#: The answer is never carried down by more than this many decades, nor up at all (a best LR
#: that rises with training is rare and a risky bet). The long-run ground truth has one task
#: whose best LR falls 1.75 decades from 100 to 10k steps; one decade cut its answers short.
MAX_DRIFT_DECADES = 1.5


def schedule_factor(step: int, total: int, run: TrainRun) -> float:
    """The LR at ``step`` (0-based) of a ``total``-step run of ``run``'s schedule, over its peak.

    The shape is ``lrfind.analysis.schedule_shape.lr_at``'s (the one the user's scheduler
    takes). A run compressed into ``total`` steps keeps its warmup's share: a fraction as it
    is, steps scaled by ``total / run.steps``; ``onecycle`` without a warmup rises for torch's
    default 30%.
    """
    if run.warmup >= 1:
        warmup = round(run.warmup * total / run.steps)
    else:
        warmup = round(run.warmup * total)
    return lr_at(step, total, run.schedule, min(warmup, total - 1))


@dataclass(frozen=True)
class RungPlan:
    """The horizon stage's plan: how many candidates, the rung lengths, what it costs at most.

    ``rungs[r]`` is the step count every candidate still in at rung r has trained when it is
    scored; ``survivors[r]`` how many train to it. ``val_batches`` is read at every score
    (None without validation data). ``cost_steps``: the most the stage costs, in sweep steps
    (training steps plus validation batches at ``val_batch_cost``); ``horizon``: the stated
    run's steps; ``allowance``: what the budget gave the stage.
    """

    candidates: int
    rungs: tuple[int, ...]
    survivors: tuple[int, ...]
    val_batches: int | None
    val_batch_cost: float
    horizon: int
    allowance: float
    sweep_steps: int
    budget_text: str
    extensions: int = EDGE_EXTENSIONS

    @property
    def stage(self) -> str:
        """The stage's name, as the refine and search plans have one."""
        return "horizon"

    @property
    def first(self) -> int:
        """The scores the stage reads unless an edge extension adds one (progress totals)."""
        return sum(self.survivors)

    @property
    def final_steps(self) -> int:
        """Steps the finalists train."""
        return self.rungs[-1]

    @property
    def train_steps(self) -> int:
        """Training steps of the whole stage at most (extension included)."""
        total = (self.survivors[0] + self.extensions) * self.rungs[0]
        for index in range(1, len(self.rungs)):
            total += self.survivors[index] * (self.rungs[index] - self.rungs[index - 1])
        return total

    @property
    def evaluations(self) -> int:
        """Validation passes (or training-loss reads) of the whole stage at most."""
        return sum(self.survivors) + self.extensions

    @property
    def cost_steps(self) -> float:
        """The most the stage costs, in sweep steps."""
        return self.train_steps + self.evaluations * (self.val_batches or 0) * self.val_batch_cost

    @property
    def multiple(self) -> float:
        """The most the sweep plus this stage cost, in sweeps."""
        return 1 + self.cost_steps / max(self.sweep_steps, 1)

    def describe(self) -> str:
        """One line for people: the rungs, the run they reach toward, the cost and the budget."""
        lengths = "/".join(str(r) for r in self.rungs)
        counts = "/".join(str(n) for n in self.survivors)
        validation = f", {self.val_batches} val batches each" if self.val_batches else ""
        reach = self.final_steps / self.horizon
        return (
            f"horizon planned: {counts} candidates trained {lengths} steps (continued, "
            f"not restarted{validation}), reaching {reach:.0%} of the {self.horizon}-step run; "
            f"at most ~{math.ceil(self.cost_steps)} steps ({self.multiple:.1f}x the sweep's "
            f"compute with it; budget {self.budget_text})"
        )


def survivors_per_rung(candidates: int, rungs: int) -> tuple[int, ...]:
    """How many candidates train to each of ``rungs`` rungs: halved each time, never below
    FINALISTS (nor above ``candidates``)."""
    counts = [candidates]
    for _ in range(rungs - 1):
        counts.append(max(min(FINALISTS, candidates), math.ceil(counts[-1] / 2)))
    return tuple(counts)


def plan_rungs(
    *,
    sweep_steps: int,
    horizon: int,
    allowance: float,
    budget_text: str,
    val_batches: int | None,
    val_batch_cost: float = 1.0,
    candidates: int | None = None,
) -> RungPlan | None:
    """Return the rung plan that trains the finalists longest within ``allowance`` sweep steps.

    Rung lengths double (the last is exactly ``horizon`` when the allowance reaches it: no
    trial trains longer than the run it answers for). Every score reads the same number of
    validation batches: VALIDATION_SHARE of the average training between two scores, at least
    MIN_VAL_BATCHES, at most MAX_VAL_BATCHES (or what the data holds). None when not even one
    rung of first-rung length (MIN_FIRST_RUNG, MIN_FIRST_RUNG_FRACTION of the sweep) fits, or
    when the finalists would train fewer than MIN_FINAL_FRACTION of the sweep's steps (and
    fewer than the run itself).

    Raises:
        ValueError: ``horizon``, ``sweep_steps`` or ``candidates`` below 1 (``candidates``
            below 2).
    """
    if horizon < 1 or sweep_steps < 1:
        raise ValueError("horizon and sweep_steps must be at least 1")
    count = HORIZON_CANDIDATES if candidates is None else candidates
    if count < 2:
        raise ValueError(f"candidates must be at least 2, got {count}")
    shortest = max(MIN_FIRST_RUNG, math.ceil(MIN_FIRST_RUNG_FRACTION * sweep_steps))
    available = MAX_VAL_BATCHES if not val_batches else min(val_batches, MAX_VAL_BATCHES)
    best: RungPlan | None = None
    for depth in range(1, 16):
        survivors = survivors_per_rung(count, depth)
        units = (
            survivors[0]
            + EDGE_EXTENSIONS
            + sum(n * 2 ** (r - 1) for r, n in enumerate(survivors) if r > 0)
        )
        evaluations = sum(survivors) + EDGE_EXTENSIONS
        batches: int | None = None
        if val_batches is not None:
            share = VALIDATION_SHARE * allowance / evaluations / val_batch_cost
            batches = min(available, max(MIN_VAL_BATCHES, math.floor(share)))
        training = allowance - evaluations * (batches or 0) * val_batch_cost
        first = math.floor(training / units + 1e-9)
        if first < shortest:
            break
        lengths = [first * 2**r for r in range(depth)]
        if lengths[-1] >= horizon:
            lengths = [max(1, math.ceil(horizon / 2 ** (depth - 1 - r))) for r in range(depth)]
            lengths[-1] = horizon
            if lengths[0] < shortest and best is not None:
                break
        plan = RungPlan(
            candidates=count,
            rungs=tuple(lengths),
            survivors=survivors,
            val_batches=batches,
            val_batch_cost=val_batch_cost,
            horizon=horizon,
            allowance=allowance,
            sweep_steps=sweep_steps,
            budget_text=budget_text,
        )
        if best is None or plan.final_steps > best.final_steps:
            best = plan
        if plan.final_steps >= horizon:
            break
    if best is not None and best.final_steps < min(horizon, MIN_FINAL_FRACTION * sweep_steps):
        return None
    return best


def keep_for_longer(trials: Sequence[Trial], count: int) -> list[Trial]:
    """The ``count`` trials that continue to the next rung: the best (the choice rule's
    metric; the lower LR among equal scores), then the LRs below it, nearest first, then those
    above it. The best LR falls as training gets longer, so a short rung's best is an upper
    bound for the long run's: "the better half" would drop first exactly the low LRs that win
    long runs. Diverged trials never continue."""
    choice = choose(trials)
    finite = [i for i, s in enumerate(choice.scores) if math.isfinite(s)]
    if not finite:
        return []
    lrs = [t.lr for t in choice.trials]
    best = min(finite, key=lambda i: (choice.scores[i], lrs[i]))
    below = sorted((i for i in finite if lrs[i] < lrs[best]), key=lambda i: -lrs[i])
    above = sorted((i for i in finite if lrs[i] > lrs[best]), key=lambda i: lrs[i])
    return [choice.trials[i] for i in [best, *below, *above][:count]]


def drift_factor(from_steps: float, to_steps: float, exponent: float) -> float:
    """``(to / from) ** -exponent``: how far the best LR falls from ``from_steps`` of training
    to ``to_steps``, at most MAX_DRIFT_DECADES, never up."""
    if to_steps <= from_steps or from_steps <= 0:
        return 1.0
    return max(10**-MAX_DRIFT_DECADES, (to_steps / from_steps) ** -exponent)


def horizon_candidates(
    history: History, analysis: Analysis, count: int, train: TrainRun, prior: float | None
) -> list[float]:
    """The first rung's candidates, ascending: refine's window (from the sweep's max_lr down),
    reaching down to one grid step below where ``prior`` carries the sweep's answer for the
    stated run, so that the long run's band is inside it; wider than ``count`` grid steps, the
    window keeps ``count`` candidates at a coarser stride. [] without a sweep answer."""
    window = refine_candidates(history, analysis, count)
    lr = analysis.suggestion.lr
    if not window or lr is None or prior is None:
        return window
    sweep_steps = max(history.steps, 1)
    predicted = lr * drift_factor(
        sweep_steps, train.steps, schedule_exponent(train.schedule, prior)
    )
    top = grid_exponent(window[-1])
    bottom = min(grid_exponent(window[0]), grid_exponent(predicted) - 1)
    stride = max(1, math.ceil((top - bottom) / max(count - 1, 1)))
    return [grid_lr(top - stride * i) for i in reversed(range(count))]


#: How much less a decaying schedule's best peak moves with the run's length than the best
#: constant LR does (the peak's exponent is this share of the constant LR's). Measured on the
#: long-run ground truth: from 1k to 4k steps the best linear/cosine peak moved by a median
#: exponent of about 0.2 where the constant LR's was about 0.4 (benchmarks/README.md).
SCHEDULE_DRIFT_SHARE = 0.6


def schedule_exponent(schedule: str, exponent: float) -> float:
    """The drift exponent for a run of ``schedule``: a decaying schedule's peak drifts less."""
    return exponent if schedule == "constant" else exponent * SCHEDULE_DRIFT_SHARE


def best_lr_at(trials: Sequence[Trial]) -> float | None:
    """The best LR one rung's trials show: the vertex of a parabola (in log LR) through the
    best trial and its two neighbours when it has both, else the best trial's LR."""
    choice = choose(trials)
    if choice.best is None:
        return None
    index, scores = choice.best, choice.scores
    lrs = [t.lr for t in choice.trials]
    if 0 < index < len(lrs) - 1 and all(math.isfinite(scores[i]) for i in (index - 1, index + 1)):
        xs = [math.log10(lrs[i]) for i in (index - 1, index, index + 1)]
        ys = [scores[i] for i in (index - 1, index, index + 1)]
        vertex = _parabola_vertex(xs, ys)
        if vertex is not None:
            half = min(xs[1] - xs[0], xs[2] - xs[1]) / 2
            return float(10 ** min(xs[1] + half, max(xs[1] - half, vertex)))
    return lrs[index]


def _parabola_vertex(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    (x0, x1, x2), (y0, y1, y2) = xs, ys
    denominator = (x0 - x1) * (x0 - x2) * (x1 - x2)
    if denominator == 0:
        return None
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denominator
    b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / denominator
    if not a > 0:
        return None
    return -b / (2 * a)


def estimate_drift(
    rungs: Sequence[Sequence[Trial]],
    horizon: int,
    *,
    prior: float = DRIFT_PRIOR,
    prior_weight: float = DRIFT_PRIOR_WEIGHT,
    schedule: str = "constant",
) -> Drift | None:
    """How the best LR moves with training length, and the factor that carries the last
    rung's answer to a ``horizon``-step run.

    Each rung's best LR (``best_lr_at``) at its step count gives one point of
    ``log10 lr*`` against ``log10 steps``; the least-squares slope over the rungs (steps 2 or
    more apart) is the observed exponent, averaged with ``prior`` weighted as
    ``prior_weight`` doublings against the doublings observed, and kept within [0, 1]. The
    factor is ``(horizon / last rung) ** -exponent``, at most MAX_DRIFT_DECADES down and
    never up (``drift_factor``). A scheduled run (``schedule`` not constant) takes the prior
    alone, scaled by ``schedule_exponent``: its rungs ran the schedule compressed to the last
    one, so the earlier rungs saw only its start. None without a scored rung; factor 1 when the
    last rung reached the horizon.
    """
    observed: list[tuple[int, float]] = []
    for rung in rungs:
        steps = max((t.steps for t in rung if not t.diverged), default=0)
        lr = best_lr_at(rung)
        if lr is not None and steps > 0:
            observed.append((steps, lr))
    if not observed:
        return None
    last_steps = observed[-1][0]
    doublings = math.log2(last_steps / observed[0][0]) if len(observed) > 1 else 0.0
    slope: float | None = None
    if len(observed) > 1 and doublings > 0:
        xs = [math.log10(s) for s, _ in observed]
        ys = [math.log10(lr) for _, lr in observed]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    observed_exponent = -slope if slope is not None else prior
    if schedule != "constant":
        # The rungs ran the schedule compressed to the last rung: the earlier ones saw its
        # first part only, so their best LRs are no drift of the peak. The prior alone.
        doublings = 0.0
        prior = schedule_exponent(schedule, prior)
    exponent = (prior_weight * prior + doublings * observed_exponent) / (prior_weight + doublings)
    exponent = min(1.0, max(0.0, exponent))
    if last_steps >= horizon:
        factor = 1.0
        reason = f"the finalists trained the whole {horizon}-step run"
    else:
        factor = drift_factor(last_steps, horizon, exponent)
        seen = (
            f"the best LR moved from {format_lr(observed[0][1])} at {observed[0][0]} steps to "
            f"{format_lr(observed[-1][1])} at {last_steps}"
            if len(observed) > 1
            else f"the best LR was {format_lr(observed[-1][1])} at {last_steps} steps"
        )
        reason = (
            f"{seen}; carried to the {horizon}-step run as lr ~ steps^-{exponent:.2f} "
            f"(prior {prior:g}): x{factor:.2g}"
        )
    return Drift(
        observed=tuple(observed),
        exponent=exponent,
        prior=prior,
        factor=factor,
        from_steps=last_steps,
        to_steps=horizon,
        reason=reason,
    )


def carry_to_run(
    analysis: Analysis, from_steps: int, train: TrainRun, prior: float, measured: str
) -> tuple[Analysis, Drift | None]:
    """Carry an answer measured on ``from_steps``-step runs (``measured``: what measured it,
    for people) to the stated run by the prior alone, when nothing reached toward it: the
    answer put back on the grid, a reason that says so, and at most medium confidence. The
    analysis unchanged (and no Drift) without an answer or when ``from_steps`` reaches the run.
    """
    lr = analysis.suggestion.lr
    if lr is None or from_steps >= train.steps:
        return analysis, None
    exponent = schedule_exponent(train.schedule, prior)
    factor = drift_factor(from_steps, train.steps, exponent)
    moved = grid_lr(grid_exponent(lr * factor))
    reason = (
        f"for {train.describe()}: {measured} {from_steps} steps, and nothing trained toward "
        f"the run; carried by the prior alone (lr ~ steps^-{exponent:.2f}): "
        f"{format_lr(lr)} x{factor:.2g}"
    )
    drift = Drift(
        observed=(),
        exponent=exponent,
        prior=prior,
        factor=factor,
        from_steps=from_steps,
        to_steps=train.steps,
        reason=reason,
    )
    confidence = analysis.confidence
    lr = min(moved, lr)
    base = analysis.lr_range
    lr_range = ordered_range(
        base.min_lr if base.min_lr is not None else lr / 10**MAX_DRIFT_DECADES,
        base.max_lr if base.max_lr is not None else lr,
        lr,
    )
    level: ConfidenceLevel = "medium" if confidence.level == "high" else confidence.level
    carried = Analysis(
        replace(analysis.suggestion, lr=lr),
        lr_range,
        Confidence(
            level, (reason, *without_higher_advice(confidence.reasons)), confidence.try_range
        ),
        analysis.methods,
    )
    return carried, drift
