"""Constant-LR trials and validation: the one trial loop used by refine, search and verify."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from lrfind.data.batches import BatchStream, batch_size_of, move_to_device
from lrfind.engine.options import PRECISION_DTYPES, ComputeLoss, Reducer, StopFlag, SweepOptions
from lrfind.engine.state import StateSnapshot, _without_ddp, restore_state
from lrfind.engine.steps import (
    _LossReader,
    _OverflowWatch,
    _Stepper,
    _take_step,
    default_check_every,
)
from lrfind.errors import (
    DataError,
)
from lrfind.results import Trial

if TYPE_CHECKING:
    from lrfind.engine.options import StopFlag


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    compute_loss: ComputeLoss,
    loader: Iterable[Any],
    device: torch.device,
    *,
    precision: str = "fp32",
    max_batches: int | None = None,
    reduce: Reducer | None = None,
) -> float:
    """Return the sample-weighted mean loss of ``model`` over ``loader`` (eval mode, no grad).

    Under torch.distributed (``reduce`` given) the sums are all-reduced once at the end, so the
    value is the mean over every rank's samples and the same on every rank.

    Raises:
        DataError: the loader yields no batches (on every rank).
    """
    was_training = model.training
    module = _without_ddp(model)
    module.eval()
    dtype = PRECISION_DTYPES.get(precision)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    try:
        for index, batch in enumerate(loader):
            if max_batches is not None and index >= max_batches:
                break
            batch = move_to_device(batch, device, device.type == "cuda")
            size = batch_size_of(batch)
            context = (
                torch.autocast(device_type=device.type, dtype=dtype)
                if dtype is not None
                else contextlib.nullcontext()
            )
            with context:
                loss = compute_loss(module, batch)
            total += loss.detach().double().reshape(()) * size
            count += size
    finally:
        model.train(was_training)
    if reduce is not None:
        both = reduce(torch.stack([total, count]))
        total, count = both[0], both[1]
    samples = float(count.item())
    if samples == 0:
        raise DataError("the validation data yields no batches")
    return float(total.item()) / samples


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
    max_val_batches: int | None = 50,
    stop: StopFlag | None = None,
) -> Trial:
    """Train ``steps`` steps at constant ``lr`` from the snapshot's weights and data order.

    Returns the trial's final train loss (mean of its last tenth of steps) and validation loss
    (None without validation data). A trial whose loss turns non-finite, exceeds
    ``diverge_factor`` times its first loss, or whose fp16 gradients keep overflowing stops and
    is marked diverged. Losses and stop requests are read (and all-reduced under
    torch.distributed) every ``check_every`` steps, so every rank stops at the same step. The
    caller restores the snapshot afterwards.
    """
    restore_state(snapshot, model, optimizer)
    model.train()
    stepper = _Stepper(model, optimizer, compute_loss, device, options)
    stream = BatchStream(train_loader)
    check_every = options.check_every or default_check_every(device)
    reader = _LossReader(check_every, device, reduce)
    stop = stop or StopFlag()
    if reduce is not None:
        stop.share()
    overflow = _OverflowWatch()
    fp16 = options.precision == "fp16"
    recorded: list[float] = []
    diverged = False
    done = 0
    chunk_start = 0
    for step in range(steps):
        reader.record(_take_step(stepper, stream, lr, step))
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
        first = recorded[0]
        if diverged or any(
            not math.isfinite(v) or (first > 0 and v > options.diverge_factor * first)
            for v in chunk.values
        ):
            diverged = True
            break
        if stop.requested:
            break
    optimizer.zero_grad(set_to_none=True)
    tail = recorded[-max(1, done // 10) :]
    train_loss = sum(tail) / len(tail) if tail else math.nan
    if diverged or not math.isfinite(train_loss):
        return Trial(lr=lr, train_loss=math.inf, val_loss=None, diverged=True, steps=done)
    val_loss = None
    if val_loader is not None:
        val_loss = evaluate(
            model,
            compute_loss,
            val_loader,
            device,
            precision=options.precision,
            max_batches=max_val_batches,
            reduce=reduce,
        )
        if not math.isfinite(val_loss):
            return Trial(lr=lr, train_loss=train_loss, val_loss=None, diverged=True, steps=done)
    return Trial(lr=lr, train_loss=train_loss, val_loss=val_loss, diverged=False, steps=done)
