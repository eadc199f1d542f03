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

from lrfind._version import __version__

#: Public name -> the module that defines it (imported on first use).
_EXPORTS = {
    # the range test on your own model, optimizer and data
    "range_test": "lrfind.engine.library",
    "RangeTest": "lrfind.engine.rangetest",
    "StopFlag": "lrfind.engine.options",
    "StepEvent": "lrfind.engine.options",
    "SweepOptions": "lrfind.engine.options",
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
    "analyze": "lrfind.analysis.suggest",
    "suggest": "lrfind.analysis.suggest",
    "plot_result": "lrfind.outputs.plot.single",
    "load_run": "lrfind.outputs.runs",
    # configs
    "load_config": "lrfind.config.load",
    "Config": "lrfind.config.schema",
    # one function per CLI command, and what each returns
    "sweep": "lrfind.workflows.sweep",
    "SweepRun": "lrfind.workflows.sweep",
    "check": "lrfind.workflows.check",
    "CheckRun": "lrfind.workflows.check",
    "validate": "lrfind.workflows.validate",
    "ValidationReport": "lrfind.workflows.validate",
    "init": "lrfind.workflows.init",
    "report": "lrfind.workflows.report",
    "ReportOutput": "lrfind.workflows.report",
    "compare": "lrfind.workflows.compare",
    "Comparison": "lrfind.outputs.comparison",
    "verify": "lrfind.workflows.verify",
    "VerifyRun": "lrfind.workflows.verify",
    "schedule": "lrfind.workflows.schedule",
    # errors
    "LrfindError": "lrfind.errors",
}

__all__ = [
    "CheckRun",
    "Comparison",
    "Confidence",
    "Config",
    "History",
    "LRRange",
    "LrfindError",
    "ProgressEvent",
    "RangeTest",
    "RangeTestResult",
    "ReportOutput",
    "StepEvent",
    "StopFlag",
    "Suggestion",
    "SweepOptions",
    "SweepRun",
    "Trial",
    "TrialEvent",
    "TrialPlan",
    "ValidationReport",
    "VerifyRun",
    "__version__",
    "analyze",
    "check",
    "compare",
    "init",
    "load_config",
    "load_run",
    "plot_result",
    "range_test",
    "report",
    "schedule",
    "suggest",
    "sweep",
    "validate",
    "verify",
]

if TYPE_CHECKING:
    from lrfind.analysis.budget import TrialPlan
    from lrfind.analysis.suggest import analyze, suggest
    from lrfind.config.load import load_config
    from lrfind.config.schema import Config
    from lrfind.engine.library import range_test
    from lrfind.engine.options import StepEvent, StopFlag, SweepOptions
    from lrfind.engine.rangetest import ProgressEvent, RangeTest
    from lrfind.engine.trials import TrialEvent
    from lrfind.errors import LrfindError
    from lrfind.outputs.comparison import Comparison
    from lrfind.outputs.plot.single import plot_result
    from lrfind.outputs.runs import load_run
    from lrfind.results import Confidence, History, LRRange, RangeTestResult, Suggestion, Trial
    from lrfind.workflows.check import CheckRun, check
    from lrfind.workflows.compare import compare
    from lrfind.workflows.init import init
    from lrfind.workflows.report import ReportOutput, report
    from lrfind.workflows.schedule import schedule
    from lrfind.workflows.sweep import SweepRun, sweep
    from lrfind.workflows.validate import ValidationReport, validate
    from lrfind.workflows.verify import VerifyRun, verify


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lrfind' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
