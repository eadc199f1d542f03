"""Value objects that cross module boundaries, and their JSON form (``result.json`` schema v1).

A leaf of the package: it imports nothing else of lrfind, holds no behaviour that draws or
writes, and re-exports every value from the module that defines it.
"""

from lrfind.results.analysis import Analysis, Confidence, ConfidenceLevel, LRRange, Suggestion
from lrfind.results.check import CheckOutcome
from lrfind.results.history import (
    DEFAULT_DIVERGE_FACTOR,
    MIN_CURVE_POINTS,
    RAW_DIVERGE_STEPS,
    History,
    StopReason,
    divergence_threshold,
    mean_history,
    raw_divergence_step,
)
from lrfind.results.run import SCHEMA_VERSION, RangeTestResult, RunInfo
from lrfind.results.train import (
    TRAIN_SCHEDULES,
    Budget,
    Drift,
    TrainRun,
    TrainSchedule,
    parse_budget,
)
from lrfind.results.trials import Refinement, Trial

__all__ = [
    "DEFAULT_DIVERGE_FACTOR",
    "MIN_CURVE_POINTS",
    "RAW_DIVERGE_STEPS",
    "SCHEMA_VERSION",
    "TRAIN_SCHEDULES",
    "Analysis",
    "Budget",
    "CheckOutcome",
    "Confidence",
    "ConfidenceLevel",
    "Drift",
    "History",
    "LRRange",
    "RangeTestResult",
    "Refinement",
    "RunInfo",
    "StopReason",
    "Suggestion",
    "TrainRun",
    "TrainSchedule",
    "Trial",
    "divergence_threshold",
    "mean_history",
    "parse_budget",
    "raw_divergence_step",
]
