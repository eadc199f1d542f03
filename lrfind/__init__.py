"""lrfind: a trustworthy learning-rate range test for PyTorch.

Python API (names load lazily, so ``import lrfind`` imports neither torch nor matplotlib)::

    import lrfind
    result = lrfind.range_test(model, optimizer, loss_fn, train_loader, val_loader=val_loader)
    result.suggestion.lr, result.lr_range.max_lr
    lrfind.plot_result(result, "lr.png")

Every CLI command has a twin here that does the same work and returns a value instead of
printing: ``sweep``, ``check``, ``validate``, ``init``, ``report``, ``compare``, ``verify`` and
``schedule``. Errors are ``LrfindError`` subclasses carrying their CLI exit code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lrfind._version import __version__ as __version__

#: Public name -> the module that defines it (imported on first use).
_EXPORTS = {
    # the range test on your own model, optimizer and data
    "range_test": "lrfind.engine.library",
    "RangeTest": "lrfind.engine.rangetest",
    "StopFlag": "lrfind.engine.options",
    "StepEvent": "lrfind.engine.options",
    "SweepOptions": "lrfind.settings",
    "SuggestOptions": "lrfind.settings",
    "TrialEvent": "lrfind.engine.trials",
    "TrialPlan": "lrfind.analysis.budget",
    "ProgressEvent": "lrfind.engine.rangetest",
    # results and the pure analysis behind them
    "RangeTestResult": "lrfind.results",
    "History": "lrfind.results",
    "Suggestion": "lrfind.results",
    "LRRange": "lrfind.results",
    "Confidence": "lrfind.results",
    "Trial": "lrfind.results",
    "Analysis": "lrfind.results",
    "RunInfo": "lrfind.results",
    "Refinement": "lrfind.results",
    "TrainRun": "lrfind.results",
    "Budget": "lrfind.results",
    "Drift": "lrfind.results",
    "CheckOutcome": "lrfind.results",
    "Verdict": "lrfind.analysis.choose",
    "analyze": "lrfind.analysis.suggest",
    "suggest": "lrfind.analysis.suggest",
    "plot_result": "lrfind.outputs.plot.single",
    "load_run": "lrfind.outputs.runs",
    # configs
    "load_config": "lrfind.config.load",
    "Config": "lrfind.config.schema",
    "Variant": "lrfind.config.variants",
    # one function per CLI command, and what each returns
    "sweep": "lrfind.workflows.sweep",
    "SweepRun": "lrfind.workflows.sweep",
    "Reporter": "lrfind.workflows.sweep",
    "check": "lrfind.workflows.check",
    "CheckRun": "lrfind.workflows.check",
    "validate": "lrfind.workflows.validate",
    "ValidationReport": "lrfind.workflows.validate",
    "ImportCheck": "lrfind.workflows.validate",
    "init": "lrfind.workflows.init",
    "report": "lrfind.workflows.report",
    "ReportOutput": "lrfind.workflows.report",
    "compare": "lrfind.workflows.compare",
    "Comparison": "lrfind.outputs.comparison",
    "VariantOutcome": "lrfind.outputs.comparison",
    "verify": "lrfind.workflows.verify",
    "VerifyRun": "lrfind.workflows.verify",
    "schedule": "lrfind.workflows.schedule",
    # errors
    "LrfindError": "lrfind.errors",
}

#: Everything ``from lrfind import *`` gives, derived from the one list above.
__all__ = sorted(["__version__", *_EXPORTS])

if TYPE_CHECKING:
    from lrfind.analysis.budget import TrialPlan as TrialPlan
    from lrfind.analysis.choose import Verdict as Verdict
    from lrfind.analysis.suggest import analyze as analyze
    from lrfind.analysis.suggest import suggest as suggest
    from lrfind.config.load import load_config as load_config
    from lrfind.config.schema import Config as Config
    from lrfind.config.variants import Variant as Variant
    from lrfind.engine.library import range_test as range_test
    from lrfind.engine.options import StepEvent as StepEvent
    from lrfind.engine.options import StopFlag as StopFlag
    from lrfind.engine.rangetest import ProgressEvent as ProgressEvent
    from lrfind.engine.rangetest import RangeTest as RangeTest
    from lrfind.engine.trials import TrialEvent as TrialEvent
    from lrfind.errors import LrfindError as LrfindError
    from lrfind.outputs.comparison import Comparison as Comparison
    from lrfind.outputs.comparison import VariantOutcome as VariantOutcome
    from lrfind.outputs.plot.single import plot_result as plot_result
    from lrfind.outputs.runs import load_run as load_run
    from lrfind.results import Analysis as Analysis
    from lrfind.results import Budget as Budget
    from lrfind.results import CheckOutcome as CheckOutcome
    from lrfind.results import Confidence as Confidence
    from lrfind.results import Drift as Drift
    from lrfind.results import History as History
    from lrfind.results import LRRange as LRRange
    from lrfind.results import RangeTestResult as RangeTestResult
    from lrfind.results import Refinement as Refinement
    from lrfind.results import RunInfo as RunInfo
    from lrfind.results import Suggestion as Suggestion
    from lrfind.results import TrainRun as TrainRun
    from lrfind.results import Trial as Trial
    from lrfind.settings import SuggestOptions as SuggestOptions
    from lrfind.settings import SweepOptions as SweepOptions
    from lrfind.workflows.check import CheckRun as CheckRun
    from lrfind.workflows.check import check as check
    from lrfind.workflows.compare import compare as compare
    from lrfind.workflows.init import init as init
    from lrfind.workflows.report import ReportOutput as ReportOutput
    from lrfind.workflows.report import report as report
    from lrfind.workflows.schedule import schedule as schedule
    from lrfind.workflows.sweep import Reporter as Reporter
    from lrfind.workflows.sweep import SweepRun as SweepRun
    from lrfind.workflows.sweep import sweep as sweep
    from lrfind.workflows.validate import ImportCheck as ImportCheck
    from lrfind.workflows.validate import ValidationReport as ValidationReport
    from lrfind.workflows.validate import validate as validate
    from lrfind.workflows.verify import VerifyRun as VerifyRun
    from lrfind.workflows.verify import verify as verify


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lrfind' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
