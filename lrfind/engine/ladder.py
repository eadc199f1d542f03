"""Pure learning-rate ladders for the sweep, and setting an LR on an optimizer."""

from __future__ import annotations

import math
from typing import Any

from lrfind.settings import LR_SCALE_KEY, SweepMode


def lr_at(step: int, steps: int, start_lr: float, end_lr: float, mode: SweepMode = "exp") -> float:
    """Return the LR of ``step`` (0-based) on a ``steps``-long ladder from start_lr to end_lr.

    exp: ``start * (end/start) ** (i/(n-1))``; linear: ``start + (end-start) * i/(n-1)``. The first
    and last steps are exactly ``start_lr`` and ``end_lr``.

    Raises:
        ValueError: steps < 2, step outside [0, steps), non-positive LRs, or start_lr >= end_lr.
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    if not 0 <= step < steps:
        raise ValueError(f"step must be in [0, {steps}), got {step}")
    if not (start_lr > 0 and end_lr > 0):
        raise ValueError("start_lr and end_lr must be positive")
    if start_lr >= end_lr:
        raise ValueError(f"start_lr ({start_lr}) must be below end_lr ({end_lr})")
    if step == steps - 1:
        return float(end_lr)
    fraction = step / (steps - 1)
    if mode == "exp":
        return float(start_lr * (end_lr / start_lr) ** fraction)
    if mode == "linear":
        return float(start_lr + (end_lr - start_lr) * fraction)
    raise ValueError(f"unknown sweep mode {mode!r} (expected 'exp' or 'linear')")


def lr_ladder(steps: int, start_lr: float, end_lr: float, mode: SweepMode = "exp") -> list[float]:
    """Return every LR of the sweep, in order (see ``lr_at`` for the rule and what it raises)."""
    return [lr_at(i, steps, start_lr, end_lr, mode) for i in range(steps)]


def log_spaced(low: float, high: float, count: int) -> list[float]:
    """Return ``count`` LRs evenly spaced in log10 from ``low`` to ``high`` inclusive.

    Raises:
        ValueError: non-positive bounds or count < 1.
    """
    if low <= 0 or high <= 0 or count < 1:
        raise ValueError("log_spaced needs positive bounds and count >= 1")
    if count == 1:
        return [float(low)]
    step = (math.log10(high) - math.log10(low)) / (count - 1)
    return [float(10 ** (math.log10(low) + i * step)) for i in range(count)]


def set_lr(optimizer: Any, lr: float) -> None:
    """Set ``lr`` on every param group of ``optimizer`` (times the group's ``lr_scale``, if any).

    Works for any object with torch-style ``param_groups``; a tensor-valued ``lr`` (as some
    optimizers use for capturable/compiled steps) is filled in place.
    """
    for group in optimizer.param_groups:
        value = lr * float(group.get(LR_SCALE_KEY, 1.0))
        current = group.get("lr")
        if hasattr(current, "fill_"):
            current.fill_(value)
        else:
            group["lr"] = value


def param_group_notes(optimizer: Any) -> list[str]:
    """Say how ``set_lr`` sweeps several param groups, when their LRs or scales differ."""
    groups = optimizer.param_groups
    if len(groups) < 2:
        return []
    scales = [float(group.get(LR_SCALE_KEY, 1.0)) for group in groups]
    if any(LR_SCALE_KEY in group for group in groups):
        if len(set(scales)) == 1:
            return []
        shown = ", ".join(f"x{scale:g}" for scale in scales)
        return [
            f"one LR is swept for all {len(groups)} param groups, each group getting it times "
            f"its lr_scale ({shown}); the suggestion is the LR at lr_scale 1"
        ]
    lrs = [float(group.get("lr", 0.0)) for group in groups]
    if len(set(lrs)) == 1:
        return []
    shown = ", ".join(f"{lr:.3g}" for lr in lrs)
    return [
        f"the optimizer's {len(groups)} param groups had different LRs ({shown}): one LR is "
        "swept and set on every group, so their ratio is ignored; to keep it, give each group "
        f"an '{LR_SCALE_KEY}' (its multiple of the swept LR)"
    ]
