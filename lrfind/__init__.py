"""lrfind: a trustworthy learning-rate range test for PyTorch.

Python API (names load lazily, so ``import lrfind`` does not import torch)::

    from lrfind import range_test
    result = range_test(model, optimizer, loss_fn, train_loader, val_loader=val_loader)
    result.suggestion.lr, result.lr_range.max_lr, lrfind.plot_result(result, "lr.png")

Config-driven runs: ``lrfind.load_config`` + ``lrfind.workflows.run_sweep``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lrfind._version import __version__

_EXPORTS = {
    "range_test": "lrfind.engine.rangetest",
    "RangeTest": "lrfind.engine.rangetest",
    "RangeTestResult": "lrfind.results",
    "History": "lrfind.results",
    "Suggestion": "lrfind.results",
    "LRRange": "lrfind.results",
    "Confidence": "lrfind.results",
    "Trial": "lrfind.results",
    "analyze": "lrfind.analysis.suggest",
    "suggest": "lrfind.analysis.suggest",
    "load_config": "lrfind.config.load",
    "Config": "lrfind.config.schema",
    "load_run": "lrfind.outputs.runs",
    "plot_result": "lrfind.outputs.plot.single",
    "StopFlag": "lrfind.engine.options",
    "LrfindError": "lrfind.errors",
}

__all__ = [
    "Confidence",
    "Config",
    "History",
    "LRRange",
    "LrfindError",
    "RangeTest",
    "RangeTestResult",
    "StopFlag",
    "Suggestion",
    "Trial",
    "__version__",
    "analyze",
    "load_config",
    "load_run",
    "plot_result",
    "range_test",
    "suggest",
]

if TYPE_CHECKING:
    from lrfind.analysis.suggest import analyze, suggest
    from lrfind.config.load import load_config
    from lrfind.config.schema import Config
    from lrfind.engine.options import StopFlag
    from lrfind.engine.rangetest import RangeTest, range_test
    from lrfind.errors import LrfindError
    from lrfind.outputs.plot.single import plot_result
    from lrfind.outputs.runs import load_run
    from lrfind.results import (
        Confidence,
        History,
        LRRange,
        RangeTestResult,
        Suggestion,
        Trial,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lrfind' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
