"""What a dataset is: its task kind, shapes (DataInfo) and train/validation tensors (DataSplit)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch.utils.data import (
    DataLoader,
    Dataset,
)

Task = Literal["classification", "regression", "sequence"]

TASKS: tuple[str, ...] = ("classification", "regression", "sequence")

#: Numeric columns with at most this many distinct integer values count as class labels (csv auto).
MAX_AUTO_CLASSES = 20


@dataclass(frozen=True)
class DataInfo:
    """What the models need to know about the data.

    ``input_shape`` is one sample's shape (no batch dimension); ``num_outputs`` the number of
    classes (classification), target width (regression) or vocabulary size (sequence), None when
    unknown;
    ``num_train``/``num_val`` are sample counts (0 when unknown, e.g. an iterable dataset).
    """

    input_shape: tuple[int, ...]
    num_outputs: int | None
    task: Task | None
    vocab_size: int | None
    num_train: int
    num_val: int


@dataclass
class DataSplit:
    """Training and validation data (datasets, or loaders from a user factory) and their info."""

    train: Dataset[Any] | DataLoader[Any]
    val: Dataset[Any] | DataLoader[Any] | None
    info: DataInfo
    description: str = ""
    warnings: list[str] = field(default_factory=list)
    #: A collate function the factory returned with its data (``(train, val, collate)``).
    collate: Callable[[list[Any]], Any] | None = None
