"""Constant-LR trials: the one trial loop (``run_trial``) and the one driver that runs every
trial stage (``TrialRunner.drive``), used by refine, search, the horizon rungs and verify."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lrfind.analysis.budget import MAX_VAL_BATCHES, TrialPlan
from lrfind.analysis.horizon import RungPlan
from lrfind.data.batches import BatchStream
from lrfind.data.loaders import present_loaders, size_of
from lrfind.engine.evaluation import Evaluation, evaluate_batches, start_trial
from lrfind.engine.options import ComputeLoss, Reducer, StopFlag, SweepOptions
from lrfind.engine.session import SINGLE, Session
from lrfind.engine.stages import TrialStage
from lrfind.engine.state import StateSnapshot, restore_state, snapshot_state
from lrfind.engine.steps import (
    LossReader,
    OverflowWatch,
    Stepper,
    default_check_every,
    take_step,
)
from lrfind.results import Analysis, History, Refinement, Trial

__all__ = [
    "Evaluation",
    "Resume",
    "TrialEvent",
    "TrialRunner",
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


def val_batches_in(val_loader: Iterable[Any] | None) -> int | None:
    """Batches the validation data holds (0 when it cannot tell; None without it)."""
    if val_loader is None:
        return None
    return size_of(val_loader) or 0


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

    ``drive`` runs any trial stage (``lrfind.engine.stages``: refine, search, the horizon
    rungs); ``run_lrs`` runs a fixed set of LRs (``lrfind verify``). ``take_snapshot`` keeps a
    paused trial's state (the range test passes its own store, memory or disk).
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    compute_loss: ComputeLoss
    train_loader: Iterable[Any]
    val_loader: Iterable[Any] | None
    device: torch.device
    session: Session = SINGLE
    take_snapshot: Callable[[], StateSnapshot] | None = None

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
            reduce=self.session.reduce,
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
        lr_factor: Callable[[int], float] | None = None,
    ) -> list[Trial]:
        """Train ``steps`` steps at each of ``lrs`` from the snapshot (``verify``'s fixed set;
        ``lr_factor``: a schedule, as ``run_trial`` takes it).

        A stop ends it: a trial cut short is left out (judged against full ones it would be
        unfair). ``on_trial(index, trial)`` follows each one; the snapshot is restored after.
        """
        trials: list[Trial] = []
        try:
            for index, lr in enumerate(lrs):
                if stop is not None and stop.requested:
                    break
                trial = self.trial(lr, steps, snapshot, options, stop=stop, lr_factor=lr_factor)
                if stop is not None and stop.requested and trial.steps < steps:
                    break
                trials.append(trial)
                if on_trial is not None:
                    on_trial(index, trial)
        finally:
            restore_state(snapshot, self.model, self.optimizer)
        return trials

    def drive(
        self,
        stage: TrialStage,
        snapshot: StateSnapshot,
        options: SweepOptions,
        *,
        stop: StopFlag,
        on_plan: Callable[[TrialPlan | RungPlan], None] | None = None,
        on_trial: Callable[[TrialEvent], None] | None = None,
    ) -> tuple[Analysis, Refinement] | None:
        """Run ``stage`` (the one driver of every trial stage); its answer and record, or None
        when a stop cut it short (a cut trial's score would not be comparable).

        Requests run in order, each from the snapshot, or continued from the state its LR was
        paused in (``TrialRequest.pause``); when the queue is empty the stage proposes more.
        Cost is counted in sweep steps: steps trained plus validation batches
        (``lrfind.analysis.budget``). Paused states are released when the stage drops them and
        in any outcome; the model is restored to the snapshot afterwards.
        """
        if on_plan is not None:
            on_plan(stage.plan)
        started = time.perf_counter()
        settings = stage.settings
        restore_state(snapshot, self.model, self.optimizer)
        start = None
        if settings.start_from is not None:
            start = self.start_score(settings.start_from, options, settings.val_batches)
        paused: dict[float, Resume] = {}
        cost = 0.0
        count = 0
        queue = stage.first()
        try:
            while queue and not stop.requested:
                request = queue.pop(0)
                resume = paused.get(request.lr)
                done_before = resume.steps if resume is not None else 0
                trial = self.trial(
                    request.lr,
                    request.steps - done_before,
                    snapshot,
                    options,
                    max_val_batches=settings.val_batches or MAX_VAL_BATCHES,
                    stop=stop,
                    resume=resume,
                    lr_factor=settings.lr_factor,
                    reference_loss=settings.reference_loss,
                )
                cost += trial.steps - done_before
                cost += validation_cost(trial, settings.val_batches, settings.val_batch_cost)
                if request.pause and not trial.diverged:
                    if resume is not None:
                        resume.state.close()  # superseded by the state after this trial
                    paused[request.lr] = Resume(trial.steps, self.pause())
                stage.record(trial)
                if not queue and not stop.requested:
                    proposal = stage.propose(cost)
                    for lr in proposal.drop:
                        if lr in paused:
                            paused.pop(lr).state.close()
                    queue = list(proposal.requests)
                if on_trial is not None:
                    on_trial(TrialEvent(stage.name, count, stage.planned, trial))
                count += 1
        finally:
            # A paused candidate may hold a disk snapshot: released whatever happened.
            for resume in paused.values():
                resume.state.close()
        restore_state(snapshot, self.model, self.optimizer)
        if stop.requested:
            return None
        return stage.finish(start, cost, time.perf_counter() - started)

    def pause(self) -> StateSnapshot:
        """The current state, kept for a trial that continues later (``take_snapshot``, so
        ``sweep.snapshot: disk`` applies to paused candidates too; else a host copy)."""
        if self.take_snapshot is not None:
            return self.take_snapshot()
        loaders = present_loaders(self.train_loader, self.val_loader)
        return snapshot_state(self.model, self.optimizer, loaders, session=self.session)

    def start_score(
        self, history: History, options: SweepOptions, val_batches: int | None
    ) -> Trial | float:
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
            max_batches=val_batches or MAX_VAL_BATCHES,
            session=self.session,
        )
        return start_trial(evaluation)
