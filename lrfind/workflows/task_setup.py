"""A config's task built as the commands run it: ``sweep`` and ``verify`` build, probe and wrap
it here, and bind it into one ``RangeTest`` (the same loss, snapshot store and session)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lrfind.config.schema import Config
from lrfind.errors import Interrupted

if TYPE_CHECKING:
    from lrfind.assembly.task import BuiltTask
    from lrfind.engine.options import StopFlag
    from lrfind.engine.rangetest import RangeTest
    from lrfind.engine.session import Session


class Phases(Protocol):
    """What the set-up says it is doing (a sweep's reporter)."""

    def phase(self, message: str) -> None: ...


def set_up_task(
    config: Config,
    *,
    session: Session,
    reporter: Phases | None = None,
    stop: StopFlag | None = None,
) -> tuple[BuiltTask, Any, Any]:
    """Build and probe the config's task on this rank, before anything is written (a config
    that cannot even take one step leaves nothing behind); return the task, its model as the
    session trains it (DDP-wrapped under ``ddp``) and the device.

    Raises:
        Interrupted: a stop request came during the set-up (one process).
        (and what building, sharding the data and probing raise)
    """
    from lrfind.assembly.probe import probe_task
    from lrfind.assembly.task import build_task
    from lrfind.engine import collectives, distributed
    from lrfind.engine.device import resolve_device

    context = distributed.current()
    device = resolve_device(config.device) if context.device is None else context.device
    if reporter is not None:
        reporter.phase(f"building {config.model.target} on {config.data.target} ({device})")
    task = build_task(config, device, session.rank, session.world_size)
    if session.distributed:
        collectives.refuse_uneven_data(task.train_loader, task.val_loader)
    probe_task(task, device)
    # One process only: under torch.distributed the ranks agree on a stop inside the sweep.
    if stop is not None and stop.requested and not session.distributed:
        raise Interrupted("interrupted while setting up, before the sweep started; nothing written")
    return task, context.wrap_model(task.model, device, session), device


def range_test_of(
    task: BuiltTask,
    model: Any,
    device: Any,
    config: Config,
    session: Session,
    snapshot_dir: Path | None,
) -> RangeTest:
    """The range test of a built task, as ``sweep`` and ``verify`` run it (``sweep.snapshot``
    as configured, a disk snapshot under ``snapshot_dir``)."""
    from lrfind.engine.rangetest import RangeTest

    return RangeTest(
        model,
        task.optimizer,
        task.loss_fn,
        task.train_loader,
        val_loader=task.val_loader,
        step_fn=task.step_fn,
        device=device,
        inputs_key=task.inputs_key,
        targets_key=task.targets_key,
        output_key=task.output_key,
        session=session,
        snapshot=config.sweep.snapshot,
        snapshot_dir=snapshot_dir,
    )
