"""``range_test(model, optimizer, loss_fn, train_loader, ...)``: the library's one call.

It validates the options, binds them into a ``RangeTest`` (``lrfind.engine.rangetest``) and
runs it; everything it does is documented on the function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import torch

from lrfind.data.batches import InputsKey
from lrfind.data.model_outputs import ModelLoss, OutputKey
from lrfind.engine.collectives import refuse_mismatched_options
from lrfind.engine.options import LossFn, StepFn, StopFlag, check_model
from lrfind.engine.progress import ProgressBar
from lrfind.engine.rangetest import ProgressEvent, RangeTest, RefineMode
from lrfind.engine.session import Session
from lrfind.engine.state import (
    SnapshotStore,
)
from lrfind.results import Budget, RangeTestResult, TrainSchedule
from lrfind.settings import (
    DRIFT_PRIOR,
    SuggestOptions,
    SweepOptions,
    read_budget,
    train_run,
)

#: The settings' defaults, which the keywords below take as theirs.
_SWEEP = SweepOptions()
_SUGGEST = SuggestOptions()


def range_test(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn | ModelLoss | None,
    train_loader: Iterable[Any],
    *,
    val_loader: Iterable[Any] | None = None,
    start_lr: float = _SWEEP.start_lr,
    end_lr: float = _SWEEP.end_lr,
    steps: int = _SWEEP.steps,
    mode: Literal["exp", "linear"] = _SWEEP.mode,
    smoothing: float = _SWEEP.smoothing,
    diverge_factor: float = _SWEEP.diverge_factor,
    method: str = _SUGGEST.method,
    refine: RefineMode = _SUGGEST.refine,
    refine_steps: int | None = _SUGGEST.refine_steps,
    refine_candidates: int | None = _SUGGEST.refine_candidates,
    budget: Budget | float | str | None = None,
    repeats: int = _SUGGEST.repeats,
    train_steps: int | None = None,
    train_schedule: TrainSchedule = "constant",
    train_warmup: float = 0.0,
    drift_prior: float | None = DRIFT_PRIOR,
    compress_schedule: bool = _SUGGEST.compress_schedule,
    accumulation_steps: int = _SWEEP.accumulation_steps,
    precision: Literal["fp32", "bf16", "fp16"] = _SWEEP.precision,
    grad_clip: float | None = _SWEEP.grad_clip,
    check_every: int | None = _SWEEP.check_every,
    device: str | torch.device | None = None,
    step_fn: StepFn | None = None,
    inputs_key: InputsKey | None = None,
    targets_key: str | None = None,
    output_key: OutputKey | None = None,
    seed: int | None = None,
    progress: Callable[[ProgressEvent], None] | bool | None = None,
    stop: StopFlag | None = None,
    snapshot: SnapshotStore = "memory",
    snapshot_dir: str | Path | None = None,
    process_group: Any = None,
) -> RangeTestResult:
    """Run an LR range test and return its result; model and optimizer are restored afterwards.

    The LR grows from ``start_lr`` to ``end_lr`` over ``steps`` optimizer steps (``mode`` exp:
    ``start*(end/start)**(i/(steps-1))``); the sweep stops early once the smoothed loss exceeds
    ``diverge_factor`` times its best (or the raw loss does on 5 consecutive steps), or on a
    NaN/inf loss. ``loss_fn(outputs, targets)`` is
    applied to ``model(inputs)`` (to its ``output_key`` entry, default ``logits``, when the model
    returns an object or dict); ``loss_fn="model"`` uses the loss the model computes itself from
    the whole batch (``outputs.loss``; a dict batch is passed as keyword arguments);
    alternatively ``step_fn(model, batch) -> loss``. The model must
    already be on ``device`` (default: its parameters' device). ``repeats > 1`` reruns the sweep
    with reseeded data order (seed+1, seed+2...) and analyses the mean curve; when the mean
    gives no answer but every repeat does, their median answer stands (the confidence says so).

    With a ``val_loader`` (or ``refine="on"``), short constant-LR trials from the same initial
    weights follow the sweep: the refine stage tries grid LRs around the sweep's answer (3 by
    default, one more past an edge holding the best); after a flat sweep the search stage tries
    LRs a decade apart across the range it showed stable, then bisects towards the best. Both
    choose by the rule in ``lrfind.analysis.choose``: the lowest LR tied with the best trial
    within one paired standard error. ``budget`` caps the whole recommendation at that many
    sweeps' compute (trials are sized to fit; ``refine_steps`` / ``refine_candidates`` override
    the automatic sizes). ``progress=True`` draws a progress bar on stderr; a callable
    ``progress`` receives a StepEvent per sweep step, the stage's
    TrialPlan before its first trial, and a TrialEvent per trial.

    The run you will train: ``train_steps`` (optimizer steps), ``train_schedule`` (constant,
    onecycle, cosine, or linear: warmup then linear decay to 0) and ``train_warmup`` (a fraction
    below 1, else steps). Given a length, the answer is for that run: the trials train in
    rungs of doubling length toward it (the best candidate and the LRs below it continue from
    their own state), run its schedule, and the best LR's fall with training length, read across
    the rungs and shrunk toward ``drift_prior`` (the exponent of ``lr* ~ steps**-beta``; None
    turns the carry off: the answer is then the finalists'), moves the answer to the run's
    length. ``suggestion.lr`` is then the constant LR, or the schedule's peak. ``budget`` may
    be a share of that run ("5%"). The trials run a stated schedule compressed to the last
    rung's length (``compress_schedule=False``: the run's own schedule, cut where the last rung
    ends). Without a length the answer is for runs about as long as
    the trials (``result.answer_steps``).

    Under torchrun (torch.distributed initialised, or a ``process_group`` given) every rank
    calls ``range_test`` with its own share of the data: the recorded losses and validation
    scores are all-reduced, every stop decision is taken together, and every rank returns the
    same result. The model may be DDP-wrapped or sharded with FSDP2 (``fully_shard``). A rank
    that raises ends the others with a DistributedError naming it and its message.

    What is restored: weights, optimizer state and param-group settings, buffers (the
    non-persistent ones too), each parameter's pending ``.grad``, train/eval modes, RNGs and
    data order. ``snapshot="memory"`` keeps the weights on the host (an FSDP2 model: each
    rank its own shard); ``"disk"`` writes them with torch.distributed.checkpoint into a
    temporary folder under ``snapshot_dir`` (default: the system's temporary directory),
    removed afterwards, also after an error, Ctrl-C or SIGTERM.

    Returns:
        RangeTestResult with ``.suggestion``, ``.lr_range``, ``.confidence``, ``.history``,
        ``.to_dict()``; draw it with ``lrfind.plot_result(result, path)``.

    Raises:
        SweepError: the step cannot run (non-scalar loss, no trainable parameters, frozen model,
            model/data mismatch on the first step, unavailable device).
        DataError: a loader yields no batches, or the loss is NaN/inf before any update has
            moved the weights (a data or model problem: the message names the step and batch).
        ValueError: invalid options (start_lr >= end_lr, steps < 2, unknown method, budget
            below 1, a budget share without ``train_steps``, an invalid train run...).
    """
    check_model(model)
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
    suggest = SuggestOptions(
        method=method,
        refine=refine,
        refine_steps=refine_steps,
        refine_candidates=refine_candidates,
        budget=read_budget(budget),
        repeats=repeats,
        drift_prior=drift_prior,
        compress_schedule=compress_schedule,
        seed=seed,
    )
    train = train_run(train_steps, train_schedule, train_warmup)
    # Decided once for the whole range test; every rank checks that the others got its
    # settings before any training (a mismatch would hang or abort a collective later).
    session = Session.of(model, process_group)
    agreed = {
        **dataclasses.asdict(options),
        **dataclasses.asdict(suggest),
        "train": None if train is None else dataclasses.asdict(train),
        "inputs_key": inputs_key,
        "targets_key": targets_key,
        "output_key": output_key,
        "snapshot": snapshot,
    }
    refuse_mismatched_options(agreed, session)
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
        session=session,
        snapshot=snapshot,
        snapshot_dir=snapshot_dir,
    )
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise ValueError(f"progress must be True, False or a callable, got {progress!r}")
    bar = ProgressBar() if progress is True else None
    listener = bar if bar is not None else (progress if callable(progress) else None)
    try:
        return runner.run(
            options,
            suggest,
            train=train,
            progress=listener,
            stage_events=listener,
            stop=stop,
        )
    finally:
        if bar is not None:
            bar.close()
