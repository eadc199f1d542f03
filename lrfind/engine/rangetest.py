"""``RangeTest``: one range test bound to a model, optimizer, loss and data (``range_test`` in
``lrfind.engine.library`` builds one). ``run`` tells the story: snapshot, sweep and repeats,
analyse, pick the trial stage and drive it, build the result; the model, optimizer, RNG and
data order are always put back exactly as they were.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from lrfind.analysis.budget import MAX_VAL_BATCHES, TrialPlan
from lrfind.analysis.horizon import RungPlan
from lrfind.analysis.refine import unconfirmed
from lrfind.analysis.suggest import analyze_repeats, reconcile_repeats
from lrfind.data.batches import InputsKey
from lrfind.data.loaders import present_loaders, reseed
from lrfind.data.model_outputs import ModelLoss, OutputKey
from lrfind.engine.checkpoint import exit_on_sigterm
from lrfind.engine.collectives import failures_shared, uneven_data_notes
from lrfind.engine.device import resolve_device
from lrfind.engine.evaluation import evaluate_batches, start_trial
from lrfind.engine.ladder import param_group_notes
from lrfind.engine.loop import sweep_loop
from lrfind.engine.options import (
    ComputeLoss,
    LossFn,
    StepEvent,
    StepFn,
    StopFlag,
    SweepOptions,
)
from lrfind.engine.run_info import describe_loss, run_info
from lrfind.engine.session import Session
from lrfind.engine.stages import StageContext, pick_stage
from lrfind.engine.state import (
    SnapshotStore,
    StateSnapshot,
    parameters_changed,
    restore_state,
    snapshot_state,
)
from lrfind.engine.steps import make_compute_loss
from lrfind.engine.trials import TrialEvent, TrialRunner, val_batches_in
from lrfind.errors import SweepError, UserCodeError
from lrfind.results import (
    Analysis,
    History,
    RangeTestResult,
    Refinement,
    RunInfo,
    TrainRun,
    Trial,
)
from lrfind.settings import RefineMode, SuggestOptions

#: What ``range_test(progress=...)`` receives: sweep steps, the trial plan, finished trials.
ProgressEvent = StepEvent | TrialPlan | RungPlan | TrialEvent


_Run = TypeVar("_Run", bound=Callable[..., Any])


def _across_ranks(run: _Run) -> _Run:
    """``RangeTest.run`` under torch.distributed: a rank's failure reaches the others (with its
    message, see ``failures_shared``), and the snapshots it took are released in every outcome,
    a disk snapshot's folder also on SIGTERM."""

    @functools.wraps(run)
    def wrapper(self: RangeTest, *args: Any, **kwargs: Any) -> Any:
        with failures_shared(self.session), self._released_snapshots():
            return run(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class RangeTest:
    """A range test bound to one model, optimizer, loss and data (the engine's user-facing form).

    ``run()`` returns a RangeTestResult and leaves the model and optimizer exactly as they were.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn | ModelLoss | None,
        train_loader: Iterable[Any],
        *,
        val_loader: Iterable[Any] | None = None,
        step_fn: StepFn | None = None,
        device: str | torch.device | None = None,
        inputs_key: InputsKey | None = None,
        targets_key: str | None = None,
        output_key: OutputKey | None = None,
        session: Session | None = None,
        process_group: Any = None,
        snapshot: SnapshotStore = "memory",
        snapshot_dir: str | Path | None = None,
    ) -> None:
        if snapshot not in ("memory", "disk"):
            raise ValueError(f"snapshot must be 'memory' or 'disk', got {snapshot!r}")
        self.model = model
        self.optimizer = optimizer
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.device = resolve_device(device, model)
        self.compute_loss: ComputeLoss = make_compute_loss(
            loss_fn, step_fn, inputs_key, targets_key, output_key
        )
        self.loss_name = describe_loss(loss_fn, step_fn)
        # Under torch.distributed every rank must take every decision together.
        self.session = session if session is not None else Session.of(model, process_group)
        self.reduce = self.session.reduce
        self.snapshot_store: SnapshotStore = snapshot
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else None
        self._snapshots: list[StateSnapshot] = []

    def _snapshot(self, *, keep: bool = True) -> StateSnapshot:
        """Snapshot the state (as ``snapshot``/``snapshot_dir`` say), released after ``run``
        (``keep=False``: the caller closes it, as the horizon stage does with pruned ones)."""
        taken = snapshot_state(
            self.model,
            self.optimizer,
            self._loaders(),
            store=self.snapshot_store,
            folder=self.snapshot_dir,
            session=self.session,
        )
        if keep:
            self._snapshots.append(taken)
        return taken

    @contextlib.contextmanager
    def _released_snapshots(self) -> Iterator[None]:
        guard = exit_on_sigterm() if self.snapshot_store == "disk" else contextlib.nullcontext()
        try:
            with guard:
                yield
        finally:
            for taken in self._snapshots:
                taken.close()
            self._snapshots.clear()

    def _uneven_data_notes(self) -> list[str]:
        if not self.session.distributed:
            return []
        return uneven_data_notes(self.train_loader, self.val_loader, self.session.process_group)

    def _loaders(self) -> list[Any]:
        return present_loaders(self.train_loader, self.val_loader)

    def sweep(
        self,
        options: SweepOptions,
        snapshot: StateSnapshot,
        *,
        progress: Callable[[StepEvent], None] | None = None,
        stop: StopFlag | None = None,
    ) -> tuple[History, tuple[str, ...]]:
        """Run one sweep from the snapshot's state; returns its history and notes.

        Raises:
            SweepError: the sweep cannot run, or the parameters never changed (frozen model).
        """
        outcome = sweep_loop(
            self.model,
            self.optimizer,
            self.compute_loss,
            self.train_loader,
            options,
            self.device,
            reduce=self.reduce,
            progress=progress,
            stop=stop,
            initial=snapshot,
        )
        history = outcome.history
        if (
            history.steps > 1
            and history.stop_reason != "non_finite"
            and not parameters_changed(snapshot, self.model, self.reduce)
        ):
            raise SweepError(
                "the optimizer never changed the parameters: the model is frozen, its gradients "
                "are zero, or the optimizer ignores the learning rate"
            )
        restore_state(snapshot, self.model, self.optimizer)
        return history, outcome.notes

    def _runner(self) -> TrialRunner:
        return TrialRunner(
            self.model,
            self.optimizer,
            self.compute_loss,
            self.train_loader,
            self.val_loader,
            self.device,
            self.session,
            take_snapshot=functools.partial(self._snapshot, keep=False),
        )

    @_across_ranks
    def run(
        self,
        options: SweepOptions,
        suggest: SuggestOptions = SuggestOptions(),
        *,
        train: TrainRun | None = None,
        info: RunInfo | None = None,
        progress: Callable[[StepEvent], None] | None = None,
        on_trial: Callable[[int, int, Trial], None] | None = None,
        stage_events: Callable[[TrialPlan | RungPlan | TrialEvent], None] | None = None,
        stop: StopFlag | None = None,
        reinitialize: Callable[[int], None] | None = None,
    ) -> RangeTestResult:
        """Run the full range test (``options``: the sweep; ``suggest``: the answer; ``train``:
        the run it is for); see ``range_test`` for the meaning of each setting.

        The story: snapshot the state; sweep (and repeat); analyse the curve; pick the trial
        stage (``lrfind.engine.stages.pick_stage``) and drive it; build the result. The model,
        optimizer, RNG and data order are put back in every outcome.

        ``on_trial(index, count, trial)`` reports each trial; ``stage_events`` receives the
        stage's plan before its first trial (``plan.describe()`` is a line for people), then a
        TrialEvent per trial. ``reinitialize(seed)``, when given, re-draws the model's initial
        weights before each repeat after the first (the CLI passes one so repeats vary the
        init as well).
        """
        budget = suggest.budget_for(train)
        seed = suggest.seed
        started = time.perf_counter()
        stop = stop or StopFlag()
        initial = self._snapshot()
        notes: list[str] = [*self._uneven_data_notes(), *param_group_notes(self.optimizer)]
        try:
            sweeps = self._sweeps(
                options, suggest.repeats, seed, stop, progress, reinitialize, initial
            )
            notes.extend(n for n in sweeps.notes if n not in notes)
            answer = analyze_repeats(sweeps.histories, suggest.method)
            history, analysis = answer.history, answer.analysis
            refine = suggest.refine
            wants_trials = refine == "on" or (refine == "auto" and self.val_loader is not None)
            complete = sweeps.complete
            refinement: Refinement | None = None
            if wants_trials and complete:
                context = StageContext(
                    history=answer.stage_history,
                    analysis=analysis,
                    budget=budget,
                    val_batches=val_batches_in(self.val_loader),
                    val_batch_cost=1 / options.accumulation_steps,
                    train=train,
                    candidates=suggest.refine_candidates,
                    steps=suggest.refine_steps,
                    drift_prior=suggest.drift_prior,
                    compress_schedule=suggest.compress_schedule,
                )
                analysis, refinement = self._trials(
                    context,
                    options,
                    initial,
                    stop,
                    on_plan=stage_events,
                    report=_trial_reporter(on_trial, stage_events),
                )
                complete = not stop.requested
                if not complete:
                    analysis = unconfirmed(analysis, REFINE_CUT_SHORT)
                    notes.append(REFINE_CUT_SHORT)
                elif answer.per_repeat:
                    analysis, _ = reconcile_repeats(
                        analysis, answer.per_repeat, history, after_trials=True
                    )
            if train is not None and not wants_trials and analysis.suggestion.lr is not None:
                analysis = unconfirmed(analysis, _no_trials_reason(train, refine))
        finally:
            restore_state(initial, self.model, self.optimizer)
        return RangeTestResult(
            history=history,
            analysis=analysis,
            info=run_info(
                info,
                model=self.model,
                optimizer=self.optimizer,
                loss_name=self.loss_name,
                train_loader=self.train_loader,
                device=self.device,
                options=options,
                seed=seed,
                train=train,
                seconds=time.perf_counter() - started,
                session=self.session,
            ),
            complete=complete,
            refinement=refinement,
            repeats=sweeps.histories if len(sweeps.histories) > 1 else (),
            repeat_suggestions=answer.repeat_lrs,
            warnings=tuple(notes),
        )

    @_across_ranks
    def trials_at(
        self,
        options: SweepOptions,
        lrs: Sequence[float],
        steps: int,
        *,
        lr_factor: Callable[[int], float] | None = None,
        stop: StopFlag | None = None,
        on_trial: Callable[[int, Trial], None] | None = None,
    ) -> tuple[list[Trial], Trial]:
        """Train ``steps`` steps at each of ``lrs`` from the current state (``lrfind verify``),
        through the same snapshot store and trial runner as ``run``; return the trials (fewer
        after a stop) and the untrained model's score (its validation pass, else the training
        data's). ``lr_factor(step)``: the schedule the trials follow (None: constant LR).
        The state is put back afterwards.
        """
        snapshot = self._snapshot()
        runner = self._runner()
        try:
            start = evaluate_batches(
                self.model,
                self.compute_loss,
                self.val_loader if self.val_loader is not None else self.train_loader,
                self.device,
                precision=options.precision,
                max_batches=MAX_VAL_BATCHES,
                session=self.session,
            )
        finally:
            restore_state(snapshot, self.model, self.optimizer)
        trials = runner.run_lrs(
            lrs, steps, options, snapshot, stop=stop, on_trial=on_trial, lr_factor=lr_factor
        )
        return trials, start_trial(start)

    def _sweeps(
        self,
        options: SweepOptions,
        repeats: int,
        seed: int | None,
        stop: StopFlag,
        progress: Callable[[StepEvent], None] | None,
        reinitialize: Callable[[int], None] | None,
        initial: StateSnapshot,
    ) -> Sweeps:
        """The sweep and its repeats (each from reseeded data order, re-drawn weights when
        ``reinitialize`` is given); a repeat cut short by a stop request is left out."""
        snapshot = initial
        histories: list[History] = []
        notes: list[str] = []
        for repeat in range(repeats):
            if repeat > 0:
                reseed((seed or 0) + repeat, self._loaders())
                if reinitialize is not None:
                    reinitialize((seed or 0) + repeat)
                snapshot = self._snapshot()
            history, sweep_notes = self.sweep(options, snapshot, progress=progress, stop=stop)
            histories.append(history)
            notes.extend(n for n in sweep_notes if n not in notes)
            if history.stop_reason == "interrupted":
                break
        cut = len(histories) > 1 and histories[-1].stop_reason == "interrupted"
        if cut:
            # Averaged in, the cut repeat would truncate the finished ones to its length.
            histories.pop()
            notes.append(
                f"repeat {len(histories) + 1} of {repeats} was cut short by a stop request: "
                f"the answer is read from the {len(histories)} completed repeat(s) only"
            )
        complete = histories[-1].stop_reason != "interrupted" and not cut
        return Sweeps(tuple(histories), tuple(notes), complete)

    def _trials(
        self,
        context: StageContext,
        options: SweepOptions,
        snapshot: StateSnapshot,
        stop: StopFlag,
        *,
        on_plan: Callable[[TrialPlan | RungPlan], None] | None,
        report: Callable[[TrialEvent], None] | None,
    ) -> tuple[Analysis, Refinement | None]:
        """Pick the stage and drive it; the final analysis and its record (None: no trials, or
        a stop cut the stage short: the trials that finished before it are kept)."""
        choice = pick_stage(context)
        analysis = context.analysis
        if choice.stage is None:
            reason = choice.reason
            return (analysis if reason is None else unconfirmed(analysis, reason)), None
        # Trials that finished before any stop request: kept should the stage be cut.
        finished: list[TrialEvent] = []

        def keep_finished(event: TrialEvent) -> None:
            if not stop.raised:
                finished.append(event)
            if report is not None:
                report(event)

        started = time.perf_counter()
        try:
            outcome = self._runner().drive(
                choice.stage, snapshot, options, stop=stop, on_plan=on_plan, on_trial=keep_finished
            )
        except SweepError as error:
            if error.partial is None:  # the whole sweep was recorded: keep it
                error.partial = context.history
                if isinstance(error, UserCodeError):
                    error.args = (f"{error.args[0]}, in a refine/search trial",)
            raise
        except KeyboardInterrupt:
            # A second Ctrl-C after a stop request: end like the first one did.
            if self.reduce is not None or not stop.raised:
                raise
            outcome = None
        if outcome is not None:
            return outcome
        if not finished:
            return analysis, None
        return analysis, Refinement(
            trials=tuple(event.trial for event in finished),
            chosen_lr=None,
            steps_per_trial=max(event.trial.steps for event in finished),
            seconds=time.perf_counter() - started,
            metric=choice.stage.settings.metric,
            stage=finished[0].stage,
        )


@dataclass(frozen=True)
class Sweeps:
    """The sweep and its repeats: the histories kept, notes, and whether they all finished."""

    histories: tuple[History, ...]
    notes: tuple[str, ...]
    complete: bool


def _no_trials_reason(train: TrainRun, refine: RefineMode) -> str:
    """Why a stated run got the sweep's answer: trials were off, or there was no validation
    data to score them."""
    if refine == "off":
        return (
            f"no trials toward {train.describe()}: refine is off; the answer is the sweep's "
            "(refine: auto with validation data, or on, trains them)"
        )
    return (
        f"no trials toward {train.describe()}: there is no validation data "
        "(refine: auto); the answer is the sweep's (refine: on trains them anyway)"
    )


#: Said when a stop request ends the refine/search stage before it could choose.
REFINE_CUT_SHORT = (
    "the refine/search stage was cut short by a stop request: the answer is the sweep's alone, "
    "unconfirmed by constant-LR trials"
)


def _trial_reporter(
    on_trial: Callable[[int, int, Trial], None] | None,
    stage_events: Callable[[TrialPlan | RungPlan | TrialEvent], None] | None,
) -> Callable[[TrialEvent], None] | None:
    """One TrialEvent callback that feeds both ways of listening to trials."""
    if on_trial is None and stage_events is None:
        return None

    def report(event: TrialEvent) -> None:
        if on_trial is not None:
            on_trial(event.index, event.count, event.trial)
        if stage_events is not None:
            stage_events(event)

    return report
