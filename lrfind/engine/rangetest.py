"""The library entry point: ``range_test(model, optimizer, loss_fn, train_loader, ...)``.

Runs the sweep (and its repeats), analyses the curve, runs the refine stage when asked, and
always puts the model, optimizer, RNG and data order back exactly as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch

from lrfind.analysis.refine import (
    REFINE_EXTRA_TRIALS,
    REFINE_STEPS_PER_SWEEP_STEP,
    choose_refined,
    next_refine_candidate,
    refine_candidates,
)
from lrfind.analysis.suggest import METHODS, analyze
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
from lrfind.engine.trials import run_trial
from lrfind.errors import SweepError
from lrfind.results import (
    History,
    RangeTestResult,
    Refinement,
    RunInfo,
    Trial,
    mean_history,
)

RefineMode = Literal["auto", "on", "off"]


def _describe_loss(loss_fn: Any, step_fn: Any) -> str:
    target = step_fn if step_fn is not None else loss_fn
    if isinstance(target, str):
        return target
    name = getattr(target, "__name__", None) or type(target).__name__
    return str(name)


def _reseed(seed: int, loaders: Iterable[Any]) -> None:
    import random

    import numpy as np

    from lrfind.engine.state import _loader_generators

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    for loader in loaders:
        for generator in _loader_generators(loader):
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

    def refine(
        self,
        history: History,
        analysis: Any,
        options: SweepOptions,
        snapshot: StateSnapshot,
        *,
        steps: int,
        candidates: int,
        stop: StopFlag | None = None,
        on_trial: Callable[[int, int, Trial], None] | None = None,
    ) -> tuple[Any, Refinement | None]:
        """Run short constant-LR trials; the analysis chooses. Returns (analysis, refinement)."""
        lrs = refine_candidates(history, analysis, candidates)
        if not lrs:
            return analysis, None
        started = time.perf_counter()
        trials: list[Trial] = []
        planned = len(lrs)
        interrupted = False
        next_lr: float | None = lrs[0]
        while next_lr is not None:
            if stop is not None and stop.requested:
                interrupted = True
                break
            trial = run_trial(
                self.model,
                self.optimizer,
                self.compute_loss,
                self.train_loader,
                self.val_loader,
                next_lr,
                steps,
                snapshot,
                options,
                self.device,
                reduce=self.reduce,
                stop=stop,
            )
            trials.append(trial)
            if len(trials) < len(lrs):
                next_lr = lrs[len(trials)]
            elif len(trials) < len(lrs) + REFINE_EXTRA_TRIALS:
                # The window did not bracket the choice: extend it one grid step at a time.
                next_lr = next_refine_candidate(history, analysis, trials)
            else:
                next_lr = None
            planned = max(planned, len(trials) + (next_lr is not None))
            if on_trial is not None:
                on_trial(len(trials) - 1, planned, trial)
        restore_state(snapshot, self.model, self.optimizer)
        # A stop during the last trial cuts it short too: its score would not be comparable.
        if interrupted or (stop is not None and stop.requested):
            return analysis, None
        refined = choose_refined(history, analysis, trials)
        refinement = Refinement(
            trials=tuple(trials),
            chosen_lr=refined.suggestion.lr,
            steps_per_trial=steps,
            seconds=time.perf_counter() - started,
            metric="val_loss" if self.val_loader is not None else "train_loss",
        )
        return refined, refinement

    def run(
        self,
        options: SweepOptions,
        *,
        method: str = "lrfind",
        refine: RefineMode = "auto",
        refine_steps: int | None = None,
        refine_candidates: int = 5,
        repeats: int = 1,
        seed: int | None = None,
        info: RunInfo | None = None,
        progress: Callable[[StepEvent], None] | None = None,
        on_trial: Callable[[int, int, Trial], None] | None = None,
        stop: StopFlag | None = None,
        reinitialize: Callable[[int], None] | None = None,
    ) -> RangeTestResult:
        """Run the full range test; see ``range_test`` for the meaning of each option.

        ``reinitialize(seed)``, when given, re-draws the model's initial weights before each
        repeat after the first (the CLI passes one so repeats vary the init as well).
        """
        if method not in METHODS:
            raise ValueError(
                f"unknown suggestion method {method!r}; choose from {', '.join(METHODS)}"
            )
        if repeats < 1:
            raise ValueError("repeats must be at least 1")
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
                analysis, refinement = self.refine(
                    history,
                    analysis,
                    options,
                    initial,
                    steps=refine_steps or REFINE_STEPS_PER_SWEEP_STEP * options.steps,
                    candidates=refine_candidates,
                    stop=stop,
                    on_trial=on_trial,
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


def range_test(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn | ModelLoss | None,
    train_loader: Iterable[Any],
    *,
    val_loader: Iterable[Any] | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    mode: Literal["exp", "linear"] = "exp",
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    method: str = "lrfind",
    refine: RefineMode = "auto",
    refine_steps: int | None = None,
    refine_candidates: int = 5,
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
    progress: Callable[[StepEvent], None] | None = None,
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
    already be on ``device`` (default: its parameters' device). With a ``val_loader``, the refine
    stage (``refine="auto"``) trains ``refine_candidates`` short constant-LR trials from the same
    initial weights (``refine_steps`` each, default twice ``steps``; up to 3 more trials extend
    the window when the choice sits on its edge) and picks by validation loss. ``repeats > 1``
    reruns the sweep with reseeded data order (seed+1, seed+2...) and analyses the mean curve.

    Returns:
        RangeTestResult with ``.suggestion``, ``.lr_range``, ``.confidence``, ``.history``,
        ``.to_dict()``; draw it with ``lrfind.plot_result(result, path)``.

    Raises:
        SweepError: the step cannot run (non-scalar loss, no trainable parameters, frozen model,
            model/data mismatch on the first step, unavailable device).
        DataError: a loader yields no batches.
        ValueError: invalid options (start_lr >= end_lr, steps < 2, unknown method...).
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
        repeats=repeats,
        seed=seed,
        progress=progress,
        stop=stop,
    )
