"""Snapshot and restore of all a sweep changes: weights, optimizer, RNGs, data order."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class StateSnapshot:
    """Copies of everything a sweep changes, taken before it starts."""

    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None
    numpy_rng: Any
    python_rng: Any
    generator_states: list[tuple[torch.Generator, torch.Tensor]] = field(default_factory=list)
    #: (sampler, epoch, seed) of each DistributedSampler-like sampler: its data order.
    sampler_states: list[tuple[Any, int, Any]] = field(default_factory=list)
    #: (module, training flag) of the model and every submodule: a model handed over in eval
    #: mode (or with a frozen BatchNorm in eval inside a training model) comes back that way.
    training_modes: list[tuple[torch.nn.Module, bool]] = field(default_factory=list)


def loader_generators(loader: Iterable[Any]) -> list[torch.Generator]:
    found: list[torch.Generator] = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(g is not generator for g in found):
            found.append(generator)
    inner = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    generator = getattr(inner, "generator", None)
    if isinstance(generator, torch.Generator) and all(g is not generator for g in found):
        found.append(generator)
    return found


def _epoch_samplers(loader: Iterable[Any]) -> list[Any]:
    """Samplers whose order is set by ``set_epoch`` (DistributedSampler and look-alikes)."""
    sampler = getattr(loader, "sampler", None)
    if callable(getattr(sampler, "set_epoch", None)) and isinstance(
        getattr(sampler, "epoch", None), int
    ):
        return [sampler]
    return []


def snapshot_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, loaders: Sequence[Any] = ()
) -> StateSnapshot:
    """Return an exact copy of the model, optimizer, RNG and data-order state (kept on the CPU)."""
    model_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    generators: list[tuple[torch.Generator, torch.Tensor]] = []
    samplers: list[tuple[Any, int, Any]] = []
    for loader in loaders:
        generators.extend((g, g.get_state()) for g in loader_generators(loader))
        samplers.extend((s, s.epoch, getattr(s, "seed", None)) for s in _epoch_samplers(loader))
    return StateSnapshot(
        model_state=model_state,
        optimizer_state=copy.deepcopy(optimizer.state_dict()),
        torch_rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        numpy_rng=np.random.get_state(),
        python_rng=random.getstate(),
        generator_states=generators,
        sampler_states=samplers,
        training_modes=[(module, module.training) for module in model.modules()],
    )


def restore_state(
    snapshot: StateSnapshot, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """Put the model, optimizer, RNGs and data order back exactly as they were at the snapshot.

    Train/eval mode included, module by module (not ``model.train(flag)``, which would set
    every submodule alike).
    """
    for module, training in snapshot.training_modes:
        module.training = training
    with torch.no_grad():
        current = model.state_dict()
        for key, saved in snapshot.model_state.items():
            current[key].copy_(saved)
    optimizer.load_state_dict(copy.deepcopy(snapshot.optimizer_state))
    optimizer.zero_grad(set_to_none=True)
    torch.set_rng_state(snapshot.torch_rng)
    if snapshot.cuda_rng is not None:
        torch.cuda.set_rng_state_all(snapshot.cuda_rng)
    np.random.set_state(snapshot.numpy_rng)
    random.setstate(snapshot.python_rng)
    for generator, state in snapshot.generator_states:
        generator.set_state(state)
    for sampler, epoch, seed in snapshot.sampler_states:
        if seed is not None:
            sampler.seed = seed
        sampler.set_epoch(epoch)


def parameters_changed(snapshot: StateSnapshot, model: torch.nn.Module) -> bool:
    """Return True when any trainable parameter differs from the snapshot."""
    for name, param in model.named_parameters():
        if not param.requires_grad or name not in snapshot.model_state:
            continue
        if not torch.equal(param.detach().cpu(), snapshot.model_state[name]):
            return True
    return False


def without_ddp(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the model itself).

    Evaluation needs no gradient sync, and DDP's forward may run a buffer broadcast: going
    around the wrapper keeps evaluation free of collectives, so ranks with different numbers of
    validation batches cannot deadlock.
    """
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        inner: torch.nn.Module = model.module
        return inner
    return model


def reinitializer(model: Any) -> Callable[[int], None]:
    """Return ``f(seed)`` that re-draws the weights of every layer with ``reset_parameters``."""

    def reinitialize(seed: int) -> None:
        import torch

        torch.manual_seed(seed)
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()

    return reinitialize
