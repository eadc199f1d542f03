"""Sharded and disk snapshots, through torch.distributed.checkpoint (``engine.state`` picks).

``ShardedCopy`` keeps this rank's shard of an FSDP2 model and its optimizer in host memory
(``get_*_state_dict`` / ``set_*_state_dict``); ``DiskCopy`` writes every rank's shard into a
temporary folder with ``torch.distributed.checkpoint`` and reads it back on restore, keeping
only a fingerprint of the parameters in memory.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lrfind.errors import SnapshotError, SweepError

#: Prefix of the temporary folder of a disk snapshot: ``<prefix><host>-<pid>-<random>``.
SNAPSHOT_PREFIX = ".lrfind-snapshot-"


def _host() -> str:
    """This machine's name, as it may appear in a folder name."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _owner_alive(folder: Path) -> bool:
    """False only when ``folder`` is a snapshot of a process of this machine that is gone (a
    run killed with SIGKILL, which no ``finally`` survives); True when in doubt."""
    parts = folder.name.removeprefix(SNAPSHOT_PREFIX).rsplit("-", 2)
    if len(parts) != 3 or parts[0] != _host() or not parts[1].isdigit():
        return True  # another machine's, or an older lrfind's name: not ours to judge
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, another user's
    return True


def remove_stale_snapshots(folder: Path, depth: int = 0) -> list[Path]:
    """Remove the disk snapshot folders in ``folder`` (``depth`` 1: in its subfolders, the run
    directories of an output folder) whose run was killed; return them.

    A snapshot is removed when its run ends in any way but SIGKILL (or a power cut); the next
    run in the same folder removes what such a run left. Snapshots of live runs, of other
    machines sharing the folder, and unreadable entries are left alone.
    """
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in folder.glob("*/" * depth + f"{SNAPSHOT_PREFIX}*"):
            if entry.is_dir() and not entry.is_symlink() and not _owner_alive(entry):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def snapshot_folder_problem(base: Path) -> str | None:
    """What keeps ``base`` from holding disk snapshots, in a few words (None: nothing).

    A file where it (or a parent) should be a folder, a symbolic link that leads nowhere (a
    loop, or a missing target), or a folder (the nearest that exists) that cannot be written.
    """
    for candidate in (base, *base.parents):
        if candidate.is_symlink() and not candidate.exists():
            return (
                f"{candidate} is a symbolic link that leads nowhere (a loop, or its target is "
                "missing)"
            )
        if candidate.exists():
            if not candidate.is_dir():
                return f"{candidate} is a file, not a folder"
            if not os.access(candidate, os.W_OK | os.X_OK):
                return f"{candidate} is not writable"
            return None
    return None


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor (the tensor itself otherwise)."""
    to_local = getattr(tensor, "to_local", None)
    return to_local() if callable(to_local) else tensor


#: Elements hashed at a time: bounds the host copy of a GPU shard to this many.
FINGERPRINT_CHUNK = 2**22


def _fingerprint(model: torch.nn.Module) -> list[bytes]:
    """A digest of the bytes of this rank's shard of every trainable parameter.

    Tells exactly whether an optimizer step moved the weights without keeping a copy of them.
    """
    digests = []
    with torch.no_grad():
        for param in model.parameters():
            if not param.requires_grad:
                continue
            flat = _local(param).detach().reshape(-1)
            digest = hashlib.blake2b(digest_size=16)
            for start in range(0, flat.numel(), FINGERPRINT_CHUNK):
                chunk = flat[start : start + FINGERPRINT_CHUNK].cpu().contiguous()
                digest.update(chunk.view(torch.uint8).numpy().data)
            digests.append(digest.digest())
    return digests


def _cloned(tree: Any) -> Any:
    """``tree`` with every tensor replaced by a detached copy (DTensors stay sharded)."""
    from torch.utils._pytree import tree_map_only

    return tree_map_only(torch.Tensor, lambda tensor: tensor.detach().clone(), tree)


def _group_settings(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Copies of each param group's settings (lr, betas...) without its parameters."""
    return [
        {key: copy.deepcopy(value) for key, value in group.items() if key != "params"}
        for group in optimizer.param_groups
    ]


def _reset_optimizer(optimizer: torch.optim.Optimizer, settings: list[dict[str, Any]]) -> None:
    """Back to an optimizer that has taken no step: no state, the saved group settings."""
    optimizer.state.clear()
    for group, saved in zip(optimizer.param_groups, settings, strict=True):
        group.update(copy.deepcopy(saved))


def _distributed_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, with_optimizer: bool
) -> dict[str, Any]:
    """The live model (and optimizer) state, keyed by parameter name, shards as DTensors."""
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    state: dict[str, Any] = {"model": get_model_state_dict(model)}
    if with_optimizer:
        try:
            state["optim"] = get_optimizer_state_dict(model, optimizer)
        except (KeyError, RuntimeError) as error:
            raise SweepError(
                "this snapshot needs every parameter the optimizer updates to belong to the "
                f"model ({type(error).__name__}: {error}); use sweep.snapshot: memory"
            ) from error
    return state


def _set_distributed_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    set_model_state_dict(model, state["model"])
    if "optim" in state:
        set_optimizer_state_dict(model, optimizer, state["optim"])


@dataclass
class ShardedCopy:
    """This rank's shard of an FSDP2 model and its optimizer, copied in host memory.

    An optimizer that has taken no step is not snapshotted through
    ``get_optimizer_state_dict``: it would create the state by taking a zero step (Adam's step
    count would then read 1), so only its group settings are kept, and restoring empties it.
    """

    state: dict[str, Any]
    settings: list[dict[str, Any]]
    fingerprint: list[bytes]

    @classmethod
    def take(cls, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> ShardedCopy:
        state = _distributed_state(model, optimizer, with_optimizer=bool(optimizer.state))
        # The state dicts hold the live tensors (cpu_offload too, for CPU ones): copy them.
        return cls(_cloned(state), _group_settings(optimizer), _fingerprint(model))

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        # The model's values are copied into its parameters, but set_optimizer_state_dict keeps
        # the tensors it is given: a copy of those keeps the snapshot pristine.
        state = dict(self.state)
        if "optim" in state:
            state["optim"] = _cloned(state["optim"])
        _set_distributed_state(model, optimizer, state)
        if "optim" not in self.state:
            _reset_optimizer(optimizer, self.settings)

    def changed(self, model: torch.nn.Module) -> bool:
        return _fingerprint(model) != self.fingerprint

    def close(self) -> None:
        return None


def _single_process() -> bool:
    """True outside torch.distributed (checkpoints are then written and read by this process)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized())


@contextlib.contextmanager
def _quiet_checkpoint() -> Iterator[None]:
    """Silence torch.distributed.checkpoint's warning that it assumes a single process."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _first_cause(error: BaseException) -> BaseException:
    """The most telling exception in ``error``'s chain: an OSError (a full disk reads "No space
    left on device" there, where torch's writer only says "unexpected pos"), else ``error``."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        if isinstance(link, OSError):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return error


@contextlib.contextmanager
def _snapshot_errors(action: str, folder: Path) -> Iterator[None]:
    """Turn torch.distributed.checkpoint's ``CheckpointException`` (a BaseException, which would
    slip past every ``except Exception``) into a SnapshotError naming the cause.

    An interruption inside it (a second Ctrl-C, a SIGTERM turned into SystemExit) is raised
    again as itself, so that it ends the run as an interruption.
    """
    from torch.distributed.checkpoint.api import CheckpointException

    try:
        yield
    except CheckpointException as error:
        causes = [
            failure[0] if isinstance(failure, tuple) else failure
            for failure in error.failures.values()
        ]
        for cause in causes:
            if isinstance(cause, KeyboardInterrupt | SystemExit):
                raise cause from None
        found = [_first_cause(c) for c in causes if isinstance(c, BaseException)]
        if not found:
            reason = "torch.distributed.checkpoint failed"
        elif isinstance(found[0], OSError) and found[0].strerror:
            reason = found[0].strerror
        else:
            reason = f"{type(found[0]).__name__}: {found[0]}"
        ranks = "" if len(error.failures) < 2 else f" (ranks {sorted(error.failures)})"
        # A snapshot that could not be written is removed: its parent is what the user chose.
        room, where = ("free space there, ", folder.parent) if action == "write" else ("", folder)
        raise SnapshotError(
            f"cannot {action} the disk snapshot in {where}{ranks}: {reason}; {room}choose "
            "another folder (sweep.snapshot_dir) or use sweep.snapshot: memory"
        ) from error


def _agreed_folder(base: Path | None) -> tuple[Path, tuple[Path, ...]]:
    """A new temporary folder under ``base``, the same one on every rank (rank 0 makes it),
    and the parents it had to create (rank 0's; removed with it), deepest first.

    Stale snapshot folders in ``base`` (``remove_stale_snapshots``) are removed first.
    """
    import torch.distributed as dist

    multi = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    # [the folder, what kept rank 0 from making it]: every rank then fails with rank 0's words.
    shared: list[str | None] = [None, None]
    created: list[Path] = []
    where = base or Path(tempfile.gettempdir())
    if not multi or dist.get_rank() == 0:
        shared[1] = snapshot_folder_problem(where)
        if shared[1] is None:
            created = [p for p in (where, *where.parents) if not p.exists()]
            try:
                where.mkdir(parents=True, exist_ok=True)
                remove_stale_snapshots(where)
                prefix = f"{SNAPSHOT_PREFIX}{_host()}-{os.getpid()}-"
                shared[0] = tempfile.mkdtemp(prefix=prefix, dir=where)
            except OSError as error:
                shared[1] = error.strerror or str(error)
    if multi:
        dist.broadcast_object_list(shared, src=0)
    name, problem = shared
    if not name:
        raise SnapshotError(f"cannot create the disk snapshot folder in {where}: {problem}")
    return Path(name), tuple(created)


@dataclass
class DiskCopy:
    """Every rank's shard written by ``torch.distributed.checkpoint`` into a temporary folder.

    With several processes the folder must be on a file system every rank reads (one machine,
    or a shared ``sweep.snapshot_dir``).
    """

    folder: Path
    settings: list[dict[str, Any]]
    fingerprint: list[bytes]
    with_optimizer: bool
    #: Parents of ``folder`` that taking it created, deepest first: removed with it when empty.
    created: tuple[Path, ...] = ()

    @classmethod
    def take(
        cls, model: torch.nn.Module, optimizer: torch.optim.Optimizer, base: Path | None
    ) -> DiskCopy:
        import torch.distributed.checkpoint as dcp

        with_optimizer = bool(optimizer.state)
        state = _distributed_state(model, optimizer, with_optimizer)
        folder, created = _agreed_folder(base)
        snapshot = cls(
            folder, _group_settings(optimizer), _fingerprint(model), with_optimizer, created
        )
        try:
            with _quiet_checkpoint(), _snapshot_errors("write", folder):
                dcp.save(state, checkpoint_id=folder, no_dist=_single_process())
        except BaseException:
            snapshot.close()
            raise
        return snapshot

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        import torch.distributed.checkpoint as dcp

        # Loaded in place into the live tensors, then applied (param-group settings included).
        state = _distributed_state(model, optimizer, self.with_optimizer)
        with _quiet_checkpoint(), _snapshot_errors("read back", self.folder):
            dcp.load(state, checkpoint_id=self.folder, no_dist=_single_process())
        _set_distributed_state(model, optimizer, state)
        if not self.with_optimizer:
            _reset_optimizer(optimizer, self.settings)

    def changed(self, model: torch.nn.Module) -> bool:
        return _fingerprint(model) != self.fingerprint

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        for parent in self.created:
            with contextlib.suppress(OSError):  # no longer empty: something else uses it
                parent.rmdir()


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Turn an unhandled SIGTERM into SystemExit while a disk snapshot exists, so that the
    ``finally`` blocks that remove its folder still run (a torchrun agent stopping its workers
    sends SIGTERM). A handler already installed (the CLI's graceful stop) is left alone."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def leave(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
