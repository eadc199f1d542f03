"""The library entry point: ``range_test(model, optimizer, loss_fn, train_loader, ...)``.

Runs the sweep (and its repeats), analyses the curve, runs the refine stage when asked, and
always puts the model, optimizer, RNG and data order back exactly as they were.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch

from lrfind.analysis.budget import TrialPlan
from lrfind.analysis.suggest import METHODS, analyze
from lrfind.config.schema import DEFAULT_BUDGET, LR_SCALE_KEY, SWEEP_DEFAULTS
from lrfind.data.model_outputs import ModelLoss, OutputKey
from lrfind.engine.device import resolve_device, versions
from lrfind.engine.loop import sweep_loop
from lrfind.engine.options import (
    ComputeLoss,
    LossFn,
    Reducer,
    StepEvent,
    StepFn,
    StopFlag,
    SweepOptions,
)
from lrfind.engine.state import StateSnapshot, parameters_changed, restore_state, snapshot_state
from lrfind.engine.steps import make_compute_loss
from lrfind.engine.trials import TrialEvent, TrialRunner
from lrfind.errors import SweepError
from lrfind.results import (
    Analysis,
    History,
    RangeTestResult,
    Refinement,
    RunInfo,
    Trial,
    mean_history,
)

RefineMode = Literal["auto", "on", "off"]

#: What ``range_test(progress=...)`` receives: sweep steps, the trial plan, finished trials.
ProgressEvent = StepEvent | TrialPlan | TrialEvent


def _describe_loss(loss_fn: Any, step_fn: Any) -> str:
    target = step_fn if step_fn is not None else loss_fn
    if isinstance(target, str):
        return target
    name = getattr(target, "__name__", None) or type(target).__name__
    return str(name)


def _lr_scales(optimizer: torch.optim.Optimizer) -> tuple[float, ...]:
    """Each param group's multiplier of the swept LR (``lr_scale``, default 1), in order."""
    return tuple(float(group.get(LR_SCALE_KEY, 1.0)) for group in optimizer.param_groups)


def _length(loader: Iterable[Any]) -> int | None:
    """Batches per epoch, or None for a loader without a length."""
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def _reseed(seed: int, loaders: Iterable[Any]) -> None:
    import random

    import numpy as np

    from lrfind.engine.state import loader_generators

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    for loader in loaders:
        for generator in loader_generators(loader):
            generator.manual_seed(seed)


class RangeTest:
    """A range test bound to one model, optimizer, loss and data (the engine's user-facing form).

    ``run()`` returns a RangeTestResult and leaves the model and optimizer exactly as they were.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn | ModelLoss | None,
        train_loader: Iterable[Any],
        *,
        val_loader: Iterable[Any] | None = None,
        step_fn: StepFn | None = None,
        device: str | torch.device | None = None,
        inputs_key: str | None = None,
        targets_key: str | None = None,
        output_key: OutputKey | None = None,
        reduce: Reducer | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.device = resolve_device(device, model)
        self.compute_loss: ComputeLoss = make_compute_loss(
            loss_fn, step_fn, inputs_key, targets_key, output_key
        )
        self.loss_name = _describe_loss(loss_fn, step_fn)
        self.reduce = reduce

    def _loaders(self) -> list[Any]:
        return [loader for loader in (self.train_loader, self.val_loader) if loader is not None]

    def sweep(
        self,
        options: SweepOptions,
        snapshot: StateSnapshot,
        *,
        progress: Callable[[StepEvent], None] | None = None,
        stop: StopFlag | None = None,
    ) -> tuple[History, tuple[str, ...]]:
        """Run one sweep from the snapshot's state; returns its history and notes.

        Raises:
            SweepError: the sweep cannot run, or the parameters never changed (frozen model).
        """
        outcome = sweep_loop(
            self.model,
            self.optimizer,
            self.compute_loss,
            self.train_loader,
            options,
            self.device,
            reduce=self.reduce,
            progress=progress,
            stop=stop,
            initial=snapshot,
        )
        history = outcome.history
        if (
            history.steps > 1
            and history.stop_reason != "non_finite"
            and not parameters_changed(snapshot, self.model)
        ):
            raise SweepError(
                "the optimizer never changed the parameters: the model is frozen, its gradients "
                "are zero, or the optimizer ignores the learning rate"
            )
        restore_state(snapshot, self.model, self.optimizer)
        return history, outcome.notes

    def after_sweep(
        self,
        history: History,
        analysis: Analysis,
        options: SweepOptions,
        snapshot: StateSnapshot,
        **kwargs: Any,
    ) -> tuple[Analysis, Refinement | None]:
        """Run the refine or search stage after the sweep (``TrialRunner.after_sweep``)."""
        runner = TrialRunner(
            self.model,
            self.optimizer,
            self.compute_loss,
            self.train_loader,
            self.val_loader,
            self.device,
            self.reduce,
        )
        return runner.after_sweep(history, analysis, options, snapshot, **kwargs)

    def run(
        self,
        options: SweepOptions,
        *,
        method: str = "lrfind",
        refine: RefineMode = "auto",
        refine_steps: int | None = None,
        refine_candidates: int | None = None,
        budget: float = DEFAULT_BUDGET,
        repeats: int = 1,
        seed: int | None = None,
        info: RunInfo | None = None,
        progress: Callable[[StepEvent], None] | None = None,
        on_trial: Callable[[int, int, Trial], None] | None = None,
        stage_events: Callable[[TrialPlan | TrialEvent], None] | None = None,
        stop: StopFlag | None = None,
        reinitialize: Callable[[int], None] | None = None,
    ) -> RangeTestResult:
        """Run the full range test; see ``range_test`` for the meaning of each option.

        ``on_trial(index, count, trial)`` reports each refine/search trial; ``stage_events``
        receives the stage's TrialPlan before its first trial (``plan.describe()`` is a line
        for people), then a TrialEvent per trial. ``reinitialize(seed)``, when given, re-draws
        the model's initial weights before each repeat after the first (the CLI passes one so
        repeats vary the init as well).
        """
        if method not in METHODS:
            raise ValueError(
                f"unknown suggestion method {method!r}; choose from {', '.join(METHODS)}"
            )
        if repeats < 1:
            raise ValueError("repeats must be at least 1")
        if not (1 <= budget < math.inf):
            raise ValueError(f"budget must be a finite number of sweeps >= 1, got {budget!r}")
        started = time.perf_counter()
        stop = stop or StopFlag()
        initial = snapshot_state(self.model, self.optimizer, self._loaders())
        snapshot = initial
        histories: list[History] = []
        notes: list[str] = []
        refinement: Refinement | None = None
        try:
            for repeat in range(repeats):
                if repeat > 0:
                    _reseed((seed or 0) + repeat, self._loaders())
                    if reinitialize is not None:
                        reinitialize((seed or 0) + repeat)
                    snapshot = snapshot_state(self.model, self.optimizer, self._loaders())
                history, sweep_notes = self.sweep(options, snapshot, progress=progress, stop=stop)
                histories.append(history)
                notes.extend(n for n in sweep_notes if n not in notes)
                if history.stop_reason == "interrupted":
                    break
            history = histories[0] if len(histories) == 1 else mean_history(histories)
            analysis = analyze(history, method)
            repeat_suggestions: tuple[float | None, ...] = ()
            if len(histories) > 1:
                repeat_suggestions = tuple(analyze(h, method).suggestion.lr for h in histories)
            wants_refine = refine == "on" or (refine == "auto" and self.val_loader is not None)
            complete = history.stop_reason != "interrupted"
            if wants_refine and complete:
                analysis, refinement = self.after_sweep(
                    history,
                    analysis,
                    options,
                    initial,
                    budget=budget,
                    candidates=refine_candidates,
                    steps=refine_steps,
                    stop=stop,
                    on_plan=stage_events,
                    on_trial=_trial_reporter(on_trial, stage_events),
                )
                complete = not stop.requested
        finally:
            restore_state(initial, self.model, self.optimizer)
        base_info = info or RunInfo(
            model=type(self.model).__name__,
            optimizer=type(self.optimizer).__name__,
            loss=self.loss_name,
            batch_size=getattr(self.train_loader, "batch_size", None),
        )
        run_info = base_info.__class__(
            **{
                **base_info.__dict__,
                "device": str(self.device),
                "precision": options.precision,
                "accumulation_steps": options.accumulation_steps,
                "seed": seed if seed is not None else base_info.seed,
                "start_lr": options.start_lr,
                "end_lr": options.end_lr,
                "planned_steps": options.steps,
                "mode": options.mode,
                "smoothing": options.smoothing,
                "diverge_factor": options.diverge_factor,
                "seconds": time.perf_counter() - started,
                "versions": base_info.versions or versions(),
                "lr_scales": base_info.lr_scales or _lr_scales(self.optimizer),
                "batches_per_epoch": base_info.batches_per_epoch or _length(self.train_loader),
            }
        )
        return RangeTestResult(
            history=history,
            analysis=analysis,
            info=run_info,
            complete=complete,
            refinement=refinement,
            repeats=tuple(histories) if len(histories) > 1 else (),
            repeat_suggestions=repeat_suggestions,
            warnings=tuple(notes),
        )


def _trial_reporter(
    on_trial: Callable[[int, int, Trial], None] | None,
    stage_events: Callable[[TrialPlan | TrialEvent], None] | None,
) -> Callable[[TrialEvent], None] | None:
    """One TrialEvent callback that feeds both ways of listening to trials."""
    if on_trial is None and stage_events is None:
        return None

    def report(event: TrialEvent) -> None:
        if on_trial is not None:
            on_trial(event.index, event.count, event.trial)
        if stage_events is not None:
            stage_events(event)

    return report


def range_test(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn | ModelLoss | None,
    train_loader: Iterable[Any],
    *,
    val_loader: Iterable[Any] | None = None,
    start_lr: float = SWEEP_DEFAULTS.start_lr,
    end_lr: float = SWEEP_DEFAULTS.end_lr,
    steps: int = SWEEP_DEFAULTS.steps,
    mode: Literal["exp", "linear"] = SWEEP_DEFAULTS.mode,
    smoothing: float = SWEEP_DEFAULTS.smoothing,
    diverge_factor: float = SWEEP_DEFAULTS.diverge_factor,
    method: str = "lrfind",
    refine: RefineMode = "auto",
    refine_steps: int | None = None,
    refine_candidates: int | None = None,
    budget: float = DEFAULT_BUDGET,
    repeats: int = 1,
    accumulation_steps: int = 1,
    precision: Literal["fp32", "bf16", "fp16"] = "fp32",
    grad_clip: float | None = None,
    check_every: int | None = None,
    device: str | torch.device | None = None,
    step_fn: StepFn | None = None,
    inputs_key: str | None = None,
    targets_key: str | None = None,
    output_key: OutputKey | None = None,
    seed: int | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    stop: StopFlag | None = None,
) -> RangeTestResult:
    """Run an LR range test and return its result; model and optimizer are restored afterwards.

    The LR grows from ``start_lr`` to ``end_lr`` over ``steps`` optimizer steps (``mode`` exp:
    ``start*(end/start)**(i/(steps-1))``); the sweep stops early once the smoothed loss exceeds
    ``diverge_factor`` times its best, or on a NaN/inf loss. ``loss_fn(outputs, targets)`` is
    applied to ``model(inputs)`` (to its ``output_key`` entry, default ``logits``, when the model
    returns an object or dict); ``loss_fn="model"`` uses the loss the model computes itself from
    the whole batch (``outputs.loss``; a dict batch is passed as keyword arguments);
    alternatively ``step_fn(model, batch) -> loss``. The model must
    already be on ``device`` (default: its parameters' device). ``repeats > 1`` reruns the sweep
    with reseeded data order (seed+1, seed+2...) and analyses the mean curve.

    With a ``val_loader`` (or ``refine="on"``), short constant-LR trials from the same initial
    weights follow the sweep: the refine stage tries grid LRs around the sweep's answer (3 by
    default, one more past an edge holding the best); after a flat sweep the search stage tries
    LRs a decade apart across the range it showed stable, then bisects towards the best. Both
    choose by the rule in ``lrfind.analysis.choose``: the lowest LR tied with the best trial
    within one paired standard error. ``budget`` caps the whole recommendation at that many
    sweeps' compute (trials are sized to fit; ``refine_steps`` / ``refine_candidates`` override
    the automatic sizes). ``progress`` receives a StepEvent per sweep step, the stage's
    TrialPlan before its first trial, and a TrialEvent per trial.

    Returns:
        RangeTestResult with ``.suggestion``, ``.lr_range``, ``.confidence``, ``.history``,
        ``.to_dict()``; draw it with ``lrfind.plot_result(result, path)``.

    Raises:
        SweepError: the step cannot run (non-scalar loss, no trainable parameters, frozen model,
            model/data mismatch on the first step, unavailable device).
        DataError: a loader yields no batches, or the loss is NaN/inf before any update has
            moved the weights (a data or model problem: the message names the step and batch).
        ValueError: invalid options (start_lr >= end_lr, steps < 2, unknown method, budget
            below 1...).
    """
    options = SweepOptions(
        start_lr=start_lr,
        end_lr=end_lr,
        steps=steps,
        mode=mode,
        smoothing=smoothing,
        diverge_factor=diverge_factor,
        accumulation_steps=accumulation_steps,
        precision=precision,
        grad_clip=grad_clip,
        check_every=check_every,
    )
    runner = RangeTest(
        model,
        optimizer,
        loss_fn,
        train_loader,
        val_loader=val_loader,
        step_fn=step_fn,
        device=device,
        inputs_key=inputs_key,
        targets_key=targets_key,
        output_key=output_key,
    )
    return runner.run(
        options,
        method=method,
        refine=refine,
        refine_steps=refine_steps,
        refine_candidates=refine_candidates,
        budget=budget,
        repeats=repeats,
        seed=seed,
        progress=progress,
        stage_events=progress,
        stop=stop,
    )
