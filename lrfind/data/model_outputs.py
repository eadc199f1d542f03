"""What a model returned, read the same way by the engine and the component probe.

Models that are not plain ``nn.Module``s returning a tensor (Hugging Face ``transformers`` models
return ``ModelOutput`` objects; many others return dicts or named tuples) need two readings:

- ``loss: model``: the loss the model computed itself (``outputs.loss``, ``outputs["loss"]``,
  or a scalar tensor returned as is), the batch going in whole (a dict as keyword arguments);
- any other loss: the tensor that loss reads (``outputs.logits`` / ``outputs["logits"]``, or
  the attribute/key named by ``model.output_key``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from lrfind.errors import SweepError
from lrfind.names import MODEL_LOSS as MODEL_LOSS

ModelLoss = Literal["model"]

#: The output a loss reads from a non-tensor output when no ``output_key`` is given.
DEFAULT_OUTPUT_KEY = "logits"

OutputKey = str | int


def call_model(model: torch.nn.Module, inputs: Any) -> Any:
    """Return ``model(**inputs)`` for a dict of inputs, else ``model(inputs)``."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def call_model_on_batch(model: torch.nn.Module, batch: Any) -> Any:
    """Call the model on a whole batch (``loss: model``).

    A dict batch is passed as keyword arguments (``input_ids=..., labels=...``), a tuple or
    list as positional arguments, anything else as the one argument.
    """
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def _fields(outputs: Any) -> str:
    if isinstance(outputs, Mapping):
        return ", ".join(map(str, outputs))
    if isinstance(outputs, tuple) and hasattr(outputs, "_fields"):
        return ", ".join(outputs._fields)
    if isinstance(outputs, (tuple, list)):
        return f"{len(outputs)} items"
    names = (
        [n for n in vars(outputs) if not n.startswith("_")] if hasattr(outputs, "__dict__") else []
    )
    return ", ".join(names) or "none"


def _lookup(outputs: Any, key: OutputKey) -> tuple[bool, Any]:
    """(found, value) of ``key`` in ``outputs``: a mapping key, an attribute, or a tuple index."""
    if isinstance(outputs, Mapping):
        if key in outputs:
            return True, outputs[key]
    elif isinstance(key, int):
        if isinstance(outputs, (tuple, list)) and -len(outputs) <= key < len(outputs):
            return True, outputs[key]
        return False, None
    if isinstance(key, str) and hasattr(outputs, key):
        return True, getattr(outputs, key)
    return False, None


def model_loss(outputs: Any) -> torch.Tensor:
    """Return the loss a model computed itself (``loss: model``).

    Accepts a tensor (the model returned its loss), a mapping with a ``"loss"`` key, or an object
    with a ``.loss`` attribute (a ``transformers`` ``ModelOutput`` is both).

    Raises:
        SweepError: the outputs hold no loss (e.g. the batch gave the model no labels).
    """
    if isinstance(outputs, torch.Tensor):
        return outputs
    found, loss = _lookup(outputs, "loss")
    if found and isinstance(loss, torch.Tensor):
        return loss
    kind = type(outputs).__name__
    if found and loss is None:
        raise SweepError(
            f"loss: model: the model returned a {kind} whose loss is None: give it the targets "
            "(a dict batch with the model's label argument, e.g. 'labels'), or set loss to a "
            "built-in such as cross_entropy"
        )
    raise SweepError(
        f"loss: model: the model returned a {kind} with no loss (fields: {_fields(outputs)}); "
        "return the loss, a dict with 'loss', or an object with .loss, or set loss to a "
        "built-in such as cross_entropy"
    )


def loss_input(outputs: Any, output_key: OutputKey | None = None) -> Any:
    """Return what a loss function reads from ``model(inputs)``.

    A tensor is returned as is. From anything else: the entry ``output_key`` names (a mapping
    key, an attribute, or an index into a tuple), else ``logits`` when the outputs have one,
    else the outputs unchanged (a user loss may want the whole tuple or dict).

    Raises:
        SweepError: ``output_key`` is given and the outputs have no such entry.
    """
    if isinstance(outputs, torch.Tensor):
        return outputs
    if output_key is not None:
        found, value = _lookup(outputs, output_key)
        if not found:
            raise SweepError(
                f"model.output_key: the model's {type(outputs).__name__} output has no "
                f"{output_key!r} (fields: {_fields(outputs)})"
            )
        return value
    found, value = _lookup(outputs, DEFAULT_OUTPUT_KEY)
    return value if found and value is not None else outputs


def check_loss(loss: Any, who: str = "the loss", *, needs_grad: bool = False) -> None:
    """Refuse what cannot be a loss: not a tensor, not a scalar, not floating point, or (with
    ``needs_grad``) not depending on any trainable parameter. ``who`` names what returned it.

    Raises:
        SweepError: the message says which, and the fix.
    """
    if not isinstance(loss, torch.Tensor):
        raise SweepError(f"{who} returned a {type(loss).__name__}, not a tensor")
    if loss.numel() != 1:
        raise SweepError(
            f"{who} returned a tensor of shape {tuple(loss.shape)}, not a scalar; "
            "use reduction='mean'"
        )
    if not loss.is_floating_point():
        raise SweepError(f"{who} returned a {loss.dtype} tensor; a loss must be floating point")
    if needs_grad and not loss.requires_grad:
        raise SweepError(
            f"{who} does not depend on any trainable parameter (no gradient); "
            "check requires_grad and that the loss uses the model's output"
        )
