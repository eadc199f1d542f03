"""Constant-LR trials: the one trial loop used by refine, search, the horizon stage and verify.

(Validation passes are ``lrfind.engine.evaluation``'s; re-exported here for the callers that
take both from one place.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from lrfind.analysis.budget import MAX_VAL_BATCHES, Stage, TrialPlan, plan_trials
from lrfind.analysis.refine import (
    choose_refined,
    choose_searched,
    next_refine_candidate,
    refine_candidates,
)
from lrfind.analysis.search import next_search_lr, search_candidates, stable_window
from lrfind.config.schema import DEFAULT_BUDGET
from lrfind.data.batches import BatchStream
from lrfind.engine.evaluation import Evaluation, evaluate, evaluate_batches, start_trial
from lrfind.engine.options import ComputeLoss, Reducer, StopFlag, SweepOptions
from lrfind.engine.state import StateSnapshot, restore_state
from lrfind.engine.steps import (
    LossReader,
    OverflowWatch,
    Stepper,
    default_check_every,
    take_step,
)
from lrfind.results import (
    Analysis,
    Budget,
    History,
    Refinement,
    Trial,
    parse_budget,
)

__all__ = [
    "Evaluation",
    "Resume",
    "TrialEvent",
    "TrialRunner",
    "evaluate",
    "evaluate_batches",
    "run_trial",
    "start_trial",
    "validation_cost",
]


@dataclass(frozen=True)
class TrialEvent:
    """Progress report for one finished trial of the refine or search stage.

    ``count`` is the number of trials planned so far: it grows when the stage extends its
    window, never beyond its plan (``lrfind.analysis.budget.TrialPlan``).
    """

    stage: str
    index: int
    count: int
    trial: Trial


@dataclass(frozen=True)
class Resume:
    """Where a continued trial picks up: after ``steps`` steps, in ``state``."""

    steps: int
    state: StateSnapshot


def run_trial(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    compute_loss: ComputeLoss,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    lr: float,
    steps: int,
    snapshot: StateSnapshot,
    options: SweepOptions,
    device: torch.device,
    *,
    reduce: Reducer | None = None,
    max_val_batches: int | None = MAX_VAL_BATCHES,
    stop: StopFlag | None = None,
    resume: Resume | None = None,
    lr_factor: Callable[[int], float] | None = None,
    reference_loss: float | None = None,
) -> Trial:
    """Train ``steps`` steps at constant ``lr`` from the snapshot's weights and data order.

    ``resume`` continues a trial instead: the data order is replayed from the snapshot up to
    ``resume.steps`` (batches drawn, nothing computed), then the trial's own weights,
    optimizer and RNG state are put back, and it trains ``steps`` more; the returned Trial
    counts every step since the snapshot. ``lr_factor(step)`` (step counted from the snapshot)
    scales ``lr`` for a schedule; ``lr`` is then the schedule's peak. ``reference_loss`` is
    what ``diverge_factor`` multiplies (default: the trial's first loss; a continued trial's
    first loss is already low, and ordinary batch noise can reach 4x it).

    Returns the trial's final train loss (mean of its last tenth of steps) and validation loss
    (None without validation data). A trial whose loss turns non-finite, exceeds
    ``diverge_factor`` times its first loss, or whose fp16 gradients keep overflowing stops and
    is marked diverged. Losses and stop requests are read (and all-reduced under
    torch.distributed) every ``check_every`` steps, so every rank stops at the same step. The
    caller restores the snapshot afterwards.
    """
    restore_state(snapshot, model, optimizer)
    model.train()
    stepper = Stepper(model, optimizer, compute_loss, device, options)
    stream = BatchStream(train_loader)
    offset = 0
    if resume is not None:
        for _ in range(resume.steps * options.accumulation_steps):
            next(stream)
        restore_state(resume.state, model, optimizer)
        model.train()
        offset = resume.steps
    check_every = options.check_every or default_check_every(device)
    reader = LossReader(check_every, device, reduce)
    stop = stop or StopFlag()
    if reduce is not None:
        stop.share()
    overflow = OverflowWatch()
    fp16 = options.precision == "fp16"
    recorded: list[float] = []
    diverged = False
    done = 0
    chunk_start = 0
    for step in range(steps):
        step_lr = lr if lr_factor is None else lr * lr_factor(offset + step)
        reader.record(take_step(stepper, stream, step_lr, offset + step))
        done = step + 1
        if fp16 and overflow.update(step, stepper.skipped) is not None:
            diverged = True
        if done - chunk_start < check_every and done < steps and not diverged:
            continue
        reader.launch(chunk_start, stop.raised)
        chunk_start = done
        chunk = reader.collect()
        recorded.extend(chunk.values)
        stop.agree(chunk.stop_asked)
        first = reference_loss if reference_loss is not None else recorded[0]
        if diverged or any(
            not math.isfinite(v) or (first > 0 and v > options.diverge_factor * first)
            for v in chunk.values
        ):
            diverged = True
            break
        if stop.requested:
            break
    optimizer.zero_grad(set_to_none=True)
    tail = tuple(recorded[-max(1, done // 10) :])
    train_loss = sum(tail) / len(tail) if tail else math.nan
    if diverged or not math.isfinite(train_loss):
        return Trial(lr=lr, train_loss=math.inf, val_loss=None, diverged=True, steps=offset + done)
    if val_loader is None:
        return Trial(lr, train_loss, None, diverged=False, steps=offset + done, train_tail=tail)
    evaluation = evaluate_batches(
        model,
        compute_loss,
        val_loader,
        device,
        precision=options.precision,
        max_batches=max_val_batches,
        reduce=reduce,
    )
    if not math.isfinite(evaluation.loss):
        return Trial(
            lr=lr, train_loss=train_loss, val_loss=None, diverged=True, steps=offset + done
        )
    return Trial(
        lr,
        train_loss,
        evaluation.loss,
        diverged=False,
        steps=offset + done,
        val_batch_losses=evaluation.batch_losses,
        val_batch_sizes=evaluation.batch_sizes,
        train_tail=tail,
    )


def validation_cost(trial: Trial, planned_batches: int | None, batch_cost: float) -> float:
    """What a trial's validation pass cost, in sweep steps: the batches it read (as recorded,
    else as planned when it has a score) at ``batch_cost`` each."""
    batches = len(trial.val_batch_losses) or (
        (planned_batches or 0) if trial.val_loss is not None else 0
    )
    return batches * batch_cost


@dataclass
class TrialRunner:
    """What every trial after a sweep shares: the model, optimizer, loss, data and device.

    ``after_sweep`` runs the refine stage (the sweep answered) or the search stage (a flat
    sweep), within the plan ``lrfind.analysis.budget`` makes for the budget; ``run_lrs`` runs
    a fixed set of LRs (``lrfind verify``); the horizon stage drives ``run_trial`` through it
    too (``lrfind.engine.horizon``).
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    compute_loss: ComputeLoss
    train_loader: Iterable[Any]
    val_loader: Iterable[Any] | None
    device: torch.device
    reduce: Reducer | None = None

    def val_batches_available(self) -> int | None:
        """Batches the validation data holds (0 when it cannot tell; None without it)."""
        if self.val_loader is None:
            return None
        try:
            return len(self.val_loader)  # type: ignore[arg-type]
        except TypeError:
            return 0

    def plan(
        self,
        stage: Stage,
        history: History,
        options: SweepOptions,
        *,
        budget: float,
        candidates: int | None = None,
        steps: int | None = None,
    ) -> TrialPlan | None:
        """Return the trial plan for ``stage`` after ``history`` (``plan_trials``)."""
        return plan_trials(
            stage,
            sweep_steps=max(history.steps, 1),
            budget=budget,
            val_batches=self.val_batches_available(),
            val_batch_cost=1 / options.accumulation_steps,
            candidates=candidates,
            steps=steps,
        )

    def trial(
        self,
        lr: float,
        steps: int,
        snapshot: StateSnapshot,
        options: SweepOptions,
        **how: Any,
    ) -> Trial:
        """``run_trial`` on this runner's model, optimizer, loss, data and device (``how``:
        its keyword options, ``stop``, ``max_val_batches``, ``resume``...)."""
        return run_trial(
            self.model,
            self.optimizer,
            self.compute_loss,
            self.train_loader,
            self.val_loader,
            lr,
            steps,
            snapshot,
            options,
            self.device,
            reduce=self.reduce,
            **how,
        )

    def run_lrs(
        self,
        lrs: Sequence[float],
        steps: int,
        options: SweepOptions,
        snapshot: StateSnapshot,
        *,
        stop: StopFlag | None = None,
        on_trial: Callable[[int, Trial], None] | None = None,
    ) -> list[Trial]:
        """Train ``steps`` steps at each of ``lrs`` from the snapshot (``verify``'s fixed set).

        A stop ends it: a trial cut short is left out (judged against full ones it would be
        unfair). ``on_trial(index, trial)`` follows each one; the snapshot is restored after.
        """
        trials: list[Trial] = []
        try:
            for index, lr in enumerate(lrs):
                if stop is not None and stop.requested:
                    break
                trial = self.trial(lr, steps, snapshot, options, stop=stop)
                if stop is not None and stop.requested and trial.steps < steps:
                    break
                trials.append(trial)
                if on_trial is not None:
                    on_trial(index, trial)
        finally:
            restore_state(snapshot, self.model, self.optimizer)
        return trials

    def run_stage(
        self,
        plan: TrialPlan,
        first: list[float],
        next_lr: Callable[[list[Trial]], float | None],
        options: SweepOptions,
        snapshot: StateSnapshot,
        *,
        stop: StopFlag,
        on_trial: Callable[[TrialEvent], None] | None = None,
    ) -> tuple[list[Trial], float]:
        """Run ``first`` then ``next_lr(trials)`` while the plan's cost allows; return the
        trials and what they cost.

        Another trial runs only while its full cost still fits the plan's trial allowance.
        Every trial starts from the snapshot; the model is restored afterwards. The cost is in
        sweep steps (training steps plus validation batches, see ``lrfind.analysis.budget``).
        """
        queue = first[: plan.trials]
        allowance = plan.cost_steps - plan.start_cost
        trials: list[Trial] = []
        cost = 0.0
        planned = len(queue)
        while queue and not stop.requested:
            trial = self.trial(
                queue.pop(0),
                plan.steps,
                snapshot,
                options,
                max_val_batches=plan.val_batches or MAX_VAL_BATCHES,
                stop=stop,
            )
            trials.append(trial)
            cost += trial.steps + validation_cost(trial, plan.val_batches, plan.val_batch_cost)
            # A diverged trial stops early and costs less than planned: what it leaves
            # unspent pays for further trials.
            if not queue and cost + plan.trial_cost <= allowance + 1e-9:
                extra = next_lr(trials)
                queue = [] if extra is None else [extra]
            planned = max(planned, len(trials) + len(queue))
            if on_trial is not None:
                on_trial(TrialEvent(plan.stage, len(trials) - 1, planned, trial))
        restore_state(snapshot, self.model, self.optimizer)
        return trials, cost

    def _start(self, history: History, options: SweepOptions, plan: TrialPlan) -> Trial | float:
        """The metric before training: a validation pass of the initial model, else the mean
        training loss of the sweep's first tenth (its LRs are too small to have trained)."""
        if self.val_loader is None:
            head = [v for v in history.losses[: max(3, history.steps // 10)] if math.isfinite(v)]
            return sum(head) / len(head) if head else math.nan
        evaluation = evaluate_batches(
            self.model,
            self.compute_loss,
            self.val_loader,
            self.device,
            precision=options.precision,
            max_batches=plan.val_batches or MAX_VAL_BATCHES,
            reduce=self.reduce,
        )
        return start_trial(evaluation)

    def after_sweep(
        self,
        history: History,
        analysis: Analysis,
        options: SweepOptions,
        snapshot: StateSnapshot,
        *,
        budget: Budget | float | str = DEFAULT_BUDGET,
        candidates: int | None = None,
        steps: int | None = None,
        stop: StopFlag | None = None,
        on_plan: Callable[[TrialPlan], None] | None = None,
        on_trial: Callable[[TrialEvent], None] | None = None,
        horizon: int | None = None,
    ) -> tuple[Analysis, Refinement | None]:
        """Run the refine stage (the sweep answered) or the search stage (a flat sweep).

        ``horizon``: the stated run's steps, which a budget given as a share of it needs (the
        horizon stage itself is ``lrfind.engine.horizon``'s).

        Returns the final analysis and the stage's record; (analysis, None) when no stage
        applies, the budget affords no trial, or a stop cut the stage short.
        """
        stop = stop or StopFlag()
        budget = parse_budget(budget)
        sweep_steps = max(history.steps, 1)
        stage: Stage = "refine" if analysis.suggestion.lr is not None else "search"
        if stage == "search" and stable_window(history) is None:
            return analysis, None
        plan = self.plan(
            stage,
            history,
            options,
            budget=budget.as_sweeps(sweep_steps, horizon),
            candidates=candidates,
            steps=steps,
        )
        if plan is None:
            return analysis, None
        if stage == "refine":
            first = refine_candidates(history, analysis, plan.first)
            next_lr = partial(next_refine_candidate, history, analysis)
        else:
            first = search_candidates(history, plan.first)
            next_lr = partial(next_search_lr, history)
        if not first:
            return analysis, None
        if on_plan is not None:
            on_plan(plan)
        started = time.perf_counter()
        restore_state(snapshot, self.model, self.optimizer)
        start = self._start(history, options, plan) if stage == "search" else None
        trials, cost = self.run_stage(
            plan, first, next_lr, options, snapshot, stop=stop, on_trial=on_trial
        )
        # A stop during the last trial cuts it short too: its score would not be comparable.
        if stop.requested:
            return analysis, None
        if stage == "refine":
            final = choose_refined(history, analysis, trials)
        else:
            final = choose_searched(history, analysis, trials, start)
        start_score = start.val_loss if isinstance(start, Trial) else start
        if isinstance(start, Trial):
            batches = len(start.val_batch_losses) or plan.val_batches or 0
            cost += batches * plan.val_batch_cost
        refinement = Refinement(
            trials=tuple(trials),
            chosen_lr=final.suggestion.lr,
            steps_per_trial=plan.steps,
            seconds=time.perf_counter() - started,
            metric="val_loss" if self.val_loader is not None else "train_loss",
            stage=stage,
            val_batches=plan.val_batches,
            cost_steps=cost,
            sweep_steps=plan.sweep_steps,
            budget=plan.budget,
            start_score=start_score,
        )
        return final, refinement
