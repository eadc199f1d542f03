"""Several runs on one figure (compare, report of many runs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from lrfind.outputs.plot.style import (
    BLACK,
    GREY,
    SERIES_COLORS,
    _clip_y,
    _finite,
    _initial_level,
    _Limits,
    _lr_bounds,
    _new_figure,
    _outside_legend,
    _plain,
    _save,
    _short_lr,
    _style_lr_axis,
    _styled,
    _value_at,
)
from lrfind.results import RangeTestResult


def _overlay_subtitle(results: Sequence[RangeTestResult], normalize: bool) -> str:
    parts = [f"{len(results)} runs"]
    found = [r.suggestion.lr for r in results if r.suggestion.lr and r.suggestion.lr > 0]
    if len(found) >= 2:
        low, high = min(found), max(found)
        if high / low < 1.05:
            parts.append(f"all suggest {_short_lr(low)}")
        else:
            parts.append(f"suggestions {_short_lr(low)} … {_short_lr(high)} (×{high / low:.3g})")
    if normalize:
        parts.append("each curve divided by its initial loss")
    return "  ·  ".join(parts)


def plot_overlay(
    results: Sequence[RangeTestResult],
    labels: Sequence[str],
    path: Path,
    title: str | None = None,
    *,
    normalize: bool = False,
) -> Path:
    """Write one PNG comparing several runs' smoothed curves; return the path.

    Each run gets one colour for its curve, its suggestion (dot + dashed line) and its recommended
    range (a bar along the bottom); the legend reads "label — suggested 3.2e-03". ``normalize``
    divides each curve by its initial loss, for runs whose losses live on different scales
    (different tasks or loss functions); for SGD-vs-Adam on one task leave it off, so the absolute
    levels stay comparable. Scales that still differ widely switch the y axis to log.

    Raises:
        ValueError: ``results`` is empty or ``labels`` has a different length.
        OutputError: the file could not be written.
    """
    if not results:
        raise ValueError("plot_overlay needs at least one result")
    if len(labels) != len(results):
        raise ValueError(f"plot_overlay got {len(results)} results but {len(labels)} labels")
    curves: list[np.ndarray] = []
    for result in results:
        curve = _finite(result.history.smoothed_losses)
        initial = _initial_level(curve)
        if normalize and initial is not None and initial != 0:
            curve = curve / abs(initial)
        curves.append(curve)
    with _styled():
        figure, ax = _new_figure()
        _style_lr_axis(ax, *_lr_bounds(*(r.history.lrs for r in results)))
        limits = _Limits()
        for curve in curves:
            limits.add(curve)
        limits.apply(ax, bottom_margin=0.06 + 0.045 * len(results))
        band = ax.get_xaxis_transform()
        for slot, (result, label, curve) in enumerate(zip(results, labels, curves, strict=True)):
            color = SERIES_COLORS[slot % len(SERIES_COLORS)]
            lr = result.suggestion.lr
            found = lr is not None and lr > 0 and math.isfinite(lr)
            legend = f"{_plain(label, 40)} — " + (
                f"suggested {_short_lr(lr)}" if found else "no reliable suggestion"
            )
            history = result.history
            ax.plot(history.lrs, curve, color=color, linewidth=2.2, label=legend, zorder=4)
            if found and lr is not None:
                ax.axvline(lr, color=color, linestyle="--", linewidth=1.1, alpha=0.8, zorder=3)
                y = _value_at(lr, history.lrs, curve)
                if y is not None:
                    ax.plot(
                        [lr],
                        [_clip_y(ax, y)],
                        marker="o",
                        markersize=9,
                        color=color,
                        markeredgecolor="white",
                        markeredgewidth=1.5,
                        zorder=8,
                    )
            lr_range = result.lr_range
            if lr_range.min_lr and lr_range.max_lr and lr_range.min_lr < lr_range.max_lr:
                y_band = 0.025 + 0.04 * (len(results) - 1 - slot)
                ax.plot(
                    [lr_range.min_lr, lr_range.max_lr],
                    [y_band, y_band],
                    transform=band,
                    color=color,
                    linewidth=5,
                    solid_capstyle="butt",
                    alpha=0.75,
                    zorder=5,
                )
            if history.stop_reason in ("diverged", "non_finite"):
                finite = np.flatnonzero(np.isfinite(curve))
                if finite.size:
                    last = int(finite[-1])
                    ax.plot(
                        [history.lrs[last]],
                        [_clip_y(ax, float(curve[last]))],
                        marker="X",
                        markersize=9,
                        color=color,
                        markeredgecolor=BLACK,
                        clip_on=False,
                        zorder=8,
                    )
        handles, texts = ax.get_legend_handles_labels()
        handles.append(Line2D([], [], color=GREY, linewidth=5, alpha=0.75))
        texts.append("bars: recommended ranges")
        if any(r.history.stop_reason in ("diverged", "non_finite") for r in results):
            handles.append(
                Line2D([], [], marker="X", color=GREY, markeredgecolor=BLACK, linestyle="none")
            )
            texts.append("stopped early (diverged)")
        _outside_legend(figure, handles, texts)
        ax.set_ylabel("smoothed loss ÷ initial loss" if normalize else "smoothed training loss")
        figure.suptitle(_plain(title) if title else "LR range tests compared", fontweight="bold")
        ax.set_title(_overlay_subtitle(results, normalize), color=GREY, parse_math=False)
        return _save(figure, path)
