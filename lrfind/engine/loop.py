"""The range-test loop: LR ladder, forward/backward/step, smoothing, divergence stop, restore.

One optimizer step is: set the LR on every param group, run ``accumulation_steps`` micro-batches
(forward under autocast, backward of loss/K, DDP gradient sync only on the last), optional
unscale + gradient clipping, ``optimizer.step()`` (through a GradScaler under fp16). The recorded
loss of a step is the mean of its K micro-batch losses, measured before the step's update.

Losses stay on the device. On CPU in one process a loss is already in host memory and is read
directly, every step. Elsewhere the host reads them a chunk of ``check_every`` steps at a time
(default 8 on accelerators): the chunk's losses and this process's stop request are stacked
into one tensor, all-reduced (mean) under torch.distributed, and copied to pinned host memory
without blocking. On CUDA chunk *m* is inspected only once chunk *m+1* has been queued, so the
host never waits on the step it just launched.

Divergence: a step diverges when its smoothed loss exceeds ``diverge_factor`` x the best
smoothed loss so far, or when it completes a run of ``RAW_DIVERGE_STEPS`` consecutive raw losses
above that same threshold (the EMA lags a blow-up by tens of steps; ``raw_divergence_step``).
Both read the losses the host already holds (all-reduced under torch.distributed), step by step.

Worst-case lag: the sweep stops at most ``2 * check_every - 1`` optimizer steps after the first
divergent (or non-finite) step on CUDA, at most ``check_every - 1`` steps after it on CPU and
MPS (0 on CPU with the default ``check_every`` of 1). The extra steps only cost time: the
history is cut at the first divergent step, so it is the same whatever ``check_every`` is, and
the model is restored afterwards. Under torch.distributed every rank reads the same all-reduced
chunk at the same step (chunk boundaries depend on the step count alone), so every rank takes
the same decision at the same step, calls the same collectives in the same order, and stops
together; a stop request raised on any rank (SIGINT/SIGTERM) stops all of them at the next
chunk boundary.

fp16: GradScaler skips a step whose scaled gradients overflow and halves its scale. Skipped
steps keep their recorded loss (a real forward pass) but their LR was never applied. A run of
``FP16_OVERFLOW_STREAK`` consecutive skips after the first applied step means the gradients
are blowing up: the weights stop moving and the loss would look flat, hiding the divergence. The
sweep therefore stops there (reason ``non_finite``, with a note) and the history is cut at the
first skipped step of the run. GradScaler reads its overflow flag on the host, so fp16 costs one
device synchronisation per step; bf16 and fp32 cost none.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from lrfind.data.batches import BatchStream
from lrfind.engine.ladder import lr_ladder
from lrfind.engine.options import (
    FP16_MAX_INITIAL_SKIPS,
    FP16_OVERFLOW_STREAK,
    ComputeLoss,
    Reducer,
    StepEvent,
    StopFlag,
    SweepOptions,
    SweepOutcome,
)
from lrfind.engine.state import StateSnapshot, parameters_changed
from lrfind.engine.steps import (
    LossChunk,
    LossReader,
    OverflowWatch,
    Smoother,
    Stepper,
    default_check_every,
    inspects_one_chunk_late,
    take_step,
    trainable_parameters,
)
from lrfind.errors import DataError, SweepError, UserCodeError
from lrfind.results import RAW_DIVERGE_STEPS, History, StopReason, divergence_threshold


def sweep_loop(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    compute_loss: ComputeLoss,
    train_loader: Iterable[Any],
    options: SweepOptions,
    device: torch.device,
    *,
    reduce: Reducer | None = None,
    progress: Callable[[StepEvent], None] | None = None,
    stop: StopFlag | None = None,
    initial: StateSnapshot | None = None,
) -> SweepOutcome:
    """Run the LR sweep (without restoring state: see ``range_test`` for the full contract).

    Returns the history, cut at the first diverged or non-finite step (or the first step of a
    run of fp16 overflows), or at the step where a stop was requested. ``reduce`` (the mean
    all-reduce under torch.distributed) is applied to each chunk of losses. ``initial`` is the
    snapshot the sweep starts from: with it, a NaN/inf loss is blamed on the data or model
    whenever the weights had not yet moved from it (without it, only on the first step).

    Raises:
        SweepError: no trainable parameters, a non-scalar or gradient-free loss, or a model
            that fails on the data.
        DataError: the loader yields no batches, or the loss was NaN/inf while the weights
            were still the initial ones (no learning rate can have caused it).
    """
    if not trainable_parameters(optimizer):
        raise SweepError("the optimizer has no trainable parameters (all have requires_grad=False)")
    model.train()
    stepper = Stepper(model, optimizer, compute_loss, device, options)
    check_every = options.check_every or default_check_every(device)
    reader = LossReader(check_every, device, reduce)
    lagged = inspects_one_chunk_late(device)
    stream = BatchStream(train_loader)
    smoother = Smoother(options.smoothing)
    stop = stop or StopFlag()
    if reduce is not None:
        stop.share()
    ladder = lr_ladder(options.steps, options.start_lr, options.end_lr, options.mode)
    fp16 = options.precision == "fp16"
    overflow = OverflowWatch()
    skipped: list[bool] = []

    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stop_reason: StopReason = "completed"
    overflow_from: int | None = None
    best = math.inf
    first_smoothed: float | None = None
    raw_streak = 0

    def inspect(chunk: LossChunk) -> bool:
        nonlocal best, first_smoothed, stop_reason, overflow_from, raw_streak
        for offset, loss in enumerate(chunk.values):
            step = chunk.start + offset
            lr = ladder[step]
            value = smoother.update(loss) if math.isfinite(loss) else loss
            lrs.append(lr)
            losses.append(loss)
            smoothed.append(value)
            if progress is not None:
                progress(StepEvent(step, options.steps, lr, loss, value))
            if not math.isfinite(loss):
                stop_reason = "non_finite"
                return True
            first_smoothed = value if first_smoothed is None else first_smoothed
            best = min(best, value)
            threshold = divergence_threshold(best, first_smoothed, options.diverge_factor)
            # The lagging EMA can stay under the threshold while the raw loss has already blown
            # up: a run of raw losses above it is a divergence too (``raw_divergence_step``).
            raw_streak = raw_streak + 1 if loss > threshold else 0
            if value > threshold or raw_streak >= RAW_DIVERGE_STEPS:
                stop_reason = "diverged"
                return True
            if fp16:
                streak_start = overflow.update(step, skipped[step])
                if streak_start is not None:
                    # Past the streak's first step the weights no longer moved: cut there.
                    keep = streak_start + 1 if overflow.applied_any else len(lrs)
                    del lrs[keep:], losses[keep:], smoothed[keep:]
                    overflow_from = streak_start
                    stop_reason = "non_finite"
                    return True
        stop.agree(chunk.stop_asked)
        if chunk.stop_asked:
            stop_reason = "interrupted"
            return True
        return False

    chunk_start = 0
    # Steps [0, unmoved) computed their loss with the initial weights; checked only until the
    # first update moves them (usually one check).
    unmoved, watching = 1, initial is not None
    try:
        for step in range(options.steps):
            if watching and step > 0:
                assert initial is not None
                watching = not parameters_changed(initial, model, reduce)
                unmoved = step + 1 if watching else unmoved
            reader.record(take_step(stepper, stream, ladder[step], step))
            if fp16:
                skipped.append(stepper.skipped)
            end = step + 1
            # Chunk boundaries depend on the step count alone, so every rank reduces together.
            if end - chunk_start < check_every and end < options.steps:
                continue
            if reader.pending is not None and inspect(reader.collect()):
                break
            reader.launch(chunk_start, stop.raised)
            chunk_start = end
            if (not lagged or end == options.steps) and inspect(reader.collect()):
                break
    except UserCodeError as error:
        # The steps recorded before the failure are the user's evidence: they travel with it.
        partial = History(
            lrs=tuple(lrs), losses=tuple(losses), smoothed_losses=tuple(smoothed),
            stop_reason="interrupted",
        )  # fmt: skip
        error.at_step(step, ladder[step], partial)
        raise
    except KeyboardInterrupt:
        # A second Ctrl-C after a stop request ends the sweep like the first: with the steps
        # recorded so far. Under torch.distributed the other ranks would wait on this one.
        if reduce is not None or not stop.raised:
            raise
        stop_reason = "interrupted"
    finally:
        optimizer.zero_grad(set_to_none=True)

    if stop_reason == "non_finite" and overflow_from is None and len(losses) <= unmoved:
        raise _untouched_weights_error(len(losses) - 1, ladder, options)
    notes: list[str] = []
    if fp16:
        notes.extend(_fp16_notes(overflow, overflow_from, ladder))
    if stop_reason == "non_finite" and overflow_from is None:
        notes.extend(_non_finite_notes(optimizer, options, len(losses)))
    history = History(
        lrs=tuple(lrs),
        losses=tuple(losses),
        smoothed_losses=tuple(smoothed),
        stop_reason=stop_reason,
    )
    return SweepOutcome(history=history, notes=tuple(notes))


def _untouched_weights_error(
    step: int, ladder: Sequence[float], options: SweepOptions
) -> DataError:
    """A NaN/inf loss at the initial weights: the data or the model, not the learning rate."""
    first = step * options.accumulation_steps
    last = first + options.accumulation_steps - 1
    batches = f"training batch {first}" if first == last else f"training batches {first}-{last}"
    when = "on the first step" if step == 0 else f"at step {step} (lr {ladder[step]:.3g})"
    precision = ""
    if options.precision == "fp16":
        precision = (
            "; under fp16 autocast the forward pass may overflow (fp16 overflows above 65504): "
            "try precision bf16 or fp32"
        )
    return DataError(
        f"the loss was NaN/inf {when}, before any update had changed the weights, so no "
        f"learning rate caused it: check {batches} (counted from 0 in the loader's order) for "
        f"NaN/inf inputs or targets, and the model and loss for NaN outputs{precision}"
    )


def _fp16_notes(
    overflow: OverflowWatch, overflow_from: int | None, ladder: Sequence[float]
) -> list[str]:
    if overflow_from is not None and overflow.applied_any:
        return [
            f"fp16 gradients overflowed on {FP16_OVERFLOW_STREAK} consecutive steps from step "
            f"{overflow_from} (lr {ladder[overflow_from]:.3g}): GradScaler skipped them, so the "
            "weights stopped moving, and the history ends at that step (try bf16 or fp32)"
        ]
    if overflow_from is not None:
        return [
            f"fp16 gradients overflowed on each of the first {FP16_MAX_INITIAL_SKIPS} steps: "
            "no step was applied (the gradients are NaN/inf or too large for fp16; "
            "try bf16 or fp32)"
        ]
    first_applied = next((i for i, step in enumerate(overflow.skipped_steps) if step != i), None)
    late = overflow.skipped_steps[first_applied:] if first_applied is not None else []
    if late:
        shown = ", ".join(str(step) for step in late[:5]) + (", ..." if len(late) > 5 else "")
        return [
            f"fp16: GradScaler skipped {len(late)} step(s) mid-sweep on gradient overflow "
            f"(steps {shown}); their LRs were not applied"
        ]
    return []


def _non_finite_notes(
    optimizer: torch.optim.Optimizer, options: SweepOptions, steps_done: int
) -> list[str]:
    notes = []
    params = trainable_parameters(optimizer)
    if any(not torch.isfinite(p).all() for p in params):
        notes.append(
            f"parameters became NaN/inf by step {steps_done - 1}: the gradients were not finite"
        )
    if options.precision == "fp16":
        notes.append(
            "the loss became NaN/inf under fp16 autocast (fp16 overflows above 65504); "
            "try precision bf16 or fp32"
        )
    return notes
