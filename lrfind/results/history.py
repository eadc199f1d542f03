"""A sweep's loss-vs-LR curve (History) and the mean of repeated sweeps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

StopReason = Literal["completed", "diverged", "non_finite", "interrupted"]

#: Fewest finite sweep points the analysis reads a curve from (and so the schema's minimum
#: ``sweep.steps``: a shorter sweep could never give an answer).
MIN_CURVE_POINTS = 10

#: The default ``diverge_factor``: the analysis reads a blow-up with it whatever factor the sweep
#: ran with, so a saved curve reads the same however it was recorded.
DEFAULT_DIVERGE_FACTOR = 4.0

#: A sweep has diverged once this many consecutive raw losses exceed the divergence threshold,
#: even while its smoothed loss stays under it: at smoothing 0.98 the EMA takes about 50 steps
#: to follow a jump, longer than the whole blow-up of a 100-step sweep (held-out runs reached
#: 10x their best raw loss and still "completed"). One bad batch, or a few, is noise; five in
#: a row all above the threshold is a level, not a spike (the fp16 overflow streak uses the
#: same count), and on a default sweep (100 steps over 6 decades) it spans a third of a decade.
RAW_DIVERGE_STEPS = 5


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or None when it is None or not finite (JSON has no inf/nan)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def float_or_none(value: Any) -> float | None:
    """A JSON number as a finite float; None for null, missing, non-numeric or non-finite."""
    try:
        return finite_or_none(float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class History:
    """One sweep's per-step record.

    ``losses`` are raw (mean over accumulation micro-batches and processes) and may hold NaN/inf;
    ``smoothed_losses`` are the bias-corrected EMA used for the stop rule and the suggestion.
    ``val_losses`` is empty or aligned with ``lrs`` (NaN where not measured).
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed_losses: tuple[float, ...]
    stop_reason: StopReason = "completed"
    val_losses: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (len(self.lrs) == len(self.losses) == len(self.smoothed_losses)):
            raise ValueError("History: lrs, losses and smoothed_losses must have equal length")
        if self.val_losses and len(self.val_losses) != len(self.lrs):
            raise ValueError("History: val_losses must be empty or as long as lrs")

    @property
    def steps(self) -> int:
        """Number of recorded optimizer steps."""
        return len(self.lrs)

    @property
    def stopped_early(self) -> bool:
        """True when the sweep ended before its last planned step."""
        return self.stop_reason != "completed"

    def best_index(self) -> int | None:
        """Index of the lowest finite smoothed loss, or None when no loss is finite."""
        best: int | None = None
        for index, value in enumerate(self.smoothed_losses):
            if math.isfinite(value) and (best is None or value < self.smoothed_losses[best]):
                best = index
        return best


def divergence_threshold(best: float, first: float, factor: float) -> float:
    """Return the loss above which the sweep counts as diverged.

    ``factor * best`` for a positive best smoothed loss; for a best loss <= 0 (losses that can
    go negative), ``best + (factor - 1) * max(|best|, |first - best|)``, ``first`` being the
    first smoothed loss.
    """
    if best > 0:
        return factor * best
    scale = max(abs(best), abs(first - best))
    return best + (factor - 1) * scale if scale > 0 else math.inf


def raw_divergence_step(
    losses: Sequence[float],
    smoothed_losses: Sequence[float],
    factor: float = DEFAULT_DIVERGE_FACTOR,
) -> int | None:
    """Return the step at which the raw losses show a blow-up the smoothed loss still lags, or None.

    The step that completes the first run of RAW_DIVERGE_STEPS consecutive raw losses above
    ``divergence_threshold(best smoothed loss so far, first smoothed loss, factor)`` (the
    run starts RAW_DIVERGE_STEPS - 1 steps earlier): the sweep loop stops at that step, and the
    analysis reads a recorded curve the same way. Only the finite prefix counts: the scan ends
    at the first non-finite loss.
    """
    best = math.inf
    first: float | None = None
    streak = 0
    for step, (loss, value) in enumerate(zip(losses, smoothed_losses, strict=True)):
        if not (math.isfinite(loss) and math.isfinite(value)):
            return None
        first = value if first is None else first
        best = min(best, value)
        streak = streak + 1 if loss > divergence_threshold(best, first, factor) else 0
        if streak >= RAW_DIVERGE_STEPS:
            return step
    return None


def mean_history(histories: Sequence[History]) -> History:
    """Return the step-wise mean of several histories on the same LR ladder.

    The mean stops where the shortest history stops: past the step where one repeat diverged, a
    mean over the survivors alone would hide that divergence.

    Raises:
        ValueError: ``histories`` is empty.
    """
    if not histories:
        raise ValueError("mean_history needs at least one history")
    shortest = min(histories, key=lambda h: h.steps)
    count = len(histories)
    losses = tuple(sum(h.losses[i] for h in histories) / count for i in range(shortest.steps))
    smoothed = tuple(
        sum(h.smoothed_losses[i] for h in histories) / count for i in range(shortest.steps)
    )
    reasons = {h.stop_reason for h in histories}
    stop_reason: StopReason = shortest.stop_reason
    if "interrupted" in reasons:
        stop_reason = "interrupted"
    return History(
        lrs=shortest.lrs,
        losses=losses,
        smoothed_losses=smoothed,
        stop_reason=stop_reason,
    )
