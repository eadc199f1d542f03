"""Pure analysis of a range-test curve: smoothing, slopes vs log10(lr), suggestions, range.

Nothing here trains, draws or imports torch: every function maps arrays / value objects to value
objects, so a saved run can be re-analysed anywhere. Slopes are always taken against log10(lr)
because the sweep is exponential: a slope per decade means the same at 1e-5 and at 1.

The rules (the README quotes them):

* Curve. Only the leading run of finite points counts. lrfind's own reading of it is the *trend*:
  a zero-lag, Gaussian-weighted local linear fit of the raw losses against log10(lr) (kernel sd
  ~8 sweep points, 0.26 decade for 100 steps over 8 decades; one LOWESS-style robustness pass;
  losses clipped one drop above the start level). The *top* is the highest trend point before
  the *lowest* one; the *drop* is top minus lowest; the LR "where f of the descent is done" is
  the first point from the top on whose trend has fallen f x drop. The *divergence region*
  starts at the first point past the lowest where the trend (failing that, a 3-point running
  median of the losses) climbs above lowest + max(0.5 x drop, 4 standard errors); failing
  both, at the last point of a sweep the engine stopped for divergence.
* No answer (every method): fewer than 10 finite points; LRs not strictly increasing; the
  lowest trend point within the first 5% of the points (then "diverged immediately" if the loss
  rises, else "no clear descent"); or a drop under 4 standard errors ("no clear descent": the
  mean of the first quarter of the points up to the lowest, minus the lowest trend value, over
  the standard error of that difference, inflated for lag-1 autocorrelation of the residuals).
* steepest: the most negative slope d(smoothed)/d(log10 lr) of the sweep's EMA-smoothed loss,
  ignoring the first tenth and the last 5 points, fewer on short sweeps (torch-lr-finder's
  rule, in log10 lr).
* minimum: the LR of the lowest EMA-smoothed loss (first tenth ignored), divided by 10.
* valley: the longest strictly decreasing subsequence of the EMA-smoothed loss (same trimming)
  marks a valley of that many steps ending at its last point; the LR halfway along it
  (fastai's rule, re-implemented).
* lrfind (default): max_lr / 10**0.5 (about max_lr / 3.2).
* Range: max_lr = the LR where 80% of the descent is done (the trend is still falling, at about
  2/3 of its steepest rate for a sigmoid-like drop: the peak for a one-cycle schedule); min_lr =
  the LR where 10% is done (where learning starts: a cyclical schedule's base). Then widened so
  that min_lr < lr <= max_lr.
* Confidence: none without an answer; low for a noisy curve (drop under 8 standard errors) or
  a loss still falling at end_lr (no divergence region and the bottom, the first point within
  5% of the drop of the lowest, less than half a decade before the end); medium when the loss
  never blew up, was already falling at start_lr (10% of the descent done within half a decade
  of it) or the sweep spans under 2 decades; else high. ``try_range`` proposes the sweep to run
  instead: end_lr x 100 (still falling; flat and never blew up), start_lr / 100 (already
  falling), start_lr / 1000 (diverged immediately), both x10 wider (too narrow).
* Refine candidates: ``count`` values on the 10**(k/4) grid centred on the grid value nearest
  max_lr (-2..+2 steps for 5), shifted down to stay below the divergence region; none when the
  sweep gave no answer. Each trial trains twice as many steps as the sweep by default.
* Refine choice: score = val loss (train loss without validation); diverged trials out; scores
  averaged half-and-half with their grid neighbours' mean (in log space when all are positive);
  the lowest LR within 5% of the best smoothed score wins. max_lr becomes 10**0.5 x the chosen
  LR, kept below the divergence region.
* Refine window extension: while the choice is the lowest trial (or every trial diverged), one
  more trial one grid step below the lowest; while the best smoothed score is the highest
  trial's, one grid step above the highest unless that reaches the divergence region; at most
  3 extra trials. The choice is then re-made over all trials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lrfind.results import (
    Analysis,
    Confidence,
    ConfidenceLevel,
    History,
    LRRange,
    Suggestion,
    Trial,
)

METHODS: tuple[str, ...] = ("lrfind", "steepest", "minimum", "valley")
DEFAULT_METHOD = "lrfind"

#: Fewer finite points than this and no method answers.
MIN_POINTS = 10
#: The trend's Gaussian kernel spans about this many sweep points (its sd, in decades, is
#: KERNEL_POINTS / (sqrt(2*pi) * points per decade): 0.26 decade for 100 steps over 8 decades).
KERNEL_POINTS = 8.0
MIN_BANDWIDTH = 0.05
#: A drop smaller than this many standard errors is not a descent.
MIN_SIGNIFICANCE = 4.0
#: ... and one smaller than this is a noisy curve (confidence low).
NOISY_SIGNIFICANCE = 8.0
#: The bottom is the first point within this fraction of the drop of the lowest trend value.
BOTTOM_TOLERANCE = 0.05
#: The divergence region starts where the trend climbs back this fraction of the drop.
RISE_FRACTION = 0.5
#: The refine stage's candidates sit on this log grid: 10**(k/4), four per decade.
GRID_PER_DECADE = 4
GRID_STEP = 10 ** (1 / GRID_PER_DECADE)
#: max_lr: the LR at which the trend has completed this fraction of its descent.
MAX_LR_FRACTION = 0.8
#: lrfind's sweep-only suggestion: max_lr divided by 10**SUGGESTION_BELOW_MAX (about 3.2x).
SUGGESTION_BELOW_MAX = 0.5
#: min_lr: the LR at which the trend has completed this fraction of its descent.
DESCENT_BEGINS = 0.1
#: Refine: the lowest LR whose neighbour-smoothed score is within this relative margin of the
#: best smoothed score wins.
REFINE_TOLERANCE = 0.05
#: Refine trials default to this many times the sweep's steps: the LR that does best in a short
#: constant-LR run falls as the run gets longer, and real training is longer than any trial.
REFINE_STEPS_PER_SWEEP_STEP = 2
#: Refine: at most this many extra trials, one grid step at a time, extend the candidate window
#: while the choice sits on its edge (``next_refine_candidate``).
REFINE_EXTRA_TRIALS = 3
#: After refine, max_lr (the one-cycle peak) is 10**ONECYCLE_ABOVE_REFINED x the refined LR.
ONECYCLE_ABOVE_REFINED = 0.5


def ema_smooth(losses: Sequence[float], beta: float) -> np.ndarray:
    """Return the bias-corrected exponential moving average of ``losses``.

    ``avg_i = beta*avg_{i-1} + (1-beta)*x_i`` with ``avg_-1 = 0`` and ``smoothed_i = avg_i /
    (1 - beta**(i+1))``; ``beta == 0`` returns the losses unchanged. A non-finite loss makes it
    and every later value non-finite (the engine stops a sweep at the first one anyway).

    Raises:
        ValueError: ``beta`` outside [0, 1).
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    values = np.asarray(losses, dtype=float)
    if beta == 0:
        return values.copy()
    smoothed = np.empty_like(values)
    average = 0.0
    for index, value in enumerate(values.tolist()):
        average = beta * average + (1 - beta) * value
        smoothed[index] = average / (1 - beta ** (index + 1))
    return smoothed


def log_lrs(lrs: Sequence[float]) -> np.ndarray:
    """Return log10 of each learning rate; non-positive or non-finite LRs become NaN."""
    values = np.asarray(lrs, dtype=float)
    valid = np.isfinite(values) & (values > 0)
    return np.where(valid, np.log10(np.where(valid, values, 1.0)), np.nan)


def slopes(lrs: Sequence[float], losses: Sequence[float]) -> np.ndarray:
    """Return d(loss)/d(log10 lr) at every point: central differences, one-sided at the ends.

    Raises:
        ValueError: the lengths differ or there are fewer than two points.
    """
    x = log_lrs(lrs)
    y = np.asarray(losses, dtype=float)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("slopes needs two or more points and equal lengths")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.gradient(y, x), dtype=float)


def local_linear_trend(
    x: np.ndarray, y: np.ndarray, bandwidth: float, robust: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Return (level, slope) of a Gaussian-weighted local linear fit of ``y`` at every ``x``.

    A zero-lag smoother: unlike the sweep's running EMA it does not shift the curve towards higher
    LRs, and it yields the slope d(level)/dx directly. ``bandwidth`` is the kernel's standard
    deviation in units of ``x``. With ``robust``, one bisquare re-weighting pass (as in LOWESS)
    discounts isolated spikes.
    """
    robustness = np.ones_like(y, dtype=float)
    level, slope = _weighted_fit(x, y, bandwidth, robustness)
    if robust:
        residual = y - level
        scale = 6.0 * float(np.median(np.abs(residual)))
        if scale > 0:
            ratio = np.clip(residual / scale, -1.0, 1.0)
            level, slope = _weighted_fit(x, y, bandwidth, (1 - ratio**2) ** 2)
    return level, slope


def _weighted_fit(
    x: np.ndarray, y: np.ndarray, bandwidth: float, robustness: np.ndarray, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    level = np.empty(len(x), dtype=float)
    slope = np.empty(len(x), dtype=float)
    for start in range(0, len(x), chunk):
        distance = x[None, :] - x[start : start + chunk, None]
        weight = np.exp(-0.5 * (distance / bandwidth) ** 2) * robustness[None, :]
        s0 = weight.sum(axis=1)
        s1 = (weight * distance).sum(axis=1)
        s2 = (weight * distance**2).sum(axis=1)
        t0 = weight @ y
        t1 = (weight * distance) @ y
        det = s0 * s2 - s1**2
        solvable = det > 1e-9 * np.maximum(s0 * s2, 1e-300)
        safe_det = np.where(solvable, det, 1.0)
        mean = t0 / np.where(s0 > 0, s0, 1.0)
        level[start : start + chunk] = np.where(solvable, (s2 * t0 - s1 * t1) / safe_det, mean)
        slope[start : start + chunk] = np.where(solvable, (s0 * t1 - s1 * t0) / safe_det, 0.0)
    return level, slope


@dataclass(frozen=True)
class CurveShape:
    """What the analysis reads off one sweep (the finite prefix of the history).

    ``trend``/``trend_slope`` are the zero-lag local-linear fit of the raw losses (clipped
    at ``start level + drop`` so the blow-up cannot drag the fit) and its slope per decade.
    ``top`` is the plateau before the descent (highest trend point before the lowest), ``lowest``
    the lowest trend point, ``bottom`` the first point whose trend is within 5% of the drop of
    the lowest (a long flat floor or a late wiggle does not move it). ``significance`` is the
    drop from the starting level to the lowest trend value in units of its standard error.
    ``problem`` is set when no method can give a reliable answer.
    """

    lrs: np.ndarray
    x: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    trend: np.ndarray
    trend_slope: np.ndarray
    bandwidth: float
    top: int
    bottom: int
    lowest: int
    drop: float
    noise: float
    significance: float
    rise_index: int | None
    problem: str | None = None

    @property
    def points(self) -> int:
        """Number of finite points analysed."""
        return len(self.x)

    def fraction_index(self, fraction: float) -> int:
        """Index where the trend has first fallen ``fraction`` of the drop below the top."""
        level = self.trend[self.top] - fraction * self.drop
        for index in range(self.top, self.bottom + 1):
            if self.trend[index] <= level:
                return index
        return self.bottom


def _finite_prefix_length(history: History) -> int:
    """Length of the leading run of steps whose LR is positive and both losses are finite."""
    for index, (lr, loss, smoothed) in enumerate(
        zip(history.lrs, history.losses, history.smoothed_losses, strict=True)
    ):
        if not (math.isfinite(lr) and lr > 0 and math.isfinite(loss) and math.isfinite(smoothed)):
            return index
    return history.steps


def _robust_std(values: np.ndarray) -> float:
    if len(values) == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def describe_curve(history: History) -> CurveShape:
    """Return the shape of the sweep's curve, with ``problem`` set when it cannot be trusted.

    Problems: fewer than MIN_POINTS finite points ("too short" or, when the sweep stopped on a
    blow-up, "diverged immediately"), LRs that do not increase, a curve whose loss never falls
    below its starting level ("diverged immediately" when it then rises, else "no clear
    descent"), a drop smaller than MIN_SIGNIFICANCE standard errors ("no clear descent"), and
    losses too large to compute with. Never raises.
    """
    with np.errstate(all="ignore"):
        shape = _describe(history)
    if shape.problem is None and not (
        np.all(np.isfinite(shape.trend))
        and np.all(np.isfinite(shape.trend_slope))
        and math.isfinite(shape.drop)
    ):
        return _with_problem(shape, "the losses are too large to analyse")
    return shape


def _describe(history: History) -> CurveShape:
    count = _finite_prefix_length(history)
    lrs = np.asarray(history.lrs[:count], dtype=float)
    x = log_lrs(history.lrs[:count])
    losses = np.asarray(history.losses[:count], dtype=float)
    smoothed = np.asarray(history.smoothed_losses[:count], dtype=float)

    def failed(problem: str) -> CurveShape:
        return CurveShape(
            lrs=lrs,
            x=x,
            losses=losses,
            smoothed=smoothed,
            trend=losses,
            trend_slope=np.zeros_like(losses),
            bandwidth=0.0,
            top=0,
            bottom=0,
            lowest=0,
            drop=0.0,
            noise=0.0,
            significance=0.0,
            rise_index=None,
            problem=problem,
        )

    if count < MIN_POINTS:
        if history.stop_reason in ("diverged", "non_finite") or count < history.steps:
            return failed(
                f"diverged immediately: only {count} finite point(s) before the loss blew up"
            )
        return failed(f"too short: {count} finite point(s), at least {MIN_POINTS} are needed")
    span = float(x[-1] - x[0])
    if not (np.all(np.diff(x) > 0) and span > 0):
        return failed("the learning rates do not increase along the sweep")

    density = (count - 1) / span
    bandwidth = max(MIN_BANDWIDTH, KERNEL_POINTS / (math.sqrt(2 * math.pi) * density))
    head = max(3, count // 10)
    start_level = float(np.median(losses[:head]))
    running = np.convolve(losses, np.ones(5) / 5, mode="valid")
    floor = float(np.min(running))
    # Past one drop above the start the loss is diverging; how far past does not matter, and
    # a huge blow-up would drag the fit. Without a visible descent there is nothing to protect.
    visible_drop = start_level - floor
    clipped = losses
    if visible_drop > 0:
        clipped = np.minimum(losses, start_level + visible_drop)
    trend, trend_slope = local_linear_trend(x, clipped, bandwidth)

    lowest = int(np.argmin(trend))
    top = int(np.argmax(trend[: lowest + 1]))
    drop = float(trend[top] - trend[lowest])
    bottom = lowest
    for index in range(top, lowest + 1):
        if trend[index] <= trend[lowest] + BOTTOM_TOLERANCE * drop:
            bottom = index
            break
    residual = clipped - trend
    noise = _robust_std(residual[: max(lowest + 1, MIN_POINTS)])
    centred = residual - residual.mean()
    energy = float(np.sum(centred**2))
    rho = float(np.sum(centred[1:] * centred[:-1]) / energy) if energy > 0 else 0.0
    inflation = (1 + min(max(rho, 0.0), 0.9)) / (1 - min(max(rho, 0.0), 0.9))
    # Drop from the mean of the first quarter of the run up to the lowest point to the lowest
    # trend value, against the standard error of that difference (autocorrelation-inflated).
    head_points = max(3, (lowest + 1) // 4)
    descent = float(np.mean(clipped[:head_points]) - trend[lowest])
    kernel_points = math.sqrt(2 * math.pi) * bandwidth * density
    standard_error = noise * math.sqrt(inflation * (1 / head_points + 1 / kernel_points))
    scale = max(abs(start_level), abs(drop), 1e-12)
    if standard_error > 0:
        significance = descent / standard_error
    else:
        significance = math.inf if descent > 1e-9 * scale else 0.0
    trend_error = noise * math.sqrt(inflation / kernel_points)
    rise_level = trend[lowest] + max(RISE_FRACTION * drop, 4 * trend_error, 1e-9 * scale)
    rise_index = next((i for i in range(lowest, count) if trend[i] > rise_level), None)
    if rise_index is None:
        # The trend's robustness pass can treat the few points of a steep final wall as
        # outliers: read such a rise off a 3-point running median of the losses instead.
        padded = np.concatenate(([clipped[0]], clipped, [clipped[-1]]))
        local = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
        rise_index = next((i for i in range(lowest, count) if local[i] > rise_level), None)
    if rise_index is None and history.stop_reason in ("diverged", "non_finite"):
        rise_index = count - 1

    shape = CurveShape(
        lrs=lrs,
        x=x,
        losses=losses,
        smoothed=smoothed,
        trend=trend,
        trend_slope=trend_slope,
        bandwidth=bandwidth,
        top=top,
        bottom=bottom,
        lowest=lowest,
        drop=drop,
        noise=noise,
        significance=significance,
        rise_index=rise_index,
    )
    if lowest <= max(2, count // 20) or drop <= 1e-9 * scale:
        if lowest <= max(2, count // 20) and rise_index is not None and x[lowest] - x[0] < 1.0:
            return _with_problem(shape, "diverged immediately: the loss rose from the first steps")
        return _with_problem(shape, _no_descent("the loss never fell below its start", shape))
    if significance < MIN_SIGNIFICANCE:
        fell = f"the loss fell by only {max(significance, 0):.1f} standard errors"
        return _with_problem(shape, _no_descent(fell, shape))
    return shape


def _no_descent(detail: str, shape: CurveShape) -> str:
    if shape.rise_index is not None:
        return (
            f"no clear descent: {detail}, then rose at high LRs "
            "(the model may need more steps per LR)"
        )
    return f"no clear descent: {detail}"


def _with_problem(shape: CurveShape, problem: str) -> CurveShape:
    return replace(shape, problem=problem)


# --------------------------------------------------------------------------- methods


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


def _max_lr_index(shape: CurveShape) -> int:
    return shape.fraction_index(MAX_LR_FRACTION)


def _lrfind_log10(shape: CurveShape) -> float:
    return float(shape.x[_max_lr_index(shape)] - SUGGESTION_BELOW_MAX)


def _nearest_index(x: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(x - value)))


def _method_suggestion(shape: CurveShape, method: str) -> Suggestion:
    if shape.problem is not None:
        return Suggestion(method=method, lr=None, reason=shape.problem)
    if method == "lrfind":
        log10_lr = _lrfind_log10(shape)
        return Suggestion(
            method=method, lr=float(10**log10_lr), index=_nearest_index(shape.x, log10_lr)
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
    return _method_suggestion(describe_curve(history), method)


# --------------------------------------------------------------------------- range, confidence


def _lr_range(shape: CurveShape, lr: float | None) -> LRRange:
    """min_lr: where the descent begins; max_lr: where 80% of it is done (still falling)."""
    if shape.problem is not None:
        return LRRange(None, None)
    max_lr = float(shape.lrs[_max_lr_index(shape)])
    min_lr = float(shape.lrs[shape.fraction_index(DESCENT_BEGINS)])
    return _ordered_range(min_lr, max_lr, lr)


def _ordered_range(min_lr: float, max_lr: float, lr: float | None) -> LRRange:
    """Enforce min_lr < lr <= max_lr (and min_lr < max_lr) by widening, never narrowing."""
    if lr is not None:
        max_lr = max(max_lr, lr)
        if min_lr >= lr:
            min_lr = lr / GRID_STEP
    if min_lr >= max_lr:
        min_lr = max_lr / GRID_STEP
    return LRRange(min_lr, max_lr)


def _confidence(shape: CurveShape, history: History, suggestion: Suggestion) -> Confidence:
    first = float(history.lrs[0]) if history.lrs and history.lrs[0] > 0 else None
    last = float(history.lrs[-1]) if history.lrs and history.lrs[-1] > 0 else None
    if shape.problem is not None:
        completed = history.stop_reason == "completed"
        return Confidence(
            "none", (shape.problem,), _problem_try_range(shape, first, last, completed)
        )
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
    names: tuple[ConfidenceLevel, ...] = ("none", "low", "medium", "high")
    return Confidence(names[level], tuple(reasons), try_range)


def _problem_try_range(
    shape: CurveShape, first: float | None, last: float | None, completed: bool
) -> tuple[float, float] | None:
    """The sweep to run instead of one that gave no answer (None: more LRs will not help)."""
    problem = shape.problem or ""
    if first is None or last is None:
        return None
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
    shape = describe_curve(history)
    methods = {name: _method_suggestion(shape, name) for name in METHODS}
    suggestion = methods[method]
    return Analysis(
        suggestion=suggestion,
        lr_range=_lr_range(shape, suggestion.lr),
        confidence=_confidence(shape, history, suggestion),
        methods=methods,
    )


# --------------------------------------------------------------------------- refine stage


def grid_exponent(lr: float) -> int:
    """Return k such that 10**(k/4) is the quarter-decade grid value nearest ``lr`` (in log)."""
    return round(GRID_PER_DECADE * math.log10(lr))


def grid_lr(exponent: int) -> float:
    """Return the grid value 10**(exponent/4)."""
    return float(10 ** (exponent / GRID_PER_DECADE))


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


def _trial_scores(trials: Sequence[Trial]) -> tuple[list[float], str]:
    """Each trial's score (inf when it diverged) and the metric used for all of them."""
    use_val = all(t.val_loss is not None for t in trials if not t.diverged) and any(
        t.val_loss is not None for t in trials
    )
    scores = []
    for trial in trials:
        value = trial.val_loss if use_val else trial.train_loss
        usable = not trial.diverged and value is not None and math.isfinite(value)
        scores.append(float(value) if usable and value is not None else math.inf)
    return scores, "val_loss" if use_val else "train_loss"


def smoothed_scores(scores: Sequence[float]) -> tuple[list[float], float]:
    """Return neighbour-smoothed trial scores (in LR order) and the tolerance that goes with them.

    Each score is averaged half-and-half with the mean of its grid neighbours (one at an edge),
    in log space when every finite score is positive; a score next to a diverged trial is
    kept as is. The tolerance is REFINE_TOLERANCE relative (log1p of it in log space).
    """
    finite = [s for s in scores if math.isfinite(s)]
    use_log = bool(finite) and min(finite) > 0
    values = [math.log(s) if use_log and math.isfinite(s) else s for s in scores]
    smoothed = []
    for index, value in enumerate(values):
        neighbours = [values[j] for j in (index - 1, index + 1) if 0 <= j < len(values)]
        if math.isfinite(value) and neighbours and all(math.isfinite(n) for n in neighbours):
            value = 0.5 * value + 0.5 * sum(neighbours) / len(neighbours)
        smoothed.append(value)
    if use_log:
        return smoothed, math.log1p(REFINE_TOLERANCE)
    best = min(finite) if finite else 0.0
    return smoothed, REFINE_TOLERANCE * max(abs(best), 1e-12)


@dataclass(frozen=True)
class _RefinePick:
    """The refine trials in LR order, their scores, and which one the choice rule picks."""

    ordered: list[Trial]
    scores: list[float]
    metric: str
    chosen: int | None
    best: int | None


def _refine_pick(trials: Sequence[Trial]) -> _RefinePick:
    """Apply the choice rule: the lowest LR within the tolerance of the best smoothed score."""
    ordered = sorted(trials, key=lambda t: t.lr)
    scores, metric = _trial_scores(ordered)
    if not any(math.isfinite(s) for s in scores):
        return _RefinePick(ordered, scores, metric, None, None)
    smoothed, tolerance = smoothed_scores(scores)
    best_value = min(v for v in smoothed if math.isfinite(v))
    best = smoothed.index(best_value)
    chosen = next(
        i for i, v in enumerate(smoothed) if math.isfinite(v) and v <= best_value + tolerance
    )
    return _RefinePick(ordered, scores, metric, chosen, best)


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
