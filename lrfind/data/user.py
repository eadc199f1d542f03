"""User-supplied data: factories returning tensors, datasets or loaders, and inferring sizes."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
)

from lrfind.data.batches import InputsKey, split_batch
from lrfind.data.split import split_indices
from lrfind.data.types import DataInfo, DataSplit
from lrfind.errors import ComponentError, DataError
from lrfind.format import first_line, raised_at


def _is_data(value: Any) -> bool:
    return isinstance(value, (Dataset, DataLoader)) or is_map_style(value)


def is_map_style(value: Any) -> bool:
    """A map-style dataset that is not a torch Dataset: indexable rows and a length, such as a
    Hugging Face ``datasets.Dataset`` (not a tensor, array, list, dict or string)."""
    if isinstance(value, (Dataset, DataLoader, torch.Tensor, str, bytes, list, tuple, dict)):
        return False
    if type(value).__module__.startswith("numpy"):
        return False
    return callable(getattr(value, "__getitem__", None)) and callable(
        getattr(value, "__len__", None)
    )


def is_datamodule(value: Any) -> bool:
    """A LightningDataModule (duck-typed: ``setup`` and ``train_dataloader`` hooks)."""
    return not _is_data(value) and all(
        callable(getattr(value, hook, None)) for hook in ("setup", "train_dataloader")
    )


def datamodule_loaders(datamodule: Any, key: str) -> tuple[Any, Any]:
    """The (train, val or None) DataLoaders of a LightningDataModule, prepared and set up for
    "fit" as ``Trainer.fit`` does; a datamodule without ``val_dataloader`` has no validation set.

    Raises:
        ComponentError: one of its hooks raised.
    """
    try:
        if callable(getattr(datamodule, "prepare_data", None)):
            datamodule.prepare_data()
        datamodule.setup("fit")
        train = datamodule.train_dataloader()
    except Exception as error:
        raise ComponentError(
            f"{key}: the datamodule raised {type(error).__name__}: "
            f"{first_line(error)}{raised_at(error)}"
        ) from error
    try:
        val = datamodule.val_dataloader()
    except Exception:  # Lightning's default val_dataloader raises: "not implemented"
        val = None
    return train, val if _is_data(val) else None


def _torch_rows(value: Any, collate: Any) -> Any:
    """A ``datasets.Dataset`` serves python lists; without a collate function, ask it for
    tensors so the default collation stacks them (with one, the rows are its to batch)."""
    with_format = getattr(value, "with_format", None)
    if collate is None and is_map_style(value) and callable(with_format):
        return with_format("torch")
    return value


def from_user_data(
    value: Any,
    *,
    key: str,
    seed: int,
    val_fraction: float,
    inputs_key: InputsKey | None = None,
    targets_key: str | None = None,
    collate: Callable[[list[Any]], Any] | None = None,
) -> DataSplit:
    """Normalise what a user data factory returned into a DataSplit.

    Accepts a Dataset (a torch one, or a map-style one such as ``datasets.Dataset``), a
    DataLoader, a LightningDataModule (its train and val DataLoaders), a ``(train, val)`` pair
    of either (val may be None), or ``(train, val, collate)`` with the collate function to
    batch them (``collate``, from ``data.collate``, wins). A ``datasets.Dataset`` without a
    collate function serves torch tensors.
    A lone map-style Dataset is split: ``val_fraction`` of it (shuffled from the seed) becomes the
    validation set. A lone DataLoader or iterable dataset cannot be split: there is then no
    validation set, and a warning says so. ``inputs_key``/``targets_key`` locate inputs and
    targets in dict samples (for DataInfo inference).

    Raises:
        ComponentError: any other return value.
        DataError: an empty training set.
    """
    warnings: list[str] = []
    returned_collate = None
    if is_datamodule(value):
        value = datamodule_loaders(value, key)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 3
        and _is_data(value[0])
        and callable(value[2])
    ):
        value, returned_collate = tuple(value[:2]), value[2]
    collate = collate or returned_collate
    if isinstance(value, (tuple, list)) and len(value) == 2 and _is_data(value[0]):
        train, val = (_torch_rows(part, collate) for part in value)
        if val is not None and not _is_data(val):
            raise ComponentError(
                f"{key} returned a pair whose second item is a {type(val).__name__}, "
                "not a Dataset, DataLoader or None"
            )
    elif _is_data(value):
        train, val = _torch_rows(value, collate), None
        if val_fraction > 0:
            if _splittable(train):
                train, val = _split_dataset(train, val_fraction, seed)
            else:
                kind = "DataLoader" if isinstance(train, DataLoader) else "iterable dataset"
                warnings.append(
                    f"{key} returned a {kind}, which cannot be split: there is no validation "
                    "set (return a (train, val) pair, or a map-style Dataset, to get one)"
                )
    else:
        hint = ""
        if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
            hint = " (for tensors, return torch.utils.data.TensorDataset(inputs, targets))"
        raise ComponentError(
            f"{key} returned a {type(value).__name__}; expected a torch Dataset, a "
            f"datasets.Dataset, a DataLoader, or a (train, val) pair of them{hint}"
        )
    if is_sized(train) and length(train) == 0:
        raise DataError(f"{key} returned an empty training set")
    info = infer_info(train, val, inputs_key, targets_key, key=key)
    if info.task == "classification":
        warnings.extend(_class_gaps(train, val, key))
    return DataSplit(train, val, info, "", warnings, collate=returned_collate)


def _class_gaps(train: Any, val: Any, key: str) -> list[str]:
    """A warning when tensor class ids are not 0..K-1: the head gets largest id + 1 outputs."""
    found = [t[1] for t in (_base_tensors(train), _base_tensors(val)) if t is not None]
    targets = [y for y in found if y.numel() and not y.is_floating_point()]
    if not targets:
        return []
    ids = torch.unique(torch.cat([y.reshape(-1) for y in targets]))
    largest = int(ids.max())
    if largest + 1 == len(ids):
        return []
    missing = sorted(set(range(largest + 1)) - set(ids.tolist()))
    shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
    return [
        f"{key}: the targets hold {len(ids)} distinct class ids but the largest is {largest} "
        f"(ids {shown} never occur): the model gets {largest + 1} outputs; renumber the ids "
        "0..K-1 if those are not classes"
    ]


def is_sized(data: Any) -> bool:
    target: Any = data.dataset if isinstance(data, DataLoader) else data
    if isinstance(target, IterableDataset):
        return False
    try:
        len(target)
    except TypeError:
        return False
    return True


def length(data: Any) -> int:
    target: Any = data.dataset if isinstance(data, DataLoader) else data
    return len(target) if is_sized(data) else 0


def _splittable(data: Any) -> bool:
    if is_map_style(data):
        return True
    return isinstance(data, Dataset) and not isinstance(data, IterableDataset) and is_sized(data)


def _split_dataset(
    dataset: Dataset[Any], val_fraction: float, seed: int
) -> tuple[Dataset[Any], Dataset[Any] | None]:
    train_idx, val_idx = split_indices(length(dataset), val_fraction, seed)
    val = Subset(dataset, val_idx.tolist()) if len(val_idx) else None
    return Subset(dataset, train_idx.tolist()), val


def _base_tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The full input/target tensors behind a TensorDataset (through Subsets and DataLoaders)."""
    while True:
        if isinstance(data, (DataLoader, Subset)):
            data = data.dataset
        else:
            break
    if isinstance(data, TensorDataset) and len(data.tensors) >= 2:
        return data.tensors[0], data.tensors[1]
    return None


def info_from_tensors(
    x: torch.Tensor, y: torch.Tensor, num_train: int, num_val: int, *, batched: bool = True
) -> DataInfo:
    """Infer a DataInfo from inputs/targets (``batched``: their first dimension is the sample).

    Float targets mean regression; integer targets shaped like integer 2-D inputs a sequence
    (vocabulary = largest token + 1); other integer targets class ids (classes = largest id + 1).
    """
    x_shape = tuple(int(d) for d in (x.shape[1:] if batched else x.shape))
    y_sample = y.shape[1:] if batched else y.shape
    if y.is_floating_point():
        width = int(math.prod(y_sample)) if len(y_sample) else 1
        return DataInfo(x_shape, width, "regression", None, num_train, num_val)
    if not x.is_floating_point() and len(x_shape) == 1 and tuple(y_sample) == x_shape:
        vocab = int(max(int(x.max()), int(y.max()))) + 1 if x.numel() and y.numel() else None
        return DataInfo(x_shape, vocab, "sequence", vocab, num_train, num_val)
    classes = int(y.max()) + 1 if batched and y.numel() else None
    return DataInfo(x_shape, classes, "classification", None, num_train, num_val)


def _misses_a_named_key(sample: Any, inputs_key: InputsKey | None, targets_key: str | None) -> bool:
    """Whether ``sample`` is a dict without a key that ``inputs_key``/``targets_key`` name."""
    if not isinstance(sample, Mapping):
        return False
    named = [inputs_key] if inputs_key is None or isinstance(inputs_key, str) else inputs_key
    return any(key is not None and key not in sample for key in (*named, targets_key))


def infer_info(
    train: Dataset[Any] | DataLoader[Any],
    val: Dataset[Any] | DataLoader[Any] | None,
    inputs_key: InputsKey | None = None,
    targets_key: str | None = None,
    *,
    key: str = "data.target",
) -> DataInfo:
    """Infer what the models need from user data.

    A TensorDataset (directly, in a Subset or behind a DataLoader) gives everything, class count
    included. Otherwise the first sample (map-style dataset) or first batch (loader, iterable)
    gives the input shape and the task; the number of classes then stays unknown (None).
    Data whose samples are not ``(inputs, targets)`` pairs or dicts give an empty DataInfo.

    Raises:
        DataError: reading the first sample (or batch) raised: the message names ``key`` and
            the real exception.
    """
    num_train, num_val = length(train), (length(val) if val is not None else 0)
    tensors = _base_tensors(train)
    if tensors is not None:
        x, y = tensors
        info = info_from_tensors(x, y, num_train, num_val)
        val_tensors = _base_tensors(val) if val is not None else None
        if val_tensors is not None and info.num_outputs is not None and info.task != "regression":
            val_x, val_y = val_tensors
            largest = max(int(val_y.max()) if val_y.numel() else 0, info.num_outputs - 1)
            if info.task == "sequence" and val_x.numel():
                largest = max(largest, int(val_x.max()))
                info = replace(info, num_outputs=largest + 1, vocab_size=largest + 1)
            else:
                info = replace(info, num_outputs=largest + 1)
        return info
    unknown = DataInfo((), None, None, None, num_train, num_val)
    iterate = isinstance(train, DataLoader) or not is_sized(train)
    if not iterate and num_train == 0:
        return unknown  # an empty set: the caller says so
    try:
        sample = next(iter(train)) if iterate else train[0]  # type: ignore[index]
    except StopIteration:
        return unknown
    except Exception as error:
        # Hiding this would surface later as "cannot infer in_features", far from the cause.
        what = "first batch" if isinstance(train, DataLoader) else "first sample"
        raise DataError(
            f"{key}: reading the {what} of the training data raised {type(error).__name__}: "
            f"{first_line(error)}{raised_at(error)}"
        ) from error
    batched = isinstance(train, DataLoader)
    try:
        inputs, targets = split_batch(sample, inputs_key, targets_key)
    except DataError:
        if _misses_a_named_key(sample, inputs_key, targets_key):
            raise  # a misspelt data.targets_key is the cause, not the sizes it then hides
        return unknown  # samples a step function unpacks itself: the probe checks them
    if isinstance(inputs, torch.Tensor) and isinstance(targets, (int, float)):
        targets = torch.tensor(targets)
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return unknown
    info = info_from_tensors(inputs, targets, num_train, num_val, batched=batched)
    if info.task == "classification":
        info = DataInfo(info.input_shape, None, "classification", None, num_train, num_val)
    return info
