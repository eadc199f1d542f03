"""Building a model from config: built-in registry, sizes inferred from the data, user classes."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from lrfind.assembly.architectures import CNN, MLP, GRUModel, LinearModel, TransformerModel
from lrfind.assembly.imports import call_user, resolve_import, signature_of
from lrfind.config.schema import (
    Config,
    is_import_path,
)
from lrfind.data.types import DataInfo
from lrfind.errors import ComponentError
from lrfind.format import first_line, unknown_arguments
from lrfind.names import BUILTIN_MODELS, registry


def _flat_features(info: DataInfo) -> int | None:
    return int(math.prod(info.input_shape)) if info.input_shape else None


def _in_out(info: DataInfo) -> dict[str, int | None]:
    return {"in_features": _flat_features(info), "out_features": info.num_outputs}


def _cnn_sizes(info: DataInfo) -> dict[str, int | None]:
    channels = info.input_shape[0] if len(info.input_shape) == 3 else None
    return {"in_channels": channels, "out_features": info.num_outputs}


def _gru_sizes(info: DataInfo) -> dict[str, int | None]:
    return {"vocab_size": info.vocab_size}


def _transformer_sizes(info: DataInfo) -> dict[str, int | None]:
    length = info.input_shape[0] if len(info.input_shape) == 1 else None
    return {"vocab_size": info.vocab_size, "max_len": length}


def _describe_linear(name: str) -> Callable[[nn.Module], str]:
    def describe(model: nn.Module) -> str:
        assert isinstance(model, LinearModel)
        return f"{name}({model.linear.in_features}->{model.linear.out_features})"

    return describe


def _runs(sizes: list[int]) -> str:
    """``[128, 64, 64, 64]`` -> ``"128, 3×64"``: a deep stack stays one short title."""
    parts: list[str] = []
    index = 0
    while index < len(sizes):
        end = index
        while end + 1 < len(sizes) and sizes[end + 1] == sizes[index]:
            end += 1
        count = end - index + 1
        parts.append(
            f"{count}×{sizes[index]}" if count > 2 else ", ".join([str(sizes[index])] * count)
        )
        index = end + 1
    return ", ".join(parts)


def _describe_mlp(model: nn.Module) -> str:
    assert isinstance(model, MLP)
    return f"mlp({_runs(list(model.hidden))})"


def _describe_cnn(model: nn.Module) -> str:
    assert isinstance(model, CNN)
    return f"cnn({_runs(list(model.channels))})"


def _describe_gru(model: nn.Module) -> str:
    assert isinstance(model, GRUModel)
    layers = model.gru.num_layers
    return f"gru({model.gru.hidden_size}{f'x{layers}' if layers > 1 else ''})"


def _describe_transformer(model: nn.Module) -> str:
    assert isinstance(model, TransformerModel)
    return f"transformer(d{model.d_model}, {model.num_layers} layers)"


@dataclass(frozen=True)
class ModelEntry:
    """A built-in model: its class, how DataInfo fills its sizes, and how to name it in a title."""

    cls: type[nn.Module]
    sizes: Callable[[DataInfo], dict[str, int | None]]
    describe: Callable[[nn.Module], str]
    needs: str


#: Built-in models by the name ``model.target`` uses (``lrfind.names`` holds the names).
MODELS: dict[str, ModelEntry] = registry(
    BUILTIN_MODELS,
    {
        "linear": ModelEntry(LinearModel, _in_out, _describe_linear("linear"), "tabular"),
        "logistic": ModelEntry(LinearModel, _in_out, _describe_linear("logistic"), "tabular"),
        "mlp": ModelEntry(MLP, _in_out, _describe_mlp, "tabular"),
        "cnn": ModelEntry(CNN, _cnn_sizes, _describe_cnn, "image"),
        "gru": ModelEntry(GRUModel, _gru_sizes, _describe_gru, "sequence"),
        "transformer": ModelEntry(
            TransformerModel, _transformer_sizes, _describe_transformer, "sequence"
        ),
    },
)

#: ``model.args`` spellings accepted as another argument's name.
ALIASES = {"num_classes": "out_features"}

_NEEDS_HINT = {
    "tabular": "",
    "image": " (it needs (C, H, W) image inputs: e.g. data sklearn with args.as_image: true)",
    "sequence": " (it needs int64 token sequences: data 'sequence', or integer npz/pt data)",
}


def model_arguments(name: str) -> list[str]:
    """Return the ``model.args`` names built-in model ``name`` accepts."""
    return list(inspect.signature(MODELS[name].cls.__init__).parameters)[1:]


def _check_names(name: str, args: Mapping[str, Any]) -> None:
    problems = unknown_arguments(args, model_arguments(name), "model.args", f"model '{name}'")
    if problems:
        raise ComponentError(problems[0])


def build_builtin_model(
    name: str, args: Mapping[str, Any], info: DataInfo
) -> tuple[nn.Module, str]:
    """Build built-in model ``name`` from ``model.args``, filling unset sizes from ``info``.

    Returns the model and a short description for plot titles (e.g. "mlp(128, 64)").

    Raises:
        ComponentError: an unknown model or argument (with the accepted names), a size that can
            neither be read from the data nor is given, or an argument value the model rejects.
    """
    if name not in MODELS:
        raise ComponentError(f"model.target: unknown built-in model {name!r}")
    entry = MODELS[name]
    kwargs = dict(args)
    for alias, real in ALIASES.items():
        if alias in kwargs:
            if real in kwargs:
                raise ComponentError(f"model.args: give '{real}' or '{alias}', not both")
            kwargs[real] = kwargs.pop(alias)
    _check_names(name, kwargs)
    if entry.needs != "sequence" and info.task == "sequence":
        raise ComponentError(
            f"model.target: model '{name}' reads float features but the data are token "
            "sequences; use model 'gru' or 'transformer'"
        )
    for size, value in entry.sizes(info).items():
        if size in kwargs:
            continue
        if value is None:
            raise ComponentError(
                f"model.args: cannot infer '{size}' for model '{name}' from the data"
                f"{_NEEDS_HINT[entry.needs]}; set model.args.{size}"
            )
        kwargs[size] = value
    try:
        model = entry.cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ComponentError(
            f"model.args: model '{name}' rejected its arguments: {error}; "
            f"accepted: {', '.join(model_arguments(name))}"
        ) from None
    except (RuntimeError, MemoryError) as error:  # torch's "can't allocate memory" included
        raise ComponentError(
            f"model.args: building model '{name}' failed: {type(error).__name__}: "
            f"{first_line(error)} (check the sizes in model.args)"
        ) from None
    return model, entry.describe(model)


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

    The description of a user model is its class name (``GPT2LMHeadModel``), not the name of
    the factory that built it.

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
    signature = signature_of(factory) if callable(factory) else None
    if signature is not None:
        sizes = _inferred_sizes(info)
        for name, parameter in signature.parameters.items():
            required = parameter.default is inspect.Parameter.empty and parameter.kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY,
            )
            if required and name not in args and name in sizes:
                args[name] = sizes[name]
    model = call_user(factory, args, section="model", path=spec.target)
    if not isinstance(model, nn.Module):
        raise ComponentError(
            f"model.target: {spec.target!r} returned a {type(model).__name__}, "
            "not a torch.nn.Module"
        )
    return model, type(model).__name__
