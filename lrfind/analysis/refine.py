"""From trials to the answer: refine's candidates around the sweep's answer, and the final
Analysis once the refine or search trials have run (chosen by ``lrfind.analysis.choose``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from lrfind.analysis.budget import REFINE_EXTRA_TRIALS, REFINE_STEPS_PER_SWEEP_STEP
from lrfind.analysis.choose import Choice, beats_start, choose, metric_name
from lrfind.analysis.curve import CurveShape, describe_curve
from lrfind.analysis.grid import GRID_PER_DECADE, grid_exponent, grid_lr
from lrfind.analysis.search import next_bracket_lr, stable_window
from lrfind.analysis.suggest import max_lr_index, nearest_index, ordered_range
from lrfind.format import format_lr
from lrfind.results import (
    Analysis,
    Confidence,
    ConfidenceLevel,
    Drift,
    History,
    LRRange,
    Suggestion,
    TrainRun,
    Trial,
)

__all__ = [
    "REFINE_EXTRA_TRIALS",
    "REFINE_STEPS_PER_SWEEP_STEP",
    "choose_horizon",
    "choose_refined",
    "choose_searched",
    "next_refine_candidate",
    "refine_candidates",
    "unconfirmed",
]

#: The refine window's first candidates are this many grid steps apart; extensions past an
#: edge take the same stride. Measured on benchmarks/quality.py: a coarser first window (2, with
#: bisection closing in) hit as often at the default budget, but its answers spread up to 10x
#: across seeds instead of 1.8x.
REFINE_STRIDE = 1

#: After trials, max_lr (the one-cycle peak) is 10**ONECYCLE_ABOVE_REFINED x the chosen LR.
ONECYCLE_ABOVE_REFINED = 0.5

#: ... and min_lr (a cyclical schedule's base) at most this many decades below it.
MIN_LR_BELOW_REFINED = 1.0

#: The advice when the highest trial was best. Not given for a run longer than the trials:
#: longer training points lower, and the higher LRs it points to lose there.
TRY_HIGHER = "try higher LRs too"


def without_higher_advice(reasons: Sequence[str]) -> tuple[str, ...]:
    """``reasons`` less the advice to try higher LRs (for answers carried to a longer run)."""
    return tuple(reason for reason in reasons if not reason.endswith(TRY_HIGHER))


#: The confidence levels, lowest first.
_LEVELS: tuple[ConfidenceLevel, ...] = ("none", "low", "medium", "high")


def refine_candidates(history: History, analysis: Analysis, count: int) -> list[float]:
    """Return ``count`` constant LRs for the refine trials, ascending, on the 10**(k/4) grid.

    The window's top is the grid value nearest the sweep's max_lr (the one-cycle peak: the
    loss is still falling fast there) and it reaches ``count - 1`` grid steps below: a constant
    LR for a training run longer than any trial belongs at or below that peak, and short trials
    favour LRs that are too high for longer training. It is shifted down so that its top stays
    strictly below the LR where the divergence region starts (the trend has climbed back half
    its drop); an edge that holds the best trial is extended by ``next_refine_candidate``.
    Returns [] when the sweep gave no suggestion (a flat sweep goes to the search stage
    instead) or ``count`` < 1.
    """
    if count < 1 or analysis.suggestion.lr is None:
        return []
    shape = describe_curve(history)
    if shape.problem is not None:
        return []
    top = grid_exponent(float(shape.lrs[max_lr_index(shape)]))
    exponents = [top - REFINE_STRIDE * i for i in range(count)]
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
    """Return the next grid LR to try when the best trial sits on an edge of the window.

    While the best trial (``choose``) is the lowest tried, a lower LR may do better: one grid
    step below (also when every trial diverged). While it is the highest tried, one grid step
    above, unless that step reaches the sweep's divergence region. None otherwise, with no
    trials, or without a sweep answer. The caller bounds how many times it extends
    (``lrfind.analysis.budget``).
    """
    if not trials or analysis.suggestion.lr is None:
        return None
    shape = describe_curve(history)
    if shape.problem is not None:
        return None
    return next_bracket_lr(trials, REFINE_STRIDE, None, _grid_ceiling(shape))


def choose_refined(history: History, analysis: Analysis, trials: Sequence[Trial]) -> Analysis:
    """Return the final Analysis once the refine trials have run.

    The LR is the one rule's choice (``lrfind.analysis.choose``); no surviving trial: the
    suggestion becomes None. The range: max_lr = 10**0.5 x the chosen LR (a one-cycle peak
    about 3x the best constant LR), capped at the start of the sweep's divergence region;
    min_lr is the sweep's; both widened if needed so that min_lr < lr <= max_lr. Confidence
    keeps the sweep's level and reasons, at least low, and at most medium when the best trial
    sits on an edge of the trials (a reason says which).
    """
    method = f"{analysis.suggestion.method}+refine"
    choice = choose(trials)
    if choice.chosen_lr is None:
        reason = "every refine trial diverged" if trials else "no refine trials ran"
        try_range = None
        if history.lrs and history.lrs[0] > 0 and choice.trials:
            try_range = (float(history.lrs[0]) / 1000, float(choice.trials[0].lr))
        return _no_answer(analysis, method, reason, try_range)
    lr = choice.chosen_lr
    shape = describe_curve(history)
    reasons = list(analysis.confidence.reasons)
    level = max(_LEVELS.index(analysis.confidence.level), 1)
    edge = _edge_reason(choice, None, _grid_ceiling(shape))
    if edge is not None:
        reasons.append(edge)
        level = min(level, 2)
    return Analysis(
        Suggestion(method=method, lr=lr, index=_index(shape, lr)),
        _refined_range(shape, analysis.lr_range, lr),
        Confidence(_LEVELS[level], tuple(reasons), analysis.confidence.try_range),
        analysis.methods,
    )


def choose_horizon(
    history: History,
    analysis: Analysis,
    trials: Sequence[Trial],
    train: TrainRun,
    drift: Drift | None,
) -> Analysis:
    """Return the final Analysis once the horizon stage's last rung has run.

    The finalists are chosen from as the refine trials are (``choose_refined``); the chosen LR
    is then carried to the stated run by ``drift.factor`` and put back on the quarter-decade
    grid. For a scheduled run (onecycle, cosine, linear) the trials ran the schedule, so the
    LR is its peak and the range is (peak / 10, peak); for a constant-LR run the range is
    refine's. The reasons say which run the answer is for, how far the trials reached and
    how the drift moved it.
    """
    refined = choose_refined(history, analysis, trials)
    method = f"{analysis.suggestion.method}+horizon"
    if refined.suggestion.lr is None:
        return Analysis(
            replace(refined.suggestion, method=method),
            refined.lr_range,
            refined.confidence,
            refined.methods,
        )
    lr = refined.suggestion.lr
    reached = max((t.steps for t in trials if not t.diverged), default=0)
    reasons = [
        f"for {train.describe()}: the finalists trained {reached} steps "
        f"({reached / train.steps:.0%} of it)"
    ]
    longer = reached < train.steps
    level = refined.confidence.level
    if drift is not None and drift.factor < 1:
        moved = grid_lr(grid_exponent(lr * drift.factor))
        if moved < lr:
            reasons.append(drift.reason)
            lr = moved
            # Measured (benchmarks/longrun_quality.py): answers the carry moved are in the
            # band about three times in four, whatever the distance: medium, not high.
            level = "medium" if level == "high" else level
    kept = refined.confidence.reasons
    reasons.extend(without_higher_advice(kept) if longer else kept)
    shape = describe_curve(history)
    if train.schedule == "constant":
        lr_range = _refined_range(shape, analysis.lr_range, lr)
    else:
        lr_range = ordered_range(lr / 10**MIN_LR_BELOW_REFINED, lr, lr)
    return Analysis(
        Suggestion(method=method, lr=lr, index=_index(shape, lr)),
        lr_range,
        Confidence(level, tuple(reasons), refined.confidence.try_range),
        refined.methods,
    )


def choose_searched(
    history: History,
    analysis: Analysis,
    trials: Sequence[Trial],
    start: Trial | float | None = None,
) -> Analysis:
    """Return the final Analysis once the search trials of a flat sweep have run.

    The LR is the one rule's choice, method "search", confidence at most medium: low when the
    best trial sits on an edge of the trials or no start measurement was available, medium
    otherwise. No answer ("no reliable suggestion") when every trial diverged, or when no trial
    got below ``start`` (the metric before training, see ``beats_start``) beyond the noise.
    The range: max_lr = 10**0.5 x the LR, capped below the sweep's rise; min_lr = LR / 10.
    """
    choice = choose(trials)
    shape = describe_curve(history)
    name = metric_name(choice.metric)
    if choice.chosen_lr is None:
        reason = "every search trial diverged" if trials else "no search trials ran"
        return _no_answer(analysis, "search", reason, analysis.confidence.try_range)
    improved = beats_start(choice, start)
    if improved is False:
        reason = f"no search trial lowered the {name} below its start beyond the noise"
        return _no_answer(analysis, "search", reason, analysis.confidence.try_range)
    lr = choice.chosen_lr
    lrs = [t.lr for t in choice.trials]
    reasons = [
        f"the sweep showed no clear descent: {len(trials)} constant-LR trials searched "
        f"{format_lr(min(lrs))}..{format_lr(max(lrs))} instead"
    ]
    level = 2
    window = stable_window(history)
    edge = _edge_reason(choice, window.low if window else None, window.ceiling if window else None)
    if edge is not None:
        reasons.append(edge)
        level = 1
    if improved is None:
        reasons.append(f"the {name} before training was not measured")
        level = 1
    base = LRRange(lr / 10, None)
    return Analysis(
        Suggestion(method="search", lr=lr, index=_index(shape, lr)),
        _refined_range(shape, base, lr),
        Confidence(_LEVELS[level], tuple(reasons), analysis.confidence.try_range),
        analysis.methods,
    )


def at_most_low(analysis: Analysis, reason: str) -> Analysis:
    """``analysis`` with ``reason`` added and its confidence at most low."""
    confidence = analysis.confidence
    level: ConfidenceLevel = "low" if confidence.level in ("medium", "high") else confidence.level
    return replace(
        analysis,
        confidence=replace(confidence, level=level, reasons=(*confidence.reasons, reason)),
    )


def unconfirmed(analysis: Analysis, reason: str) -> Analysis:
    """The sweep's answer when no trial confirmed it (a stage cut short, or none could run for
    a stated run): ``reason`` added to the reasons, and at most medium confidence."""
    confidence = analysis.confidence
    level: ConfidenceLevel = "medium" if confidence.level == "high" else confidence.level
    return replace(
        analysis,
        confidence=replace(confidence, level=level, reasons=(*confidence.reasons, reason)),
    )


def _no_answer(
    analysis: Analysis, method: str, reason: str, try_range: tuple[float, float] | None
) -> Analysis:
    return Analysis(
        suggestion=Suggestion(method=method, lr=None, reason=reason),
        lr_range=LRRange(None, None),
        confidence=Confidence("none", (reason,), try_range),
        methods=analysis.methods,
    )


def _index(shape: CurveShape, lr: float) -> int | None:
    return nearest_index(shape.x, math.log10(lr)) if shape.points else None


def _edge_reason(choice: Choice, floor: int | None, ceiling: int | None) -> str | None:
    """The caution when the best trial is the lowest or highest LR tried (true by construction).

    No caution at a ``floor`` / ``ceiling`` grid exponent (None: unbounded): beyond it lie LRs
    the sweep showed to be useless (below a flat sweep's range) or unstable (above).
    """
    if choice.best is None or len(choice.trials) < 2:
        return None
    name = metric_name(choice.metric)
    best = choice.trials[choice.best]
    exponent = grid_exponent(best.lr)
    if choice.best == 0 and (floor is None or exponent > floor):
        return f"the lowest trial ({format_lr(best.lr)}) had the best {name}: try lower LRs too"
    highest = choice.best == len(choice.trials) - 1
    if highest and (ceiling is None or exponent < ceiling):
        return f"the highest trial ({format_lr(best.lr)}) had the best {name}: {TRY_HIGHER}"
    return None


def _refined_range(shape: CurveShape, base: LRRange, lr: float) -> LRRange:
    """The range around an LR the trials chose.

    max_lr: 10**ONECYCLE_ABOVE_REFINED x the chosen LR, kept below the divergence region.
    min_lr: the sweep's, but never more than MIN_LR_BELOW_REFINED decades below the chosen LR:
    on a noisy sweep the "descent begins" point can sit far down a flat stretch, and a cyclical
    schedule's base belongs near the LR that trained, not where nothing happened.
    """
    max_lr = lr * 10**ONECYCLE_ABOVE_REFINED
    if shape.rise_index is not None and shape.points:
        max_lr = min(max_lr, float(shape.lrs[shape.rise_index]))
    floor = lr / 10**MIN_LR_BELOW_REFINED
    min_lr = max(base.min_lr, floor) if base.min_lr is not None else floor
    return ordered_range(min_lr, max(max_lr, lr), lr)
