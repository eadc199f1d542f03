"""How a range test is spread over processes, decided once: every module asks the ``Session``.

A ``Session`` holds the strategy (``none``, ``ddp``: the model is a DistributedDataParallel
wrapper, ``fsdp``: its parameters are FSDP2 DTensors), this process's rank, the world size and
the process group. It is made in one of two places and handed down from there:

- ``Session.of(model, process_group)``: the library (``range_test``), which borrows the user's
  objects and so reads the strategy off the model;
- ``engine.distributed.DistContext.session(strategy)``: the commands, from the config's
  ``distributed.strategy`` and the launcher's rank and world size.

Nothing else looks at tensor types or the environment to tell: snapshots ask ``sharded``,
validation passes ``inner`` and ``sharded``, every collective decision ``reduce``, the result
``recorded``. Asking has no side effects (no process group is joined). torch is imported only
inside the functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lrfind.errors import DistributedError

if TYPE_CHECKING:
    import torch

Strategy = Literal["none", "ddp", "fsdp"]


def all_reduce_mean(tensor: torch.Tensor, group: Any = None) -> torch.Tensor:
    """Return the mean of ``tensor`` over the ranks of ``group`` (default: all), as a new tensor."""
    import torch.distributed as dist

    reduced = tensor.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM, group=group)
    return reduced / dist.get_world_size(group)


def _strategy_of(model: torch.nn.Module) -> Strategy:
    """The strategy a model's form shows: a DDP wrapper, FSDP2 (DTensor) parameters, or none."""
    import torch

    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return "ddp"
    if not torch.distributed.is_available():
        return "none"
    from torch.distributed.tensor import DTensor

    return "fsdp" if any(isinstance(p, DTensor) for p in model.parameters()) else "none"


@dataclass(frozen=True)
class Session:
    """The distributed strategy, rank, world size and process group of one range test."""

    strategy: Strategy = "none"
    rank: int = 0
    world_size: int = 1
    #: The group the ranks reduce over (None: torch.distributed's default group).
    process_group: Any = None

    @classmethod
    def of(cls, model: torch.nn.Module, process_group: Any = None) -> Session:
        """The session of the user's own objects: the strategy read off ``model``, the rank and
        world size off ``process_group`` (default: torch.distributed's default group, when it
        is initialised; a single process otherwise).

        Raises:
            DistributedError: a process group is given but torch.distributed is not initialised.
        """
        return cls.on_group(process_group, _strategy_of(model))

    @classmethod
    def on_group(cls, process_group: Any = None, strategy: Strategy = "none") -> Session:
        """The session of ``strategy`` over ``process_group`` (see ``of``).

        Raises:
            DistributedError: a process group is given but torch.distributed is not initialised.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            if process_group is not None:
                raise DistributedError(
                    "process_group was given but torch.distributed is not initialised "
                    "(call torch.distributed.init_process_group first)"
                )
            return cls(strategy)
        return cls(
            strategy,
            rank=dist.get_rank(process_group),
            world_size=dist.get_world_size(process_group),
            process_group=process_group,
        )

    @property
    def distributed(self) -> bool:
        """True when several processes take part (every decision is then taken together)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes outputs and answers (rank 0)."""
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """True when the model's parameters are FSDP2 shards (each rank holds its own)."""
        return self.strategy == "fsdp"

    @property
    def recorded(self) -> str | None:
        """The strategy as a result records it (``RunInfo.strategy``): None for ``none``."""
        return None if self.strategy == "none" else self.strategy

    @property
    def reduce(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The mean all-reduce over the ranks, or None in a single process."""
        if not self.distributed:
            return None
        return functools.partial(all_reduce_mean, group=self.process_group)

    def inner(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module inside a DDP wrapper (the model itself otherwise): the one unwrapper.

        Evaluation needs no gradient sync, and DDP's forward may run a buffer broadcast: going
        around the wrapper keeps a validation pass free of collectives, so ranks with different
        numbers of validation batches cannot deadlock.
        """
        if self.strategy != "ddp":
            return model
        inner: torch.nn.Module = getattr(model, "module", model)
        return inner


#: One process, nothing spread: what a caller without a session gets.
SINGLE = Session()
