"""Which stage runs after the sweep, planned for the budget: the one place that decides.

* a run is stated (``train:``) and the sweep answered: the **horizon** rungs; a budget too
  small for rungs runs **refine** instead, said to answer for runs as long as its trials;
* the sweep answered: **refine**;
* a flat sweep with a stable range: **search**.

No stage when the budget affords no trial or the sweep leaves no candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lrfind.analysis.budget import plan_trials
from lrfind.analysis.horizon import horizon_candidates, plan_rungs, schedule_factor
from lrfind.analysis.search import stable_window
from lrfind.engine.stages.base import FixedLengthStage, TrialSettings, TrialStage
from lrfind.engine.stages.horizon import HorizonStage
from lrfind.engine.stages.refine import RefineStage
from lrfind.engine.stages.search import SearchStage
from lrfind.results import Analysis, Budget, History, TrainRun
from lrfind.settings import DRIFT_PRIOR


@dataclass(frozen=True)
class StageContext:
    """What picking and planning a stage reads: the sweep, its analysis and the user's asks.

    ``val_batches``: batches the validation data holds (0: unknown; None: no validation
    data); ``val_batch_cost``: one validation batch in sweep steps.
    """

    history: History
    analysis: Analysis
    budget: Budget
    val_batches: int | None
    val_batch_cost: float
    train: TrainRun | None = None
    candidates: int | None = None
    steps: int | None = None
    drift_prior: float | None = DRIFT_PRIOR
    compress_schedule: bool = True

    @property
    def sweep_steps(self) -> int:
        """The sweep's recorded steps (what trial lengths and budgets are measured in)."""
        return max(self.history.steps, 1)


@dataclass(frozen=True)
class StageChoice:
    """The stage to drive (None: no trials), and why the sweep's answer stands when none."""

    stage: TrialStage | None
    reason: str | None = None


def pick_stage(context: StageContext) -> StageChoice:
    """Pick and plan the stage for ``context`` (see the module docstring)."""
    answered = context.analysis.suggestion.lr is not None
    if context.train is not None and answered and context.steps is None:
        return _horizon(context, context.train)
    return StageChoice(_fixed_length(context))


def _fixed_length(context: StageContext) -> FixedLengthStage | None:
    """Refine (the sweep answered) or search (a flat sweep), planned for the budget."""
    answered = context.analysis.suggestion.lr is not None
    if not answered and stable_window(context.history) is None:
        return None
    horizon = context.train.steps if context.train is not None else None
    plan = plan_trials(
        "refine" if answered else "search",
        sweep_steps=context.sweep_steps,
        budget=context.budget.as_sweeps(context.sweep_steps, horizon),
        val_batches=context.val_batches,
        val_batch_cost=context.val_batch_cost,
        candidates=context.candidates,
        steps=context.steps,
    )
    if plan is None:
        return None
    settings = TrialSettings(plan.val_batches, plan.val_batch_cost)
    carry = None
    if context.train is not None and context.drift_prior is not None:
        carry = (context.train, context.drift_prior)
    stage: FixedLengthStage = (
        RefineStage(plan, context.history, context.analysis, settings, carry=carry)
        if answered
        else SearchStage(plan, context.history, context.analysis, settings, carry)
    )
    return stage if stage.first() else None


def _horizon(context: StageContext, train: TrainRun) -> StageChoice:
    """The rungs toward the stated run, or refine's longer trials when no rungs fit."""
    plan = plan_rungs(
        sweep_steps=context.sweep_steps,
        horizon=train.steps,
        allowance=context.budget.allowance(context.sweep_steps, train.steps),
        budget_text=context.budget.describe(),
        val_batches=context.val_batches,
        val_batch_cost=context.val_batch_cost,
        candidates=context.candidates,
    )
    if plan is None:
        return _without_rungs(context, train)
    candidates = horizon_candidates(
        context.history, context.analysis, plan.candidates, train, context.drift_prior
    )
    if len(candidates) < 2:
        return StageChoice(None)
    total = plan.final_steps if context.compress_schedule else train.steps

    def factor(step: int) -> float:
        return schedule_factor(step, total, train)

    # Every candidate's divergence is judged against the untrained model's loss (the sweep's
    # first), as a trial from the snapshot judges it against its own first loss.
    finite = [v for v in context.history.losses[:3] if math.isfinite(v)]
    settings = TrialSettings(
        plan.val_batches,
        plan.val_batch_cost,
        lr_factor=None if train.schedule == "constant" and train.warmup == 0 else factor,
        reference_loss=finite[0] if finite else None,
    )
    stage = HorizonStage(
        plan,
        candidates,
        context.history,
        context.analysis,
        train,
        settings,
        drift_prior=context.drift_prior,
        budget_sweeps=context.budget.as_sweeps(context.sweep_steps, train.steps),
    )
    if not context.compress_schedule and train.warmup_steps >= plan.final_steps:
        peak = factor(plan.final_steps - 1)
        stage.caveat = (
            f"the stated warmup ({train.warmup_steps} steps) outlasts the trials "
            f"({plan.final_steps} steps) and compress_schedule is off: every candidate trained "
            f"at {peak:.1%} of its peak or less, so the answer says little about the peak"
        )
    return StageChoice(stage)


def _without_rungs(context: StageContext, train: TrainRun) -> StageChoice:
    """Rungs too short to read anything: refine's fewer, longer trials, if the budget affords
    them, said to be for their own length rather than the run's; else the sweep's answer."""
    budget = context.budget
    refine = _fixed_length(context)
    if refine is None:
        return StageChoice(
            None,
            f"no trials toward {train.describe()}: "
            f"{budget.after_sweep(context.sweep_steps, train.steps)}; the answer is the sweep's",
        )
    if isinstance(refine, RefineStage):
        refine.caveat = (
            f"the budget ({budget.describe()}) affords no rungs toward {train.describe()}: "
            f"refine's {refine.plan.steps}-step trials answered"
        )
    return StageChoice(refine)
