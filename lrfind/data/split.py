"""Deterministic train/validation splitting, scaling and tensor conversion."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import (
    TensorDataset,
)

from lrfind.data.types import DataInfo, DataSplit, Task
from lrfind.errors import DataError


def seeded_rng(seed: int, stream: int) -> np.random.Generator:
    """Stream 0 generates data, stream 1 splits it; any int seed (negative too) works."""
    return np.random.default_rng([seed % 2**64, stream])


def split_indices(
    count: int, val_fraction: float, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return shuffled (train, val) index arrays; stratified by ``labels`` when given.

    ``round(count * val_fraction)`` samples go to validation (at least one when the fraction is
    positive and there are two or more samples, never all of them; with labels, each class gives
    its share, rounded by largest remainder, and keeps at least one sample for training, which
    can leave the validation set a little smaller). The order depends on ``seed`` only.
    """
    rng = seeded_rng(seed, 1)
    if val_fraction <= 0 or count < 2:
        return rng.permutation(count), np.empty(0, dtype=np.int64)
    if labels is None:
        order = rng.permutation(count)
        n_val = min(max(1, round(count * val_fraction)), count - 1)
        return order[n_val:], np.sort(order[:n_val])
    classes = np.unique(labels)
    members = [rng.permutation(np.flatnonzero(labels == label)) for label in classes]
    quotas = np.array([len(m) * val_fraction for m in members])
    room = np.array([len(m) - 1 for m in members])  # keep one of each class for training
    counts = np.minimum(np.floor(quotas).astype(int), room)
    wanted = min(max(1, round(count * val_fraction)), count - 1)
    # Largest remainders first, so the total matches an unstratified split's.
    for index in np.argsort(-(quotas - np.floor(quotas)), kind="stable"):
        if counts.sum() >= wanted:
            break
        if counts[index] < room[index]:
            counts[index] += 1
    val_parts = [m[:n] for m, n in zip(members, counts, strict=True)]
    train_parts = [m[n:] for m, n in zip(members, counts, strict=True)]
    train = np.concatenate(train_parts)
    val = np.sort(np.concatenate(val_parts))
    if len(val) == 0:  # every class is a singleton: fall back to an unstratified split
        return split_indices(count, val_fraction, seed)
    return train[rng.permutation(len(train))], val


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Return ``train`` and ``others`` scaled per feature (axis 0) with the train mean and std.

    Constant features (std 0) are only centred.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [((array - mean) / std).astype(np.float32) for array in (train, *others)]


def tensor_split(
    x: np.ndarray,
    y: np.ndarray,
    task: Task,
    *,
    seed: int,
    val_fraction: float,
    standardize_x: bool,
    standardize_y: bool = False,
    num_outputs: int | None = None,
    vocab_size: int | None = None,
    description: str = "",
) -> DataSplit:
    """Split arrays into train/val TensorDatasets scaled with the training statistics."""
    labels = y if task == "classification" else None
    train_idx, val_idx = split_indices(len(x), val_fraction, seed, labels)
    x_train, x_val = x[train_idx], x[val_idx]
    y_train, y_val = y[train_idx], y[val_idx]
    if standardize_x:
        # An explicit width: reshape(0, -1) fails on an empty validation set.
        width = int(np.prod(x.shape[1:]))
        flat_train = x_train.reshape(len(x_train), width)
        flat_val = x_val.reshape(len(x_val), width)
        flat_train, flat_val = standardize(flat_train, flat_val)
        x_train = flat_train.reshape(x_train.shape)
        x_val = flat_val.reshape(x_val.shape)
    if standardize_y:
        y_train, y_val = standardize(y_train, y_val)
    train = TensorDataset(_to_tensor(x_train), _to_tensor(y_train))
    val = TensorDataset(_to_tensor(x_val), _to_tensor(y_val)) if len(val_idx) else None
    if num_outputs is None:
        num_outputs = _num_outputs(y, task)
    info = DataInfo(
        input_shape=tuple(int(d) for d in x.shape[1:]),
        num_outputs=num_outputs,
        task=task,
        vocab_size=vocab_size,
        num_train=len(train_idx),
        num_val=len(val_idx),
    )
    return DataSplit(train, val, info, description)


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """Floats become float32, integers and booleans int64."""
    if np.issubdtype(array.dtype, np.floating):
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))


def _num_outputs(y: np.ndarray, task: Task) -> int:
    if task == "classification":
        return int(y.max()) + 1 if len(y) else 0
    if task == "regression":
        return 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
    return int(y.max()) + 1 if len(y) else 0


def check_fraction(value: float, key: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise DataError(f"{key} must be between 0 and 1, got {value!r}")
    return float(value)


#: Generated data sets hold at most this many values (size x features...): 800 MB of float64.
MAX_GENERATED_VALUES = 100_000_000


def check_positive(value: int, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(f"{key} must be an integer >= {minimum}, got {value!r}")
    if value > MAX_GENERATED_VALUES:
        raise DataError(f"{key} must be at most {MAX_GENERATED_VALUES:,}, got {value:,}")
    return value


def check_volume(values: int, what: str) -> None:
    """Refuse generated data too large to hold, before allocating it."""
    if values > MAX_GENERATED_VALUES:
        raise DataError(
            f"data.args: {what} = {values:,} values, more than generated data may hold "
            f"({MAX_GENERATED_VALUES:,}); lower them"
        )
