"""`lrfind sweep`: config -> run directory with result.json, history.csv, config.yaml and a plot."""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lrfind.config.schema import Config
from lrfind.errors import (
    ConfigError,
    LrfindError,
    OutputError,
    SweepError,
    UserCodeError,
)
from lrfind.outputs import runs
from lrfind.results import (
    History,
    RangeTestResult,
    RunInfo,
    TrainRun,
    Trial,
)
from lrfind.workflows.task_setup import range_test_of, set_up_task

if TYPE_CHECKING:
    from lrfind.assembly.task import BuiltTask
    from lrfind.engine.options import StepEvent, StopFlag
    from lrfind.engine.session import Session


class Reporter(Protocol):
    """What a sweep reports progress to (``lrfind.cli.console.SweepProgress`` implements it)."""

    def phase(self, message: str) -> None: ...

    def step(self, step: int, steps: int, lr: float, loss: float, smoothed: float) -> None: ...

    def trial(self, index: int, count: int, trial: Trial) -> None: ...


@dataclass(frozen=True)
class SweepRun:
    """A finished (or interrupted) sweep: its result and the files written for it.

    ``run_dir`` is None on the non-zero ranks of a multi-process run (only rank 0 writes).
    """

    result: RangeTestResult
    run_dir: Path | None
    files: dict[str, Path] = field(default_factory=dict)
    config: Config | None = None


def train_run(config: Config, train_loader: Any) -> TrainRun | None:
    """The run described by ``config.train``, its length in optimizer steps (None without one).

    ``epochs`` become steps with the training loader's length (per process: each rank's shard)
    and ``sweep.accumulation_steps`` micro-batches per step, rounded up.

    Raises:
        ConfigError: ``epochs`` with a loader that has no length, epochs under one optimizer
            step, or a warmup that does not fit.
    """
    spec = config.train
    if spec is None:
        return None
    steps = spec.steps
    if steps is None:
        try:
            batches = len(train_loader)
        except TypeError:
            raise ConfigError(
                "train.epochs needs a training loader with a length; give train.steps instead"
            ) from None
        accumulation = config.sweep.accumulation_steps
        exact = (spec.epochs or 0) * batches / accumulation
        if exact < 1:
            per_step = f", {accumulation} per step" if accumulation > 1 else ""
            raise ConfigError(
                f"train.epochs: {spec.epochs:g} epoch(s) of {batches} batches{per_step} is "
                f"under one optimizer step ({exact:.3g}); give more epochs or train.steps"
            )
        steps = math.ceil(exact)
    try:
        return spec.run(steps)
    except ValueError as error:  # the warmup (the rest was checked with the config)
        raise ConfigError(f"train.warmup: {str(error).removeprefix('train ')}") from None


def new_run_dir(config: Config, out: Path | None = None) -> Path:
    """Create the run directory: ``out`` itself when given, else ``<output.dir>/<name>/<stamp>``.

    An existing non-empty ``out`` is refused, so no run is ever overwritten.

    Raises:
        OutputError: ``out`` exists and is not an empty folder, or it cannot be created.
    """
    if out is None:
        return runs.create_run_dir(output_dir(config) / config.name)
    out = Path(out)
    if check_out_dir(out):
        _check_writable(out)
        return out
    try:
        out.mkdir(parents=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise OutputError(runs.in_the_way(out)) from error
    except OSError as error:
        raise OutputError(f"cannot create {out}: {error.strerror}") from error
    return out


def output_dir(config: Config) -> Path:
    """``output.dir`` as an absolute path (relative to the current directory, read now)."""
    return Path.cwd() / Path(config.output.dir).expanduser()


def absolute(path: str | os.PathLike[str] | None) -> Path | None:
    """``path`` made absolute against the current directory now (None stays None).

    Output paths are fixed before any user code runs: a component that changes the working
    directory must not move where the run is written.
    """
    return None if path is None else Path.cwd() / Path(path).expanduser()


def check_out_dir(out: Path) -> bool:
    """Check that ``out`` can become a run directory, without creating anything.

    Returns True when ``out`` is an existing empty folder, False when it does not exist yet.

    Raises:
        OutputError: ``out`` is a file or a folder that is not empty.
    """
    if out.is_symlink() and not out.exists():
        raise OutputError(
            f"--out {out}: is a symbolic link that leads nowhere (a loop, or its target is "
            "missing); remove the link or choose another folder"
        )
    if not out.exists():
        return False
    if not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a directory")
    if any(out.iterdir()):
        raise OutputError(f"--out {out}: directory is not empty (runs are never overwritten)")
    return True


def _check_writable(folder: Path) -> None:
    probe = folder / ".lrfind-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OutputError(f"cannot write to {folder}: {error.strerror}") from error


def write_run_files(
    result: RangeTestResult, config: Config | None, run_dir: Path
) -> dict[str, Path]:
    """Write history.csv, the PNG and result.json (last, so it marks the run done); return paths.

    A plot that fails to render or to be written (a full disk) becomes a warning in result.json
    rather than losing the run.

    Raises:
        OutputError: history.csv or result.json cannot be written.
    """
    files: dict[str, Path] = {}
    if config is not None and not (run_dir / runs.CONFIG_FILE).exists():
        files["config"] = runs.write_config(run_dir, config)
    elif (run_dir / runs.CONFIG_FILE).exists():
        files["config"] = run_dir / runs.CONFIG_FILE
    files["history"] = runs.write_history(run_dir, result.history)
    from lrfind.outputs.plot.guard import plot_or_warning
    from lrfind.outputs.plot.single import plot_result

    plot, problem = plot_or_warning(lambda: plot_result(result, run_dir / runs.PLOT_FILE))
    if plot is not None:
        files["plot"] = plot
    if problem is not None:
        result = result.with_updates(warnings=(*result.warnings, problem))
    config_dir = config.base_dir if config is not None else None
    files["result"] = runs.write_result(run_dir, result, config_dir)
    return files


def sweep(
    config: Config | str | os.PathLike[str],
    *,
    overrides: Sequence[str] = (),
    out: str | os.PathLike[str] | None = None,
    reporter: Reporter | None = None,
    stop: StopFlag | None = None,
    write: bool = True,
) -> SweepRun:
    """Run the range test a config describes and write its run directory.

    ``config`` is a loaded Config or the path of a config file (``overrides`` are ``--set``
    strings applied to it). Relative output paths (``out``, ``output.dir``) are read
    against the current directory when the call starts, and the working directory is put back
    afterwards should a component change it.

    Returns the SweepRun (result + files). When the run is interrupted the partial history, plot
    and a result.json with ``"complete": false`` are still written. Under a launcher (torchrun,
    ``--nproc``) the process group the sweep joined is left when it ends.

    Raises:
        ConfigError, ComponentError, DataError, SweepError, OutputError, DistributedError: as the
            failure demands. A failure while building the model, data and optimizer or in the
            first probe step leaves no run directory; a later one leaves the run directory with
            a result.json of status "failed" (or "interrupted"). When user code (the model's
            forward, the loss, the data...) raises mid-sweep, the steps recorded before it are
            written to history.csv and the error (a UserCodeError) names the component and step.
    """
    from lrfind.config.load import as_config

    config = as_config(config, overrides)
    # Fixed now, before any user code runs (a component may change the working directory).
    target = absolute(out) or output_dir(config) / config.name
    working_dir = Path.cwd()
    from lrfind.assembly.imports import config_folder_on_path
    from lrfind.engine import distributed

    try:
        with distributed.session(), config_folder_on_path(config.base_dir):
            return _sweep(config, target, out is not None, reporter, stop, write)
    finally:
        with contextlib.suppress(OSError):
            if Path.cwd() != working_dir:
                os.chdir(working_dir)


def _sweep(
    config: Config,
    target: Path,
    exact: bool,
    reporter: Reporter | None,
    stop: StopFlag | None,
    write: bool,
) -> SweepRun:
    from lrfind.engine import distributed
    from lrfind.engine.checkpoint import remove_stale_snapshots
    from lrfind.engine.collectives import failures_shared
    from lrfind.engine.state import reinitializer
    from lrfind.workflows.validate import setting_problems, setting_warnings

    context = distributed.current()
    session = context.session(config.distributed.strategy)
    snapshot_dir = absolute(config.sweep.snapshot_dir)
    # Under torch.distributed a rank's failure reaches the others with its message: here in
    # the set-up, then inside the range test (RangeTest.run shares its own).
    with failures_shared(session):
        problems = setting_problems(config)
        if problems:
            raise ConfigError(problems)
        if write and session.is_main and exact:
            check_out_dir(target)
        task, model, device = set_up_task(config, session=session, reporter=reporter, stop=stop)
        # Needs the loader's length (train.epochs), and still comes before the run directory.
        train = train_run(config, task.train_loader)
        run_dir: Path | None = None
        if write and session.is_main:
            run_dir = new_run_dir(config, target) if exact else runs.create_run_dir(target)
            runs.write_config(run_dir, config)
            runs.write_status(run_dir, config.name, "running")
            if config.sweep.snapshot == "disk" and snapshot_dir is None:
                # What runs killed by SIGKILL left in the run directories next to this one.
                remove_stale_snapshots(run_dir.parent, depth=1)
    try:
        runner = range_test_of(task, model, device, config, session, snapshot_dir or run_dir)
        info = _run_info(config, task, session)
        progress: Callable[[StepEvent], None] | None = None
        stage = getattr(reporter, "stage", None)
        if reporter is not None:
            progress = lambda e: reporter.step(e.step, e.steps, e.lr, e.loss, e.smoothed_loss)  # noqa: E731
        result = runner.run(
            config.sweep_options(),
            config.suggest_options(),
            train=train,
            info=info,
            progress=progress,
            on_trial=reporter.trial if reporter is not None and stage is None else None,
            stage_events=stage,
            stop=stop,
            reinitialize=reinitializer(task.model),
        )
        if stop is not None:
            stop.finishing = True
        sweep_done = getattr(reporter, "sweep_done", None)
        if sweep_done is not None:
            history = result.history
            sweep_done(history.steps, config.sweep.steps, history.stop_reason)
        notes = [*task.warnings, *setting_warnings(config)]
        if notes:
            result = result.with_updates(warnings=(*notes, *result.warnings))
    except UserCodeError as error:
        raise _user_code_failed(error, config, run_dir) from error.__cause__
    except LrfindError as error:
        if run_dir is not None:
            # A failure after the sweep (a disk snapshot of the trials) keeps the sweep.
            partial = error.partial if isinstance(error, SweepError) else None
            where = _mark_failed(run_dir, config, str(error), partial=partial)
            if where and error.args:
                error.args = (f"{error.args[0]}{where}", *error.args[1:])
        raise
    except KeyboardInterrupt:
        if run_dir is not None:
            _mark_failed(run_dir, config, "interrupted before the sweep started", "interrupted")
        raise
    except Exception as error:
        if run_dir is not None:
            _mark_failed(run_dir, config, f"{type(error).__name__}: {error}")
        raise
    files: dict[str, Path] = {}
    if run_dir is not None:
        try:
            files = write_run_files(result, config, run_dir)
        except OutputError as error:  # e.g. the disk filled up: the run did not complete
            _mark_failed(run_dir, config, str(error))
            raise
    return SweepRun(result=result, run_dir=run_dir, files=files, config=config)


def _run_info(config: Config, task: BuiltTask, session: Session) -> RunInfo:
    """What the result records about the config's run (the engine completes it)."""
    description = task.description
    return RunInfo(
        name=config.name,
        model=description.get("model", config.model.target),
        optimizer=description.get("optimizer", config.optimizer.name),
        loss=description.get("loss", str(config.loss)),
        batch_size=task.batch_size,
        world_size=session.world_size,
        seed=config.seed,
        strategy=session.recorded,
    )


def _component_label(config: Config, component: str) -> str:
    """The config key (and its value) of the component that raised."""
    if component == "data":
        return f"data.target ({config.data.target})"
    if component == "collate":
        return f"data.collate ({config.data.collate})"
    if component == "loss":
        loss = config.loss if isinstance(config.loss, str) else config.loss.target
        return f"loss ({loss})"
    if component == "step" and config.step:
        return f"step ({config.step})"
    if component == "optimizer step":
        return f"optimizer.name ({config.optimizer.name})"
    return f"model.target ({config.model.target})"


def _user_code_failed(error: UserCodeError, config: Config, run_dir: Path | None) -> UserCodeError:
    """The user's error, naming its config key; the steps recorded before it are written."""
    message = f"{_component_label(config, error.component)}: {error}"
    partial = error.partial
    if run_dir is not None:
        details: dict[str, Any] = {"component": error.component}
        if error.step is not None:
            details["failed_at_step"] = error.step
        # result.json records the error itself; the pointer to history.csv is for the reader.
        message += _mark_failed(run_dir, config, message, partial=partial, **details)
    failed = UserCodeError(message, error.component)
    failed.step, failed.partial = error.step, partial
    return failed


def _mark_failed(
    run_dir: Path,
    config: Config,
    message: str,
    status: runs.RunStatus = "failed",
    *,
    partial: object | None = None,
    **details: Any,
) -> str:
    """Record the failure in result.json and the steps recorded before it (``partial``, a
    History) in history.csv; return where those steps are, for the message ("" when none)."""
    where = ""
    # The original error matters more than a failure to record it.
    if isinstance(partial, History) and partial.steps:
        details["steps_recorded"] = partial.steps
        with contextlib.suppress(OutputError):
            runs.write_history(run_dir, partial)
            where = f"; the {partial.steps} step(s) before it are in {run_dir}"
    with contextlib.suppress(OutputError):
        runs.write_status(run_dir, config.name, status, message, **details)
    return where


def result_json(result: RangeTestResult, status: str | None = None) -> str:
    """Return the result.json text for ``--json`` output."""
    return json.dumps(runs.result_document(result, status), indent=2, allow_nan=False)


def load_run_config(run_dir: Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Return the resolved config saved in a run directory, resolving paths like the original.

    Raises:
        OutputError: ``run_dir`` has no config.yaml.
        ConfigError: the saved config no longer validates (e.g. after an upgrade).
    """
    from lrfind.config.load import load_config

    config_file = Path(run_dir) / runs.CONFIG_FILE
    if not config_file.is_file():
        raise OutputError(f"{run_dir}: no {runs.CONFIG_FILE} (not an lrfind run directory)")
    base_dir: Path | None = None
    result_file = Path(run_dir) / runs.RESULT_FILE
    if result_file.is_file():
        try:
            recorded = json.loads(result_file.read_text(encoding="utf-8")).get("config_dir")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if isinstance(recorded, str):
            base_dir = Path(recorded)
    return load_config(config_file, list(overrides), base_dir=base_dir)
