"""Loss functions from config: built-ins (with shape checks) or import paths."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrfind.assembly.imports import call_user, check_arguments, resolve_import, short_name
from lrfind.assembly.optim import format_value
from lrfind.config.schema import (
    ComponentSpec,
)
from lrfind.data.model_outputs import MODEL_LOSS, ModelLoss
from lrfind.data.types import DataInfo
from lrfind.errors import ComponentError, SweepError
from lrfind.names import AUTO_LOSS, LOSS_CLASSES, registry

LossFn = Callable[[Any, Any], torch.Tensor]

#: Built-in losses by name (``auto`` resolves to one of them from the data's task;
#: ``lrfind.names`` holds the names).
LOSSES: dict[str, type[nn.Module]] = registry(
    LOSS_CLASSES,
    {
        "cross_entropy": nn.CrossEntropyLoss,
        "nll": nn.NLLLoss,
        "mse": nn.MSELoss,
        "l1": nn.L1Loss,
        "smooth_l1": nn.SmoothL1Loss,
        "huber": nn.HuberLoss,
        "bce_with_logits": nn.BCEWithLogitsLoss,
    },
)

_CLASS_LOSSES = ("cross_entropy", "nll")

_TENSOR_ARGS = ("weight", "pos_weight")


def describe_shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return f"shape {tuple(value.shape)} ({dtype})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe_shape(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of " + ", ".join(describe_shape(v) for v in value)
    return f"a {type(value).__name__}"


class ClassificationLoss(nn.Module):
    """cross_entropy / nll with class-last reshaping for sequences (see the module docstring)."""

    def __init__(self, name: str, loss: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.loss = loss

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Return the mean loss of ``outputs`` (logits or log-probs) against class ids."""
        if not (targets.is_floating_point() and targets.shape == outputs.shape):
            if outputs.dim() >= 3 and outputs.shape[:-1] == targets.shape:
                outputs = outputs.reshape(-1, outputs.shape[-1])
                targets = targets.reshape(-1)
            elif outputs.dim() == 2 and targets.shape == (outputs.shape[0], 1):
                targets = targets.reshape(-1)
            if not targets.is_floating_point() and targets.dtype != torch.long:
                targets = targets.long()
        result: torch.Tensor = self.loss(outputs, targets)
        return result


class PointwiseLoss(nn.Module):
    """mse / l1 / smooth_l1 / huber / bce_with_logits with float targets and (N, 1) ~ (N,)."""

    def __init__(self, name: str, loss: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.loss = loss

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Return the loss; raise SweepError on shapes that would silently broadcast."""
        if targets.dtype != outputs.dtype:
            targets = targets.to(outputs.dtype)
        if outputs.shape != targets.shape:
            same_samples = outputs.dim() > 0 and targets.dim() > 0
            same_samples = same_samples and outputs.shape[0] == targets.shape[0]
            if same_samples and outputs.numel() == targets.numel():
                outputs = outputs.reshape(targets.shape)
            else:
                hint = ""
                if targets.dim() <= 1 or targets[0].numel() == 1:
                    hint = "; give the model one output (model.args.out_features: 1)"
                    if self.name == "bce_with_logits":
                        hint += " or use loss: cross_entropy"
                raise SweepError(
                    f"loss '{self.name}': model outputs of shape {tuple(outputs.shape)} do not "
                    f"match targets of shape {tuple(targets.shape)}{hint}"
                )
        result: torch.Tensor = self.loss(outputs, targets)
        return result


def _builtin_loss(name: str, args: Mapping[str, Any], key: str) -> nn.Module:
    cls = LOSSES[name]
    kwargs = dict(args)
    for arg in _TENSOR_ARGS:
        if isinstance(kwargs.get(arg), (list, tuple, int, float)):
            kwargs[arg] = torch.tensor(kwargs[arg], dtype=torch.float32)
    check_arguments(cls, kwargs, key, f"loss '{name}'")
    try:
        loss = cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ComponentError(f"{key}: loss '{name}' rejected its arguments: {error}") from None
    if name in _CLASS_LOSSES:
        return ClassificationLoss(name, loss)
    return PointwiseLoss(name, loss)


def build_loss(
    loss: str | ComponentSpec, info: DataInfo, base_dir: Path
) -> tuple[LossFn | ModelLoss, str]:
    """Build the loss ``config.loss`` names; return it and its description.

    ``auto`` is cross_entropy for classification and sequence data, mse for regression.
    ``model`` returns the marker ``"model"``: the engine then uses the loss the model computes
    itself (``outputs.loss``). A
    ``{target, args}`` form passes ``args`` to the built-in loss (e.g. ``label_smoothing``,
    ``delta``; list-valued ``weight``/``pos_weight`` become tensors). A user class is
    instantiated with ``args``; a user function is called as ``fn(outputs, targets, **args)``.

    Raises:
        ComponentError: ``auto`` with data of unknown task, a rejected argument (naming
            ``loss.args``), or an import failure.
    """
    name = loss if isinstance(loss, str) else loss.target
    args = {} if isinstance(loss, str) else dict(loss.args)
    key = "loss" if isinstance(loss, str) else "loss.target"
    if name == MODEL_LOSS:
        if args:
            raise ComponentError(
                f"loss.args: loss 'model' takes no arguments (got {', '.join(map(str, args))}); "
                "the model computes its loss itself"
            )
        return MODEL_LOSS, MODEL_LOSS
    if name == AUTO_LOSS:
        if info.task is None:
            raise ComponentError(
                "loss: 'auto' cannot tell the task from the data; set loss: cross_entropy "
                "(classes), mse (regression), another built-in, or model (the loss the model "
                "computes itself, e.g. a transformers model given labels)"
            )
        name = "mse" if info.task == "regression" else "cross_entropy"
    if name in LOSSES:
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in args.items())
        description = f"{name}({shown})" if shown else name
        return _builtin_loss(name, args, "loss.args"), description
    target = resolve_import(name, base_dir, key)
    if inspect.isclass(target):
        instance = call_user(target, args, section="loss", path=name)
        if not callable(instance):
            raise ComponentError(f"loss.target: {name!r} built a non-callable")
        return instance, short_name(name)
    if not callable(target):
        raise ComponentError(f"{key}: {name!r} is a {type(target).__name__}, not a loss function")
    if args:
        check_arguments(target, args, "loss.args", f"'{short_name(name)}'")
        return functools.partial(target, **args), short_name(name)
    return target, short_name(name)
