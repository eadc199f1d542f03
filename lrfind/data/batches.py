"""Batch plumbing shared by the engine and the component probe: device moves, input/target split."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

from lrfind.errors import DataError, LrfindError, UserCodeError
from lrfind.format import did_you_mean, first_line, raised_at


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


#: Which keys of a dict batch the model takes: one key (its value is the model's argument) or
#: several (passed to the model as keyword arguments: ``["input_ids", "attention_mask"]``).
InputsKey = str | Sequence[str]


def split_batch(
    batch: Any,
    inputs_key: InputsKey | None = None,
    targets_key: str | None = None,
    *,
    library: bool = False,
) -> tuple[Any, Any]:
    """Return (inputs, targets) from an ``(inputs, targets)`` tuple/list or a dict batch.

    Dict batches use ``inputs_key``/``targets_key`` (defaults: "inputs"/"input"/"x" and
    "targets"/"target"/"labels"/"label"/"y"); several input keys give a dict of those entries.
    Messages name the config's keys (``data.inputs_key``), or with ``library`` the arguments
    of ``range_test`` (``inputs_key=``).

    Raises:
        DataError: the batch has another shape, or a dict lacks the keys.
    """
    if isinstance(batch, Mapping):
        names = (inputs_key,) if inputs_key is None or isinstance(inputs_key, str) else inputs_key
        targets_name = targets_key or _first_present(
            batch, ("targets", "target", "labels", "label", "y")
        )
        keys = ", ".join(map(str, batch))
        for option, named in (*(("inputs_key", n) for n in names), ("targets_key", targets_key)):
            if named is not None and named not in batch:
                where = f"{option}=" if library else f"data.{option}"
                raise DataError(
                    f"{where}: the batches have no key {named!r}{did_you_mean(named, batch)}"
                    f"; their keys: {keys}"
                )
        if inputs_key is not None and not isinstance(inputs_key, str):
            return {name: batch[name] for name in inputs_key}, _target(batch, targets_name, keys)
        inputs_name = inputs_key or _first_present(batch, ("inputs", "input", "x", "features"))
        if inputs_name is None or targets_name is None:
            how = (
                'pass inputs_key= and targets_key= (inputs_key=["input_ids", "attention_mask"] '
                'for several), or loss_fn="model" if the model computes its own loss'
                if library
                else "set data.inputs_key and data.targets_key"
            )
            raise DataError(
                f"a dict batch needs inputs and targets keys (batch has: {keys}); {how}"
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


def _target(batch: Mapping[Any, Any], name: str | None, keys: str) -> Any:
    if name is None:
        raise DataError(f"a dict batch needs a targets key (batch has: {keys}); set targets_key")
    return batch[name]


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
        self.read = 0
        self._iterator: Iterator[Any] | None = None

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._start()
        try:
            batch = self._next_batch()
        except StopIteration:
            pass
        else:
            self.read += 1
            return batch
        self.epoch += 1
        set_epoch = getattr(getattr(self.loader, "sampler", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)
        self._iterator = self._start()
        try:
            batch = self._next_batch()
        except StopIteration:
            raise self._exhausted() from None
        self.read += 1
        return batch

    def _start(self) -> Iterator[Any]:
        try:
            return iter(self.loader)
        except Exception as error:
            raise self._failed(error) from error

    def _next_batch(self) -> Any:
        assert self._iterator is not None
        try:
            return next(self._iterator)
        except (StopIteration, LrfindError):
            raise
        except Exception as error:
            raise self._failed(error) from error

    def _failed(self, error: Exception) -> UserCodeError:
        if isinstance(error, CollateError):
            return UserCodeError(
                f"the collate function raised {error.reason()} reading batch {self.read}",
                "collate",
            )
        return UserCodeError(
            f"the training data raised {type(error).__name__} reading batch {self.read}: "
            f"{first_line(error)}{raised_at(error)}",
            "data",
        )

    def _exhausted(self) -> DataError:
        if iter(self.loader) is self.loader:
            # A generator or other iterator is its own iterator: once read, it stays empty.
            read = f"after {self.read} batch(es) " if self.read else ""
            return DataError(
                f"the training data is a one-shot iterator ({type(self.loader).__name__}), "
                f"empty {read}and it cannot be re-read: pass a DataLoader or another iterable "
                "that starts over on each iter() (a list of batches works)"
            )
        return DataError("the training data yields no batches")


class CollateError(Exception):
    """What the ``data.collate`` function raised, as "<type>: <message> (<where>)".

    A plain one-argument exception: a DataLoader worker re-raises a failure as its type and
    message, so this one survives the trip and the failure is reported under ``data.collate``
    rather than as the data's.
    """

    def reason(self) -> str:
        """What the collate function raised, from this process or from a worker (whose
        message is torch's "Caught CollateError in DataLoader worker..." and the traceback)."""
        lines = str(self).strip().splitlines()
        _, found, reason = (lines[-1] if lines else "").partition(f"{type(self).__name__}: ")
        return reason if found else first_line(self)


class UserCollate:
    """``data.collate``: the user's collate function, its failures raised as CollateError."""

    def __init__(self, collate: Callable[[list[Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, rows: list[Any]) -> Any:
        try:
            return self.collate(rows)
        except Exception as error:
            raise CollateError(
                f"{type(error).__name__}: {first_line(error)}{raised_at(error)}"
            ) from error
