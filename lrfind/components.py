"""From a validated Config to the pieces a sweep runs: data loaders, model, optimizer, loss or step.

``build_task(config, device)`` seeds everything, builds the data, then the model (its sizes read
from the data), moves it to the device, builds the optimizer on its parameters, and the loss (or
the user's step function). ``probe_task`` then runs one forward pass on the first batch so that a
model that does not fit the data fails with a message naming the config keys, before the sweep.

User code is named by import path, ``"pkg.module:callable"`` or ``"pkg.module.Callable"``,
resolved against the config file's folder first and then the current directory (see
``resolve_import``).

Rules worth knowing (also in the docs of the functions below):

- ``optimizer.param_groups``: the first rule whose ``match`` fits a parameter's qualified name
  (``re.search``) takes it; the rest form the default group. ``@no_decay`` matches biases (any
  parameter whose own name has a ``bias`` part: ``bias``, ``in_proj_bias``, ``bias_ih_l0``) and
  every parameter of a normalization layer (BatchNorm*, LayerNorm, GroupNorm, InstanceNorm*,
  RMSNorm, and any class whose name ends in "Norm"/"Norm1d/2d/3d"). Embeddings are *not* in it:
  they decay, as in nanoGPT and Hugging Face's Trainer; add ``match: embedding`` to exempt them.
- Built-in losses reshape sensibly: ``cross_entropy``/``nll`` flatten ``(N, T, V)`` logits with
  ``(N, T)`` targets (class-last, as the built-in sequence models return) to ``(N*T, V)`` and
  ``(N*T,)``; ``(N, C)`` outputs with ``(N, 1)`` integer targets squeeze the targets. ``mse``,
  ``l1``, ``smooth_l1``, ``huber`` and ``bce_with_logits`` cast targets to the output's float
  dtype and reshape ``(N, 1)`` outputs to ``(N,)`` targets (or back); any other shape mismatch is
  an error rather than silent broadcasting.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import importlib.machinery
import inspect
import math
import random
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from lrfind.batches import move_to_device, split_batch
from lrfind.config import ComponentSpec, Config, OptimizerSpec, ParamGroupRule, is_import_path
from lrfind.datasets import DataInfo, from_user_data, load_builtin_dataset, make_loaders
from lrfind.errors import ComponentError, DataError, LrfindError, SweepError
from lrfind.models import build_builtin_model
from lrfind.schedule import LR_SCALE_KEY

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "BuiltTask",
    "DataInfo",
    "build_loss",
    "build_model",
    "build_optimizer",
    "build_task",
    "group_parameters",
    "move_to_device",
    "no_decay_parameters",
    "probe_task",
    "resolve_import",
    "seed_everything",
    "split_batch",
]

LossFn = Callable[[Any, Any], torch.Tensor]
StepFn = Callable[[nn.Module, Any], torch.Tensor]


# --- import paths ----------------------------------------------------------------------------

#: Top-level module name -> the config/current folder it was imported from by resolve_import.
_LOADED_FROM: dict[str, Path] = {}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _where(error: BaseException) -> str:
    """' (file.py:12)' for the innermost frame of ``error``'s traceback, or ''."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f" ({frame.filename}:{frame.lineno})"


def _search_dirs(base_dir: Path) -> list[Path]:
    dirs: list[Path] = []
    for folder in (Path(base_dir).resolve(), Path.cwd().resolve()):
        if folder not in dirs:
            dirs.append(folder)
    return dirs


@contextlib.contextmanager
def _on_sys_path(dirs: Sequence[Path]) -> Iterator[None]:
    added = [str(folder) for folder in dirs if str(folder) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


def _candidates(path: str, key: str) -> list[tuple[str, list[str]]]:
    """The (module, attribute chain) readings of ``path``, most specific module first."""
    bad = ComponentError(
        f"{key}: {path!r} is not an import path; write 'package.module:name' "
        "(or 'package.module.Name')"
    )
    if path.count(":") > 1:
        raise bad
    if ":" in path:
        module, _, attributes = path.partition(":")
        parts = [*module.split("."), *attributes.split(".")]
        if not all(part.isidentifier() for part in parts):
            raise bad
        return [(module, attributes.split("."))]
    parts = path.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise bad
    return [(".".join(parts[:cut]), parts[cut:]) for cut in range(len(parts) - 1, 0, -1)]


def _module_root(module: ModuleType) -> Path | None:
    """The folder on sys.path that ``module`` (a top-level module or package) was found in."""
    spec = getattr(module, "__spec__", None)
    locations = list(getattr(spec, "submodule_search_locations", None) or [])
    origin = getattr(spec, "origin", None)
    if locations:
        return Path(locations[0]).resolve().parent
    if origin and Path(origin).is_file():
        return Path(origin).resolve().parent
    return None


def _drop_stale(top: str, search: Sequence[Path]) -> None:
    """Forget a top-level module resolve_import loaded from another config folder.

    Two configs in different folders may each ship a ``models.py``; without this the second would
    silently get the first one's module from ``sys.modules``.
    """
    loaded_from = _LOADED_FROM.get(top)
    if loaded_from is None or top == "lrfind" or top not in sys.modules:
        return
    found_in = next(
        (
            folder
            for folder in search
            if importlib.machinery.PathFinder.find_spec(top, [str(folder)]) is not None
        ),
        None,
    )
    if found_in == loaded_from:
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]
    del _LOADED_FROM[top]


def _import_module(name: str, search: Sequence[Path], key: str) -> ModuleType:
    top = name.partition(".")[0]
    _drop_stale(top, search)
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError:
        raise
    except SyntaxError as error:
        raise ComponentError(
            f"{key}: syntax error in {error.filename}:{error.lineno}: {error.msg}"
        ) from None
    except LrfindError:
        raise
    except Exception as error:
        raise ComponentError(
            f"{key}: importing module '{name}' raised {type(error).__name__}: "
            f"{_first_line(error)}{_where(error)}"
        ) from error
    root = _module_root(sys.modules[top])
    if root is not None and root in search and top != "lrfind":
        _LOADED_FROM[top] = root
    return module


def _attribute(module: ModuleType, chain: Sequence[str], module_name: str, key: str) -> Any:
    value: Any = module
    for depth, name in enumerate(chain):
        try:
            value = getattr(value, name)
        except AttributeError:
            owner = (
                f"module '{module_name}'"
                if depth == 0
                else f"'{module_name}:{'.'.join(chain[:depth])}'"
            )
            if depth == 0 and getattr(module, "__file__", None):
                owner += f" ({module.__file__})"
            public = [n for n in dir(value) if not n.startswith("_")]
            close = difflib.get_close_matches(name, public, n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ComponentError(f"{key}: {owner} has no attribute '{name}'{hint}") from None
    return value


def resolve_import(path: str, base_dir: Path, key: str) -> Any:
    """Return the object ``path`` names: "pkg.module:attr" (or "pkg.module.attr").

    Modules are looked up in ``base_dir`` (the config's folder), then the current directory, then
    the installed packages; both folders are on ``sys.path`` only during the import. A top-level
    module that an earlier call loaded from a *different* folder (two configs each with a
    ``models.py``) is re-imported rather than served stale from ``sys.modules``.

    Raises:
        ComponentError: naming ``key`` and the module: a malformed path, a missing module (which
            one, and where it was looked for), a missing attribute (with close matches), a
            syntax error (file:line) or any exception while importing the module.
    """
    candidates = _candidates(path, key)
    search = _search_dirs(base_dir)
    missing: str | None = None
    with _on_sys_path(search):
        for module_name, chain in candidates:
            try:
                module = _import_module(module_name, search, key)
            except ModuleNotFoundError as error:
                absent = error.name or module_name
                if module_name == absent or module_name.startswith(absent + "."):
                    missing = missing or absent
                    continue
                raise ComponentError(
                    f"{key}: importing module '{module_name}' failed: no module named "
                    f"'{absent}'{_where(error)}"
                ) from None
            return _attribute(module, chain, module_name, key)
    folders = " and ".join(str(folder) for folder in search)
    raise ComponentError(
        f"{key}: cannot import {path!r}: no module named '{missing}' "
        f"(looked in {folders} and the installed packages)"
    )


def _short_name(path: str) -> str:
    return re.split(r"[.:]", path)[-1]


def _accepted(parameters: Mapping[str, inspect.Parameter], skip: Sequence[str] = ()) -> list[str]:
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [n for n, p in parameters.items() if p.kind not in kinds and n not in skip]


def _signature(target: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


def _check_arguments(
    target: Any, args: Mapping[str, Any], key: str, label: str, skip: Sequence[str] = ()
) -> None:
    """Raise ComponentError naming ``key`` for an argument ``target`` cannot take."""
    signature = _signature(target)
    if signature is None:
        return
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = _accepted(parameters, skip)
    for name in args:
        if name not in parameters:
            close = difflib.get_close_matches(str(name), accepted, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ComponentError(
                f"{key}: {label} has no argument '{name}'{hint}; accepted: {', '.join(accepted)}"
            )


def _call_user(
    target: Any,
    args: Mapping[str, Any],
    *,
    section: str,
    path: str,
    error_type: type[LrfindError] = ComponentError,
) -> Any:
    """Call user factory ``target(**args)``; turn every failure into an error naming the keys."""
    if not callable(target):
        raise ComponentError(
            f"{section}.target: {path!r} is a {type(target).__name__}, not something to call"
        )
    label = f"'{_short_name(path)}'"
    _check_arguments(target, args, f"{section}.args", label)
    signature = _signature(target)
    if signature is not None:
        try:
            signature.bind(**args)
        except TypeError as error:
            raise ComponentError(f"{section}.args: {label}: {error}") from None
    try:
        return target(**args)
    except LrfindError:
        raise
    except Exception as error:
        raise error_type(
            f"{section}.target: {path!r} raised {type(error).__name__}: "
            f"{_first_line(error)}{_where(error)}"
        ) from error


# --- data ------------------------------------------------------------------------------------


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
        value = _call_user(
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
        split.description = _short_name(spec.target)
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


# --- model -----------------------------------------------------------------------------------


def _inferred_sizes(info: DataInfo) -> dict[str, Any]:
    """Values for a user model's *required* size parameters, by their conventional names."""
    sizes: dict[str, Any] = {}
    if info.input_shape:
        sizes["input_shape"] = info.input_shape
        sizes["in_features"] = int(math.prod(info.input_shape))
        if len(info.input_shape) == 3:
            sizes["in_channels"] = info.input_shape[0]
    if info.num_outputs is not None:
        sizes["out_features"] = sizes["num_classes"] = sizes["num_outputs"] = info.num_outputs
    if info.vocab_size is not None:
        sizes["vocab_size"] = info.vocab_size
    return sizes


def build_model(config: Config, info: DataInfo) -> tuple[nn.Module, str]:
    """Build ``config.model``; return the module (on the CPU) and its description.

    Built-ins take their sizes from ``info`` unless ``model.args`` sets them. A user factory is
    called with ``model.args``; its *required* parameters named ``in_features``, ``out_features``,
    ``num_classes``, ``num_outputs``, ``in_channels``, ``vocab_size`` or ``input_shape`` that the
    args leave out are filled from the data too.

    Raises:
        ComponentError: import failures, bad arguments, a factory that raises or returns
            something other than an ``nn.Module``.
    """
    spec = config.model
    if not is_import_path(spec.target):
        return build_builtin_model(spec.target, spec.args, info)
    factory = resolve_import(spec.target, config.base_dir, "model.target")
    args = dict(spec.args)
    signature = _signature(factory) if callable(factory) else None
    if signature is not None:
        sizes = _inferred_sizes(info)
        for name, parameter in signature.parameters.items():
            required = parameter.default is inspect.Parameter.empty and parameter.kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY,
            )
            if required and name not in args and name in sizes:
                args[name] = sizes[name]
    model = _call_user(factory, args, section="model", path=spec.target)
    if not isinstance(model, nn.Module):
        raise ComponentError(
            f"model.target: {spec.target!r} returned a {type(model).__name__}, "
            "not a torch.nn.Module"
        )
    return model, _short_name(spec.target)


# --- optimizer -------------------------------------------------------------------------------

#: Built-in optimizers by the name ``optimizer.name`` uses.
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

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


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_format_value(v) for v in value) + ")"
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
    label = getattr(factory, "__name__", _short_name(spec.name))
    if not callable(factory):
        raise ComponentError(
            f"optimizer.name: {spec.name!r} is a {type(factory).__name__}, not an optimizer class"
        )
    _check_arguments(factory, spec.args, "optimizer.args", label, skip=("params", "lr"))
    try:
        optimizer = factory(groups, lr=start_lr, **spec.args)
    except LrfindError:
        raise
    except (TypeError, ValueError) as error:
        raise ComponentError(
            f"optimizer.args: {label} rejected its arguments: {_first_line(error)}"
        ) from None
    except Exception as error:
        raise ComponentError(
            f"optimizer.name: {label} raised {type(error).__name__}: {_first_line(error)}"
            f"{_where(error)}"
        ) from error
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
                    close = difflib.get_close_matches(option, known, n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    raise ComponentError(
                        f"optimizer.param_groups.{index}: {label} has no option '{option}'{hint}"
                    )
    shown = ", ".join(f"{k}={_format_value(v)}" for k, v in spec.args.items())
    description = f"{label}({shown})"
    if len(optimizer.param_groups) > 1:
        description += f" [{len(optimizer.param_groups)} param groups]"
    return optimizer, description, warnings


# --- loss ------------------------------------------------------------------------------------

#: Built-in losses by name (``auto`` resolves to one of them from the data's task).
LOSSES: dict[str, type[nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "nll": nn.NLLLoss,
    "mse": nn.MSELoss,
    "l1": nn.L1Loss,
    "smooth_l1": nn.SmoothL1Loss,
    "huber": nn.HuberLoss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
}
_CLASS_LOSSES = ("cross_entropy", "nll")
_TENSOR_ARGS = ("weight", "pos_weight")


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return f"shape {tuple(value.shape)} ({dtype})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_shape(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of " + ", ".join(_shape(v) for v in value)
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
    _check_arguments(cls, kwargs, key, f"loss '{name}'")
    try:
        loss = cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ComponentError(f"{key}: loss '{name}' rejected its arguments: {error}") from None
    if name in _CLASS_LOSSES:
        return ClassificationLoss(name, loss)
    return PointwiseLoss(name, loss)


def build_loss(loss: str | ComponentSpec, info: DataInfo, base_dir: Path) -> tuple[LossFn, str]:
    """Build the loss ``config.loss`` names; return it and its description.

    ``auto`` is cross_entropy for classification and sequence data, mse for regression. A
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
    if name == "auto":
        if info.task is None:
            raise ComponentError(
                "loss: 'auto' cannot tell the task from the data; set loss: cross_entropy "
                "(classes), mse (regression) or another built-in"
            )
        name = "mse" if info.task == "regression" else "cross_entropy"
    if name in LOSSES:
        shown = ", ".join(f"{k}={_format_value(v)}" for k, v in args.items())
        description = f"{name}({shown})" if shown else name
        return _builtin_loss(name, args, "loss.args"), description
    target = resolve_import(name, base_dir, key)
    if inspect.isclass(target):
        instance = _call_user(target, args, section="loss", path=name)
        if not callable(instance):
            raise ComponentError(f"loss.target: {name!r} built a non-callable")
        return instance, _short_name(name)
    if not callable(target):
        raise ComponentError(f"{key}: {name!r} is a {type(target).__name__}, not a loss function")
    if args:
        _check_arguments(target, args, "loss.args", f"'{_short_name(name)}'")
        return functools.partial(target, **args), _short_name(name)
    return target, _short_name(name)


# --- the task --------------------------------------------------------------------------------


@dataclass
class BuiltTask:
    """Everything a sweep needs, built from a config (the model is on the device, not wrapped)."""

    model: nn.Module
    optimizer: Any
    loss_fn: LossFn | None
    step_fn: StepFn | None
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any] | None
    info: DataInfo
    inputs_key: str | None
    targets_key: str | None
    description: dict[str, str]
    batch_size: int
    warnings: list[str] = field(default_factory=list)


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
    loss_fn: LossFn | None = None
    step_fn: StepFn | None = None
    if config.step is not None:
        step_fn = resolve_import(config.step, config.base_dir, "step")
        if not callable(step_fn):
            raise ComponentError(f"step: {config.step!r} is not a function")
        loss_description = f"step:{_short_name(config.step)}"
        if config.loss != "auto":
            warnings.append("loss is ignored: the step function computes the loss")
    else:
        loss_fn, loss_description = build_loss(config.loss, data.info, config.base_dir)
        if isinstance(loss_fn, nn.Module):
            loss_fn.to(device)
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
    )


# --- the probe -------------------------------------------------------------------------------


def _generators(loader: Any) -> list[torch.Generator]:
    found: list[torch.Generator] = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(g is not generator for g in found):
            found.append(generator)
    return found


def _check_probe_loss(loss: Any, who: str) -> None:
    if not isinstance(loss, torch.Tensor):
        raise SweepError(f"{who} returned a {type(loss).__name__}, not a tensor")
    if loss.numel() != 1:
        raise SweepError(
            f"{who} returned a tensor of shape {tuple(loss.shape)}, not a scalar; "
            "use reduction='mean'"
        )
    if not loss.is_floating_point():
        raise SweepError(f"{who} returned a {loss.dtype} tensor; a loss must be floating point")
    # A NaN/inf loss is not an error here: the sweep records it and reports no reliable answer.


def _forward_loss(task: BuiltTask, batch: Any) -> torch.Tensor:
    model_name = task.description.get("model", "model")
    loss_name = task.description.get("loss", "loss")
    if task.step_fn is not None:
        try:
            loss = task.step_fn(task.model, batch)
        except LrfindError:
            raise
        except Exception as error:
            raise SweepError(
                f"step {loss_name.removeprefix('step:')!r} failed on the first batch "
                f"({_shape(batch)}): {type(error).__name__}: {_first_line(error)}{_where(error)}"
            ) from error
        _check_probe_loss(loss, f"step {loss_name.removeprefix('step:')!r}")
        return loss
    assert task.loss_fn is not None
    inputs, targets = split_batch(batch, task.inputs_key, task.targets_key)
    if (
        isinstance(inputs, torch.Tensor)
        and inputs.is_floating_point()
        and not torch.isfinite(inputs).all()
    ):
        raise DataError("data: the first training batch has NaN or inf inputs; clean the data")
    try:
        outputs = task.model(**inputs) if isinstance(inputs, Mapping) else task.model(inputs)
    except LrfindError:
        raise
    except Exception as error:
        raise SweepError(
            f"model '{model_name}' does not fit the data: the first batch has inputs of "
            f"{_shape(inputs)} and the model raised {type(error).__name__}: "
            f"{_first_line(error)} (check model.args or data.args)"
        ) from error
    try:
        loss = task.loss_fn(outputs, targets)
    except LrfindError:
        raise
    except Exception as error:
        raise SweepError(
            f"loss '{loss_name}' failed on model outputs of {_shape(outputs)} and targets of "
            f"{_shape(targets)}: {type(error).__name__}: {_first_line(error)} "
            "(check loss and the model's output size, model.args.out_features)"
        ) from error
    _check_probe_loss(loss, f"loss '{loss_name}'")
    return loss


def probe_task(task: BuiltTask, device: torch.device) -> None:
    """Run one forward (and loss) on the first training batch, without a trace.

    Runs in training mode under ``torch.no_grad``; the model's state (BatchNorm statistics
    included), torch's RNG and the loader's shuffling generators are restored afterwards, so the
    sweep sees exactly what it would have seen without the probe.

    Raises:
        DataError: the loader yields nothing or fails, or the inputs hold NaN/inf.
        SweepError: the model does not fit the data, or the loss fails or is not a floating
            point scalar (each message names the config keys to check). A NaN/inf loss is left
            to the sweep, which stops and reports that no LR can be trusted.
    """
    saved_model = {k: v.detach().clone() for k, v in task.model.state_dict().items()}
    saved_rng = torch.get_rng_state()
    saved_cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    saved_generators = [(g, g.get_state()) for g in _generators(task.train_loader)]
    try:
        try:
            batch = next(iter(task.train_loader))
        except StopIteration:
            raise DataError("data: the training data yields no batches") from None
        except LrfindError:
            raise
        except Exception as error:
            raise DataError(
                f"data: reading the first training batch failed: {type(error).__name__}: "
                f"{_first_line(error)}{_where(error)}"
            ) from error
        batch = move_to_device(batch, device)
        with torch.no_grad():
            _forward_loss(task, batch)
    finally:
        task.model.load_state_dict(saved_model)
        torch.set_rng_state(saved_rng)
        if saved_cuda is not None:
            torch.cuda.set_rng_state_all(saved_cuda)
        for generator, state in saved_generators:
            generator.set_state(state)
