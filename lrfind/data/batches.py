"""Batch plumbing shared by the engine and the component probe: device moves, input/target split."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from lrfind.errors import DataError


def move_to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Return ``batch`` with every tensor inside it (tuples, lists, dicts, nested) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {key: move_to_device(value, device, non_blocking) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(value, device, non_blocking) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(value, device, non_blocking) for value in batch)
    return batch


def split_batch(
    batch: Any, inputs_key: str | None = None, targets_key: str | None = None
) -> tuple[Any, Any]:
    """Return (inputs, targets) from an ``(inputs, targets)`` tuple/list or a dict batch.

    Dict batches use ``inputs_key``/``targets_key`` (defaults: "inputs"/"input"/"x" and
    "targets"/"target"/"labels"/"label"/"y").

    Raises:
        DataError: the batch has another shape, or a dict lacks the keys.
    """
    if isinstance(batch, Mapping):
        inputs_name = inputs_key or _first_present(batch, ("inputs", "input", "x", "features"))
        targets_name = targets_key or _first_present(
            batch, ("targets", "target", "labels", "label", "y")
        )
        missing = [k for k in (inputs_name, targets_name) if k is None or k not in batch]
        if missing:
            keys = ", ".join(map(str, batch))
            raise DataError(
                f"a dict batch needs inputs and targets keys (batch has: {keys}); "
                "set data.inputs_key and data.targets_key"
            )
        return batch[inputs_name], batch[targets_name]
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    kind = type(batch).__name__
    size = f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else ""
    raise DataError(
        f"a batch must be an (inputs, targets) pair or a dict, got a {kind}{size}; "
        "use `step:` for batches your model handles itself"
    )


def _first_present(batch: Mapping[Any, Any], names: Iterable[str]) -> str | None:
    return next((name for name in names if name in batch), None)


def batch_size_of(batch: Any) -> int:
    """Return the number of samples in a batch (first dimension of its first tensor), or 1."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else 1
    if isinstance(batch, Mapping):
        values: Iterable[Any] = batch.values()
    elif isinstance(batch, (list, tuple)):
        values = batch
    else:
        return 1
    for value in values:
        size = batch_size_of(value)
        if size:
            return size
    return 1


class BatchStream:
    """An endless iterator over a loader: restarts (and re-shuffles) it when an epoch ends.

    Calls ``sampler.set_epoch`` on distributed samplers so each pass is shuffled differently.
    """

    def __init__(self, loader: Iterable[Any]) -> None:
        self.loader = loader
        self.epoch = 0
        self._iterator: Iterator[Any] | None = None

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = iter(self.loader)
        try:
            return next(self._iterator)
        except StopIteration:
            pass
        self.epoch += 1
        set_epoch = getattr(getattr(self.loader, "sampler", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)
        self._iterator = iter(self.loader)
        try:
            return next(self._iterator)
        except StopIteration:
            raise DataError("the training data yields no batches") from None
