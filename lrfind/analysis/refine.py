"""The refine stage: candidate LRs on the quarter-decade grid, window extension, the answer."""

from __future__ import annotations

import math
from collections.abc import Sequence

from lrfind.analysis.choose import _refine_pick
from lrfind.analysis.curve import CurveShape, describe_curve
from lrfind.analysis.grid import GRID_PER_DECADE, grid_exponent, grid_lr
from lrfind.analysis.suggest import _max_lr_index, _nearest_index, _ordered_range
from lrfind.results import (
    Analysis,
    Confidence,
    ConfidenceLevel,
    History,
    LRRange,
    Suggestion,
    Trial,
)

#: Refine trials default to this many times the sweep's steps: the LR that does best in a short
#: constant-LR run falls as the run gets longer, and real training is longer than any trial.
REFINE_STEPS_PER_SWEEP_STEP = 2

#: Refine: at most this many extra trials, one grid step at a time, extend the candidate window
#: while the choice sits on its edge (``next_refine_candidate``).
REFINE_EXTRA_TRIALS = 3

#: After refine, max_lr (the one-cycle peak) is 10**ONECYCLE_ABOVE_REFINED x the refined LR.
ONECYCLE_ABOVE_REFINED = 0.5


def refine_candidates(history: History, analysis: Analysis, count: int) -> list[float]:
    """Return ``count`` constant LRs for the refine trials, ascending, on the 10**(k/4) grid.

    The window is centred on the grid value nearest the sweep's max_lr, where trials as short
    as the sweep tend to do best (offsets -2..+2 grid steps for count 5; an even count leans
    low), then shifted down so that its top stays strictly below the LR where the divergence
    region starts (the trend has climbed back half its drop). Returns [] when the sweep gave
    no suggestion (nothing to refine: no answer stays no answer) or ``count`` < 1.
    """
    if count < 1 or analysis.suggestion.lr is None:
        return []
    shape = describe_curve(history)
    if shape.problem is not None:
        return []
    center = grid_exponent(float(shape.lrs[_max_lr_index(shape)]))
    above = (count - 1) // 2
    exponents = [center + above - i for i in range(count)]
    ceiling = _grid_ceiling(shape)
    if ceiling is not None and exponents[0] > ceiling:
        exponents = [k - (exponents[0] - ceiling) for k in exponents]
    return [grid_lr(k) for k in sorted(exponents)]


def _grid_ceiling(shape: CurveShape) -> int | None:
    """The highest grid exponent strictly below the start of the divergence region, if any."""
    if shape.problem is not None or shape.rise_index is None:
        return None
    return math.ceil(GRID_PER_DECADE * float(shape.x[shape.rise_index]) - 1e-9) - 1


def next_refine_candidate(
    history: History, analysis: Analysis, trials: Sequence[Trial]
) -> float | None:
    """Return the next grid LR to try when the refine choice sits on the edge of the trials.

    The choice rule (the lowest LR within REFINE_TOLERANCE of the best smoothed score) cannot
    tell whether a lower LR would also qualify when it picks the lowest trial, nor whether a
    higher LR would score better when the highest trial has the best smoothed score: the
    window has not bracketed the answer. Returns one grid step below the lowest trial in the
    first case (also when every trial diverged), one grid step above the highest in the second
    unless that step reaches the sweep's divergence region, else None (also with no trials or
    no sweep answer). The caller bounds how many times it extends (REFINE_EXTRA_TRIALS).
    """
    if not trials or analysis.suggestion.lr is None:
        return None
    pick = _refine_pick(trials)
    low = min(grid_exponent(t.lr) for t in trials)
    high = max(grid_exponent(t.lr) for t in trials)
    if pick.chosen is None or pick.chosen == 0:
        return grid_lr(low - 1)
    if pick.best == len(pick.ordered) - 1:
        ceiling = _grid_ceiling(describe_curve(history))
        if ceiling is None or high + 1 <= ceiling:
            return grid_lr(high + 1)
    return None


def choose_refined(history: History, analysis: Analysis, trials: Sequence[Trial]) -> Analysis:
    """Return the final Analysis once the refine trials have run.

    Score: each trial's val loss (every trial's final train loss when any surviving trial has
    no val loss); diverged or non-finite trials are out. Scores are neighbour-smoothed along
    the LR grid (``smoothed_scores``) and the lowest LR within REFINE_TOLERANCE of the best
    smoothed score wins: trials shorter than real training favour high LRs, and differences
    within the tolerance are noise. No surviving trial: the suggestion becomes None.
    The range: max_lr = 10**0.5 x the chosen LR (a one-cycle peak about 3x the best constant
    LR), capped at the start of the sweep's divergence region; min_lr is the sweep's; both
    widened if needed so that min_lr < lr <= max_lr.
    """
    method = f"{analysis.suggestion.method}+refine"
    pick = _refine_pick(trials)
    ordered, scores, metric, chosen = pick.ordered, pick.scores, pick.metric, pick.chosen
    if chosen is None:
        reason = "every refine trial diverged" if trials else "no refine trials ran"
        try_range = None
        if history.lrs and history.lrs[0] > 0 and ordered:
            try_range = (float(history.lrs[0]) / 1000, float(ordered[0].lr))
        return Analysis(
            suggestion=Suggestion(method=method, lr=None, reason=reason),
            lr_range=LRRange(None, None),
            confidence=Confidence("none", (reason,), try_range),
            methods=analysis.methods,
        )
    lr = float(ordered[chosen].lr)
    shape = describe_curve(history)
    index = _nearest_index(shape.x, math.log10(lr)) if shape.points else None
    lr_range = _refined_range(shape, analysis.lr_range, lr)
    confidence = _refined_confidence(analysis, scores, chosen, metric)
    return Analysis(
        Suggestion(method=method, lr=lr, index=index), lr_range, confidence, analysis.methods
    )


def _refined_range(shape: CurveShape, base: LRRange, lr: float) -> LRRange:
    """max_lr: 10**0.5 x the refined LR, kept below the divergence region; min_lr: the sweep's."""
    max_lr = lr * 10**ONECYCLE_ABOVE_REFINED
    if shape.problem is None and shape.rise_index is not None:
        max_lr = min(max_lr, float(shape.lrs[shape.rise_index]))
    min_lr = base.min_lr if base.min_lr is not None else lr / 10
    return _ordered_range(min_lr, max(max_lr, lr), lr)


def _refined_confidence(
    analysis: Analysis, scores: list[float], chosen: int, metric: str
) -> Confidence:
    reasons = list(analysis.confidence.reasons)
    names: tuple[ConfidenceLevel, ...] = ("none", "low", "medium", "high")
    level = max(names.index(analysis.confidence.level), 1)
    survivors = [i for i, s in enumerate(scores) if math.isfinite(s)]
    if len(scores) > 1 and chosen == 0:
        reasons.append(f"the lowest refine candidate had the best {metric}: try lower LRs too")
        level = min(level, 2)
    elif len(survivors) > 1 and chosen == survivors[-1] and chosen == len(scores) - 1:
        reasons.append(f"the highest refine candidate had the best {metric}: try higher LRs too")
        level = min(level, 2)
    return Confidence(names[level], tuple(reasons), analysis.confidence.try_range)
