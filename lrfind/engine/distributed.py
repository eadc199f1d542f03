"""torch.distributed set-up and teardown, the loss all-reduce, and launching with ``--nproc``.

Under ``torchrun`` or ``--nproc`` (RANK/WORLD_SIZE/LOCAL_RANK in the environment, read once by
``launched()``, which joins nothing) ``current()`` joins the process group (gloo for CPU
tensors, plus NCCL for CUDA tensors when CUDA is available); its ``session(strategy)`` is the
command's ``engine.session.Session``, ``wrap_model`` wraps the model in DistributedDataParallel
when that session says ``ddp``, and the engine all-reduces the recorded losses so every rank
sees the same curve and takes the same stop decision at the same step. Only rank 0 writes
files. Outside a launcher it is a no-op context with world size 1.

What the engine does across ranks beyond this (the library under the user's own torchrun, a
failed rank's message, comparing the ranks' data) is in ``engine.collectives``.

``lrfind sweep --nproc N`` (``launch``) starts N local processes itself rather than through
torchrun, so that the command's exit code is rank 0's (torchrun reports 1 for any failure, which
would turn ``lrfind check``'s 3 "no reliable answer" into 1 "check failed"). torch is imported
only inside the functions that need it, so the launching process stays light.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from lrfind.engine.session import Session, Strategy
from lrfind.errors import DistributedError

if TYPE_CHECKING:
    import torch

#: After one rank fails: seconds the others get to exit on their own, then to stop on SIGTERM
#: (before SIGKILL).
FAILURE_PATIENCE_SECONDS = 3.0
FAILURE_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class Launch:
    """What the launcher (torchrun, ``--nproc``) assigned this process: its environment."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    #: True under a launcher (WORLD_SIZE set), whatever its world size.
    by_launcher: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that prints and writes outputs (rank 0)."""
        return self.rank == 0


def launched() -> Launch:
    """Return what the launcher assigned this process (one process outside a launcher).

    Asking joins nothing: the commands ask it who prints before any process group exists.

    Raises:
        DistributedError: the launcher's environment is not made of integers, or RANK lies
            outside [0, WORLD_SIZE).
    """
    by_launcher = bool(os.environ.get("WORLD_SIZE"))
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return Launch(by_launcher=by_launcher)
    rank = _env_int("RANK", 0)
    if not 0 <= rank < world_size:
        raise DistributedError(f"RANK={rank} is outside [0, WORLD_SIZE={world_size})")
    return Launch(rank, world_size, _env_int("LOCAL_RANK", 0), by_launcher)


@dataclass
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    #: cuda:LOCAL_RANK when CUDA is available to a multi-process run (see ``resolve_device``).
    device: torch.device | None = None
    initialized_here: bool = False
    _wrappers: list[weakref.ref[torch.nn.Module]] = field(default_factory=list, repr=False)

    @property
    def is_main(self) -> bool:
        """True on the process that writes outputs (rank 0)."""
        return self.rank == 0

    def session(self, strategy: Strategy) -> Session:
        """The command's session: the config's ``distributed.strategy`` over this run's ranks
        (``none`` in a single process, where nothing is wrapped or sharded)."""
        return Session(
            strategy if self.world_size > 1 else "none",
            rank=self.rank,
            world_size=self.world_size,
        )

    def resolve_device(self, requested: str | None) -> torch.device:
        """Return this process's device for the config's ``device`` setting.

        One process: as ``lrfind.engine.device.resolve_device``. Several: ``auto`` (with CUDA),
        ``cuda`` and ``cuda:N`` all mean ``cuda:LOCAL_RANK`` (each process drives its own GPU);
        ``cpu`` and ``auto`` without CUDA mean the CPU.

        Raises:
            SweepError: a single process asks for a device that is not available.
            DistributedError: CUDA is requested for more processes than there are GPUs, or MPS
                is requested for a multi-process run (no collective backend supports it).
        """
        import torch

        from lrfind.engine.device import resolve_device

        if self.world_size == 1:
            return resolve_device(requested)
        name = str(requested or "auto")
        if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
            return torch.device("cpu")
        if name == "mps":
            raise DistributedError("device 'mps' is not supported with several processes")
        if not torch.cuda.is_available():
            raise DistributedError(f"device '{name}' requested but CUDA is not available")
        if self.device is None:
            raise DistributedError(
                f"{self.world_size} processes need {self.world_size} GPUs on this machine, but "
                f"only {torch.cuda.device_count()} are visible (set device: cpu, or use fewer "
                "processes)"
            )
        return self.device

    def wrap_model(
        self, model: torch.nn.Module, device: torch.device, session: Session
    ) -> torch.nn.Module:
        """Return ``model`` wrapped in DistributedDataParallel when ``session`` says ``ddp``
        (as it is otherwise: one process, or a model FSDP2 sharded when it was built).

        Drop every reference to the wrapper when done: ``shutdown`` only destroys the process
        group once no wrapper is left alive.
        """
        if session.strategy != "ddp":
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
        wrapper = DistributedDataParallel(model, device_ids=device_ids)
        self._wrappers.append(weakref.ref(wrapper))
        return wrapper

    def live_wrappers(self) -> int:
        """Return how many DDP wrappers made by ``wrap_model`` are still referenced."""
        gc.collect()
        return sum(1 for ref in self._wrappers if ref() is not None)


_CONTEXT: DistContext | None = None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise DistributedError(f"environment variable {name}={raw!r} is not an integer") from None


def current() -> DistContext:
    """Return this process's context, joining the process group on first use under a launcher.

    Raises:
        DistributedError: the launcher's environment is inconsistent or the group cannot start.
    """
    global _CONTEXT
    if _CONTEXT is not None:
        return _CONTEXT
    launch = launched()
    if launch.world_size <= 1:
        _CONTEXT = DistContext()
        return _CONTEXT
    rank, world_size, local_rank = launch.rank, launch.world_size, launch.local_rank
    import torch
    import torch.distributed as dist

    device: torch.device | None = None
    backend = "gloo"
    if torch.cuda.is_available():
        # gloo for CPU tensors (a `device: cpu` run, the barrier), NCCL for CUDA tensors.
        backend = "cpu:gloo,cuda:nccl"
        if local_rank < torch.cuda.device_count():
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
    initialized_here = False
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend)
        except Exception as error:
            raise DistributedError(f"cannot join the process group ({backend}): {error}") from error
        initialized_here = True
    _CONTEXT = DistContext(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        device=device,
        initialized_here=initialized_here,
    )
    return _CONTEXT


def shutdown(failed: bool | None = None) -> None:
    """Leave the process group if ``current()`` joined it.

    After a success every rank meets at a barrier (so none leaves while another still
    communicates), then the group is destroyed, once no DDP wrapper is alive: with torch 2.13 a
    process that destroys the group under a live DistributedDataParallel aborts at exit, so with
    one still referenced the group is left to be torn down at exit instead.

    After a failure (``failed``, by default: an exception is propagating) nothing collective
    happens: the other ranks may be blocked in a collective this rank will never join, and a
    barrier would hang them all. The process exits with its error and the launcher stops the
    others.
    """
    global _CONTEXT
    context, _CONTEXT = _CONTEXT, None
    if context is None or not context.initialized_here:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    if failed is None:
        failed = sys.exc_info()[0] is not None
    if failed:
        return
    alive = context.live_wrappers()
    dist.barrier()
    if alive == 0:
        dist.destroy_process_group()


_SESSION_DEPTH = 0


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Run a command's work, then ``shutdown()``: the process group ``current()`` joined is
    left when the outermost session ends (``check`` runs a ``sweep`` inside its own).

    The workflows open one, so a Python caller under a launcher gets the cleanup the CLI gets.
    """
    global _SESSION_DEPTH
    _SESSION_DEPTH += 1
    failed = True
    try:
        yield
        failed = False
    finally:
        _SESSION_DEPTH -= 1
        if _SESSION_DEPTH == 0:
            shutdown(failed=failed)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def worker_environment(rank: int, nproc: int, port: int) -> dict[str, str]:
    """Return the environment of local rank ``rank`` of ``nproc`` (what torchrun would set)."""
    env = dict(os.environ)
    env.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    if "OMP_NUM_THREADS" not in os.environ and nproc > 1:
        # Like torchrun, do not let N processes each start one thread per core.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    return env


def launch(nproc: int, argv: Sequence[str], *, module: str = "lrfind") -> int:
    """Re-run ``python -m lrfind`` (``module``) with ``argv`` as ``nproc`` local processes.

    SIGINT/SIGTERM received here are passed on once to every process (they stop gracefully at
    the same step and write partial results); the processes do not get the terminal's SIGINT
    themselves, so one Ctrl-C is one stop request. When a process fails, the others get
    SIGTERM after ``FAILURE_PATIENCE_SECONDS``, then SIGKILL after ``FAILURE_GRACE_SECONDS``.
    Rank 0's output is shown as it comes; another rank's stderr only when that rank failed and
    rank 0 did not finish on its own.

    Returns rank 0's exit code; or, when rank 0 had to be stopped after another rank failed,
    that rank's code.

    Raises:
        DistributedError: nproc < 1, or the processes cannot be started.
    """
    if nproc < 1:
        raise DistributedError(f"--nproc must be at least 1, got {nproc}")
    port = _free_port()
    command = [sys.executable, "-m", module, *argv]
    workers: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        # signal.signal raises ValueError off the main thread; the default handling then stays.
        with contextlib.suppress(ValueError):
            previous[sig] = signal.signal(sig, forward)
    try:
        with tempfile.TemporaryDirectory(prefix="lrfind-ranks-") as folder:
            logs = [Path(folder) / f"rank{rank}.stderr" for rank in range(nproc)]
            try:
                for rank in range(nproc):
                    workers.append(_start(command, rank, nproc, port, logs[rank]))
            except OSError as error:
                _stop_all(workers)
                raise DistributedError(f"cannot start {nproc} processes: {error}") from error
            code, failed_rank, rank0_stopped = _wait(workers)
            if failed_rank not in (None, 0) and (rank0_stopped or workers[0].returncode == 0):
                sys.stderr.write(logs[failed_rank].read_text(encoding="utf-8", errors="replace"))
            return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(command: list[str], rank: int, nproc: int, port: int, log: Path) -> Any:
    # A new session: the terminal's Ctrl-C reaches only the launcher, which passes it on once.
    if rank == 0:
        return subprocess.Popen(
            command, env=worker_environment(rank, nproc, port), start_new_session=True
        )
    with log.open("wb") as stderr:
        return subprocess.Popen(
            command,
            env=worker_environment(rank, nproc, port),
            stderr=stderr,
            start_new_session=True,
        )


def _wait(workers: list[subprocess.Popen[bytes]]) -> tuple[int, int | None, bool]:
    """Wait for every worker.

    Returns (exit code, rank of the first failure or None, whether rank 0 was stopped here
    rather than finishing on its own).
    """
    while True:
        codes = [worker.poll() for worker in workers]
        failed_rank = next((r for r, code in enumerate(codes) if code not in (None, 0)), None)
        if failed_rank is not None or all(code is not None for code in codes):
            break
        time.sleep(0.05)
    rank0_stopped = False
    if failed_rank is not None:
        rank0_stopped = _stop_all(workers)[0]
    if failed_rank is None or not rank0_stopped:
        return _exit_code(workers[0].wait()), failed_rank, rank0_stopped
    return _exit_code(workers[failed_rank].returncode), failed_rank, rank0_stopped


def _exit_code(code: int) -> int:
    # A process killed by signal N reports -N; shells report 128 + N.
    return 128 - code if code < 0 else code


def _stop_all(workers: list[subprocess.Popen[bytes]]) -> list[bool]:
    """Let the workers exit on their own for a moment, then stop them; return who was stopped.

    The moment matters when every rank fails the same way: each then reports its own error.
    """
    deadline = time.monotonic() + FAILURE_PATIENCE_SECONDS
    while time.monotonic() < deadline and any(w.poll() is None for w in workers):
        time.sleep(0.05)
    stopped = [worker.poll() is None for worker in workers]
    for worker, running in zip(workers, stopped, strict=True):
        if running:
            worker.terminate()
    deadline = time.monotonic() + FAILURE_GRACE_SECONDS
    for worker in workers:
        try:
            worker.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return stopped
