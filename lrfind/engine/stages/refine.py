"""The refine stage: the sweep answered, so constant-LR trials around its answer choose the LR
(``lrfind.analysis.refine``: the window, the extension past an edge, the choice)."""

from __future__ import annotations

from functools import partial

from lrfind.analysis.budget import TrialPlan
from lrfind.analysis.refine import (
    choose_refined,
    next_refine_candidate,
    refine_candidates,
    unconfirmed,
)
from lrfind.engine.stages.base import FixedLengthStage, TrialSettings
from lrfind.results import Analysis, History, Refinement, TrainRun, Trial


class RefineStage(FixedLengthStage):
    """Grid LRs from the sweep's max_lr down, one more past an edge holding the best.

    ``caveat``: a reason added to the answer's confidence (the horizon stage's fallback says
    its trials answer for runs about as long as themselves, not for the stated run).
    """

    name = "refine"

    def __init__(
        self,
        plan: TrialPlan,
        history: History,
        analysis: Analysis,
        settings: TrialSettings,
        *,
        caveat: str | None = None,
        carry: tuple[TrainRun, float] | None = None,
    ) -> None:
        super().__init__(
            plan,
            refine_candidates(history, analysis, plan.first),
            partial(next_refine_candidate, history, analysis),
            settings,
            carry,
        )
        self.history = history
        self.analysis = analysis
        self.caveat = caveat

    def finish(
        self, start: Trial | float | None, cost: float, seconds: float
    ) -> tuple[Analysis, Refinement]:
        """The choice rule's LR among the trials (``choose_refined``)."""
        final = choose_refined(self.history, self.analysis, self.trials)
        if self.caveat is not None:
            final = unconfirmed(final, self.caveat)
        final, drift = self.carried(final, "refine's trials trained")
        return final, self.refinement(final, None, cost, seconds, drift)
