"""Several runs on one figure (compare, report of many runs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lrfind.outputs.plot.single import TOP_INSET, trend_of
from lrfind.outputs.plot.style import (
    BLACK,
    DPI,
    FIGSIZE,
    GREY,
    SERIES_COLORS,
    Limits,
    clip_y,
    initial_level,
    lr_bounds,
    outside_legend,
    plain,
    save_figure,
    short_lr,
    style_lr_axis,
    styled,
    value_at,
)
from lrfind.results import RangeTestResult


def _overlay_subtitle(results: Sequence[RangeTestResult], normalize: bool) -> str:
    parts = [f"{len(results)} runs"]
    found = [r.suggestion.lr for r in results if r.suggestion.lr and r.suggestion.lr > 0]
    if len(found) >= 2:
        low, high = min(found), max(found)
        if high / low < 1.05:
            parts.append(f"all suggest {short_lr(low)}")
        else:
            parts.append(f"suggestions {short_lr(low)} … {short_lr(high)} (×{high / low:.3g})")
    if normalize:
        parts.append("each curve divided by its initial loss")
    return "  ·  ".join(parts)


#: Height of one run's row in the range strip under the curves, in inches.
STRIP_ROW = 0.22


def _inside_y(ax: Axes, value: float) -> float:
    """``value`` kept just inside the y-range, so a marker there is never cut by the frame."""
    low, high = ax.get_ylim()
    if ax.get_yscale() == "log" and low > 0:
        return min(max(value, low * (high / low) ** 0.035), low * (high / low) ** TOP_INSET)
    return min(max(value, low + 0.035 * (high - low)), low + TOP_INSET * (high - low))


def _overlay_figure(count: int) -> tuple[Figure, Axes, Axes]:
    """The curves on top, and under them (same LR axis) one row per run for its range."""
    strip_height = 0.35 + STRIP_ROW * count
    height = min(FIGSIZE[1] + strip_height, 6.9)
    figure = Figure(figsize=(FIGSIZE[0], height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    ax, strip = figure.subplots(
        2, 1, sharex=True, height_ratios=(height - strip_height, strip_height)
    )
    return figure, ax, strip


def _draw_range_bar(strip: Axes, row: int, result: RangeTestResult, color: str) -> None:
    """One run's recommended range as a bar on its own row, with its suggestion as a dot."""
    lr_range = result.lr_range
    if lr_range.min_lr and lr_range.max_lr and 0 < lr_range.min_lr < lr_range.max_lr:
        strip.plot(
            [lr_range.min_lr, lr_range.max_lr],
            [row, row],
            color=color,
            linewidth=6,
            solid_capstyle="butt",
            alpha=0.75,
            zorder=3,
        )
    lr = result.suggestion.lr
    if lr is not None and lr > 0 and math.isfinite(lr):
        strip.plot(
            [lr], [row], marker="o", markersize=7, color=color, markeredgecolor="white", zorder=4
        )


def _style_strip(strip: Axes, labels: Sequence[str]) -> None:
    count = len(labels)
    strip.set_ylim(-0.7, count - 0.3)
    strip.set_yticks(range(count), [plain(label, 18) for label in reversed(labels)])
    strip.tick_params(axis="y", length=0, labelsize=8.5)
    strip.grid(axis="y", visible=False)
    strip.set_title("recommended ranges (dot: suggestion)", loc="left", color=GREY, fontsize=9)


def plot_overlay(
    results: Sequence[RangeTestResult],
    labels: Sequence[str],
    path: Path,
    title: str | None = None,
    *,
    normalize: bool = False,
) -> Path:
    """Write one PNG comparing several runs' loss trends (as the analysis reads them); return it.

    Each run gets one colour for its curve, its suggestion (dot + dashed line) and its recommended
    range (a bar on the run's own row in a strip under the curves, off the loss axis); the legend
    reads "label — suggested 3.2e-03". ``normalize`` divides each curve by its initial loss, for
    runs whose losses live on different scales (different tasks or loss functions); for
    SGD-vs-Adam on one task leave it off, so the absolute levels stay comparable. Scales that
    still differ widely switch the y axis to log.

    Raises:
        ValueError: ``results`` is empty or ``labels`` has a different length.
        OutputError: the file could not be written.
    """
    with styled():
        return save_figure(draw_overlay(results, labels, title, normalize=normalize), path)


def draw_overlay(
    results: Sequence[RangeTestResult],
    labels: Sequence[str],
    title: str | None = None,
    *,
    normalize: bool = False,
) -> Figure:
    """Return the figure ``plot_overlay`` saves (see there)."""
    if not results:
        raise ValueError("plot_overlay needs at least one result")
    if len(labels) != len(results):
        raise ValueError(f"plot_overlay got {len(results)} results but {len(labels)} labels")
    curves: list[np.ndarray] = []
    for result in results:
        curve = trend_of(result.history)[0]
        initial = initial_level(curve)
        if normalize and initial is not None and initial != 0:
            curve = curve / abs(initial)
        curves.append(curve)
    figure, ax, strip = _overlay_figure(len(results))
    style_lr_axis(ax, *lr_bounds(*(r.history.lrs for r in results)))
    limits = Limits()
    for curve in curves:
        limits.add(curve)
    limits.apply(ax)
    for slot, (result, label, curve) in enumerate(zip(results, labels, curves, strict=True)):
        color = SERIES_COLORS[slot % len(SERIES_COLORS)]
        lr = result.suggestion.lr
        found = lr is not None and lr > 0 and math.isfinite(lr)
        legend = f"{plain(label, 40)} — " + (
            f"suggested {short_lr(lr)}" if found else "no reliable suggestion"
        )
        history = result.history
        ax.plot(history.lrs, curve, color=color, linewidth=2.2, label=legend, zorder=4)
        if found and lr is not None:
            ax.axvline(lr, color=color, linestyle="--", linewidth=1.1, alpha=0.8, zorder=3)
            y = value_at(lr, history.lrs, curve)
            if y is not None:
                ax.plot(
                    [lr],
                    [clip_y(ax, y)],
                    marker="o",
                    markersize=9,
                    color=color,
                    markeredgecolor="white",
                    markeredgewidth=1.5,
                    zorder=8,
                )
        _draw_range_bar(strip, len(results) - 1 - slot, result, color)
        if history.stop_reason in ("diverged", "non_finite"):
            finite = np.flatnonzero(np.isfinite(curve))
            if finite.size:
                last = int(finite[-1])
                ax.plot(
                    [history.lrs[-1]],
                    [_inside_y(ax, float(curve[last]))],
                    marker="X",
                    markersize=9,
                    color=color,
                    markeredgecolor=BLACK,
                    zorder=8,
                )
    _style_strip(strip, labels)
    ax.set_xlabel("")
    handles, texts = ax.get_legend_handles_labels()
    if any(r.history.stop_reason in ("diverged", "non_finite") for r in results):
        handles.append(
            Line2D([], [], marker="X", color=GREY, markeredgecolor=BLACK, linestyle="none")
        )
        texts.append("stopped early (diverged)")
    outside_legend(figure, handles, texts)
    ax.set_ylabel("loss trend ÷ initial loss" if normalize else "training loss (trend)")
    figure.suptitle(plain(title) if title else "LR range tests compared", fontweight="bold")
    ax.set_title(_overlay_subtitle(results, normalize), color=GREY, parse_math=False)
    return figure
