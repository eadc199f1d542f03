"""What the trials after a sweep may cost: the budget, in sweeps, and the plan that fits it.

Cost is counted in sweep steps: one training step of a trial costs one step, one validation
batch costs ``1 / accumulation_steps`` of a step (a micro-batch forward: it really costs about a
third of a micro-batch forward and backward, so the count errs on the budget's side). With a
``budget`` of B, the sweep and the trials together cost at most B sweeps: the trials get
``(B - 1) x`` the sweep's recorded steps (a sweep stopped early by a blow-up is cheaper, and
so is what follows it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Stage = Literal["refine", "search"]

#: The refine stage's first window: the grid value nearest the sweep's max_lr and the
#: quarter-decade steps below it (the band the sweep alone cannot resolve).
REFINE_CANDIDATES = 3

#: A budget that affords the longest trials for more candidates widens the first window down
#: to this many (max_lr and four grid steps below it: a decade).
MAX_CANDIDATES = 5

#: ... plus at most this many trials that extend the window one grid step past an edge
#: holding the best trial (``next_refine_candidate``).
REFINE_EXTRA_TRIALS = 1

#: The search stage's coarse grid: this many LRs a decade apart, down from the top of the
#: range the flat sweep showed to be stable. Few and long: a flat sweep says the model needs
#: more steps per LR to show progress (on the benchmark's deep MLP, 3 + 1 or 3 + 2 trials at
#: the default budget were too short for any to train; 2 + 1 answered 3 of 5 seeds).
SEARCH_CANDIDATES = 2

#: ... plus at most this many trials that bisect towards the best (or extend past an edge);
#: trials that diverge early leave budget for more.
SEARCH_EXTRA_TRIALS = 1

#: Auto trial length is capped at this many times the sweep's steps: the LR that does best in a
#: short constant-LR run falls as the run gets longer; beyond the cap the budget is left unspent.
REFINE_STEPS_PER_SWEEP_STEP = 2

#: At most this share of a trial's cost goes to its validation pass: the trial's training is
#: what is being measured, and paired per-batch differences stay precise on a few batches.
VALIDATION_SHARE = 0.2

#: A validation pass reads at least this many batches (when there are that many): two are the
#: fewest that give a standard error, five give one worth comparing with.
MIN_VAL_BATCHES = 5

#: ... and at most this many (the engine's cap for every validation pass).
MAX_VAL_BATCHES = 50

#: Auto trials shorter than this share of the sweep's steps have barely left the initial loss;
#: a budget that only affords such trials runs fewer of them, or none.
MIN_TRIAL_FRACTION = 0.25


@dataclass(frozen=True)
class TrialPlan:
    """How many trials a stage may run, how long each is, and what that costs at most.

    ``first`` trials run in any case; up to ``trials - first`` more follow when the rule asks
    for them. ``val_batches`` is None without validation data. ``start_cost`` is the
    validation pass of the untrained model (search only). ``cost_steps`` is the most the stage
    can cost, in sweep steps; ``multiple`` the most the whole recommendation can cost, in sweeps.
    """

    stage: Stage
    first: int
    trials: int
    steps: int
    val_batches: int | None
    val_batch_cost: float
    sweep_steps: int
    budget: float
    start_cost: float = 0.0

    @property
    def trial_cost(self) -> float:
        """The most one trial costs, in sweep steps."""
        return self.steps + (self.val_batches or 0) * self.val_batch_cost

    @property
    def cost_steps(self) -> float:
        """The most the stage costs, in sweep steps."""
        return self.start_cost + self.trials * self.trial_cost

    @property
    def multiple(self) -> float:
        """The most the sweep plus this stage cost, in sweeps."""
        return 1 + self.cost_steps / max(self.sweep_steps, 1)

    def describe(self) -> str:
        """One line for people: what the stage will run and the most it can cost."""
        validation = f" + {self.val_batches} val batches" if self.val_batches is not None else ""
        extra = self.trials - self.first
        more = f" (+{extra} if needed)" if extra > 0 else ""
        start = " and a validation pass before training" if self.start_cost > 0 else ""
        return (
            f"{self.stage} planned: {self.first} trials{more} x {self.steps} steps"
            f"{validation}{start}, at most ~{math.ceil(self.cost_steps)} steps "
            f"({self.multiple:.1f}x the sweep's compute with it; budget {self.budget:g}x)"
        )


def plan_trials(
    stage: Stage,
    *,
    sweep_steps: int,
    budget: float,
    val_batches: int | None,
    val_batch_cost: float = 1.0,
    candidates: int | None = None,
    steps: int | None = None,
) -> TrialPlan | None:
    """Return the plan for ``stage`` that fits ``budget`` sweeps, or None when none fits.

    ``val_batches``: batches the validation data holds (None: no validation data; 0 or an
    unknown length: up to MAX_VAL_BATCHES). Auto (``steps`` None): the stage's candidates plus
    its extra trials share ``(budget - 1) x sweep_steps``, each trial spending at most
    VALIDATION_SHARE of its cost on validation and training at most
    REFINE_STEPS_PER_SWEEP_STEP x the sweep. A budget that affords trials of that longest
    length for more candidates widens the first window (up to MAX_CANDIDATES); one that leaves
    trials shorter than MIN_TRIAL_FRACTION of the sweep drops the extra trials first, then
    candidates (never fewer than two). Explicit ``candidates`` / ``steps`` are honoured as
    given; the budget then only bounds the extra trials (so the plan may cost more than the
    budget: it says so).

    Raises:
        ValueError: ``budget`` below 1, ``sweep_steps`` below 1, ``candidates`` below 1 or
            ``steps`` below 1.
    """
    if not budget >= 1 or not math.isfinite(budget):
        raise ValueError(f"budget must be a finite number of sweeps >= 1, got {budget!r}")
    if sweep_steps < 1:
        raise ValueError(f"sweep_steps must be at least 1, got {sweep_steps}")
    if candidates is not None and candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    first = candidates or (REFINE_CANDIDATES if stage == "refine" else SEARCH_CANDIDATES)
    extra = REFINE_EXTRA_TRIALS if stage == "refine" else SEARCH_EXTRA_TRIALS
    allowance = (budget - 1) * sweep_steps
    available = MAX_VAL_BATCHES if not val_batches else min(val_batches, MAX_VAL_BATCHES)

    def validation(per_trial: float) -> int | None:
        if val_batches is None:
            return None
        share = math.floor(VALIDATION_SHARE * per_trial / val_batch_cost)
        return min(available, max(MIN_VAL_BATCHES, share))

    start_cost = 0.0
    if stage == "search" and val_batches is not None:
        start_cost = validation(allowance / (first + extra)) or 0
        start_cost *= val_batch_cost

    def plan(first: int, trials: int, length: int, batches: int | None) -> TrialPlan:
        return TrialPlan(
            stage=stage,
            first=first,
            trials=trials,
            steps=length,
            val_batches=batches,
            val_batch_cost=val_batch_cost,
            sweep_steps=sweep_steps,
            budget=budget,
            start_cost=start_cost if stage == "search" else 0.0,
        )

    if steps is not None:
        batches = validation(steps / (1 - VALIDATION_SHARE))
        trial_cost = steps + (batches or 0) * val_batch_cost
        fits = math.floor((allowance - start_cost - first * trial_cost) / trial_cost + 1e-9)
        return plan(first, first + max(0, min(extra, fits)), steps, batches)
    shortest = max(1, math.ceil(MIN_TRIAL_FRACTION * sweep_steps))
    longest = REFINE_STEPS_PER_SWEEP_STEP * sweep_steps
    # Widest first: more candidates only while every trial still gets the longest length.
    wide = range(MAX_CANDIDATES, first, -1) if candidates is None else range(0)
    shapes = [(n, n + extra, longest) for n in wide]
    shapes += [(first, first + e, shortest) for e in range(extra, -1, -1)]
    if candidates is None:
        shapes += [(n, n, shortest) for n in range(first - 1, 1, -1)]
    for count, trials, needed in shapes:
        per_trial = (allowance - start_cost) / trials
        batches = validation(per_trial)
        length = min(longest, math.floor(per_trial - (batches or 0) * val_batch_cost + 1e-9))
        if length >= needed:
            return plan(count, trials, length, batches)
    return None
