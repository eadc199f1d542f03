"""The search stage: a flat sweep gave no answer, so LRs a decade apart across the range it
showed stable are trained, then bisected toward the best (``lrfind.analysis.search``)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from lrfind.analysis.budget import TrialPlan
from lrfind.analysis.refine import choose_searched
from lrfind.analysis.search import next_search_lr, search_candidates
from lrfind.engine.stages.base import FixedLengthStage, TrialSettings
from lrfind.results import Analysis, History, Refinement, TrainRun, Trial


class SearchStage(FixedLengthStage):
    """A coarse grid down from the top of the stable range; the untrained model's score is
    the baseline every trial must beat."""

    name = "search"

    def __init__(
        self,
        plan: TrialPlan,
        history: History,
        analysis: Analysis,
        settings: TrialSettings,
        carry: tuple[TrainRun, float] | None = None,
    ) -> None:
        super().__init__(
            plan,
            search_candidates(history, plan.first),
            partial(next_search_lr, history),
            replace(settings, start_from=history),
            carry,
        )
        self.history = history
        self.analysis = analysis

    def finish(
        self, start: Trial | float | None, cost: float, seconds: float
    ) -> tuple[Analysis, Refinement]:
        """The choice rule's LR among the trials that beat the baseline (``choose_searched``);
        the baseline's validation pass is part of the cost."""
        final = choose_searched(self.history, self.analysis, self.trials, start)
        start_score = start.val_loss if isinstance(start, Trial) else start
        if isinstance(start, Trial):
            batches = len(start.val_batch_losses) or self.plan.val_batches or 0
            cost += batches * self.plan.val_batch_cost
        final, drift = self.carried(final, "the search trials trained")
        return final, self.refinement(final, start_score, cost, seconds, drift)
