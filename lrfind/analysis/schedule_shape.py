"""The LR at each optimizer step of a training schedule: one pure function, ``lr_at``.

The shapes are the ones users train with, written the way their libraries compute them, so
that a step of lrfind's model of the real run is the step the user's scheduler will take:
``constant``, ``linear`` and ``cosine`` follow Hugging Face's ``get_scheduler`` (a linear warm-up
from 0, then flat, a straight line to 0, or a half cosine to 0); ``onecycle`` follows torch's
``OneCycleLR`` with its defaults (cosine annealing, ``div_factor`` 25, ``final_div_factor`` 1e4).
"""

from __future__ import annotations

import math

from lrfind.results.train import TRAIN_SCHEDULES, TrainSchedule

__all__ = ["TRAIN_SCHEDULES", "TrainSchedule", "lr_at"]

#: OneCycleLR's defaults: it starts at peak / 25, ends at that / 1e4, and rises for 30% of the
#: run when no warm-up length is given.
ONECYCLE_DIV_FACTOR = 25.0
ONECYCLE_FINAL_DIV_FACTOR = 1e4
ONECYCLE_PCT_START = 0.3


def _cos_anneal(start: float, end: float, fraction: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1.0)


def _onecycle(step: int, total: int, warmup: int, peak: float) -> float:
    rise = warmup if warmup > 0 else ONECYCLE_PCT_START * total
    # torch's phase ends: the peak is reached at step rise - 1, the floor at step total - 1.
    peak_step = float(rise) - 1.0
    last = float(total - 1)
    initial = peak / ONECYCLE_DIV_FACTOR
    floor = initial / ONECYCLE_FINAL_DIV_FACTOR
    if step <= peak_step:
        return _cos_anneal(initial, peak, step / peak_step) if peak_step > 0 else peak
    if last <= peak_step:
        return peak
    return _cos_anneal(peak, floor, min(1.0, (step - peak_step) / (last - peak_step)))


def lr_at(step: int, total: int, kind: str, warmup: int = 0, *, peak: float = 1.0) -> float:
    """Return the LR at optimizer step ``step`` (0-based) of a ``total``-step run that peaks at
    ``peak``.

    ``warmup`` is the warm-up length in steps: for ``constant``, ``linear`` and ``cosine`` a
    linear rise from 0 (``peak * step / warmup``), as Hugging Face schedules do; for ``onecycle``
    the rising phase (``pct_start = warmup / total``; 0 means torch's 30%). After the warm-up:
    ``constant`` stays at ``peak``; ``linear`` falls in a straight line to 0 at step ``total``;
    ``cosine`` falls along a half cosine to 0 at step ``total``; ``onecycle`` anneals to
    ``peak / 25 / 1e4`` at step ``total - 1``. Steps past the end keep the final LR.

    Raises:
        ValueError: unknown ``kind``, ``total`` below 1, ``warmup`` outside ``[0, total)``, or a
            negative ``step``.
    """
    if kind not in TRAIN_SCHEDULES:
        raise ValueError(
            f"unknown schedule {kind!r} (expected one of {', '.join(TRAIN_SCHEDULES)})"
        )
    if total < 1:
        raise ValueError(f"total must be at least 1 step, got {total!r}")
    if not 0 <= warmup < total:
        raise ValueError(f"warmup must be in [0, total) steps, got {warmup!r} of {total}")
    if step < 0:
        raise ValueError(f"step must be non-negative, got {step!r}")
    if kind == "onecycle":
        return _onecycle(step, total, warmup, peak)
    if step < warmup:
        return peak * step / warmup
    if kind == "constant":
        return peak
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        return peak * (1.0 - progress)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
