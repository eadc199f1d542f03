"""Validation passes: the model's mean loss over a loader, batch by batch, on every rank."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from lrfind.data.batches import batch_size_of, move_to_device
from lrfind.engine.collectives import lockstep_batches
from lrfind.engine.options import PRECISION_DTYPES, ComputeLoss, Reducer
from lrfind.engine.session import Session
from lrfind.errors import DataError
from lrfind.results import Trial


@dataclass(frozen=True)
class Evaluation:
    """One validation pass: the sample-weighted mean loss and each batch's mean loss and size.

    The per-batch lists are empty when they could not be recorded (under torch.distributed
    without a ``max_batches`` to align every rank's batches on).
    """

    loss: float
    batch_losses: tuple[float, ...] = ()
    batch_sizes: tuple[int, ...] = ()


@torch.no_grad()
def evaluate_batches(
    model: torch.nn.Module,
    compute_loss: ComputeLoss,
    loader: Iterable[Any],
    device: torch.device,
    *,
    precision: str = "fp32",
    max_batches: int | None = None,
    reduce: Reducer | None = None,
    session: Session | None = None,
) -> Evaluation:
    """Return the validation pass of ``model`` over ``loader`` (eval mode, no grad).

    ``session`` says how the model is spread over processes (a DDP wrapper is gone around, an
    FSDP2 model's batches are kept in lockstep) and gives the all-reduce; without one the model
    shows it (``Session.of``) and ``reduce`` is the caller's. Under torch.distributed (a
    reduce) the per-batch sums are all-reduced once at the end, batch k of every rank
    together, so the values are the same on every rank. The global
    RNG is left as it was (a DataLoader draws its base seed from it): a checkpoint's validation
    pass must not change the training that continues after it.

    Raises:
        DataError: the loader yields no batches (on every rank).
    """
    if session is not None:
        reduce = session.reduce
    spread = session if session is not None else Session.of(model)
    was_training = model.training
    module = spread.inner(model)
    module.eval()
    dtype = PRECISION_DTYPES.get(precision)
    sums: list[torch.Tensor] = []
    sizes: list[int] = []
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    if reduce is not None and spread.sharded:
        # An FSDP2 forward is itself collective: every rank must run as many batches.
        loader = lockstep_batches(loader, reduce, device)
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
            sums.append(loss.detach().double().reshape(()) * size)
            sizes.append(size)
    finally:
        model.train(was_training)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)
    if not sums and reduce is None:
        raise DataError("the validation data yields no batches")
    # One (sum, count) slot per batch; under torch.distributed every rank sends the same
    # shape (max_batches slots, or a single total without a cap) and batch k of every rank
    # shares slot k.
    per_batch = reduce is None or max_batches is not None
    slots = len(sums) if reduce is None else (max_batches if max_batches is not None else 1)
    table = torch.zeros((2, max(slots, 1)), dtype=torch.float64, device=device)
    for index, (total, size) in enumerate(zip(sums, sizes, strict=True)):
        slot = index if per_batch else 0
        table[0, slot] += total
        table[1, slot] += size
    if reduce is not None:
        table = reduce(table)
    totals, counts = table.cpu().tolist()
    samples = sum(counts)
    if samples == 0:
        raise DataError("the validation data yields no batches")
    mean = sum(totals) / samples
    if not per_batch:
        return Evaluation(mean)
    kept = [(t / c, max(1, round(c))) for t, c in zip(totals, counts, strict=True) if c > 0]
    return Evaluation(mean, tuple(v for v, _ in kept), tuple(c for _, c in kept))


def start_trial(evaluation: Evaluation) -> Trial:
    """Return the untrained model's validation pass as a Trial at LR 0 with 0 steps.

    Compared with the trials batch by batch, it tells whether any trial trained at all.
    """
    return Trial(
        lr=0.0,
        train_loss=math.nan,
        val_loss=evaluation.loss,
        diverged=False,
        steps=0,
        val_batch_losses=evaluation.batch_losses,
        val_batch_sizes=evaluation.batch_sizes,
    )
