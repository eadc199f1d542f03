"""What the engine does across ranks: the library's all-reduce, agreeing on data, failures.

Who takes part is the ``engine.session.Session``'s to say (decided once, asked here).
``uneven_counts`` compares the ranks' data sizes; ``options_agree`` the options each rank was
given; ``lockstep_batches`` keeps an FSDP2 model's (collective) forward passes in step. A rank
that raises leaves its message in the process group's store (``failures_shared``); the others,
whose next collective then breaks, report that rank and its message instead of the broken
connection. torch is imported only inside the functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lrfind.engine.session import SINGLE, Session
from lrfind.errors import DistributedError
from lrfind.format import error_summary

if TYPE_CHECKING:
    import torch

#: Seconds a rank whose collective broke waits for the failed rank's message in the store.
PEER_MESSAGE_SECONDS = 2.0

#: Where a failing rank leaves its message in the process group's store (``/<rank>`` added).
FAILURE_KEY = "lrfind/failure"


def group_reduce(process_group: Any = None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``Session.on_group(process_group).reduce`` (for callers that hold no session yet)."""
    return Session.on_group(process_group).reduce


def _collective_device(group: Any = None) -> torch.device:
    """A device the group's backend reduces on: CUDA for an NCCL-only group, else the CPU."""
    import torch
    import torch.distributed as dist

    backend = str(dist.get_backend(group))
    if "nccl" in backend and "gloo" not in backend:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_counts(counts: Sequence[int], group: Any = None) -> list[list[int]]:
    """Return every rank's ``counts`` (row r: rank r's), the same table on every rank."""
    import torch
    import torch.distributed as dist

    world, rank = dist.get_world_size(group), dist.get_rank(group)
    table = torch.zeros((world, len(counts)), dtype=torch.float64, device=_collective_device(group))
    table[rank] = torch.tensor([float(count) for count in counts], dtype=torch.float64)
    dist.all_reduce(table, op=dist.ReduceOp.SUM, group=group)
    return [[int(value) for value in row] for row in table.tolist()]


def uneven_counts(named: dict[str, int | None], group: Any = None) -> list[str]:
    """Compare counts (samples, batches) across the ranks; describe each that differs.

    A count that is None on some rank (a loader without a length) is left out. Every rank
    sends every count (the same shape), and gets the same list.
    """
    names = list(named)
    table = gather_counts(
        [-1 if named[name] is None else int(named[name] or 0) for name in names], group
    )
    found = []
    for column, name in enumerate(names):
        values = [row[column] for row in table]
        if min(values) >= 0 and len(set(values)) > 1:
            per_rank = ", ".join(f"rank {rank}: {value}" for rank, value in enumerate(values))
            found.append(f"{name} ({per_rank})")
    return found


def _size(sized: Any) -> int | None:
    try:
        return len(sized)
    except TypeError:
        return None


def data_counts(train_loader: Any, val_loader: Any = None) -> dict[str, int | None]:
    """The sizes compared across ranks: samples and batches of the training and validation
    data, None where there is no validation data or a loader or its dataset has no length (the
    same keys on every rank: they are all-reduced as one table)."""
    return {
        "training samples": _size(getattr(train_loader, "dataset", None)),
        "training batches": _size(train_loader),
        "validation samples": _size(getattr(val_loader, "dataset", None)),
        "validation batches": None if val_loader is None else _size(val_loader),
    }


def uneven_data_notes(train_loader: Any, val_loader: Any = None, group: Any = None) -> list[str]:
    """The library's warning (as a result note) when the ranks' data differ in size."""
    uneven = uneven_counts(data_counts(train_loader, val_loader), group)
    if not uneven:
        return []
    return [
        "the ranks' data differ in size: "
        + "; ".join(uneven)
        + ". Each rank should read an equal share of one dataset (a DistributedSampler does"
        " that); the ranks' losses are averaged step by step, whatever each one read"
    ]


def strategy_of(model: torch.nn.Module) -> str | None:
    """``Session.of(model).recorded`` (for callers that hold no session yet)."""
    return Session.of(model).recorded


def refuse_uneven_data(train_loader: Any, val_loader: Any = None, group: Any = None) -> None:
    """Check that every rank built the same data (lrfind shards one dataset over the ranks).

    Raises:
        DataError: the ranks' datasets differ in size (on every rank alike).
    """
    from lrfind.errors import DataError

    uneven = uneven_counts(data_counts(train_loader, val_loader), group)
    if uneven:
        raise DataError(
            "data: the ranks built data of different sizes: "
            + "; ".join(uneven)
            + ". data.target must return the same data on every rank: lrfind gives each "
            "rank its share"
        )


def _fingerprint(value: object) -> int:
    """A 62-bit digest of ``repr(value)``: equal options give equal digests on every rank."""
    digest = hashlib.blake2b(repr(value).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2


def refuse_mismatched_options(options: Mapping[str, object], session: Session) -> None:
    """Check that every rank was given the same ``options`` (one all-reduce of their digests).

    Ranks given different steps or budgets would train different sweeps and trials, and hang
    or abort in a collective the others never call; found first, it is one clear error.

    Raises:
        ValueError: an option differs between the ranks (on every rank alike), naming it.
    """
    if not session.distributed:
        return
    import torch
    import torch.distributed as dist

    names = sorted(options)
    group = session.process_group
    table = torch.zeros(
        (session.world_size, len(names)), dtype=torch.int64, device=_collective_device(group)
    )
    table[session.rank] = torch.tensor([_fingerprint(options[n]) for n in names])
    dist.all_reduce(table, op=dist.ReduceOp.SUM, group=group)
    columns = table.cpu().tolist()
    differ = [n for i, n in enumerate(names) if len({row[i] for row in columns}) > 1]
    if differ:
        raise ValueError(
            f"the ranks called range_test with different {', '.join(differ)}: every rank must "
            "pass the same options"
        )


_END = object()


def lockstep_batches(
    loader: Iterable[Any],
    reduce: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
) -> Iterator[Any]:
    """Yield ``loader``'s batches while every rank still has one (one tiny all-reduce each).

    For a sharded model, whose forward pass is itself collective: ranks with different numbers
    of batches would otherwise call different numbers of collectives and hang.
    """
    import torch

    flags = torch.tensor([[0.0], [1.0]], device=device)
    iterator = iter(loader)
    while True:
        batch = next(iterator, _END)
        if reduce(flags[0 if batch is _END else 1]).item() < 1:
            return
        yield batch


def _store() -> Any:
    """The default process group's key-value store, or None when it cannot be reached."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    with contextlib.suppress(Exception):
        return dist.distributed_c10d._get_default_store()
    return None


def _collective_broke(error: BaseException) -> bool:
    """Whether ``error`` is (or was caused by) what a collective raises when another rank has
    gone away: the engine may have wrapped it (a DDP backward's all-reduce is "the backward
    pass" to the user)."""
    import torch.distributed as dist

    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, getattr(dist, "DistError", ())):
            return True
        text = str(cause)
        if isinstance(cause, RuntimeError) and any(
            marker in text for marker in ("Connection closed", "Connection reset", "gloo", "NCCL")
        ):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _describe(error: BaseException) -> str:
    from lrfind.errors import LrfindError

    if isinstance(error, LrfindError):
        return str(error)
    return error_summary(error)


def _record_failure(store: Any, rank: int, error: BaseException) -> None:
    from lrfind.errors import EXIT_USAGE, LrfindError

    code = error.exit_code if isinstance(error, LrfindError) else EXIT_USAGE
    record = json.dumps({"rank": rank, "message": _describe(error), "exit_code": code})
    with contextlib.suppress(Exception):
        store.set(f"{FAILURE_KEY}/{rank}", record)


def _peer_failure(store: Any, rank: int, world_size: int, wait: float) -> dict[str, Any] | None:
    """The first other rank's recorded failure, waiting up to ``wait`` seconds for one."""
    deadline = time.monotonic() + wait
    while True:
        for other in range(world_size):
            key = f"{FAILURE_KEY}/{other}"
            if other == rank:
                continue
            try:
                if store.check([key]):
                    found: dict[str, Any] = json.loads(store.get(key))
                    return found
            except Exception:
                return None  # the store went away with the rank that hosted it
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


@contextlib.contextmanager
def failures_shared(session: Session | bool = True) -> Iterator[None]:
    """Under torch.distributed, turn another rank's failure into this rank's error message.

    An exception raised here is recorded in the process group's store before it propagates
    (its process then exits and the other ranks' collectives break). A broken collective is
    replaced by a DistributedError naming the rank that failed, with its message and exit
    code, when that rank left one. Inactive in a single process. Enter it once around a piece
    of work (the commands' set-up, ``RangeTest.run``), not nested.

    ``session``: who takes part (a bool, for callers that hold no session yet: True means the
    default group's, ``Session.on_group()``).

    Raises:
        DistributedError: another rank failed first.
    """
    if isinstance(session, bool):
        session = Session.on_group() if session else SINGLE
    store = _store() if session.distributed else None
    if store is None:
        yield
        return
    try:
        yield
    except Exception as error:
        peer = None
        if _collective_broke(error):
            peer = _peer_failure(store, session.rank, session.world_size, PEER_MESSAGE_SECONDS)
        if peer is None:
            _record_failure(store, session.rank, error)
            raise
        shared = DistributedError(f"rank {peer['rank']} failed: {peer['message']}")
        shared.exit_code = int(peer.get("exit_code", shared.exit_code))
        raise shared from error
