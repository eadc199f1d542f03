"""The shape of a loss-vs-LR curve: smoothing, the zero-lag trend, and where it descends."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lrfind.format import format_lr
from lrfind.results import (
    MIN_CURVE_POINTS,
    RAW_DIVERGE_STEPS,
    History,
    raw_divergence_step,
)

#: Fewer finite points than this and no method answers.
MIN_POINTS = MIN_CURVE_POINTS

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

#: A curve without descent is flat (needs more steps per LR) rather than rising from the start
#: when its loss stays within this fraction of its starting level (or 3 noise standard
#: deviations, if more) for at least FLAT_DECADES of the sweep before it rises.
FLAT_FRACTION = 0.1

FLAT_DECADES = 1.0


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
    ``blow_up`` is the first step of a run of raw losses far above the best smoothed loss
    (``raw_divergence_step``): the curve is read as if the sweep had stopped at the end of that
    run, and the divergence region starts at it. ``diverged_lr`` is the LR at which the sweep
    showed the loss blowing up (that run, else the step a diverged or non-finite sweep stopped
    at), None when it never did. ``problem`` is set when no method can give a reliable answer.
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
    blow_up: int | None = None
    diverged_lr: float | None = None

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
    blew_up = history.stop_reason in ("diverged", "non_finite")
    diverged_lr = float(history.lrs[-1]) if blew_up and history.lrs else None
    # The raw losses can show a blow-up that the lagging EMA (and so the stop rule of an older
    # or more lenient sweep) did not: read the curve as if the sweep had stopped there.
    raw_stop = raw_divergence_step(history.losses[:count], history.smoothed_losses[:count])
    blow_up = None if raw_stop is None else raw_stop - RAW_DIVERGE_STEPS + 1
    if raw_stop is not None and blow_up is not None:
        count, blew_up = raw_stop + 1, True
        diverged_lr = float(history.lrs[blow_up])
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
            blow_up=blow_up,
            diverged_lr=diverged_lr,
        )

    if count < MIN_POINTS:
        if blew_up or count < history.steps:
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
    if blow_up is not None:
        # The divergence region starts where the raw losses blew up, if the trend had not yet.
        rise_index = min(rise_index if rise_index is not None else count, max(blow_up, lowest))
    if rise_index is None and blew_up:
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
        blow_up=blow_up,
        diverged_lr=diverged_lr,
    )
    if lowest <= max(2, count // 20) or drop <= 1e-9 * scale:
        if lowest <= max(2, count // 20) and rise_index is not None and x[lowest] - x[0] < 1.0:
            flat_end = _flat_end(losses, start_level, noise)
            if x[flat_end] - x[0] >= FLAT_DECADES:
                return _with_problem(shape, _flat(shape, flat_end, start_level, noise))
            return _with_problem(shape, "diverged immediately: the loss rose from the first steps")
        return _with_problem(shape, _no_descent("the loss never fell below its start", shape))
    if significance < MIN_SIGNIFICANCE:
        fell = f"the loss fell by only {max(significance, 0):.1f} standard errors"
        return _with_problem(shape, _no_descent(fell, shape))
    return shape


def _flat_tolerance(start_level: float, noise: float) -> float:
    return max(FLAT_FRACTION * abs(start_level), 3 * noise)


def _flat_end(losses: np.ndarray, start_level: float, noise: float) -> int:
    """Last index before a 5-point running median of the raw losses leaves the flat band.

    The raw losses, not the trend: the trend is fitted to losses clipped near the start level
    when there is no descent, so it cannot show how soon the loss climbed.
    """
    limit = start_level + _flat_tolerance(start_level, noise)
    padded = np.concatenate(([losses[0]] * 2, losses, [losses[-1]] * 2))
    windows = np.stack([padded[i : i + len(losses)] for i in range(5)])
    local = np.median(windows, axis=0)
    above = np.flatnonzero(local > limit)
    if above.size == 0:
        return len(losses) - 1
    return max(int(above[0]) - 1, 0)


def _flat(shape: CurveShape, flat_end: int, start_level: float, noise: float) -> str:
    """A curve that stayed level for decades, then rose: too few steps per LR, not too high."""
    band = _flat_tolerance(start_level, noise)
    share = f"{band / abs(start_level):.0%} " if start_level != 0 else ""
    return (
        f"flat: the loss stayed within {share}of its start from {format_lr(float(shape.lrs[0]))} "
        f"to {format_lr(float(shape.lrs[flat_end]))}, then rose: the model needs more steps per "
        "LR to show a descent; raise sweep.steps (e.g. 3x), a lower start_lr will not help"
    )


def _no_descent(detail: str, shape: CurveShape) -> str:
    if shape.rise_index is not None:
        return (
            f"no clear descent: {detail}, then rose at high LRs: the model may need more steps "
            "per LR (raise sweep.steps)"
        )
    return f"no clear descent: {detail}"


def _with_problem(shape: CurveShape, problem: str) -> CurveShape:
    return replace(shape, problem=problem)
