"""The horizon stage: trials that reach toward the run the user states (``train:``).

Successive halving with continuation (``lrfind.analysis.horizon`` plans the rungs and reads the
drift): every candidate trains the first rung from the sweep's snapshot, the better half
continues from its own state to a rung twice as long, and so on down to the finalists; the
answer is the choice rule's on the last rung, carried to the run's length.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from lrfind.analysis.budget import MAX_VAL_BATCHES, TrialPlan
from lrfind.analysis.horizon import (
    DRIFT_PRIOR,
    RungPlan,
    estimate_drift,
    keep_best,
    plan_rungs,
    schedule_factor,
)
from lrfind.analysis.refine import (
    choose_horizon,
    next_refine_candidate,
    refine_candidates,
    unconfirmed,
)
from lrfind.engine.options import StopFlag, SweepOptions
from lrfind.engine.state import StateSnapshot, restore_state, snapshot_state
from lrfind.engine.trials import Resume, TrialEvent, TrialRunner, validation_cost
from lrfind.results import Analysis, Budget, History, Refinement, TrainRun, Trial


def horizon_stage(
    runner: TrialRunner,
    history: History,
    analysis: Analysis,
    options: SweepOptions,
    snapshot: StateSnapshot,
    train: TrainRun,
    *,
    budget: Budget,
    candidates: int | None = None,
    stop: StopFlag,
    on_plan: Callable[[RungPlan | TrialPlan], None] | None = None,
    on_trial: Callable[[TrialEvent], None] | None = None,
    drift_prior: float | None = DRIFT_PRIOR,
    compress_schedule: bool = True,
    take_snapshot: Callable[[], StateSnapshot] | None = None,
) -> tuple[Analysis, Refinement | None]:
    """Plan the rungs for the budget and run them; the final analysis and the stage's record.

    ``take_snapshot`` keeps a paused candidate's state (default: a host copy); the range test
    passes its own, so ``sweep.snapshot: disk`` applies to the candidates too. A pruned
    candidate's snapshot is closed at once.

    Every candidate trains the first rung from the snapshot; the better half continues from its
    own state (weights, optimizer, RNG; the data order replayed) to the next rung, and so on
    down to the finalists. Trials run the stated schedule compressed to the last rung's length
    (``compress_schedule``; else truncated: the run's own schedule, cut where the last rung
    ends). The answer is the choice rule's on the last rung, carried to the run's length by the
    drift the rungs showed (``estimate_drift``; ``drift_prior`` None: not carried).

    A budget too small for rungs (see ``plan_rungs``) runs the refine stage instead, or, when
    it affords no trial at all, none: the reasons say so and confidence is at most medium.
    (analysis, None) as well when the sweep's window holds fewer than two candidates or a stop
    cut the stage short.
    """
    sweep_steps = max(history.steps, 1)
    plan = plan_rungs(
        sweep_steps=sweep_steps,
        horizon=train.steps,
        allowance=budget.allowance(sweep_steps, train.steps),
        budget_text=budget.describe(),
        val_batches=runner.val_batches_available(),
        val_batch_cost=1 / options.accumulation_steps,
        candidates=candidates,
    )
    if plan is None:
        # Rungs too short to read anything: refine's fewer, longer trials, if the budget
        # affords them, said to be for their own length rather than the run's.
        refined, refinement = runner.after_sweep(
            history,
            analysis,
            options,
            snapshot,
            budget=budget,
            candidates=candidates,
            stop=stop,
            on_plan=on_plan,
            on_trial=on_trial,
            horizon=train.steps,
        )
        if refinement is None:
            return _without_trials(analysis, train, budget, sweep_steps), None
        reason = (
            f"the budget ({budget.describe()}) affords no rungs toward {train.describe()}: "
            f"refine's {refinement.steps_per_trial}-step trials answered, for runs about "
            "that long"
        )
        return unconfirmed(refined, reason), refinement
    first = refine_candidates(history, analysis, plan.candidates)
    if len(first) < 2:
        return analysis, None
    if on_plan is not None:
        on_plan(plan)
    started = time.perf_counter()
    total = plan.final_steps if compress_schedule else train.steps

    def factor(step: int) -> float:
        return schedule_factor(step, total, train)

    lr_factor = None if train.schedule == "constant" and train.warmup == 0 else factor
    loaders = [loader for loader in (runner.train_loader, runner.val_loader) if loader is not None]

    def pause() -> StateSnapshot:
        if take_snapshot is not None:
            return take_snapshot()
        return snapshot_state(runner.model, runner.optimizer, loaders)

    paused: dict[float, Resume] = {}
    # Every candidate's divergence is judged against the untrained model's loss (the
    # sweep's first), as a trial from the snapshot judges it against its own first loss.
    finite = [v for v in history.losses[:3] if math.isfinite(v)]
    reference = finite[0] if finite else None
    rungs: list[list[Trial]] = []
    alive = list(first)
    cost = 0.0
    count = 0
    planned = plan.first
    try:
        for index, length in enumerate(plan.rungs):
            rung: list[Trial] = []
            queue = list(alive)
            extended = False
            while queue and not stop.requested:
                lr = queue.pop(0)
                resume = paused.get(lr)
                trial = runner.trial(
                    lr,
                    length - (resume.steps if resume else 0),
                    snapshot,
                    options,
                    max_val_batches=plan.val_batches or MAX_VAL_BATCHES,
                    stop=stop,
                    resume=resume,
                    lr_factor=lr_factor,
                    reference_loss=reference,
                )
                cost += trial.steps - (resume.steps if resume else 0)
                cost += validation_cost(trial, plan.val_batches, plan.val_batch_cost)
                if index + 1 < len(plan.rungs) and not trial.diverged:
                    if resume is not None:
                        resume.state.close()  # superseded by the state after this rung
                    paused[lr] = Resume(trial.steps, pause())
                rung.append(trial)
                if index == 0 and not queue and not extended and plan.extensions:
                    extended = True
                    extra = next_refine_candidate(history, analysis, rung)
                    if extra is not None and all(abs(extra - t.lr) > 1e-12 for t in rung):
                        queue.append(extra)
                        planned += 1
                if on_trial is not None:
                    on_trial(TrialEvent("horizon", count, planned, trial))
                count += 1
            rungs.append(rung)
            if stop.requested:
                break
            if index + 1 < len(plan.rungs):
                keep = keep_best(rung, plan.survivors[index + 1])
                alive = sorted(t.lr for t in keep)
                for lr in [lr for lr in paused if lr not in alive]:
                    paused.pop(lr).state.close()
                if len(alive) < 2:
                    break
    finally:
        # A paused candidate may hold a disk snapshot: released whatever happened.
        for resume in paused.values():
            resume.state.close()
        paused.clear()
    restore_state(snapshot, runner.model, runner.optimizer)
    if stop.requested:
        return analysis, None
    drift = (
        estimate_drift(rungs, train.steps, prior=drift_prior) if drift_prior is not None else None
    )
    final = choose_horizon(history, analysis, rungs[-1], train, drift)
    refinement = Refinement(
        trials=tuple(rungs[-1]),
        chosen_lr=final.suggestion.lr,
        steps_per_trial=max((t.steps for t in rungs[-1]), default=plan.final_steps),
        seconds=time.perf_counter() - started,
        metric="val_loss" if runner.val_loader is not None else "train_loss",
        stage="horizon",
        val_batches=plan.val_batches,
        cost_steps=cost,
        sweep_steps=plan.sweep_steps,
        budget=budget.as_sweeps(plan.sweep_steps, train.steps),
        rungs=tuple(tuple(rung) for rung in rungs),
        drift=drift,
    )
    return final, refinement


def _without_trials(
    analysis: Analysis, train: TrainRun, budget: Budget, sweep_steps: int
) -> Analysis:
    """The sweep's answer when the budget affords no trial toward the stated run."""
    allowance = budget.allowance(sweep_steps, train.steps)
    return unconfirmed(
        analysis,
        f"no trials toward {train.describe()}: the budget ({budget.describe()}) leaves "
        f"{allowance:.0f} steps after the {sweep_steps}-step sweep; the answer is the sweep's",
    )
