"""Value objects that cross module boundaries, and their JSON form (``result.json`` schema v1).

A leaf of the package: it imports nothing else of lrfind, holds no behaviour that draws or
writes, and re-exports every value from the module that defines it.
"""

from lrfind.results.analysis import Analysis, Confidence, ConfidenceLevel, LRRange, Suggestion
from lrfind.results.check import CheckOutcome
from lrfind.results.history import MIN_CURVE_POINTS, History, StopReason, mean_history
from lrfind.results.run import SCHEMA_VERSION, RangeTestResult, RunInfo
from lrfind.results.trials import Refinement, Trial

__all__ = [
    "MIN_CURVE_POINTS",
    "SCHEMA_VERSION",
    "Analysis",
    "CheckOutcome",
    "Confidence",
    "ConfidenceLevel",
    "History",
    "LRRange",
    "RangeTestResult",
    "Refinement",
    "RunInfo",
    "StopReason",
    "Suggestion",
    "Trial",
    "mean_history",
]
