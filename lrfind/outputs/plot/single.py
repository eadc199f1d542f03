"""One run's figure: loss vs LR, the trend the suggestion reads, the range, and the trials panel."""

from __future__ import annotations

import math
import textwrap
import warnings
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation

from lrfind.analysis.curve import describe_curve
from lrfind.outputs.plot.style import (
    BLACK,
    BLUE,
    CONFIDENCE_COLORS,
    DPI,
    FIGSIZE,
    GREEN,
    GREY,
    LABEL_BOX,
    SKY,
    VERMILLION,
    Limits,
    finite_values,
    lr_bounds,
    mark_off_scale,
    message_box,
    new_figure,
    outside_legend,
    place_clear,
    plain,
    run_title,
    save_figure,
    short_lr,
    style_lr_axis,
    styled,
    value_at,
)
from lrfind.outputs.plot.trials import draw_trials_panel
from lrfind.results import History, RangeTestResult

#: Figure size with the trials panel under the curve (the curve keeps most of the height).
PANEL_FIGSIZE = (FIGSIZE[0], 6.8)

#: Where a marker for something above the visible range sits: just inside the top edge.
TOP_INSET = 0.965


def trend_of(history: History) -> tuple[np.ndarray, bool]:
    """The curve the suggestion is computed from, aligned with ``history.lrs``.

    Returns (values, True) with the analysis' zero-lag trend over the finite part of the sweep
    (NaN elsewhere), or (the running EMA, False) when the analysis could not fit a trend (too
    few points). Past the point where the loss blew up the trend is left out: it was fitted to
    losses clipped there, and would draw a plateau that never happened.
    """
    shape = describe_curve(history)
    if shape.bandwidth <= 0 or shape.points == 0:
        return finite_values(history.smoothed_losses), False
    values = np.full(history.steps, np.nan)
    values[: shape.points] = shape.trend
    if shape.rise_index is not None:
        # The fit saturates at the clipping level: stop once it has climbed (almost) all the way.
        after = shape.trend[shape.lowest :]
        top = float(after.max())
        level = shape.trend[shape.lowest] + 0.98 * (top - shape.trend[shape.lowest])
        reached = np.flatnonzero(after >= level)
        if reached.size:
            values[shape.lowest + int(reached[0]) + 1 :] = np.nan
    return values, True


def _confidence_line(result: RangeTestResult) -> str:
    confidence = result.confidence
    text = f"confidence: {confidence.level}"
    if confidence.level != "high" and confidence.reasons:
        text += f" — {plain(confidence.reasons[0], 150)}"
    return textwrap.fill(
        text,
        width=70,
        max_lines=2,
        placeholder=" …",
        break_on_hyphens=False,
        break_long_words=False,
    )


def _facts_line(result: RangeTestResult) -> str:
    history, info = result.history, result.info
    stop = {
        "completed": "completed",
        "diverged": "stopped: diverged",
        "non_finite": "stopped: non-finite loss",
        "interrupted": "interrupted",
    }.get(history.stop_reason, plain(history.stop_reason, 20))
    return (
        f"{history.steps} of {info.planned_steps} steps · {stop}\n"
        f"{info.seconds:.1f} s on {plain(info.device, 16)} ({plain(info.precision, 10)})"
    )


def _draw_repeats(ax: Axes, result: RangeTestResult) -> None:
    steps = result.history.steps
    stacked = np.full((len(result.repeats), steps), np.nan)
    for row, repeat in enumerate(result.repeats):
        values = trend_of(repeat)[0][:steps]
        stacked[row, : values.size] = values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns past a repeat's end
        low, high = np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)
    label = f"repeats: min–max of {len(result.repeats)} trends"
    if result.spread is not None:
        label += f" (suggestion spread ×{result.spread:.2f})"
    ax.fill_between(
        result.history.lrs, low, high, color=BLUE, alpha=0.18, linewidth=0, label=label, zorder=2
    )
    suggestions = [lr for lr in result.repeat_suggestions if lr is not None and lr > 0]
    if suggestions:
        bottom = ax.get_ylim()[0]
        ax.plot(
            suggestions,
            [bottom] * len(suggestions),
            linestyle="none",
            marker="^",
            markersize=8,
            color=VERMILLION,
            alpha=0.8,
            clip_on=False,
            zorder=6,
            label="each repeat's suggestion",
        )


def _draw_stop(ax: Axes, history: History, curve: np.ndarray) -> None:
    """A cross where the sweep stopped, inside the axes even when the loss there is off scale."""
    if history.stop_reason not in ("diverged", "non_finite") or not history.lrs:
        return
    stop_lr = history.lrs[-1]
    what = "diverged" if history.stop_reason == "diverged" else "non-finite loss"
    ax.axvline(stop_lr, color=BLACK, linestyle=":", linewidth=1.3, zorder=3)
    low, high = ax.get_ylim()
    finite = np.flatnonzero(np.isfinite(curve))
    y = float(curve[finite[-1]]) if finite.size else high
    inset = low + TOP_INSET * (high - low)
    if ax.get_yscale() == "log" and low > 0:
        inset = low * (high / low) ** TOP_INSET
    ax.plot(
        [stop_lr],
        [min(max(y, low), inset)],
        linestyle="none",
        marker="X",
        markersize=10,
        color=BLACK,
        zorder=7,
        label=f"stopped: {what} at {short_lr(stop_lr)}",
    )


def _draw_suggestion(ax: Axes, result: RangeTestResult, curve: np.ndarray) -> Annotation | None:
    lr = result.suggestion.lr
    if lr is None or not (lr > 0 and math.isfinite(lr)):
        reason = result.suggestion.reason or (
            result.confidence.reasons[0] if result.confidence.reasons else ""
        )
        detail = plain(reason, 70) if reason else None
        if detail and len(reason) > 70:
            detail = textwrap.fill(plain(reason, 210), width=70, max_lines=3, placeholder=" …")
        if result.confidence.try_range is not None:
            start, end = result.confidence.try_range
            hint = f"try sweeping {short_lr(start)} … {short_lr(end)}"
            detail = f"{detail}\n{hint}" if detail else hint
        message_box(ax, "no reliable suggestion", detail)
        return None
    ax.axvline(lr, color=VERMILLION, linestyle="--", linewidth=1.5, zorder=4)
    low, high = ax.get_ylim()
    y = value_at(lr, result.history.lrs, curve)
    if y is None or not low <= y <= high:
        y = low + 0.5 * (high - low) if y is None else min(max(y, low), high)
    else:
        ax.plot(
            [lr],
            [y],
            marker="o",
            markersize=9,
            color=VERMILLION,
            markeredgecolor="white",
            markeredgewidth=1.5,
            linestyle="none",
            zorder=8,
        )
    x_low, x_high = (math.log10(v) for v in ax.get_xlim())
    right_side = (math.log10(lr) - x_low) / (x_high - x_low) < 0.7
    steps = result.answer_steps
    run = f"\nfor {steps}-step runs" if result.info.train is None and steps else ""
    if result.info.train is not None and steps == result.info.train.steps:
        kind = "" if result.info.train.schedule == "constant" else f" {result.info.train.schedule}"
        run = f"\nfor the {result.info.train.steps}-step{kind} run"
    elif result.info.train is not None:
        run = f"\nfor {steps or result.history.steps}-step runs"
    return ax.annotate(
        f"suggested {short_lr(lr)}{run}",
        xy=(lr, y),
        xytext=(12 if right_side else -12, 22),
        textcoords="offset points",
        ha="left" if right_side else "right",
        fontsize=10.5,
        fontweight="bold",
        color=VERMILLION,
        parse_math=False,
        bbox=LABEL_BOX,
        arrowprops={"arrowstyle": "-", "color": VERMILLION, "linewidth": 1.0},
        zorder=9,
    )


def _draw_range(ax: Axes, result: RangeTestResult) -> None:
    lr_range = result.lr_range
    if lr_range.min_lr and lr_range.max_lr and 0 < lr_range.min_lr < lr_range.max_lr:
        ax.axvspan(
            lr_range.min_lr,
            lr_range.max_lr,
            color=GREEN,
            alpha=0.13,
            linewidth=0,
            zorder=1,
            label=f"recommended range {short_lr(lr_range.min_lr)} – {short_lr(lr_range.max_lr)}",
        )


def _figure(with_panel: bool) -> tuple[Figure, Axes, Axes | None]:
    if not with_panel:
        figure, ax = new_figure()
        return figure, ax, None
    figure = Figure(figsize=PANEL_FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    ax, panel = figure.subplots(2, 1, sharex=True, height_ratios=(3.0, 1.35))
    return figure, ax, panel


def plot_result(result: RangeTestResult, path: str | Path) -> Path:
    """Write the single-run report PNG to ``path`` (atomically) and return the path.

    Loss vs LR on a log axis: the raw loss (light) and, bold, the zero-lag trend the suggestion
    is computed from; the suggestion, the recommended range, where the sweep stopped and the
    repeats' band. Refine or search trials get their own panel underneath on the same LR axis
    (their score vs LR, the chosen trial, the trials tied with the best). "No reliable
    suggestion" when there is no answer. The y-range follows the descent, so a blow-up at the
    end of the sweep cannot flatten the rest of the curve.

    Raises:
        OutputError: the file could not be written.
    """
    with styled():
        return save_figure(draw_result(result), Path(path))


def draw_result(result: RangeTestResult) -> Figure:
    """Return the figure ``plot_result`` saves (call it inside the house style to save it)."""
    history = result.history
    curve, is_trend = trend_of(history)
    raw = finite_values(history.losses)
    refinement = result.refinement
    trials = refinement.trials if refinement is not None else ()
    figure, ax, panel = _figure(bool(trials))
    style_lr_axis(ax, *lr_bounds(history.lrs, [t.lr for t in trials]))
    limits = Limits()
    limits.add(curve, raw)
    for repeat in result.repeats:
        limits.add(trend_of(repeat)[0][: history.steps])
    limits.apply(ax)
    _draw_range(ax, result)
    if history.steps:
        ax.plot(history.lrs, raw, color=SKY, linewidth=0.9, alpha=0.75, label="loss", zorder=3)
    if result.repeats:
        _draw_repeats(ax, result)
    if history.steps:
        label = "trend (what the suggestion reads)" if is_trend else "smoothed loss (EMA)"
        if result.repeats:
            label += f", mean of {len(result.repeats)}"
        ax.plot(history.lrs, curve, color=BLUE, linewidth=2.4, label=label, zorder=5)
    off_scale = suggestion_label = None
    if limits.empty:
        message_box(ax, "no finite loss recorded")
    else:
        off_scale = mark_off_scale(ax, history.lrs, raw, GREY)
        suggestion_label = _draw_suggestion(ax, result, curve)
    _draw_stop(ax, history, curve)
    loss_name = {"model": "the model's own"}.get(result.info.loss, result.info.loss)
    ax.set_ylabel(
        f"training loss ({plain(loss_name, 30)})" if loss_name != "loss" else "training loss"
    )
    figure.suptitle(run_title(result.info), fontweight="bold")
    ax.set_title(
        _confidence_line(result),
        loc="left",
        color=CONFIDENCE_COLORS.get(result.confidence.level, GREY),
        parse_math=False,
    )
    ax.set_title(_facts_line(result), loc="right", color=GREY, parse_math=False)
    handles, labels = ax.get_legend_handles_labels()
    if panel is not None and refinement is not None:
        ax.set_xlabel("")
        draw_trials_panel(panel, refinement, result.suggestion.lr)
        panel_handles, panel_labels = panel.get_legend_handles_labels()
        handles, labels = handles + panel_handles, labels + panel_labels
    outside_legend(figure, handles, labels)
    if suggestion_label is not None:
        figure.canvas.draw()
        on_right = suggestion_label.get_horizontalalignment() == "left"
        side = 1 if on_right else -1
        place_clear(
            figure,
            suggestion_label,
            [off_scale],
            [
                (12 * side, -30, "left" if on_right else "right"),
                (-12 * side, 22, "right" if on_right else "left"),
            ],
        )
    return figure
