"""Constant-LR trials (verify): validation loss vs LR."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import NullFormatter

from lrfind.outputs.plot.single import _star
from lrfind.outputs.plot.style import (
    BLACK,
    BLUE,
    GREEN,
    GREY,
    SKY,
    VERMILLION,
    _compact_lr,
    _finite,
    _Limits,
    _lr_bounds,
    _message_box,
    _new_figure,
    _outside_legend,
    _plain,
    _save,
    _short_lr,
    _style_lr_axis,
    _styled,
)
from lrfind.results import Trial


def plot_trials(
    trials: Sequence[Trial],
    path: Path,
    suggestion_lr: float | None,
    best_lr: float | None,
    title: str | None = None,
) -> Path:
    """Write the verify PNG: each trial's loss after training at one constant LR; return the path.

    Validation loss when every surviving trial measured one, else train loss (the y label says
    which); diverged or non-finite trials sit as crosses on the top edge; the range test's
    suggestion is a dashed line and the best trial a star.

    Raises:
        OutputError: the file could not be written.
    """
    ordered = sorted(trials, key=lambda t: t.lr)

    def finite(value: float | None) -> bool:
        return value is not None and math.isfinite(value)

    survivors = [t for t in ordered if not t.diverged and finite(t.train_loss)]
    use_val = bool(survivors) and all(finite(t.val_loss) for t in survivors)

    def metric(trial: Trial) -> float:
        value = trial.val_loss if use_val else trial.train_loss
        return float(value) if value is not None and math.isfinite(value) else float("nan")

    ok = [t for t in ordered if not t.diverged and math.isfinite(metric(t))]
    failed = [t for t in ordered if t not in ok]
    metric_name = "validation loss" if use_val else "training loss"
    with _styled():
        figure, ax = _new_figure()
        _style_lr_axis(ax, *_lr_bounds([t.lr for t in ordered], [suggestion_lr or 0, best_lr or 0]))
        limits = _Limits()
        if ok:
            values = np.array([metric(t) for t in ok])
            limits.low, limits.high = float(values.min()), float(values.max())
            if use_val:
                train = np.array([t.train_loss for t in ok], dtype=float)
                train = train[np.isfinite(train)]
                if train.size:
                    limits.low = min(limits.low, float(train.min()))
                    limits.high = max(limits.high, float(train.max()))
        limits.apply(ax, top_margin=0.25, bottom_margin=0.12)
        if 0 < len(ordered) <= 12:
            # Few trials: label each trial's LR rather than the decades between them.
            ax.set_xticks([t.lr for t in ordered], [_compact_lr(t.lr) for t in ordered])
            ax.xaxis.set_minor_formatter(NullFormatter())
        if ok:
            ax.plot(
                [t.lr for t in ok],
                [metric(t) for t in ok],
                color=BLUE,
                marker="o",
                markersize=7,
                linewidth=2.0,
                label=metric_name,
                zorder=5,
            )
            if use_val:
                ax.plot(
                    [t.lr for t in ok],
                    _finite([t.train_loss for t in ok]),
                    color=SKY,
                    marker="s",
                    markersize=4,
                    linewidth=1.0,
                    linestyle="--",
                    label="training loss",
                    zorder=4,
                )
        else:
            _message_box(ax, "every trial diverged" if ordered else "no trials")
        if failed:
            top = ax.get_ylim()[1]
            ax.plot(
                [t.lr for t in failed],
                [top] * len(failed),
                linestyle="none",
                marker="X",
                markersize=10,
                color=BLACK,
                clip_on=False,
                zorder=7,
                label=f"diverged ({len(failed)})",
            )
        if suggestion_lr is not None and suggestion_lr > 0:
            ax.axvline(
                suggestion_lr,
                color=VERMILLION,
                linestyle="--",
                linewidth=1.5,
                zorder=3,
                label=f"range-test suggestion {_short_lr(suggestion_lr)}",
            )
        if best_lr is not None and best_lr > 0:
            best = [t for t in ok if math.isclose(t.lr, best_lr, rel_tol=1e-6)]
            if best:
                _star(
                    ax, best[0].lr, metric(best[0]), GREEN, 20, f"best trial {_short_lr(best_lr)}"
                )
            else:
                ax.axvline(
                    best_lr,
                    color=GREEN,
                    linestyle="-.",
                    linewidth=1.5,
                    zorder=3,
                    label=f"best {_short_lr(best_lr)}",
                )
        steps = {t.steps for t in ordered}
        after = f" after {steps.pop()} steps" if len(steps) == 1 else ""
        ax.set_ylabel(f"{metric_name}{after}")
        figure.suptitle(_plain(title) if title else "Constant-LR trials", fontweight="bold")
        ax.set_title(
            f"{len(ordered)} trials from the same initial weights · {len(failed)} diverged",
            color=GREY,
            parse_math=False,
        )
        _outside_legend(figure, *ax.get_legend_handles_labels())
        return _save(figure, path)
