"""`lrfind verify`: constant-LR trials around a suggestion, a verdict, verify.json, a plot."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lrfind.analysis.choose import TIE_STANDARD_ERRORS, Verdict, judge, score
from lrfind.config.schema import Config
from lrfind.errors import ConfigError, Interrupted, NoReliableSuggestion, OutputError
from lrfind.format import format_lr
from lrfind.outputs import runs
from lrfind.results import RangeTestResult, TrainRun, Trial

if TYPE_CHECKING:
    from lrfind.engine.options import StopFlag
    from lrfind.workflows.sweep import Reporter, SweepRun

#: Multipliers of the suggestion tried by ``--lrs auto`` (the range's max_lr is added too).
AUTO_FACTORS = (0.1, 1 / 3, 1.0, 3.0)

#: Auto LRs closer than this (relative) to one already chosen are dropped as duplicates.
AUTO_DEDUPE = 0.2

VERIFY_JSON = "verify.json"

#: verify.json's ``schema_version``.
VERIFY_SCHEMA_VERSION = 1

VERIFY_PNG = "verify.png"

VERIFY_DIR = "verify"


def parse_lrs(text: str | None) -> list[float] | None:
    """Parse ``--lrs``: ``auto`` (or None) -> None, else a comma-separated list of positive LRs.

    Returns the LRs sorted and without duplicates.

    Raises:
        ConfigError: an item that is not a number, or one that is not a positive finite number.
    """
    if text is None or text.strip().lower() == "auto":
        return None
    lrs: list[float] = []
    for item in text.split(","):
        item = item.strip()
        try:
            lr = float(item)
        except ValueError:
            raise ConfigError(
                f"--lrs: {item!r} is not a number (use auto or a list like 1e-3,3e-3,1e-2)"
            ) from None
        if not math.isfinite(lr) or lr <= 0:
            raise ConfigError(f"--lrs: learning rates must be positive, got {item}")
        lrs.append(lr)
    return sorted(set(lrs))


def auto_lrs(suggested_lr: float, max_lr: float | None = None) -> list[float]:
    """Return the default trial LRs: suggestion x (1/10, 1/3, 1, 3) and ``max_lr``, sorted.

    An LR within 20% of one already chosen is dropped (the suggestion itself always stays).

    Raises:
        ValueError: ``suggested_lr`` is not a positive finite number.
    """
    if not math.isfinite(suggested_lr) or suggested_lr <= 0:
        raise ValueError(f"the suggested LR must be positive, got {suggested_lr!r}")
    candidates = [suggested_lr, *(suggested_lr * f for f in AUTO_FACTORS if f != 1.0)]
    if max_lr is not None and math.isfinite(max_lr) and max_lr > 0:
        candidates.append(max_lr)
    chosen: list[float] = []
    for lr in candidates:
        if all(not math.isclose(lr, kept, rel_tol=AUTO_DEDUPE) for kept in chosen):
            chosen.append(lr)
    return sorted(chosen)


def with_suggestion(lrs: Sequence[float], suggested_lr: float | None) -> list[float]:
    """Return ``lrs`` sorted, with the suggestion added when it is not already among them."""
    chosen = sorted(set(lrs))
    if suggested_lr is not None and all(
        not math.isclose(lr, suggested_lr, rel_tol=1e-6) for lr in chosen
    ):
        chosen = sorted([*chosen, suggested_lr])
    return chosen


@dataclass(frozen=True)
class VerifyRun:
    """A finished verify: the trials, the verdict and where they were written.

    ``sweep`` is set when the verify started from a config (the sweep ran first).
    """

    target: Path
    out_dir: Path
    lrs: tuple[float, ...]
    steps: int
    trials: tuple[Trial, ...]
    verdict: Verdict
    max_lr: float | None
    seconds: float
    complete: bool = True
    files: dict[str, Path] = field(default_factory=dict)
    sweep: SweepRun | None = None
    trained: str = "constant LR"

    def to_dict(self) -> dict[str, Any]:
        """Return the verify.json document."""
        verdict = self.verdict
        status = "interrupted"
        if self.complete:
            status = {True: "confirmed", False: "not_confirmed", None: "no_suggestion"}[
                verdict.confirmed
            ]
        return {
            "schema_version": VERIFY_SCHEMA_VERSION,
            "status": status,
            "complete": self.complete,
            "target": str(self.target),
            "run_dir": str(self.sweep.run_dir) if self.sweep is not None else str(self.target),
            "suggested_lr": verdict.suggested_lr,
            "max_lr": self.max_lr,
            "confirmed": verdict.confirmed,
            "message": verdict.message,
            "metric": verdict.metric,
            "tie_standard_errors": TIE_STANDARD_ERRORS,
            "standard_error": _finite(verdict.standard_error),
            "best_lr": verdict.best_lr,
            "best_score": verdict.best_score,
            "suggested_score": verdict.suggested_score,
            "improvement": _finite(verdict.improvement),
            "note": verdict.note,
            "steps_per_trial": self.steps,
            "trained": self.trained,
            "seconds": round(self.seconds, 3),
            "trials": [
                {**trial.to_dict(), "score": _finite(score(trial, verdict.metric))}
                for trial in self.trials
            ],
        }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def trial_rows(run: VerifyRun) -> list[tuple[str, ...]]:
    """Return the human table's rows: LR, train loss, val loss, status (best / suggested)."""
    rows: list[tuple[str, ...]] = []
    verdict = run.verdict
    for trial in run.trials:
        marks = []
        if verdict.suggested_lr is not None and math.isclose(trial.lr, verdict.suggested_lr):
            marks.append("suggested")
        if verdict.best_lr is not None and trial.lr == verdict.best_lr:
            marks.append("best")
        if trial.diverged:
            marks.append("diverged")
        rows.append(
            (
                format_lr(trial.lr),
                "—" if not math.isfinite(trial.train_loss) else f"{trial.train_loss:.4g}",
                "—" if trial.val_loss is None else f"{trial.val_loss:.4g}",
                ", ".join(marks),
            )
        )
    return rows


TRIAL_HEADERS = ("LR", "train loss", "val loss", "note")


def _target_kind(target: Path) -> Literal["run", "config"]:
    if target.is_dir():
        return "run"
    if target.is_file():
        return "config"
    raise OutputError(f"{target}: no such run directory or config file")


def _claim_out_dir(run_dir: Path, out: Path | None, config: Config) -> Path:
    """Create the verify folder exclusively: ``out`` (new or empty) or ``<run_dir>/verify``."""
    from lrfind.workflows.sweep import new_run_dir

    if out is not None:
        return new_run_dir(config, out)
    folder = run_dir / VERIFY_DIR
    try:
        folder.mkdir()
    except FileExistsError:
        raise OutputError(
            f"{folder} already exists (verify ran before): pass --out DIR to write elsewhere"
        ) from None
    except OSError as error:
        raise OutputError(f"cannot create {folder}: {error.strerror}") from error
    return folder


def verify(
    target: Config | str | os.PathLike[str],
    *,
    lrs: Sequence[float] | None = None,
    steps: int | None = None,
    out: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    reporter: Reporter | None = None,
    stop: StopFlag | None = None,
) -> VerifyRun:
    """Verify the suggestion of a saved run (``target`` a run dir) or of a fresh sweep (a loaded
    Config or the path of a config file; ``target`` is then recorded as the config's file, else
    as the sweep's run dir).

    ``lrs`` None means ``auto_lrs``; explicit LRs get the suggestion added. ``steps`` per trial
    defaults to ``suggest.refine_steps`` or twice ``sweep.steps`` (as in the refine stage).
    Outputs (verify.json, verify.png) go to ``out``, else ``<run dir>/verify/`` for a run dir,
    else the new sweep's run dir (for a config, ``out`` is the sweep's run dir, as for
    ``lrfind sweep --out``).

    Raises:
        ConfigError: ``steps`` below 1, or an invalid config / ``overrides``.
        OutputError: ``target`` is neither a run dir nor a file, or the output folder exists.
        NoReliableSuggestion: no suggestion to verify and no explicit ``lrs``.
        Interrupted: stopped by a signal (partial verify.json written when trials ran).
        LrfindError: every error ``sweep`` raises.
    """
    from lrfind.config.load import as_config
    from lrfind.workflows.sweep import absolute, load_run_config, sweep

    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    # Fixed before any user code runs: a component may change the working directory.
    out = absolute(out)
    if not isinstance(target, Config):
        target = Path.cwd() / Path(target)
    sweep_run: SweepRun | None = None
    if isinstance(target, Path) and _target_kind(target) == "run":
        result = runs.load_run(target)
        config = load_run_config(target, list(overrides))
        _require_answer(result, lrs, target)
        out_dir = _claim_out_dir(target, out, config)
    else:
        config = as_config(target, overrides)
        sweep_run = sweep(config, out=out, reporter=reporter, stop=stop)
        result = sweep_run.result
        if sweep_run.run_dir is None:
            raise OutputError("verify runs in a single process; drop --nproc")
        if not result.complete:
            raise Interrupted(f"interrupted; partial results in {sweep_run.run_dir}")
        _require_answer(result, lrs, sweep_run.run_dir)
        out_dir = sweep_run.run_dir
        target = config.source or sweep_run.run_dir
    train = result.info.train
    trial_steps, trained = trial_length(config, train, steps)
    suggested = result.suggestion.lr
    max_lr = result.lr_range.max_lr
    if lrs is None:
        assert suggested is not None  # _require_answer
        chosen = auto_lrs(suggested, max_lr)
    else:
        chosen = with_suggestion(lrs, suggested)
    if reporter is not None:
        reporter.phase(
            f"verifying {len(chosen)} learning rates x {trial_steps} steps from the same start"
            f" ({trained})"
        )
    started = time.perf_counter()
    from lrfind.assembly.imports import config_folder_on_path

    with config_folder_on_path(config.base_dir):
        ran = run_trials(
            config,
            chosen,
            trial_steps,
            train=train,
            snapshot_dir=absolute(config.sweep.snapshot_dir) or out_dir,
            reporter=reporter,
            stop=stop,
        )
    trials = ran.trials
    verdict = judge(trials, suggested, start=ran.start or ran.start_score)
    complete = len(trials) == len(chosen)
    run = VerifyRun(
        target=target,
        out_dir=out_dir,
        lrs=tuple(chosen),
        steps=trial_steps,
        trials=trials,
        verdict=verdict,
        max_lr=max_lr,
        seconds=time.perf_counter() - started,
        complete=complete,
        sweep=sweep_run,
        trained=trained,
    )
    title = "constant-LR trials" if train is None or train.schedule == "constant" else trained
    run = write_verify(run, title=f"{config.name}: {title}")
    if not complete:
        raise Interrupted(f"interrupted; partial results in {out_dir}")
    return run


#: Verify trains a stated run at its full length up to this many sweeps' steps per trial; a
#: longer run is verified on a share of it, its schedule compressed to that share.
VERIFY_MAX_SWEEPS = 10


def trial_length(config: Config, train: TrainRun | None, steps: int | None) -> tuple[int, str]:
    """Steps per verify trial and what they train, in words.

    ``steps`` (``--steps``) as given; else for a stated run its length, at most
    VERIFY_MAX_SWEEPS sweeps (the share said); else ``suggest.refine_steps`` or twice the
    sweep (as the refine stage).
    """
    from lrfind.analysis.budget import REFINE_STEPS_PER_SWEEP_STEP

    if train is None:
        length = (
            steps or config.suggest.refine_steps or REFINE_STEPS_PER_SWEEP_STEP * config.sweep.steps
        )
        return length, "constant LR"
    length = steps or min(train.steps, VERIFY_MAX_SWEEPS * config.sweep.steps)
    schedule = "constant LR" if train.schedule == "constant" else f"its {train.schedule} schedule"
    if length >= train.steps:
        return length, f"the stated run ({train.describe()}), {schedule}"
    return length, (
        f"{length / train.steps:.2g} of the stated run ({train.describe()}), {schedule}"
        + ("" if train.schedule == "constant" else " compressed to it")
    )


def _require_answer(result: RangeTestResult, lrs: Sequence[float] | None, where: Path) -> None:
    """Raise NoReliableSuggestion when there is neither a suggestion nor explicit LRs."""
    if result.suggestion.lr is not None or lrs is not None:
        return
    why = result.suggestion.reason or "; ".join(result.confidence.reasons[:1])
    detail = f" ({' '.join(why.split())})" if why else ""
    raise NoReliableSuggestion(
        f"{where}: no reliable suggestion to verify{detail}; pass --lrs to try LRs anyway"
    )


def write_verify(run: VerifyRun, title: str | None = None) -> VerifyRun:
    """Write verify.png and verify.json into ``run.out_dir``; return the run with ``files``.

    A plot that fails to render is noted in verify.json instead of losing the numbers.

    Raises:
        OutputError: verify.json cannot be written.
    """
    from lrfind.outputs.plot.guard import plot_or_warning
    from lrfind.outputs.plot.trials import plot_trials

    files: dict[str, Path] = {}
    plot, plot_error = plot_or_warning(
        lambda: plot_trials(
            run.trials,
            run.out_dir / VERIFY_PNG,
            run.verdict.suggested_lr,
            run.verdict.best_lr,
            title=title,
        )
    )
    if plot is not None:
        files["plot"] = plot
    run = replace(run, files=files)
    document = run.to_dict()
    if plot_error is not None:
        document["warnings"] = [plot_error]
    files["json"] = runs.atomic_write_text(
        run.out_dir / VERIFY_JSON, json.dumps(document, indent=2, allow_nan=False) + "\n"
    )
    return run


@dataclass(frozen=True)
class TrialSet:
    """The trials that ran (fewer than asked after a stop) and the metric before training."""

    trials: tuple[Trial, ...]
    start_score: float | None
    start: Trial | None = None


def run_trials(
    config: Config,
    lrs: Sequence[float],
    steps: int,
    *,
    train: TrainRun | None = None,
    snapshot_dir: Path | None = None,
    reporter: Reporter | None = None,
    stop: StopFlag | None = None,
) -> TrialSet:
    """Build the config's task as ``sweep`` does and train ``steps`` steps at each LR from the
    same initial state (``sweep.snapshot`` as configured; a disk snapshot under
    ``snapshot_dir``, default the system's temporary folder).

    ``train``: a stated run whose schedule the trials follow, compressed to ``steps`` (None or
    constant: a constant LR). Returns one Trial per LR that ran (fewer when a stop was
    requested) and the score of the untrained model (validation loss, else training loss, on up
    to ``MAX_VAL_BATCHES`` batches). Every trial starts where the sweep started.

    Raises:
        ComponentError, DataError, SweepError: the task cannot be built or trained.
    """
    from lrfind.analysis.horizon import schedule_factor
    from lrfind.engine.session import SINGLE
    from lrfind.workflows.task_setup import range_test_of, set_up_task

    task, model, device = set_up_task(config, reporter=reporter, stop=stop, session=SINGLE)
    tester = range_test_of(task, model, device, config, SINGLE, snapshot_dir)
    lr_factor = None
    if train is not None and not (train.schedule == "constant" and train.warmup == 0):

        def lr_factor(step: int) -> float:
            return schedule_factor(step, steps, train)

    def report(index: int, trial: Trial) -> None:
        if reporter is not None:
            reporter.trial(index, len(lrs), trial)

    trials, start = tester.trials_at(
        config.sweep_options(), lrs, steps, lr_factor=lr_factor, stop=stop, on_trial=report
    )
    start_score = (
        start.val_loss if start.val_loss is not None and math.isfinite(start.val_loss) else None
    )
    paired = start if task.val_loader is not None and start_score is not None else None
    return TrialSet(tuple(trials), start_score, paired)
