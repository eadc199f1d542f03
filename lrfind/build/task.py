"""Config -> BuiltTask: data, model, optimizer and loss, seeded, ready for the engine."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from lrfind.build.imports import call_user, resolve_import, short_name
from lrfind.build.losses import LossFn, build_loss
from lrfind.build.models import build_model
from lrfind.build.optim import build_optimizer
from lrfind.config.schema import (
    Config,
    is_import_path,
)
from lrfind.data.loaders import make_loaders
from lrfind.data.model_outputs import ModelLoss, OutputKey
from lrfind.data.registry import load_builtin_dataset
from lrfind.data.types import DataInfo
from lrfind.data.user import from_user_data
from lrfind.errors import ComponentError, DataError

StepFn = Callable[[nn.Module, Any], torch.Tensor]


@dataclass
class _Data:
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any] | None
    info: DataInfo
    batch_size: int
    description: str
    warnings: list[str]


def _build_data(config: Config, device: torch.device, rank: int, world_size: int) -> _Data:
    spec = config.data
    if is_import_path(spec.target):
        factory = resolve_import(spec.target, config.base_dir, "data.target")
        value = call_user(
            factory, spec.args, section="data", path=spec.target, error_type=DataError
        )
        split = from_user_data(
            value,
            key="data.target",
            seed=config.seed,
            val_fraction=spec.val_fraction,
            inputs_key=spec.inputs_key,
            targets_key=spec.targets_key,
        )
        split.description = short_name(spec.target)
    else:
        split = load_builtin_dataset(
            spec.target,
            spec.args,
            seed=config.seed,
            val_fraction=spec.val_fraction,
            base_dir=config.base_dir,
        )
    loaders = make_loaders(
        split,
        batch_size=spec.batch_size,
        shuffle=spec.shuffle,
        num_workers=spec.num_workers,
        drop_last=spec.drop_last,
        seed=config.seed,
        device=device,
        rank=rank,
        world_size=world_size,
    )
    return _Data(
        loaders.train,
        loaders.val,
        split.info,
        loaders.batch_size,
        split.description or spec.target,
        loaders.warnings,
    )


@dataclass
class BuiltTask:
    """Everything a sweep needs, built from a config (the model is on the device, not wrapped)."""

    model: nn.Module
    optimizer: Any
    loss_fn: LossFn | ModelLoss | None
    step_fn: StepFn | None
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any] | None
    info: DataInfo
    inputs_key: str | None
    targets_key: str | None
    description: dict[str, str]
    batch_size: int
    warnings: list[str] = field(default_factory=list)
    #: What a loss reads from a non-tensor model output (``model.output_key``; None: logits).
    output_key: OutputKey | None = None


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and ``random`` from ``seed``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def build_task(
    config: Config, device: torch.device, rank: int = 0, world_size: int = 1
) -> BuiltTask:
    """Build data loaders, model (on ``device``), optimizer and loss/step from ``config``.

    Seeds torch/numpy/random from ``config.seed`` first, and again before the model so its
    initial weights do not depend on how much randomness the data took. ``rank``/``world_size``
    shard the data with a DistributedSampler when ``world_size > 1``.

    Raises:
        ComponentError, DataError: naming the config key at fault.
        SweepError: the model has no trainable parameters.
    """
    seed_everything(config.seed)
    data = _build_data(config, device, rank, world_size)
    seed_everything(config.seed)
    model, model_description = build_model(config, data.info)
    model.to(device)
    optimizer, optimizer_description, optimizer_warnings = build_optimizer(
        config.optimizer, model, config.sweep.start_lr, config.base_dir
    )
    warnings = [*data.warnings, *optimizer_warnings]
    loss_fn: LossFn | ModelLoss | None = None
    step_fn: StepFn | None = None
    if config.step is not None:
        step_fn = resolve_import(config.step, config.base_dir, "step")
        if not callable(step_fn):
            raise ComponentError(f"step: {config.step!r} is not a function")
        loss_description = f"step:{short_name(config.step)}"
        if config.loss != "auto":
            warnings.append("loss is ignored: the step function computes the loss")
    else:
        loss_fn, loss_description = build_loss(config.loss, data.info, config.base_dir)
        if isinstance(loss_fn, nn.Module):
            loss_fn.to(device)
        if isinstance(loss_fn, str) and config.model.output_key is not None:
            warnings.append("model.output_key is ignored: loss 'model' reads the model's own loss")
    return BuiltTask(
        model=model,
        optimizer=optimizer,
        loss_fn=loss_fn,
        step_fn=step_fn,
        train_loader=data.train_loader,
        val_loader=data.val_loader,
        info=data.info,
        inputs_key=config.data.inputs_key,
        targets_key=config.data.targets_key,
        description={
            "model": model_description,
            "data": data.description,
            "optimizer": optimizer_description,
            "loss": loss_description,
        },
        batch_size=data.batch_size,
        warnings=warnings,
        output_key=config.model.output_key,
    )
