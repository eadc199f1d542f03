"""One run's figure: loss vs LR, the trend, the suggestion, the range and the refine trials."""

from __future__ import annotations

import math
import textwrap
import warnings
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from lrfind.outputs.plot.style import (
    BLACK,
    BLUE,
    CONFIDENCE_COLORS,
    GREEN,
    GREY,
    ORANGE,
    SKY,
    VERMILLION,
    _clip_y,
    _finite,
    _Limits,
    _lr_bounds,
    _mark_off_scale,
    _message_box,
    _new_figure,
    _outside_legend,
    _plain,
    _run_title,
    _save,
    _short_lr,
    _style_lr_axis,
    _styled,
    _value_at,
)
from lrfind.results import History, RangeTestResult, Trial


def _confidence_line(result: RangeTestResult) -> str:
    confidence = result.confidence
    text = f"confidence: {confidence.level}"
    if confidence.level != "high" and confidence.reasons:
        text += f" — {_plain(confidence.reasons[0], 110)}"
    return textwrap.fill(
        text,
        width=62,
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
    }.get(history.stop_reason, _plain(history.stop_reason, 20))
    return (
        f"{history.steps} of {info.planned_steps} steps · {stop}\n"
        f"{info.seconds:.1f} s on {_plain(info.device, 16)} ({_plain(info.precision, 10)})"
    )


def _draw_repeats(ax: Axes, result: RangeTestResult) -> None:
    steps = result.history.steps
    stacked = np.full((len(result.repeats), steps), np.nan)
    for row, repeat in enumerate(result.repeats):
        values = _finite(repeat.smoothed_losses[:steps])
        stacked[row, : values.size] = values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns past a repeat's end
        low, high = np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)
    label = f"repeats: min–max of {len(result.repeats)}"
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


def _draw_stop(ax: Axes, history: History, smoothed: np.ndarray) -> None:
    if history.stop_reason not in ("diverged", "non_finite") or not history.lrs:
        return
    stop_lr = history.lrs[-1]
    what = "diverged" if history.stop_reason == "diverged" else "non-finite loss"
    ax.axvline(stop_lr, color=BLACK, linestyle=":", linewidth=1.3, zorder=3)
    finite = np.flatnonzero(np.isfinite(smoothed))
    y = float(smoothed[finite[-1]]) if finite.size else ax.get_ylim()[1]
    ax.plot(
        [stop_lr],
        [_clip_y(ax, y)],
        linestyle="none",
        marker="X",
        markersize=10,
        color=BLACK,
        clip_on=False,
        zorder=7,
        label=f"stopped: {what} at {_short_lr(stop_lr)}",
    )


def _draw_suggestion(ax: Axes, result: RangeTestResult, smoothed: np.ndarray) -> None:
    lr = result.suggestion.lr
    if lr is None or not (lr > 0 and math.isfinite(lr)):
        reason = result.suggestion.reason or (
            result.confidence.reasons[0] if result.confidence.reasons else ""
        )
        detail = _plain(reason, 70) if reason else None
        if result.confidence.try_range is not None:
            start, end = result.confidence.try_range
            hint = f"try sweeping {_short_lr(start)} … {_short_lr(end)}"
            detail = f"{detail}\n{hint}" if detail else hint
        _message_box(ax, "no reliable suggestion", detail)
        return
    ax.axvline(lr, color=VERMILLION, linestyle="--", linewidth=1.5, zorder=4)
    y = _value_at(lr, result.history.lrs, smoothed)
    if y is None:
        low, high = ax.get_ylim()
        y = low + 0.5 * (high - low)
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
    ax.annotate(
        f"suggested {_short_lr(lr)}",
        xy=(lr, _clip_y(ax, y)),
        xytext=(12 if right_side else -12, 22),
        textcoords="offset points",
        ha="left" if right_side else "right",
        fontsize=10.5,
        fontweight="bold",
        color=VERMILLION,
        parse_math=False,
        bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "none", "alpha": 0.9},
        arrowprops={"arrowstyle": "-", "color": VERMILLION, "linewidth": 1.0},
        zorder=9,
    )


def _star(ax: Axes, lr: float, value: float, color: str, size: float, label: str) -> None:
    """Mark the chosen / best trial with a black-edged star."""
    ax.plot(
        [lr],
        [value],
        linestyle="none",
        marker="*",
        markersize=size,
        color=color,
        markeredgecolor=BLACK,
        markeredgewidth=0.8,
        zorder=9,
        label=label,
    )


def _draw_refinement(ax: Axes, result: RangeTestResult) -> Axes | None:
    refinement = result.refinement
    if refinement is None or not refinement.trials:
        return None
    twin = ax.twinx()
    twin.grid(False)
    twin.spines["right"].set_visible(True)
    twin.spines["right"].set_color(ORANGE)
    twin.tick_params(axis="y", colors=ORANGE)
    trials = sorted(refinement.trials, key=lambda t: t.lr)
    use_val = any(t.val_loss is not None and math.isfinite(t.val_loss) for t in trials)
    metric = "val loss" if use_val else "train loss"

    def value(trial: Trial) -> float:
        raw = trial.val_loss if use_val else trial.train_loss
        return float("nan") if raw is None or not math.isfinite(raw) else float(raw)

    ok = [t for t in trials if not t.diverged and math.isfinite(value(t))]
    failed = [t for t in trials if t not in ok]
    limits = _Limits()
    if ok:
        values = np.array([value(t) for t in ok])
        limits.low, limits.high = float(values.min()), float(values.max())
        twin.plot(
            [t.lr for t in ok],
            values,
            color=ORANGE,
            marker="D",
            markersize=6,
            linewidth=1.2,
            zorder=6,
            label=f"refine trials: {metric} after {refinement.steps_per_trial} steps",
        )
    limits.apply(twin, top_margin=0.35, bottom_margin=0.35)
    if failed:
        top = twin.get_ylim()[1]
        twin.plot(
            [t.lr for t in failed],
            [top] * len(failed),
            linestyle="none",
            marker="x",
            markersize=9,
            markeredgewidth=2,
            color=ORANGE,
            clip_on=False,
            zorder=6,
            label="refine trial diverged",
        )
    chosen = refinement.chosen_lr
    chosen_trials = [
        t for t in ok if chosen is not None and math.isclose(t.lr, chosen, rel_tol=1e-6)
    ]
    if chosen_trials:
        trial = chosen_trials[0]
        _star(twin, trial.lr, value(trial), ORANGE, 17, f"refine chose {_short_lr(chosen)}")
    twin.set_ylabel(f"refine: {metric}", color=ORANGE)
    return twin


def plot_result(result: RangeTestResult, path: str | Path) -> Path:
    """Write the single-run report PNG to ``path`` (atomically) and return the path.

    Loss vs LR on a log axis: raw loss (thin) and smoothed loss (bold), the suggestion, the
    recommended range, where the sweep stopped, the repeats' band and the refine trials when there
    are any; "no reliable suggestion" when there is no answer. The y-range follows the descent,
    so a blow-up at the end of the sweep cannot flatten the rest of the curve.

    Raises:
        OutputError: the file could not be written.
    """
    history = result.history
    smoothed = _finite(history.smoothed_losses)
    raw = _finite(history.losses)
    with _styled():
        figure, ax = _new_figure()
        _style_lr_axis(ax, *_lr_bounds(history.lrs))
        limits = _Limits()
        limits.add(smoothed, raw)
        for repeat in result.repeats:
            limits.add(_finite(repeat.smoothed_losses[: history.steps]))
        limits.apply(ax)
        lr_range = result.lr_range
        if lr_range.min_lr and lr_range.max_lr and 0 < lr_range.min_lr < lr_range.max_lr:
            ax.axvspan(
                lr_range.min_lr,
                lr_range.max_lr,
                color=GREEN,
                alpha=0.13,
                linewidth=0,
                zorder=1,
                label=(
                    f"recommended range {_short_lr(lr_range.min_lr)} – {_short_lr(lr_range.max_lr)}"
                ),
            )
        if history.steps:
            ax.plot(history.lrs, raw, color=SKY, linewidth=0.9, alpha=0.7, label="loss", zorder=3)
        if result.repeats:
            _draw_repeats(ax, result)
        if history.steps:
            ax.plot(
                history.lrs,
                smoothed,
                color=BLUE,
                linewidth=2.4,
                label="smoothed loss"
                + (f" (mean of {len(result.repeats)})" if result.repeats else ""),
                zorder=5,
            )
        if limits.empty:
            _message_box(ax, "no finite loss recorded")
        else:
            _mark_off_scale(ax, history.lrs, smoothed, BLUE)
            _draw_suggestion(ax, result, smoothed)
        _draw_stop(ax, history, smoothed)
        twin = _draw_refinement(ax, result)
        loss_name = result.info.loss
        ax.set_ylabel(
            f"training loss ({_plain(loss_name, 30)})" if loss_name != "loss" else "training loss"
        )
        figure.suptitle(_run_title(result.info), fontweight="bold")
        ax.set_title(
            _confidence_line(result),
            loc="left",
            color=CONFIDENCE_COLORS.get(result.confidence.level, GREY),
            parse_math=False,
        )
        ax.set_title(_facts_line(result), loc="right", color=GREY, parse_math=False)
        handles, labels = ax.get_legend_handles_labels()
        if twin is not None:
            twin_handles, twin_labels = twin.get_legend_handles_labels()
            handles, labels = handles + twin_handles, labels + twin_labels
        _outside_legend(figure, handles, labels)
        return _save(figure, Path(path))
