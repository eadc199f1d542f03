"""The CI gate's verdict: compare a recommendation with expectations (pure, no torch).

Expectations come from ``expect:`` in the config or from the command line: absolute bounds
(``lr_min``/``lr_max``) and/or a baseline result.json whose suggestion the new one must stay within
``tolerance`` times of. ``evaluate_check`` raises ``NoReliableSuggestion`` (exit 3) when the curve
gives no answer or too little confidence, and returns a ``CheckOutcome`` otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lrfind.errors import ConfigError, NoReliableSuggestion
from lrfind.report import CheckOutcome, format_lr
from lrfind.results import RangeTestResult

CONFIDENCE_ORDER = {"none": 0, "low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True)
class Expectations:
    """What ``lrfind check`` compares the suggested LR with."""

    lr_min: float | None = None
    lr_max: float | None = None
    baseline_lr: float | None = None
    baseline_path: Path | None = None
    tolerance: float = 2.0
    min_confidence: str = "low"

    @property
    def empty(self) -> bool:
        """True when nothing would be checked."""
        return self.lr_min is None and self.lr_max is None and self.baseline_lr is None

    def bounds(self) -> tuple[float | None, float | None]:
        """Return the accepted (low, high) interval: the tightest of bounds and baseline window."""
        low, high = self.lr_min, self.lr_max
        if self.baseline_lr is not None:
            base_low = self.baseline_lr / self.tolerance
            base_high = self.baseline_lr * self.tolerance
            low = base_low if low is None else max(low, base_low)
            high = base_high if high is None else min(high, base_high)
        return low, high


def baseline_file(path: Path) -> Path:
    """Return the result.json a baseline path means (a run directory or the file itself)."""
    return path / "result.json" if path.is_dir() else path


def read_baseline_lr(path: Path) -> float:
    """Return the suggested LR recorded in the baseline at ``path``.

    Raises:
        ConfigError: the baseline is missing, unreadable, or has no suggested LR.
    """
    file = baseline_file(path)
    if not file.exists():
        raise ConfigError(
            f"baseline {file} does not exist; create it with 'lrfind check --update-baseline'"
        )
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
        lr = document["suggestion"]["lr"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"baseline {file} is not an lrfind result.json ({error})") from None
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0:
        raise ConfigError(f"baseline {file} records no suggested learning rate")
    return float(lr)


def _ratio_text(value: float, bound: float) -> str:
    ratio = value / bound if value > bound else bound / value
    return f"{ratio:.2f}x"


def evaluate_check(result: RangeTestResult, expectations: Expectations) -> CheckOutcome:
    """Return whether the suggestion lies within the expectations, and a one-line message.

    Raises:
        NoReliableSuggestion: no suggested LR, or confidence below ``min_confidence``.
        ConfigError: there are no expectations to check against.
    """
    if expectations.empty:
        raise ConfigError(
            "nothing to check against: set expect.lr_min/lr_max or expect.baseline in the "
            "config, or pass --expect-min/--expect-max/--baseline"
        )
    lr = result.suggestion.lr
    confidence = result.confidence
    if lr is None:
        reason = "; ".join(confidence.reasons) or result.suggestion.reason or "no clear descent"
        raise NoReliableSuggestion(f"the sweep gave no reliable learning rate: {reason}")
    if CONFIDENCE_ORDER[confidence.level] < CONFIDENCE_ORDER[expectations.min_confidence]:
        reason = "; ".join(confidence.reasons)
        raise NoReliableSuggestion(
            f"confidence '{confidence.level}' is below the required "
            f"'{expectations.min_confidence}'" + (f": {reason}" if reason else "")
        )
    low, high = expectations.bounds()
    where = (
        f" (baseline {format_lr(expectations.baseline_lr)} within {expectations.tolerance:g}x)"
        if expectations.baseline_lr is not None
        else ""
    )
    if low is not None and lr < low:
        message = (
            f"suggested lr {format_lr(lr)} is {_ratio_text(lr, low)} below the expected "
            f"minimum {format_lr(low)}{where}"
        )
        return CheckOutcome(False, message, low, high)
    if high is not None and lr > high:
        message = (
            f"suggested lr {format_lr(lr)} is {_ratio_text(lr, high)} above the expected "
            f"maximum {format_lr(high)}{where}"
        )
        return CheckOutcome(False, message, low, high)
    message = f"suggested lr {format_lr(lr)} is within [{format_lr(low)}, {format_lr(high)}]{where}"
    return CheckOutcome(True, message, low, high)
