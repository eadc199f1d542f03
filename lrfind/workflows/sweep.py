"""`lrfind sweep`: config -> run directory with result.json, history.csv, config.yaml and a plot."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lrfind.config.schema import Config
from lrfind.errors import Interrupted, LrfindError, OutputError
from lrfind.outputs import runs
from lrfind.results import RangeTestResult, RunInfo, Trial

if TYPE_CHECKING:
    from lrfind.analysis.budget import TrialPlan
    from lrfind.engine.options import StepEvent, StopFlag
    from lrfind.engine.trials import TrialEvent


class Reporter(Protocol):
    """What a sweep reports progress to (``lrfind.console.SweepProgress`` implements it)."""

    def phase(self, message: str) -> None: ...

    def step(self, step: int, steps: int, lr: float, loss: float, smoothed: float) -> None: ...

    def trial(self, index: int, count: int, trial: Trial) -> None: ...


class StageReporter(Reporter, Protocol):
    """A reporter that also follows the refine/search stage: its plan, then each trial.

    ``stage`` receives the stage's TrialPlan before its first trial, then a TrialEvent per
    trial (instead of ``trial``); ``sweep_done`` is called once the sweep itself has ended.
    """

    def stage(self, event: TrialPlan | TrialEvent) -> None: ...

    def sweep_done(self, steps: int, planned: int, stop_reason: str) -> None: ...


@dataclass(frozen=True)
class SweepRun:
    """A finished (or interrupted) sweep: its result and the files written for it.

    ``run_dir`` is None on the non-zero ranks of a multi-process run (only rank 0 writes).
    """

    result: RangeTestResult
    run_dir: Path | None
    files: dict[str, Path] = field(default_factory=dict)
    config: Config | None = None


def new_run_dir(config: Config, out: Path | None = None) -> Path:
    """Create the run directory: ``out`` itself when given, else ``<output.dir>/<name>/<stamp>``.

    An existing non-empty ``out`` is refused, so no run is ever overwritten.

    Raises:
        OutputError: ``out`` exists and is not an empty folder, or it cannot be created.
    """
    if out is None:
        return runs.create_run_dir(Path(config.output.dir), config.name)
    out = Path(out)
    if check_out_dir(out):
        _check_writable(out)
        return out
    try:
        out.mkdir(parents=True)
    except OSError as error:
        raise OutputError(f"cannot create {out}: {error.strerror}") from error
    return out


def check_out_dir(out: Path) -> bool:
    """Check that ``out`` can become a run directory, without creating anything.

    Returns True when ``out`` is an existing empty folder, False when it does not exist yet.

    Raises:
        OutputError: ``out`` is a file or a folder that is not empty.
    """
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


def _status_document(config: Config, status: str, error: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema_version": 1,
        "complete": False,
        "status": status,
        "name": config.name,
    }
    if error is not None:
        document["error"] = error
    return document


def write_run_files(
    result: RangeTestResult, config: Config | None, run_dir: Path
) -> dict[str, Path]:
    """Write history.csv, the PNG and result.json (last, so it marks the run done); return paths.

    A plot that fails to render becomes a warning in result.json rather than losing the run.

    Raises:
        OutputError: history.csv or result.json cannot be written.
    """
    files: dict[str, Path] = {}
    if config is not None and not (run_dir / runs.CONFIG_FILE).exists():
        files["config"] = runs.atomic_write_text(run_dir / runs.CONFIG_FILE, config.to_yaml())
    elif (run_dir / runs.CONFIG_FILE).exists():
        files["config"] = run_dir / runs.CONFIG_FILE
    files["history"] = runs.atomic_write_text(
        run_dir / runs.HISTORY_FILE, runs.history_to_csv(result.history)
    )
    from lrfind.outputs.plot.guard import plot_or_warning
    from lrfind.outputs.plot.single import plot_result

    plot, problem = plot_or_warning(lambda: plot_result(result, run_dir / runs.PLOT_FILE))
    if plot is not None:
        files["plot"] = plot
    if problem is not None:
        result = result.with_updates(warnings=(*result.warnings, problem))
    document = result.to_dict()
    document["status"] = "complete" if result.complete else "interrupted"
    if config is not None:
        document["config_dir"] = str(config.base_dir)
    files["result"] = runs.write_json(run_dir / runs.RESULT_FILE, document)
    return files


def sweep(
    config: Config | str | Path,
    *,
    overrides: Sequence[str] = (),
    out: Path | None = None,
    reporter: Reporter | None = None,
    stop: StopFlag | None = None,
    write: bool = True,
) -> SweepRun:
    """Run the range test a config describes and write its run directory.

    ``config`` is a loaded Config or the path of a config file (``overrides`` are ``--set``
    strings applied when loading it).

    Returns the SweepRun (result + files). When the run is interrupted the partial history, plot
    and a result.json with ``"complete": false`` are still written.

    Raises:
        ConfigError, ComponentError, DataError, SweepError, OutputError, DistributedError: as the
            failure demands. A failure while building the model, data and optimizer or in the
            first probe step leaves no run directory; a later one leaves the run directory with
            a result.json of status "failed" (or "interrupted").
    """
    from lrfind.config.load import load_config

    if not isinstance(config, Config):
        config = load_config(Path(config), list(overrides))
    from lrfind.build.probe import probe_task
    from lrfind.build.task import build_task
    from lrfind.engine import distributed
    from lrfind.engine.device import resolve_device
    from lrfind.engine.options import sweep_options
    from lrfind.engine.rangetest import RangeTest
    from lrfind.engine.state import reinitializer

    context = distributed.current()
    device = resolve_device(config.device) if context.device is None else context.device
    if write and context.is_main and out is not None:
        check_out_dir(out)
    if reporter is not None:
        reporter.phase(f"building {config.model.target} on {config.data.target} ({device})")
    # Components are built and probed before the run directory exists: a config that cannot
    # even take one step leaves nothing behind to clean up.
    task = build_task(config, device, context.rank, context.world_size)
    probe_task(task, device)
    # One process only: under torch.distributed the ranks agree on a stop inside the sweep.
    if stop is not None and stop.requested and context.world_size == 1:
        raise Interrupted("interrupted while setting up, before the sweep started; nothing written")
    run_dir: Path | None = None
    if write and context.is_main:
        run_dir = new_run_dir(config, out)
        runs.atomic_write_text(run_dir / runs.CONFIG_FILE, config.to_yaml())
        runs.write_json(run_dir / runs.RESULT_FILE, _status_document(config, "running"))
    try:
        model = context.wrap_model(task.model, device)
        runner = RangeTest(
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
            reduce=context.reduce,
        )
        description = task.description
        info = RunInfo(
            name=config.name,
            model=description.get("model", config.model.target),
            optimizer=description.get("optimizer", config.optimizer.name),
            loss=description.get("loss", str(config.loss)),
            batch_size=task.batch_size,
            world_size=context.world_size,
            seed=config.seed,
        )
        progress: Callable[[StepEvent], None] | None = None
        stage = getattr(reporter, "stage", None)
        if reporter is not None:
            progress = lambda e: reporter.step(e.step, e.steps, e.lr, e.loss, e.smoothed_loss)  # noqa: E731
        result = runner.run(
            sweep_options(config),
            method=config.suggest.method,
            refine=config.suggest.refine,
            refine_steps=config.suggest.refine_steps,
            refine_candidates=config.suggest.refine_candidates,
            budget=config.suggest.budget,
            repeats=config.sweep.repeats,
            seed=config.seed,
            info=info,
            progress=progress,
            on_trial=reporter.trial if reporter is not None and stage is None else None,
            stage_events=stage,
            stop=stop,
            reinitialize=reinitializer(task.model),
        )
        context.unwrap_model(model)
        sweep_done = getattr(reporter, "sweep_done", None)
        if sweep_done is not None:
            history = result.history
            sweep_done(history.steps, config.sweep.steps, history.stop_reason)
        if task.warnings:
            result = result.with_updates(warnings=(*task.warnings, *result.warnings))
    except LrfindError as error:
        if run_dir is not None:
            _mark_failed(run_dir, config, str(error))
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


def _mark_failed(run_dir: Path, config: Config, message: str, status: str = "failed") -> None:
    # The original error matters more than a failure to record it.
    with contextlib.suppress(OutputError):
        runs.write_json(run_dir / runs.RESULT_FILE, _status_document(config, status, message))


def result_json(result: RangeTestResult, status: str | None = None) -> str:
    """Return the result.json text for ``--json`` output."""
    document = result.to_dict()
    document["status"] = status or ("complete" if result.complete else "interrupted")
    return json.dumps(document, indent=2, allow_nan=False)


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
