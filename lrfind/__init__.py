"""lrfind: a trustworthy learning-rate range test for PyTorch.

Python API (names load lazily, so ``import lrfind`` does not import torch)::

    from lrfind import range_test
    result = range_test(model, optimizer, loss_fn, train_loader, val_loader=val_loader)
    result.suggestion.lr, result.lr_range.max_lr, result.plot("lr.png")

Config-driven runs: ``lrfind.load_config`` + ``lrfind.workflows.run_sweep``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "range_test": "lrfind.rangetest",
    "RangeTest": "lrfind.rangetest",
    "RangeTestResult": "lrfind.results",
    "History": "lrfind.results",
    "Suggestion": "lrfind.results",
    "LRRange": "lrfind.results",
    "Confidence": "lrfind.results",
    "Trial": "lrfind.results",
    "analyze": "lrfind.analysis",
    "suggest": "lrfind.analysis",
    "load_config": "lrfind.config",
    "Config": "lrfind.config",
    "load_run": "lrfind.runs",
    "StopFlag": "lrfind.engine",
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
    "range_test",
    "suggest",
]

if TYPE_CHECKING:
    from lrfind.analysis import analyze, suggest
    from lrfind.config import Config, load_config
    from lrfind.engine import StopFlag
    from lrfind.errors import LrfindError
    from lrfind.rangetest import RangeTest, range_test
    from lrfind.results import (
        Confidence,
        History,
        LRRange,
        RangeTestResult,
        Suggestion,
        Trial,
    )
    from lrfind.runs import load_run


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lrfind' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
