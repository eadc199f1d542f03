"""What a range test's result records about the run (``RunInfo``): the caller's description,
completed with what the engine knows (device, options, versions, param-group scales...)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import torch

from lrfind.data.loaders import size_of
from lrfind.engine.device import versions
from lrfind.engine.session import Session
from lrfind.results import RunInfo, TrainRun
from lrfind.settings import LR_SCALE_KEY, SweepOptions


def describe_loss(loss_fn: Any, step_fn: Any) -> str:
    """How the loss is named in the result: the built-in name, or the function's."""
    target = step_fn if step_fn is not None else loss_fn
    if isinstance(target, str):
        return target
    name = getattr(target, "__name__", None) or type(target).__name__
    return str(name)


def _lr_scales(optimizer: torch.optim.Optimizer) -> tuple[float, ...]:
    """Each param group's multiplier of the swept LR (``lr_scale``, default 1), in order."""
    return tuple(float(group.get(LR_SCALE_KEY, 1.0)) for group in optimizer.param_groups)


def run_info(
    base: RunInfo | None,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_name: str,
    train_loader: Iterable[Any],
    device: torch.device,
    options: SweepOptions,
    seed: int | None,
    train: TrainRun | None,
    seconds: float,
    session: Session,
) -> RunInfo:
    """What a result records about the run: ``base`` (the caller's, e.g. the config's) with
    what the engine knows filled in."""
    base = base or RunInfo(
        model=type(model).__name__,
        optimizer=type(optimizer).__name__,
        loss=loss_name,
        batch_size=getattr(train_loader, "batch_size", None),
    )
    return replace(
        base,
        device=str(device),
        precision=options.precision,
        accumulation_steps=options.accumulation_steps,
        seed=seed if seed is not None else base.seed,
        start_lr=options.start_lr,
        end_lr=options.end_lr,
        planned_steps=options.steps,
        mode=options.mode,
        smoothing=options.smoothing,
        diverge_factor=options.diverge_factor,
        seconds=seconds,
        versions=base.versions or versions(),
        lr_scales=base.lr_scales or _lr_scales(optimizer),
        batches_per_epoch=base.batches_per_epoch or size_of(train_loader),
        strategy=base.strategy or session.recorded,
        world_size=session.world_size,
        train=train if train is not None else base.train,
    )
