"""Suggestion methods read off one sweep, the recommended LR range and its confidence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lrfind.analysis.curve import NOISY_SIGNIFICANCE, CurveShape, describe_curve, log_lrs
from lrfind.analysis.grid import GRID_STEP
from lrfind.format import format_lr
from lrfind.names import DEFAULT_METHOD, SUGGEST_METHODS
from lrfind.results import (
    Analysis,
    Confidence,
    ConfidenceLevel,
    History,
    LRRange,
    Suggestion,
    mean_history,
)

#: The suggestion methods, in the order reports list them (their one home: ``lrfind.names``).
METHODS = SUGGEST_METHODS

#: max_lr: the LR at which the trend has completed this fraction of its descent.
MAX_LR_FRACTION = 0.8

#: lrfind's sweep-only suggestion: max_lr divided by 10**SUGGESTION_BELOW_MAX (about 3.2x).
SUGGESTION_BELOW_MAX = 0.5

#: min_lr: the LR at which the trend has completed this fraction of its descent.
DESCENT_BEGINS = 0.1

#: A completed sweep over fewer decades than this is too narrow to read a descent from.
MIN_SPAN_DECADES = 1.0


def _read_curve(history: History) -> CurveShape:
    """The curve's shape, with the problems only the whole history shows.

    An interrupted sweep is not a complete one that went wrong: if its curve cannot be read it
    says so, rather than "diverged immediately". A completed sweep over a sliver of LRs
    (1e-3 to 1.0000001e-3) has no curve to read, whatever its losses did.
    """
    shape = describe_curve(history)
    if history.stop_reason == "interrupted" and shape.problem is not None:
        at = f" at lr {format_lr(history.lrs[-1])}" if history.lrs else ""
        return replace(
            shape,
            problem=(
                f"interrupted after {history.steps} step(s){at}: the sweep stopped before its "
                "curve could be read; run it to the end"
            ),
        )
    if (
        history.stop_reason == "non_finite"
        and shape.problem is not None
        and shape.problem.startswith("no clear descent")
        and history.lrs
    ):
        return replace(
            shape,
            problem=(
                f"cut by a non-finite loss: the loss was NaN/inf at lr {format_lr(history.lrs[-1])}"
                f" after {history.steps - 1} step(s), before the curve showed a clear descent; "
                "sweep lower LRs (try_range), or check the loss for NaN at high LRs"
            ),
        )
    first, last = (history.lrs[0], history.lrs[-1]) if history.lrs else (0.0, 0.0)
    if history.stop_reason == "completed" and first > 0 and last > 0:
        span = math.log10(last / first) if last >= first else 0.0
        if span < MIN_SPAN_DECADES:
            return replace(
                shape,
                problem=(
                    f"too narrow: the sweep spans {span:.2g} decades ({format_lr(first)} to "
                    f"{format_lr(last)}); a descent needs at least {MIN_SPAN_DECADES:g} to read"
                ),
            )
    return shape


def _trim(count: int) -> tuple[int, int]:
    """fastai / torch-lr-finder style trimming: skip the first tenth and the last few points."""
    start = max(1, count // 10)
    end = count - max(1, min(5, count // 20))
    if end - start < 3:
        return 0, count
    return start, end


def _steepest(shape: CurveShape) -> tuple[int | None, str]:
    start, end = _trim(shape.points)
    with np.errstate(all="ignore"):
        gradient = np.gradient(shape.smoothed, shape.x)[start:end]
    gradient = np.where(np.isnan(gradient), np.inf, gradient)
    index = int(np.argmin(gradient))
    if not gradient[index] < 0:
        return None, "the smoothed loss never falls"
    return start + index, ""


def _minimum(shape: CurveShape) -> tuple[int | None, str]:
    start, _ = _trim(shape.points)
    return start + int(np.argmin(shape.smoothed[start:])), ""


def _valley(shape: CurveShape) -> tuple[int | None, str]:
    start, end = _trim(shape.points)
    values = shape.smoothed[start:end]
    # Longest strictly decreasing subsequence ending at each point (O(n^2), vectorised per point).
    length = np.ones(len(values), dtype=int)
    for index in range(1, len(values)):
        earlier = values[:index] > values[index]
        if earlier.any():
            length[index] = int(length[:index][earlier].max()) + 1
    end_index = int(np.argmax(length))
    if length[end_index] < 2:
        return None, "the smoothed loss never falls"
    begin = end_index - int(length[end_index]) + 1
    return start + begin + (end_index - begin) // 2, ""


def max_lr_index(shape: CurveShape) -> int:
    return shape.fraction_index(MAX_LR_FRACTION)


def _lrfind_log10(shape: CurveShape) -> float:
    return float(shape.x[max_lr_index(shape)] - SUGGESTION_BELOW_MAX)


def nearest_index(x: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(x - value)))


def _method_suggestion(shape: CurveShape, method: str) -> Suggestion:
    """The method's pick, moved inside the swept LRs when the rule reaches outside them."""
    suggestion = _rule_suggestion(shape, method)
    if suggestion.lr is None:
        return suggestion
    lowest, highest = float(shape.lrs[0]), float(shape.lrs[-1])
    if lowest <= suggestion.lr <= highest:
        return suggestion
    inside = min(max(suggestion.lr, lowest), highest)
    index = 0 if inside == lowest else shape.points - 1
    return replace(suggestion, lr=inside, index=index)


def _outside_range(shape: CurveShape, method: str) -> float | None:
    """The rule's own pick when it lies outside the swept LRs (and so was moved), else None."""
    if shape.problem is not None:
        return None
    raw = _rule_suggestion(shape, method).lr
    if raw is None or float(shape.lrs[0]) <= raw <= float(shape.lrs[-1]):
        return None
    return raw


def _rule_suggestion(shape: CurveShape, method: str) -> Suggestion:
    if shape.problem is not None:
        return Suggestion(method=method, lr=None, reason=shape.problem)
    if method == "lrfind":
        log10_lr = _lrfind_log10(shape)
        return Suggestion(
            method=method, lr=float(10**log10_lr), index=nearest_index(shape.x, log10_lr)
        )
    rule = {"steepest": _steepest, "minimum": _minimum, "valley": _valley}[method]
    index, reason = rule(shape)
    if index is None:
        return Suggestion(method=method, lr=None, reason=reason)
    lr = float(shape.lrs[index])
    if method == "minimum":
        lr /= 10
    return Suggestion(method=method, lr=lr, index=index)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown suggestion method {method!r}; choose from {', '.join(METHODS)}")


def suggest(history: History, method: str = DEFAULT_METHOD) -> Suggestion:
    """Return one method's suggestion for ``history`` (``lr`` None, with a reason, if unreliable).

    Raises:
        ValueError: ``method`` is not one of METHODS.
    """
    _check_method(method)
    return _method_suggestion(_read_curve(history), method)


def _lr_range(shape: CurveShape, lr: float | None) -> LRRange:
    """min_lr: where the descent begins; max_lr: where 80% of it is done (still falling)."""
    if shape.problem is not None:
        return LRRange(None, None)
    max_lr = float(shape.lrs[max_lr_index(shape)])
    min_lr = float(shape.lrs[shape.fraction_index(DESCENT_BEGINS)])
    return ordered_range(min_lr, max_lr, lr)


def ordered_range(min_lr: float, max_lr: float, lr: float | None) -> LRRange:
    """Enforce min_lr < lr <= max_lr (and min_lr < max_lr) by widening, never narrowing."""
    if lr is not None:
        max_lr = max(max_lr, lr)
        if min_lr >= lr:
            min_lr = lr / GRID_STEP
    if min_lr >= max_lr:
        min_lr = max_lr / GRID_STEP
    return LRRange(min_lr, max_lr)


def _confidence(
    shape: CurveShape, history: History, suggestion: Suggestion, method: str
) -> Confidence:
    first = float(history.lrs[0]) if history.lrs and history.lrs[0] > 0 else None
    last = float(history.lrs[-1]) if history.lrs and history.lrs[-1] > 0 else None
    if shape.problem is not None:
        completed = history.stop_reason == "completed" and shape.diverged_lr is None
        try_instead = _problem_try_range(shape, first, last, completed)
        return Confidence("none", (shape.problem,), _below_blow_up(shape, try_instead, first, last))
    if suggestion.lr is None:
        return Confidence("none", (suggestion.reason or "no answer",), None)
    reasons: list[str] = []
    level = 3  # high
    try_range: tuple[float, float] | None = None
    span = float(shape.x[-1] - shape.x[0])
    if shape.significance < NOISY_SIGNIFICANCE:
        reasons.append(
            f"noisy curve: the descent is only {shape.significance:.1f} standard errors deep"
        )
        level = min(level, 1)
    if shape.rise_index is None and shape.x[-1] - shape.x[shape.bottom] < 0.5:
        reasons.append("the loss was still falling at end_lr: the range is too low")
        level = min(level, 1)
        if first is not None and last is not None:
            try_range = (first, last * 100)
    elif shape.rise_index is None:
        reasons.append("the loss never blew up: the sweep may stop short of the unstable LRs")
        level = min(level, 2)
    if shape.x[shape.fraction_index(DESCENT_BEGINS)] - shape.x[0] < 0.5:
        reasons.append("the loss was already falling at start_lr: start lower")
        level = min(level, 2)
        if first is not None and last is not None:
            try_range = (first / 100, last if try_range is None else try_range[1])
    if span < 2:
        reasons.append(f"the sweep covers only {span:.1f} decades: the range is too narrow")
        level = min(level, 2)
        if first is not None and last is not None and try_range is None:
            try_range = (first / 10, last * 10)
    outside = _outside_range(shape, method)
    if outside is not None:
        edge = "start_lr" if suggestion.index == 0 else "end_lr"
        reasons.append(
            f"the {method} rule points at {format_lr(outside)}, outside the swept LRs: "
            f"moved to {edge}; sweep {'lower' if edge == 'start_lr' else 'higher'}"
        )
        level = min(level, 1)
        if first is not None and last is not None:
            try_range = (first / 100, last) if edge == "start_lr" else (first, last * 100)
    names: tuple[ConfidenceLevel, ...] = ("none", "low", "medium", "high")
    return Confidence(names[level], tuple(reasons), _below_blow_up(shape, try_range, first, last))


def _below_blow_up(
    shape: CurveShape,
    try_range: tuple[float, float] | None,
    first: float | None,
    last: float | None,
) -> tuple[float, float] | None:
    """``try_range`` with its end_lr kept at or below the LR where the loss blew up.

    A sweep never needs to go past an LR whose loss already diverged: the advice may move
    start_lr, never reach into that. None when what is left tries nothing the sweep did not
    (its own LRs or a part of them).
    """
    if try_range is None or shape.diverged_lr is None:
        return try_range
    start, end = try_range[0], min(try_range[1], shape.diverged_lr)
    if start >= end:
        return None
    if first is not None and last is not None and start >= first and end <= last:
        return None
    return (start, end)


def _problem_try_range(
    shape: CurveShape, first: float | None, last: float | None, completed: bool
) -> tuple[float, float] | None:
    """The sweep to run instead of one that gave no answer (None: more LRs will not help)."""
    problem = shape.problem or ""
    if first is None or last is None or problem.startswith("interrupted"):
        return None
    if problem.startswith("too narrow"):
        middle = math.sqrt(first * last)
        return (middle / 100, middle * 100)
    if problem.startswith("cut by a non-finite loss"):
        return (first / 100, last)
    if problem.startswith("diverged immediately"):
        blew_up = float(shape.lrs[-1]) if shape.points else first * 10
        return (first / 1000, max(blew_up, first * 10))
    # A sweep that ran to end_lr without blowing up has not seen the LRs that train yet, even
    # if its loss crept up at the end.
    if problem.startswith("no clear descent") and (shape.rise_index is None or completed):
        return (first, last * 100)
    return None


def analyze(history: History, method: str = DEFAULT_METHOD) -> Analysis:
    """Return every method's suggestion, ``method``'s as the pick, the LR range and the confidence.

    Raises:
        ValueError: ``method`` is not one of METHODS.
    """
    _check_method(method)
    shape = _read_curve(history)
    methods = {name: _method_suggestion(shape, name) for name in METHODS}
    suggestion = methods[method]
    return Analysis(
        suggestion=suggestion,
        lr_range=_lr_range(shape, suggestion.lr),
        confidence=_confidence(shape, history, suggestion, method),
        methods=methods,
    )


#: Per-repeat answers within this factor of each other agree (half a decade, two grid steps):
#: their median is then as good as a mean curve's answer would be, up to medium confidence.
REPEATS_AGREE = 10**0.5


def reconcile_repeats(
    mean: Analysis, repeats: Sequence[Analysis], history: History, *, after_trials: bool = False
) -> tuple[Analysis, int | None]:
    """The repeats' answer: the mean curve's, or the per-repeat answers' when it has none.

    ``mean`` analyses ``history``, the mean of the repeats' curves; ``repeats`` analyses each
    repeat alone. Averaging can lose an answer every repeat gives (the mean stops where the
    shortest repeat stopped; its noise reads lower than any one curve's): when the mean gives
    none but every repeat does, the answer is that of the repeat whose LR is the median (the
    lower one of an even count), with the confidence at most medium -- low when the answers
    spread over more than REPEATS_AGREE -- and a reason saying so. Returns the analysis and the
    index of the repeat it came from (None: the mean's).

    ``after_trials``: ``mean`` is what the trials after the mean curve chose, and they found
    nothing either (a search that no trial passed): a majority of the repeats answering is
    then enough, at low confidence.
    """
    answered = [a for a in repeats if a.suggestion.lr is not None]
    needed = len(repeats) // 2 + 1 if after_trials else len(repeats)
    if mean.suggestion.lr is not None or len(repeats) < 2 or len(answered) < max(2, needed):
        return mean, None
    lrs = [float(a.suggestion.lr) for a in answered if a.suggestion.lr is not None]
    order = sorted(range(len(lrs)), key=lrs.__getitem__)
    median = order[(len(order) - 1) // 2]
    chosen = answered[median]
    position = next(i for i, a in enumerate(repeats) if a is chosen)
    spread = max(lrs) / min(lrs)
    names: tuple[ConfidenceLevel, ...] = ("none", "low", "medium", "high")
    ceiling = 2 if spread <= REPEATS_AGREE * (1 + 1e-9) and not after_trials else 1
    level = names[min(names.index(chosen.confidence.level), ceiling)]
    why = mean.suggestion.reason or "no answer"
    which = (
        "each repeat did"
        if len(answered) == len(repeats)
        else (f"{len(answered)} of the {len(repeats)} repeats did")
    )
    reason = (
        f"the mean of the {len(repeats)} repeats gave no answer ({why}), but {which} "
        f"({', '.join(format_lr(lr) for lr in lrs)}): the answer is their median, repeat "
        f"{position + 1}'s"
    )
    index = None
    if chosen.suggestion.lr is not None and history.lrs:
        index = nearest_index(log_lrs(history.lrs), math.log10(chosen.suggestion.lr))
    analysis = Analysis(
        suggestion=replace(chosen.suggestion, index=index),
        lr_range=chosen.lr_range,
        confidence=Confidence(level, (reason, *chosen.confidence.reasons), None),
        methods=chosen.methods,
    )
    return analysis, position


@dataclass(frozen=True)
class RepeatedAnalysis:
    """What the sweep and its repeats answer.

    ``history``: the curve the answer is read from (the repeats' mean); ``analysis``: its
    answer (``reconcile_repeats``); ``stage_history``: the curve trials read (the mean's, or
    the repeat whose answer stands for it); ``repeat_lrs``: each repeat's own answer (empty
    for a single sweep).
    """

    history: History
    analysis: Analysis
    stage_history: History
    repeat_lrs: tuple[float | None, ...] = ()
    per_repeat: tuple[Analysis, ...] = ()


def analyze_repeats(histories: Sequence[History], method: str) -> RepeatedAnalysis:
    """Analyse one sweep, or the mean of several (``mean_history``) reconciled with each
    repeat's own answer."""
    if len(histories) == 1:
        analysis = analyze(histories[0], method)
        return RepeatedAnalysis(histories[0], analysis, histories[0])
    history = mean_history(list(histories))
    per_repeat = [analyze(h, method) for h in histories]
    analysis, chosen = reconcile_repeats(analyze(history, method), per_repeat, history)
    stage_history = history if chosen is None else histories[chosen]
    return RepeatedAnalysis(
        history,
        analysis,
        stage_history,
        tuple(a.suggestion.lr for a in per_repeat),
        tuple(per_repeat),
    )
