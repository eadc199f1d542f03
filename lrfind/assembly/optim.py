"""Optimizers from config: built-in names or import paths, parameter groups, no-decay rules."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrfind.assembly.imports import check_arguments, resolve_import, short_name, user_code
from lrfind.config.schema import (
    OptimizerSpec,
    ParamGroupRule,
)
from lrfind.errors import ComponentError, SweepError
from lrfind.format import did_you_mean, first_line
from lrfind.names import BUILTIN_OPTIMIZERS, registry
from lrfind.settings import LR_SCALE_KEY

#: Built-in optimizers by the name ``optimizer.name`` uses (``lrfind.names`` holds the names).
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = registry(
    BUILTIN_OPTIMIZERS,
    {
        "sgd": torch.optim.SGD,
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "rmsprop": torch.optim.RMSprop,
        "adagrad": torch.optim.Adagrad,
    },
)

NO_DECAY = "@no_decay"

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)

_NORM_NAME = re.compile(r"Norm([123]d)?$")


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or bool(_NORM_NAME.search(type(module).__name__))


def no_decay_parameters(model: nn.Module) -> set[int]:
    """Return the ids of the parameters ``@no_decay`` matches: biases and normalization params.

    A bias is a parameter whose own name has a ``bias`` part (``bias``, ``in_proj_bias``,
    ``bias_hh_l0``). Normalization layers: BatchNorm*, LayerNorm, GroupNorm, InstanceNorm*, RMSNorm
    and any module class named ``...Norm``/``...Norm1d/2d/3d``. Embeddings are not included.
    """
    found: set[int] = set()
    for module in model.modules():
        norm = _is_norm(module)
        for name, parameter in module.named_parameters(recurse=False):
            if norm or "bias" in name.split("_"):
                found.add(id(parameter))
    return found


def _rule_options(rule: ParamGroupRule, index: int) -> dict[str, Any]:
    options = rule.options()
    key = f"optimizer.param_groups.{index}"
    if "lr" in options:
        raise ComponentError(
            f"{key}: do not set 'lr' (the sweep sets it); use {LR_SCALE_KEY} to scale the LR"
        )
    if "params" in options:
        raise ComponentError(f"{key}: 'params' is chosen by 'match', not given")
    if LR_SCALE_KEY in options:
        scale = options[LR_SCALE_KEY]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ComponentError(f"{key}.{LR_SCALE_KEY} must be a positive number, got {scale!r}")
    return options


def group_parameters(
    model: nn.Module, rules: Sequence[ParamGroupRule]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Split the trainable parameters into optimizer param groups by ``rules``.

    Each parameter goes to the first rule whose ``match`` (a regex searched in the qualified
    name, or ``@no_decay``) fits it; a group holds that rule's options (``weight_decay``,
    ``lr_scale``...). Unmatched parameters form a last, option-less group. Groups that would be
    empty are left out; a rule that matches nothing, or only parameters earlier rules took,
    yields a warning.

    Returns:
        (param groups for the optimizer constructor, warnings)

    Raises:
        ComponentError: a rule sets ``lr`` or ``params``, or a non-positive ``lr_scale``.
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    options = [_rule_options(rule, index) for index, rule in enumerate(rules)]
    no_decay = no_decay_parameters(model) if any(r.match == NO_DECAY for r in rules) else set()

    def fits(rule: ParamGroupRule, name: str, parameter: nn.Parameter) -> bool:
        if rule.match == NO_DECAY:
            return id(parameter) in no_decay
        return re.search(rule.match, name) is not None

    buckets: list[list[nn.Parameter]] = [[] for _ in rules]
    default: list[nn.Parameter] = []
    for name, parameter in named:
        index = next((i for i, rule in enumerate(rules) if fits(rule, name, parameter)), None)
        (default if index is None else buckets[index]).append(parameter)
    groups: list[dict[str, Any]] = []
    warnings: list[str] = []
    for index, (rule, bucket) in enumerate(zip(rules, buckets, strict=True)):
        if bucket:
            groups.append({"params": bucket, **options[index]})
            continue
        if any(fits(rule, name, p) for name, p in named):
            reason = "only parameters an earlier rule already took"
        else:
            reason = "no trainable parameter"
        warnings.append(f"optimizer.param_groups.{index} (match {rule.match!r}) matches {reason}")
    if default:
        groups.append({"params": default})
    return groups, warnings


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    return str(value)


def build_optimizer(
    spec: OptimizerSpec, model: nn.Module, start_lr: float, base_dir: Path
) -> tuple[Any, str, list[str]]:
    """Build the optimizer on ``model``'s trainable parameters with ``lr=start_lr``.

    Built-in names map to ``torch.optim`` (sgd, adam, adamw, rmsprop, adagrad); an import path is
    called as ``cls(param_groups, lr=start_lr, **optimizer.args)``. Each group's initial ``lr`` is
    ``start_lr * lr_scale``.

    Returns:
        (optimizer, description such as "SGD(momentum=0.9)", warnings)

    Raises:
        ComponentError: an unknown or rejected argument (naming ``optimizer.args``), an unknown
            param-group option (naming ``optimizer.param_groups.N``), import failures, or a user
            class that does not build an optimizer.
        SweepError: the model has no trainable parameters.
    """
    groups, warnings = group_parameters(model, spec.param_groups)
    if not any(True for _ in model.parameters()):
        raise SweepError(
            f"the model ({type(model).__name__}) has no parameters at all: there is nothing to "
            "train (are its layers kept in a plain list instead of nn.ModuleList?)"
        )
    if not groups:
        raise SweepError(
            "the model has no trainable parameters (every parameter has requires_grad=False)"
        )
    for group in groups:
        group["lr"] = start_lr * float(group.get(LR_SCALE_KEY, 1.0))
    builtin = spec.name in OPTIMIZERS
    factory: Any = (
        OPTIMIZERS[spec.name] if builtin else resolve_import(spec.name, base_dir, "optimizer.name")
    )
    label = getattr(factory, "__name__", short_name(spec.name))
    if not callable(factory):
        raise ComponentError(
            f"optimizer.name: {spec.name!r} is a {type(factory).__name__}, not an optimizer class"
        )
    check_arguments(factory, spec.args, "optimizer.args", label, skip=("params", "lr"))
    try:
        with user_code(f"optimizer.name: {label}", passing=(TypeError, ValueError)):
            optimizer = factory(groups, lr=start_lr, **spec.args)
    except (TypeError, ValueError) as error:
        raise ComponentError(
            f"optimizer.args: {label} rejected its arguments: {first_line(error)}"
        ) from None
    if not all(hasattr(optimizer, attr) for attr in ("param_groups", "step", "zero_grad")):
        raise ComponentError(
            f"optimizer.name: {spec.name!r} returned a {type(optimizer).__name__}, "
            "not an optimizer (no param_groups/step/zero_grad)"
        )
    defaults = getattr(optimizer, "defaults", None)
    if isinstance(defaults, Mapping) and defaults:
        known = [*defaults, LR_SCALE_KEY]
        for index, rule in enumerate(spec.param_groups):
            for option in rule.options():
                if option not in known:
                    hint = did_you_mean(option, known)
                    raise ComponentError(
                        f"optimizer.param_groups.{index}: {label} has no option '{option}'{hint}"
                    )
    shown = ", ".join(f"{k}={format_value(v)}" for k, v in spec.args.items())
    description = f"{label}({shown})"
    if len(optimizer.param_groups) > 1:
        description += f" [{len(optimizer.param_groups)} param groups]"
    return optimizer, description, warnings
