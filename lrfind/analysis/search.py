"""Where the next trial goes: bracketing on the LR grid, and the search stage for flat sweeps.

When a sweep shows no clear descent but did not blow up at once, the search stage trains
constant-LR trials across the range the sweep showed to be stable: a coarse grid a decade apart
down from its top, then bisection towards the best trial, chosen by the one rule in
``lrfind.analysis.choose``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lrfind.analysis.choose import Choice, choose
from lrfind.analysis.curve import MIN_SIGNIFICANCE, describe_curve
from lrfind.analysis.grid import GRID_PER_DECADE, grid_exponent, grid_lr
from lrfind.results import History, Trial

#: Float slack when an LR sits exactly on a grid value.
_GRID_SLACK = 1e-9

#: The stable window's rise is read off a running median this many points wide: a rise needs
#: most of them above the level, so a blip of one or two points cannot cap the window.
RISE_MEDIAN_POINTS = 5


def next_bracket_lr(
    trials: Sequence[Trial], stride: int, floor: int | None, ceiling: int | None
) -> float | None:
    """Return the next grid LR that brackets the best trial more tightly, or None.

    Grid exponents (10**(k/4)) only. While the best trial (``choose``) is the lowest tried,
    the next LR is ``stride`` grid steps below it; while it is the highest tried, ``stride``
    steps above it. Once it has tried neighbours on both sides (or the edge it sits on is
    ``floor`` / ``ceiling``, inclusive; None is unbounded), the next LR halves the larger gap
    to a neighbour, on the side of the better-scoring neighbour when both gaps can be halved.
    Every trial diverged: ``stride`` below the lowest. No move goes below ``floor``, none goes
    above ``ceiling`` except downwards from a window set above it. None when the best is
    bracketed at one grid step on both sides, or every move is ruled out or repeats a trial.
    """
    if not trials:
        return None
    choice = choose(trials)
    tried = {grid_exponent(t.lr) for t in trials}

    def allowed(k: int) -> bool:
        return k not in tried and (floor is None or k >= floor)

    def below_ceiling(k: int) -> bool:
        return allowed(k) and (ceiling is None or k <= ceiling)

    if choice.best is None:
        below = min(tried) - stride
        return grid_lr(below) if allowed(below) else None
    best = grid_exponent(choice.trials[choice.best].lr)
    lower = [k for k in tried if k < best]
    upper = [k for k in tried if k > best]
    if not lower and allowed(best - stride):
        return grid_lr(best - stride)
    if not upper and below_ceiling(best + stride):
        return grid_lr(best + stride)
    options: list[tuple[float, int]] = []
    if lower and best - max(lower) > 1:
        gap = best - max(lower)
        options.append((_score_at(choice, max(lower)), best - gap // 2))
    if upper and min(upper) - best > 1:
        gap = min(upper) - best
        options.append((_score_at(choice, min(upper)), best + gap // 2))
    for _, k in sorted(options):
        if below_ceiling(k):
            return grid_lr(k)
    return None


def _score_at(choice: Choice, exponent: int) -> float:
    """The score of the trial on grid ``exponent`` (inf when it is out)."""
    for trial, value in zip(choice.trials, choice.scores, strict=True):
        if grid_exponent(trial.lr) == exponent:
            return value
    return math.inf


@dataclass(frozen=True)
class StableWindow:
    """The grid exponents (``low``..``high``, inclusive) a flat sweep showed to be usable.

    ``rose``: the loss rose above ``high`` (beyond it lies instability); else ``high`` is
    simply the end of the sweep and higher LRs are untested.
    """

    low: int
    high: int
    rose: bool

    @property
    def ceiling(self) -> int | None:
        """The highest grid exponent worth a trial (None: unbounded)."""
        return self.high if self.rose else None


def stable_window(history: History) -> StableWindow | None:
    """Return the grid range a sweep without a clear descent showed stable, or None.

    Only for a sweep whose curve has a problem other than an immediate blow-up and was long
    enough to analyse (``describe_curve``): from the first swept LR up to the last grid value
    at or below the last point before the loss rose. The rise: a RISE_MEDIAN_POINTS-point
    running median of the raw losses first exceeds the starting level (median of the first
    tenth) by more than MIN_SIGNIFICANCE noise standard deviations -- significance read the same
    way as a descent -- or the loss blew up (``CurveShape.diverged_lr``). The noise is the
    larger of the curve's and the step-to-step scatter of the whole sweep (``sweep_noise``).
    None for a sweep with a clear descent (the refine stage's case), or when the range holds
    no grid value.
    """
    shape = describe_curve(history)
    problem = shape.problem
    if problem is None or problem.startswith("diverged immediately") or shape.bandwidth <= 0:
        return None
    if not np.all(np.isfinite(shape.losses)):
        return None
    top, rose = _stable_top(shape.losses, max(shape.noise, sweep_noise(shape.losses)))
    if shape.diverged_lr is not None:
        # Where the loss blew up the sweep was unstable, whatever the running median says.
        below = np.flatnonzero(shape.lrs < shape.diverged_lr)
        top, rose = (min(top, int(below[-1])) if below.size else 0), True
    low = math.ceil(GRID_PER_DECADE * float(shape.x[0]) - _GRID_SLACK)
    high = math.floor(GRID_PER_DECADE * float(shape.x[top]) + _GRID_SLACK)
    return StableWindow(low, high, rose) if high >= low else None


def sweep_noise(losses: np.ndarray) -> float:
    """The standard deviation of one raw loss about the curve, from every step of the sweep.

    Read off the differences of consecutive losses (a robust spread over sqrt(2)): a smooth
    trend, a descent or a rise barely changes them, so every point counts, not only the few
    before the lowest one -- from ten points an estimate can come out several times too small,
    and then an ordinary blip reads as a significant rise.
    """
    if len(losses) < 3:
        return 0.0
    steps = np.diff(np.asarray(losses, dtype=float))
    spread = 1.4826 * float(np.median(np.abs(steps - np.median(steps))))
    return spread / math.sqrt(2)


def _stable_top(losses: np.ndarray, noise: float) -> tuple[int, bool]:
    """The last index before the losses rose (see ``stable_window``), and whether they did."""
    count = len(losses)
    half = RISE_MEDIAN_POINTS // 2
    # The windows shrink at the ends rather than repeat an end point, which would count twice.
    padded = np.concatenate(([np.nan] * half, losses, [np.nan] * half))
    windows = np.stack([padded[i : i + count] for i in range(RISE_MEDIAN_POINTS)])
    local = np.nanmedian(windows, axis=0)
    head = max(3, count // 10)
    start = float(np.median(losses[:head]))
    level = start + MIN_SIGNIFICANCE * noise + _GRID_SLACK * abs(start)
    above = np.flatnonzero(local[head:] > level)
    if above.size == 0:
        return count - 1, False
    return max(head + int(above[0]) - 1, 0), True


def search_candidates(history: History, count: int) -> list[float]:
    """Return the search stage's coarse grid, ascending: ``count`` LRs a decade apart.

    They run down from the top of ``stable_window`` (the LRs just below instability are where
    a fixed number of steps goes furthest) and stay inside it. [] when the sweep is not flat
    (``stable_window`` is None) or ``count`` < 1.
    """
    window = stable_window(history)
    if window is None or count < 1:
        return []
    exponents = [window.high - GRID_PER_DECADE * i for i in range(count)]
    return [grid_lr(k) for k in sorted(k for k in exponents if k >= window.low)]


def next_search_lr(history: History, trials: Sequence[Trial]) -> float | None:
    """Return the search stage's next LR (``next_bracket_lr`` a decade at a time), or None."""
    window = stable_window(history)
    if window is None:
        return None
    return next_bracket_lr(trials, GRID_PER_DECADE, window.low, window.ceiling)
