"""DataLoaders for the sweep: seeded order, workers, distributed sharding."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
)

from lrfind.data.types import DataSplit
from lrfind.data.user import is_sized, length
from lrfind.errors import DataError


def size_of(sized: object) -> int | None:
    """``len(sized)``: batches of a loader, samples of a dataset; None when it has no length."""
    try:
        return len(sized)  # type: ignore[arg-type]
    except TypeError:
        return None


def present_loaders(train_loader: Any, val_loader: Any = None) -> list[Any]:
    """The loaders a run reads: the training loader, and the validation loader when it has one."""
    return [loader for loader in (train_loader, val_loader) if loader is not None]


def loader_generators(loader: Any) -> list[torch.Generator]:
    """The torch.Generators that set a loader's data order (its own, its samplers')."""
    found: list[torch.Generator] = []
    batch_sampler = getattr(loader, "batch_sampler", None)
    owners = (loader, getattr(loader, "sampler", None), batch_sampler)
    for owner in (*owners, getattr(batch_sampler, "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(g is not generator for g in found):
            found.append(generator)
    return found


def reseed(seed: int, loaders: Iterable[Any] = ()) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and ``random`` from ``seed``, and every
    generator that sets ``loaders``' data order."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    for loader in loaders:
        for generator in loader_generators(loader):
            generator.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy and random from the worker's torch seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


@dataclass
class Loaders:
    """The training loader, the validation loader (or None), and notes for the run's warnings."""

    train: DataLoader[Any]
    val: DataLoader[Any] | None
    batch_size: int
    warnings: list[str] = field(default_factory=list)


def make_loaders(
    split: DataSplit,
    *,
    batch_size: int,
    shuffle: bool = True,
    num_workers: int = 0,
    drop_last: bool = False,
    seed: int = 0,
    device: torch.device | None = None,
    rank: int = 0,
    world_size: int = 1,
    key: str = "data.target",
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> Loaders:
    """Wrap ``split``'s datasets in DataLoaders (a user's DataLoaders are kept as they are).

    Training: ``shuffle`` from a ``torch.Generator`` seeded with ``seed``, ``drop_last`` as
    configured; validation: in order, every sample. ``worker_init_fn`` seeds numpy/random in each
    worker; ``pin_memory`` is on for CUDA. With ``world_size > 1`` both use a
    ``DistributedSampler(num_replicas=world_size, rank=rank, seed=seed)`` (exposed as the loader's
    ``.sampler``; call ``set_epoch`` per pass), so each process sees its own shard.
    ``collate_fn`` (default: the one the factory returned with its data, else torch's) batches
    both.

    Raises:
        DataError: an empty training set, or fewer samples (per process) than one batch when
            ``drop_last`` is set.
    """
    warnings = list(split.warnings)
    collate_fn = collate_fn or split.collate
    pin_memory = device is not None and device.type == "cuda"
    common: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": pin_memory,
        "worker_init_fn": seed_worker if num_workers > 0 else None,
        "persistent_workers": num_workers > 0,
    }

    def build(dataset: Dataset[Any], train: bool) -> DataLoader[Any]:
        sampler: DistributedSampler[Any] | None = None
        sized = is_sized(dataset)
        if world_size > 1 and sized:
            sampler = DistributedSampler(
                dataset,
                num_replicas=world_size,
                rank=rank,
                shuffle=shuffle and train,
                seed=seed,
            )
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=(shuffle and train and sampler is None and sized),
            sampler=sampler,
            drop_last=drop_last and train,
            generator=generator,
            collate_fn=collate_fn,
            **common,
        )

    if isinstance(split.train, DataLoader):
        train_loader = split.train
        effective_batch = int(split.train.batch_size or batch_size)
        if world_size > 1:
            warnings.append(
                f"{key} returned a DataLoader, which lrfind cannot shard: each of the "
                f"{world_size} processes reads the same batches"
            )
    else:
        count = length(split.train)
        if is_sized(split.train):
            per_process = math.ceil(count / world_size)
            where = f" ({per_process} per process)" if world_size > 1 else ""
            if count == 0:
                raise DataError("data: the training set is empty")
            if drop_last and per_process < batch_size:
                raise DataError(
                    f"data.batch_size: the training set has {count} samples{where}, fewer than "
                    f"one batch of {batch_size} with data.drop_last: true; lower data.batch_size "
                    "or set data.drop_last: false"
                )
            if per_process < batch_size:
                warnings.append(
                    f"data.batch_size ({batch_size}) exceeds the {per_process} training samples"
                    f"{' per process' if world_size > 1 else ''}: every step sees the whole set"
                )
        train_loader = build(split.train, train=True)
        effective_batch = batch_size
    val_loader: DataLoader[Any] | None
    if split.val is None or isinstance(split.val, DataLoader):
        val_loader = split.val
    elif is_sized(split.val) and length(split.val) == 0:
        val_loader = None
    else:
        val_loader = build(split.val, train=False)
    return Loaders(train_loader, val_loader, effective_batch, warnings)
