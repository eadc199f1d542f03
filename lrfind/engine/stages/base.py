"""What a trial stage is: the interface every stage implements and the one driver runs.

A stage (refine, search, the horizon rungs) is a small object built from its plan: it says
which trials to run first, proposes the next ones from those done, and chooses the answer.
It never trains: ``TrialRunner.drive`` (``lrfind.engine.trials``) runs every stage's trials,
continues paused ones, counts the cost and reports progress. A new stage is one new module
under ``lrfind/engine/stages/`` and one line in ``pick.py``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lrfind.analysis.budget import TrialPlan
from lrfind.analysis.choose import scored_metric
from lrfind.analysis.horizon import RungPlan, carry_to_run
from lrfind.results import Analysis, Drift, History, Refinement, TrainRun, Trial


@dataclass(frozen=True)
class TrialRequest:
    """One trial a stage asks for: ``lr`` trained until ``steps`` steps from the snapshot.

    ``pause``: keep the trial's state afterwards, so that a later request for the same LR
    continues it (weights, optimizer, RNG; the data order replayed) instead of starting over.
    """

    lr: float
    steps: int
    pause: bool = False


@dataclass(frozen=True)
class Proposal:
    """A stage's next trials, and the paused candidates it will not continue."""

    requests: Sequence[TrialRequest] = ()
    drop: Sequence[float] = ()


@dataclass(frozen=True)
class TrialSettings:
    """How every trial of a stage runs.

    ``val_batches``: the batches each validation pass reads (None without validation data);
    ``val_batch_cost``: what one costs, in sweep steps; ``lr_factor(step)``: the schedule the
    trials follow (None: constant); ``reference_loss``: what divergence is judged against
    (None: each trial's first loss); ``start_from``: a sweep whose untrained model is scored
    before any trial (the search stage's baseline), or None.
    """

    val_batches: int | None
    val_batch_cost: float
    lr_factor: Callable[[int], float] | None = None
    reference_loss: float | None = None
    start_from: History | None = field(default=None, repr=False)

    @property
    def metric(self) -> str:
        """What the trials are scored on."""
        return scored_metric(self.val_batches is not None)


class TrialStage(Protocol):
    """The interface of a trial stage (see the module docstring)."""

    @property
    def name(self) -> str:
        """The stage's name in events and records ("refine", "search", "horizon")."""
        ...

    @property
    def plan(self) -> TrialPlan | RungPlan:
        """The plan it was built from (reported before its first trial)."""
        ...

    @property
    def settings(self) -> TrialSettings:
        """How its trials run."""
        ...

    @property
    def planned(self) -> int:
        """Trials planned so far (a progress total: grows when the stage extends)."""
        ...

    def first(self) -> list[TrialRequest]:
        """The trials that run in any case."""
        ...

    def record(self, trial: Trial) -> None:
        """Take one finished trial (in the order requested)."""
        ...

    def propose(self, cost: float) -> Proposal:
        """The next trials once the queue is empty (none: the stage is done); ``cost`` is what
        the stage has spent so far, in sweep steps."""
        ...

    def finish(
        self, start: Trial | float | None, cost: float, seconds: float
    ) -> tuple[Analysis, Refinement]:
        """The final analysis and the stage's record; ``start`` is the untrained model's
        score when ``settings.start_from`` asked for one."""
        ...


class FixedLengthStage(abc.ABC):
    """The shared part of refine and search: every trial trains the plan's length from the
    snapshot; once the first trials ran, ``next_lr(trials)`` adds one more at a time while a
    whole trial still fits the plan's allowance (a diverged trial stops early and leaves what
    it did not spend to further trials). ``carry``: the stated run and the drift prior, when
    the answer is to be carried there (the trials answer for runs as long as themselves)."""

    name: str

    def __init__(
        self,
        plan: TrialPlan,
        first: Sequence[float],
        next_lr: Callable[[list[Trial]], float | None],
        settings: TrialSettings,
        carry: tuple[TrainRun, float] | None = None,
    ) -> None:
        self.plan = plan
        self.carry = carry
        self.settings = settings
        self._first = list(first[: plan.trials])
        self._next_lr = next_lr
        self._planned = len(self._first)
        self.trials: list[Trial] = []

    @property
    def planned(self) -> int:
        """Trials planned so far."""
        return self._planned

    def first(self) -> list[TrialRequest]:
        """The first window's trials."""
        return [TrialRequest(lr, self.plan.steps) for lr in self._first]

    def record(self, trial: Trial) -> None:
        """Take one finished trial."""
        self.trials.append(trial)

    def propose(self, cost: float) -> Proposal:
        """One more trial while a whole one still fits the allowance and the rule asks."""
        allowance = self.plan.cost_steps - self.plan.start_cost
        if cost + self.plan.trial_cost > allowance + 1e-9:
            return Proposal()
        extra = self._next_lr(self.trials)
        if extra is None:
            return Proposal()
        self._planned = max(self._planned, len(self.trials) + 1)
        return Proposal([TrialRequest(extra, self.plan.steps)])

    @abc.abstractmethod
    def finish(
        self, start: Trial | float | None, cost: float, seconds: float
    ) -> tuple[Analysis, Refinement]:
        """The final analysis and the stage's record."""

    def carried(self, chosen: Analysis, measured: str) -> tuple[Analysis, Drift | None]:
        """``chosen`` carried to the stated run by the prior (``carry_to_run``) when the stage
        was given one to carry to (``carry``), else as it is."""
        if self.carry is None:
            return chosen, None
        train, prior = self.carry
        return carry_to_run(chosen, self.plan.steps, train, prior, measured)

    def refinement(
        self,
        chosen: Analysis,
        start_score: float | None,
        cost: float,
        seconds: float,
        drift: Drift | None = None,
    ) -> Refinement:
        """The stage's record once it has chosen."""
        return Refinement(
            trials=tuple(self.trials),
            chosen_lr=chosen.suggestion.lr,
            steps_per_trial=self.plan.steps,
            seconds=seconds,
            metric=self.settings.metric,
            stage=self.name,
            val_batches=self.plan.val_batches,
            cost_steps=cost,
            sweep_steps=self.plan.sweep_steps,
            budget=self.plan.budget,
            start_score=start_score,
            drift=drift,
        )
