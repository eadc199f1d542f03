"""Snapshot and restore of all a sweep changes: weights, optimizer, buffers, gradients, RNGs, data.

The model and optimizer state is kept one of three ways (``snapshot_state(store=...)``):

- ``memory``, unsharded model: a host copy of the model's ``state_dict`` and the optimizer's;
- ``memory``, FSDP2 model (DTensor parameters): each rank copies only its own shard, through
  ``torch.distributed.checkpoint.state_dict`` (``get_*_state_dict`` / ``set_*_state_dict``), so
  a sharded model is never gathered whole;
- ``disk``: ``torch.distributed.checkpoint`` writes every rank's shard into a temporary folder
  and reads it back on restore; host memory keeps only a fingerprint of the parameters. The
  folder is removed by ``StateSnapshot.close()``.

Whatever the store, non-persistent buffers (absent from ``state_dict``) and the gradients the
user had pending (``.grad``, on every parameter of the model and the optimizer) are copied too.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from lrfind.data.loaders import loader_generators
from lrfind.engine.checkpoint import DiskCopy, ShardedCopy
from lrfind.engine.loader_state import loader_restorers
from lrfind.engine.session import Session

SnapshotStore = Literal["memory", "disk"]


class _Weights(Protocol):
    """Where a snapshot keeps the model and optimizer state."""

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None: ...

    def changed(self, model: torch.nn.Module) -> bool: ...

    def close(self) -> None: ...


@dataclass
class StateSnapshot:
    """Copies of everything a sweep changes, taken before it starts (``close()`` when done)."""

    weights: _Weights
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
    #: (module, name, the buffer itself, a copy of its values) of every non-persistent buffer.
    buffers: list[tuple[torch.nn.Module, str, torch.Tensor, torch.Tensor]] = field(
        default_factory=list
    )
    #: (parameter, a copy of its pending gradient or None) for the model's and optimizer's.
    gradients: list[tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=list)
    #: Functions that put back loader-wrapper state (accelerate's epoch counter and registry).
    loader_restorers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def store(self) -> SnapshotStore:
        """Where the weights are kept: ``memory`` or ``disk``."""
        return "disk" if isinstance(self.weights, DiskCopy) else "memory"

    def close(self) -> None:
        """Release what the snapshot holds outside memory (a disk snapshot's folder)."""
        self.weights.close()


@dataclass
class _HostCopy:
    """A copy of an unsharded model's and optimizer's state dicts in host memory."""

    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]

    @classmethod
    def take(cls, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> _HostCopy:
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return cls(state, copy.deepcopy(optimizer.state_dict()))

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            current = model.state_dict()
            for key, saved in self.model_state.items():
                current[key].copy_(saved)
        # load_state_dict keeps tensors it is given: a copy keeps the snapshot pristine.
        optimizer.load_state_dict(copy.deepcopy(self.optimizer_state))

    def changed(self, model: torch.nn.Module) -> bool:
        for name, param in model.named_parameters():
            if not param.requires_grad or name not in self.model_state:
                continue
            if not torch.equal(param.detach().cpu(), self.model_state[name]):
                return True
        return False

    def close(self) -> None:
        return None


def _epoch_samplers(loader: Iterable[Any]) -> list[Any]:
    """Samplers whose order is set by ``set_epoch`` (DistributedSampler and look-alikes)."""
    sampler = getattr(loader, "sampler", None)
    if callable(getattr(sampler, "set_epoch", None)) and isinstance(
        getattr(sampler, "epoch", None), int
    ):
        return [sampler]
    return []


def _non_persistent_buffers(
    model: torch.nn.Module,
) -> list[tuple[torch.nn.Module, str, torch.Tensor, torch.Tensor]]:
    found = []
    for module in model.modules():
        for name in getattr(module, "_non_persistent_buffers_set", ()):
            buffer = module._buffers.get(name)
            if buffer is not None:
                found.append((module, name, buffer, buffer.detach().clone()))
    return found


def _pending_gradients(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    params: dict[int, torch.Tensor] = {id(p): p for p in model.parameters()}
    for group in optimizer.param_groups:
        params.update((id(p), p) for p in group["params"])
    return [
        (param, None if param.grad is None else param.grad.detach().clone())
        for param in params.values()
    ]


def snapshot_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loaders: Sequence[Any] = (),
    *,
    store: SnapshotStore = "memory",
    folder: Path | str | None = None,
    session: Session | None = None,
) -> StateSnapshot:
    """Return an exact copy of the model, optimizer, buffers, gradients, RNGs and data order.

    ``store="memory"`` keeps the weights on the host (for an FSDP2 model, as ``session`` says,
    by default ``Session.of(model)``: this rank's shard);
    ``"disk"`` writes them with torch.distributed.checkpoint into a new temporary folder under
    ``folder`` (default: the system's temporary directory), removed by ``close()``.

    Raises:
        SweepError: the disk snapshot folder cannot be created, or (sharded and disk snapshots)
            the optimizer updates parameters that are not the model's.
    """
    if store == "disk":
        weights: _Weights = DiskCopy.take(
            model, optimizer, Path(folder) if folder is not None else None
        )
    elif (session if session is not None else Session.of(model)).sharded:
        weights = ShardedCopy.take(model, optimizer)
    else:
        weights = _HostCopy.take(model, optimizer)
    generators: list[tuple[torch.Generator, torch.Tensor]] = []
    samplers: list[tuple[Any, int, Any]] = []
    restorers: list[Callable[[], None]] = []
    for loader in loaders:
        restorers.extend(loader_restorers(loader))
        generators.extend((g, g.get_state()) for g in loader_generators(loader))
        samplers.extend((s, s.epoch, getattr(s, "seed", None)) for s in _epoch_samplers(loader))
    return StateSnapshot(
        weights=weights,
        torch_rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        numpy_rng=np.random.get_state(),
        python_rng=random.getstate(),
        generator_states=generators,
        sampler_states=samplers,
        training_modes=[(module, module.training) for module in model.modules()],
        buffers=_non_persistent_buffers(model),
        gradients=_pending_gradients(model, optimizer),
        loader_restorers=restorers,
    )


def restore_state(
    snapshot: StateSnapshot, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """Put the model, optimizer, RNGs and data order back exactly as they were at the snapshot.

    Train/eval mode included, module by module (not ``model.train(flag)``, which would set
    every submodule alike); non-persistent buffers (the same tensors, their old values) and
    pending gradients too: each parameter's ``.grad`` is a copy of the one it had, or None.
    """
    for module, training in snapshot.training_modes:
        module.training = training
    snapshot.weights.restore(model, optimizer)
    with torch.no_grad():
        for module, name, buffer, saved in snapshot.buffers:
            buffer.copy_(saved)
            module._buffers[name] = buffer
    for param, grad in snapshot.gradients:
        param.grad = None if grad is None else grad.clone()
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
    for restore in snapshot.loader_restorers:
        restore()


def parameters_changed(
    snapshot: StateSnapshot,
    model: torch.nn.Module,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> bool:
    """Return True when any trainable parameter differs from the snapshot.

    Under torch.distributed (``reduce``, the mean all-reduce) True when it differs on any rank,
    so that every rank takes the decision that depends on it together (an FSDP2 shard can
    move on one rank and not on another).
    """
    changed = snapshot.weights.changed(model)
    if reduce is None:
        return changed
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    flag = torch.tensor([1.0 if changed else 0.0], device=device)
    return bool(reduce(flag).item() > 0)


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
