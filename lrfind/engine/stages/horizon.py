"""The horizon stage: trials that reach toward the run the user states (``train:``).

Successive halving with continuation (``lrfind.analysis.horizon`` plans the rungs and reads the
drift): every candidate trains the first rung from the sweep's snapshot, the best and the LRs
below it continue from their own state to a rung twice as long, and so on down to the
finalists; the answer is the choice rule's on the last rung, carried to the run's length.
"""

from __future__ import annotations

from collections.abc import Sequence

from lrfind.analysis.horizon import RungPlan, estimate_drift, keep_for_longer
from lrfind.analysis.refine import at_most_low, choose_horizon, next_refine_candidate
from lrfind.engine.stages.base import Proposal, TrialRequest, TrialSettings
from lrfind.results import Analysis, History, Refinement, TrainRun, Trial


class HorizonStage:
    """Rungs of doubling length toward the stated run (see the module docstring).

    Trials run the stated schedule (``settings.lr_factor``) and are judged for divergence
    against the untrained model's loss (``settings.reference_loss``). After the first rung,
    one candidate past an edge holding the best joins it (``plan.extensions``); after each
    rung ``plan.survivors[r + 1]`` continue (``keep_for_longer``: the best and the LRs below
    it first), and the others' paused states are dropped. The answer is ``choose_horizon``'s
    on the last rung, carried by the drift the rungs showed (``estimate_drift``;
    ``drift_prior`` None: not carried).
    """

    name = "horizon"

    def __init__(
        self,
        plan: RungPlan,
        candidates: Sequence[float],
        history: History,
        analysis: Analysis,
        train: TrainRun,
        settings: TrialSettings,
        *,
        drift_prior: float | None,
        budget_sweeps: float,
    ) -> None:
        self.plan = plan
        self.budget_sweeps = budget_sweeps
        self.settings = settings
        self.history = history
        self.analysis = analysis
        self.train = train
        self.drift_prior = drift_prior
        self._candidates = list(candidates)
        #: A reason that lowers the answer's confidence (a schedule the trials cannot see).
        self.caveat: str | None = None
        self._planned = plan.first
        self._extended = False
        self.rungs: list[list[Trial]] = [[]]

    @property
    def planned(self) -> int:
        """Scores planned so far (the extension adds one)."""
        return self._planned

    def _requests(self, lrs: Sequence[float]) -> list[TrialRequest]:
        index = len(self.rungs) - 1
        more = index + 1 < len(self.plan.rungs)
        return [TrialRequest(lr, self.plan.rungs[index], pause=more) for lr in lrs]

    def first(self) -> list[TrialRequest]:
        """Every candidate's first rung."""
        return self._requests(self._candidates)

    def record(self, trial: Trial) -> None:
        """Take one trial of the current rung."""
        self.rungs[-1].append(trial)

    def propose(self, cost: float) -> Proposal:
        """After the first rung, the edge extension (once); then the next rung's survivors."""
        rung = self.rungs[-1]
        if len(self.rungs) == 1 and not self._extended and self.plan.extensions:
            self._extended = True
            extra = next_refine_candidate(self.history, self.analysis, rung)
            if extra is not None and all(abs(extra - t.lr) > 1e-12 for t in rung):
                self._planned += 1
                return Proposal(self._requests([extra]))
        if len(self.rungs) >= len(self.plan.rungs):
            return Proposal()
        keep = keep_for_longer(rung, self.plan.survivors[len(self.rungs)])
        alive = sorted(t.lr for t in keep)
        dropped = [t.lr for t in rung if t.lr not in alive]
        if len(alive) < 2:
            return Proposal(drop=[t.lr for t in rung])
        self.rungs.append([])
        return Proposal(self._requests(alive), drop=dropped)

    def finish(
        self, start: Trial | float | None, cost: float, seconds: float
    ) -> tuple[Analysis, Refinement]:
        """The finalists' choice, carried to the run's length."""
        rungs = [rung for rung in self.rungs if rung]
        drift = (
            estimate_drift(
                rungs, self.train.steps, prior=self.drift_prior, schedule=self.train.schedule
            )
            if self.drift_prior is not None
            else None
        )
        final = choose_horizon(self.history, self.analysis, rungs[-1], self.train, drift)
        if self.caveat is not None:
            final = at_most_low(final, self.caveat)
        refinement = Refinement(
            trials=tuple(rungs[-1]),
            chosen_lr=final.suggestion.lr,
            steps_per_trial=max((t.steps for t in rungs[-1]), default=self.plan.final_steps),
            seconds=seconds,
            metric=self.settings.metric,
            stage=self.name,
            val_batches=self.plan.val_batches,
            cost_steps=cost,
            sweep_steps=self.plan.sweep_steps,
            budget=self.budget_sweeps,
            rungs=tuple(tuple(rung) for rung in rungs),
            drift=drift,
        )
        return final, refinement
