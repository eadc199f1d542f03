"""Where the next trial goes: bracketing on the LR grid, and the search stage for flat sweeps.

When a sweep shows no clear descent but did not blow up at once, the search stage trains
constant-LR trials across the range the sweep showed to be stable: a coarse grid a decade apart
down from its top, then bisection towards the best trial, chosen by the one rule in
``lrfind.analysis.choose``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lrfind.analysis.choose import Choice, choose
from lrfind.analysis.curve import CurveShape, describe_curve
from lrfind.analysis.grid import GRID_PER_DECADE, grid_exponent, grid_lr
from lrfind.results import History, Trial

#: Float slack when an LR sits exactly on a grid value.
_GRID_SLACK = 1e-9


def next_bracket_lr(
    trials: Sequence[Trial], stride: int, floor: int | None, ceiling: int | None
) -> float | None:
    """Return the next grid LR that brackets the best trial more tightly, or None.

    Grid exponents (10**(k/4)) only. While the best trial (``choose``) is the lowest tried,
    the next LR is ``stride`` grid steps below it; while it is the highest tried, ``stride``
    steps above it. Once it has tried neighbours on both sides (or the edge it sits on is
    ``floor`` / ``ceiling``, inclusive; None is unbounded), the next LR halves the larger gap
    to a neighbour, on the side of the better-scoring neighbour when both gaps can be halved.
    Every trial diverged: ``stride`` below the lowest. None when the best is bracketed at one
    grid step on both sides, or every move would leave ``floor``..``ceiling`` or repeat a trial.
    """
    if not trials:
        return None
    choice = choose(trials)
    tried = {grid_exponent(t.lr) for t in trials}

    def allowed(k: int) -> bool:
        return (
            k not in tried and (floor is None or k >= floor) and (ceiling is None or k <= ceiling)
        )

    if choice.best is None:
        below = min(tried) - stride
        return grid_lr(below) if allowed(below) else None
    best = grid_exponent(choice.trials[choice.best].lr)
    lower = [k for k in tried if k < best]
    upper = [k for k in tried if k > best]
    if not lower and allowed(best - stride):
        return grid_lr(best - stride)
    if not upper and allowed(best + stride):
        return grid_lr(best + stride)
    options: list[tuple[float, int]] = []
    if lower and best - max(lower) > 1:
        gap = best - max(lower)
        options.append((_score_at(choice, max(lower)), best - gap // 2))
    if upper and min(upper) - best > 1:
        gap = min(upper) - best
        options.append((_score_at(choice, min(upper)), best + gap // 2))
    for _, k in sorted(options):
        if allowed(k):
            return grid_lr(k)
    return None


def _score_at(choice: Choice, exponent: int) -> float:
    """The score of the trial on grid ``exponent`` (inf when it is out)."""
    for trial, value in zip(choice.trials, choice.scores, strict=True):
        if grid_exponent(trial.lr) == exponent:
            return value
    return math.inf


def stable_window(history: History) -> tuple[int, int] | None:
    """Return the grid exponents (lowest, highest) of the range a flat sweep showed stable.

    Only for a sweep whose curve has "no clear descent" (see ``describe_curve``): from the
    first swept LR up to the last grid value strictly below where the loss started to rise
    (or, without a rise, up to the last LR swept). None for any other sweep, or when the range
    holds no grid value.
    """
    shape = describe_curve(history)
    if shape.problem is None or not shape.problem.startswith("no clear descent"):
        return None
    return _window(shape)


def _window(shape: CurveShape) -> tuple[int, int] | None:
    low = math.ceil(GRID_PER_DECADE * float(shape.x[0]) - _GRID_SLACK)
    if shape.rise_index is not None:
        high = math.ceil(GRID_PER_DECADE * float(shape.x[shape.rise_index]) - _GRID_SLACK) - 1
    else:
        high = math.floor(GRID_PER_DECADE * float(shape.x[-1]) + _GRID_SLACK)
    return (low, high) if high >= low else None


def search_candidates(history: History, count: int) -> list[float]:
    """Return the search stage's coarse grid, ascending: ``count`` LRs a decade apart.

    They run down from the top of ``stable_window`` (the LRs just below instability are where
    a fixed number of steps goes furthest) and stay inside it. [] when the sweep is not flat
    (``stable_window`` is None) or ``count`` < 1.
    """
    window = stable_window(history)
    if window is None or count < 1:
        return []
    low, high = window
    exponents = [high - GRID_PER_DECADE * i for i in range(count)]
    return [grid_lr(k) for k in sorted(k for k in exponents if k >= low)]


def next_search_lr(history: History, trials: Sequence[Trial]) -> float | None:
    """Return the search stage's next LR (``next_bracket_lr`` a decade at a time), or None."""
    window = stable_window(history)
    if window is None:
        return None
    return next_bracket_lr(trials, GRID_PER_DECADE, window[0], window[1])
