"""The trial stages after a sweep (refine, search, horizon rungs) and the one place that picks
one; ``lrfind.engine.trials.TrialRunner.drive`` runs whichever is picked."""

from lrfind.engine.stages.base import Proposal, TrialRequest, TrialSettings, TrialStage
from lrfind.engine.stages.pick import StageChoice, StageContext, pick_stage

__all__ = [
    "Proposal",
    "StageChoice",
    "StageContext",
    "TrialRequest",
    "TrialSettings",
    "TrialStage",
    "pick_stage",
]
