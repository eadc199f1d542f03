"""Config -> BuiltTask: data, model, optimizer and loss, seeded, ready for the engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from lrfind.assembly.imports import argument_problems, call_user, resolve_import, short_name
from lrfind.assembly.losses import LOSSES, LossFn, build_loss
from lrfind.assembly.models import ALIASES, MODELS, build_model
from lrfind.assembly.optim import OPTIMIZERS, build_optimizer
from lrfind.assembly.sharding import shard_model
from lrfind.config.schema import (
    Config,
    is_import_path,
)
from lrfind.data.batches import InputsKey, UserCollate
from lrfind.data.loaders import make_loaders, reseed
from lrfind.data.model_outputs import ModelLoss, OutputKey
from lrfind.data.registry import DATASETS, INJECTED_ARGUMENTS, load_builtin_dataset
from lrfind.data.types import DataInfo
from lrfind.data.user import from_user_data
from lrfind.errors import ComponentError, DataError, LrfindError

StepFn = Callable[[nn.Module, Any], torch.Tensor]


@dataclass
class _Data:
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any] | None
    info: DataInfo
    batch_size: int
    description: str
    warnings: list[str]


#: ``data:`` keys a user's DataLoaders decide for themselves (batching, order, workers, split).
LOADER_KEYS = ("batch_size", "val_fraction", "shuffle", "num_workers", "drop_last", "collate")


def _unused_loader_keys(config: Config, split: Any) -> list[str]:
    """Warnings for the ``data:`` keys set in the config that a factory's DataLoaders ignore;
    the config then leaves all of them out of the saved config.yaml."""
    if not isinstance(split.train, DataLoader):
        return []
    config.mark_unused(f"data.{key}" for key in LOADER_KEYS)
    spec = config.data
    named = [key for key in LOADER_KEYS if key in spec.model_fields_set]
    if not named:
        return []
    keys = ", ".join(f"data.{key}" for key in named)
    return [
        f"{keys} ignored: {short_name(spec.target)} returned DataLoaders, which keep their own "
        "batching, order and workers; return Datasets to have them apply, or remove the keys"
    ]


def _build_data(config: Config, device: torch.device, rank: int, world_size: int) -> _Data:
    spec = config.data
    collate = (
        resolve_import(spec.collate, config.base_dir, "data.collate") if spec.collate else None
    )
    if collate is not None and not callable(collate):
        raise ComponentError(f"data.collate: {spec.collate!r} is not callable")
    if collate is not None:
        collate = UserCollate(collate)  # its failures are then said to be data.collate's
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
            collate=collate,
        )
        split.description = short_name(spec.target)
        split.warnings.extend(_unused_loader_keys(config, split))
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
        collate_fn=collate,
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
    inputs_key: InputsKey | None
    targets_key: str | None
    description: dict[str, str]
    batch_size: int
    warnings: list[str] = field(default_factory=list)
    #: What a loss reads from a non-tensor model output (``model.output_key``; None: logits).
    output_key: OutputKey | None = None


def component_problems(config: Config, user: bool = True) -> list[str]:
    """Every component argument its target cannot take, bound to its signature, all at once.

    Built-in models, datasets and optimizers also have their values checked against their
    annotations. With ``user`` False, components named by import path are skipped (checking
    them imports them, which runs their module's code); an import path that fails to resolve
    is skipped too (the import error is its own problem).
    """
    checks: list[tuple[Any, dict[str, Any], str, str, tuple[str, ...], bool, bool]] = []

    def user_target(path: str, key: str) -> Any:
        if not user:
            return None
        try:
            return resolve_import(path, config.base_dir, key)
        except LrfindError:
            return None

    model = config.model
    model_args = {ALIASES.get(name, name): value for name, value in model.args.items()}
    if model.target in MODELS:
        label = f"model '{model.target}'"
        checks.append((MODELS[model.target].cls, model_args, "model.args", label, (), True, True))
    elif is_import_path(model.target):
        factory = user_target(model.target, "model.target")
        label = f"'{short_name(model.target)}'"
        checks.append((factory, dict(model.args), "model.args", label, (), True, False))
    data = config.data
    if data.target in DATASETS:
        label = f"dataset '{data.target}'"
        loader = DATASETS[data.target]
        checks.append((loader, dict(data.args), "data.args", label, INJECTED_ARGUMENTS, True, True))
    elif is_import_path(data.target):
        factory = user_target(data.target, "data.target")
        label = f"'{short_name(data.target)}'"
        checks.append((factory, dict(data.args), "data.args", label, (), False, False))
    optimizer = config.optimizer
    skip: tuple[str, ...] = ("params", "lr")
    if optimizer.name in OPTIMIZERS:
        label = OPTIMIZERS[optimizer.name].__name__
        checks.append((OPTIMIZERS[optimizer.name], optimizer.args, "optimizer.args", label, skip,
                       True, True))  # fmt: skip
    elif is_import_path(optimizer.name):
        factory = user_target(optimizer.name, "optimizer.name")
        label = f"'{short_name(optimizer.name)}'"
        checks.append((factory, optimizer.args, "optimizer.args", label, skip, True, False))
    if config.step is None and not isinstance(config.loss, str) and config.loss.args:
        loss = config.loss
        target = LOSSES.get(loss.target) or (
            user_target(loss.target, "loss.target") if is_import_path(loss.target) else None
        )
        label = f"loss '{short_name(loss.target)}'"
        checks.append((target, dict(loss.args), "loss.args", label, (), True, False))
    problems: list[str] = []
    for target, args, key, label, skipped, partial, typed in checks:
        if target is not None and callable(target):
            problems += argument_problems(
                target, args, key, label, skip=skipped, partial=partial, typed=typed
            )
    return problems


def build_task(
    config: Config, device: torch.device, rank: int = 0, world_size: int = 1
) -> BuiltTask:
    """Build data loaders, model (on ``device``), optimizer and loss/step from ``config``.

    Seeds torch/numpy/random from ``config.seed`` first, and again before the model so its
    initial weights do not depend on how much randomness the data took. ``rank``/``world_size``
    shard the data with a DistributedSampler when ``world_size > 1``.

    Raises:
        ComponentError: component arguments their targets cannot take (every one listed), or
            a component that cannot be imported or built, naming the config key at fault.
        DataError: naming the config key at fault.
        SweepError: the model has no trainable parameters.
    """
    problems = component_problems(config)
    if len(problems) == 1:
        raise ComponentError(problems[0])
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise ComponentError(f"{len(problems)} problems with component arguments:\n{listed}")
    reseed(config.seed)
    data = _build_data(config, device, rank, world_size)
    reseed(config.seed)
    model, model_description = build_model(config, data.info)
    model.to(device)
    sharding_warnings: list[str] = []
    if config.distributed.strategy == "fsdp":
        if world_size > 1:
            # Before the optimizer is made: it must hold the sharded parameters.
            shard_model(model, config.distributed.shard_modules, config.base_dir)
        else:
            sharding_warnings.append("distributed.strategy fsdp: one process, nothing to shard")
    elif config.distributed.shard_modules:
        sharding_warnings.append(
            "distributed.shard_modules is ignored: distributed.strategy ddp does not shard "
            "(set it to fsdp)"
        )
    optimizer, optimizer_description, optimizer_warnings = build_optimizer(
        config.optimizer, model, config.sweep.start_lr, config.base_dir
    )
    warnings = [*data.warnings, *sharding_warnings, *optimizer_warnings]
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
