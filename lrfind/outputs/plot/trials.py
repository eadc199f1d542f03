"""Constant-LR trials vs LR: verify's figure, and the refine/search panel under a sweep's curve."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import NullFormatter

from lrfind.analysis.choose import Choice, choose, metric_for, score
from lrfind.outputs.plot.style import (
    BLACK,
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    SKY,
    VERMILLION,
    Limits,
    compact_lr,
    finite_values,
    lr_bounds,
    message_box,
    new_figure,
    outside_legend,
    plain,
    save_figure,
    short_lr,
    style_lr_axis,
    styled,
)
from lrfind.results import Refinement, Trial


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


def trial_choice(trials: Sequence[Trial]) -> Choice:
    """The choice rule's reading of ``trials`` (scores, noise, ties, best, chosen), in LR order.

    The one rule refine, search and verify use (analysis.choose); the figure draws its numbers
    rather than recomputing them.
    """
    return choose(trials)


def draw_trials_panel(ax: Axes, refinement: Refinement, suggestion_lr: float | None) -> None:
    """Draw the refine/search trials on ``ax``: each trial's score vs LR on the sweep's LR axis.

    Trials tied with the best (within one standard error of the paired difference) are filled
    and their stretch of LRs shaded; whiskers show each trial's standard error, so a whisker
    that reaches the dotted best-score line is a tie. The chosen trial is a star; diverged
    trials are crosses just inside the top edge.
    """
    choice = trial_choice(refinement.trials)
    metric = "val loss" if choice.metric == "val_loss" else "train loss"
    ordered = choice.trials
    ok = [i for i, s in enumerate(choice.scores) if math.isfinite(s)]
    failed = [i for i in range(len(ordered)) if i not in ok]
    if ok:
        values = np.array([choice.scores[i] for i in ok])
        errors = np.array([min(choice.standard_errors[i], abs(values).max()) for i in ok])
        # Zoomed to the trials themselves: the whiskers show how much of the spread is noise.
        low, high = float((values - errors).min()), float((values + errors).max())
        span = max(high - low, 1e-3 * max(abs(high), 1e-12))
        ax.set_ylim(low - 0.2 * span, high + 0.35 * span)
    else:
        Limits().apply(ax)
    stage = refinement.stage if refinement.stage in ("search", "horizon") else "refine"
    _draw_earlier_rungs(ax, refinement)
    tied_run = _tied_run(choice)
    if tied_run is not None and tied_run[0] != tied_run[1]:
        ax.axvspan(
            ordered[tied_run[0]].lr,
            ordered[tied_run[1]].lr,
            color=ORANGE,
            alpha=0.16,
            linewidth=0,
            zorder=1,
        )
    if ok:
        lrs = [ordered[i].lr for i in ok]
        ax.plot(lrs, values, color=ORANGE, linewidth=1.2, zorder=4)
        ax.errorbar(
            lrs,
            values,
            yerr=[errors, np.zeros_like(errors)],
            fmt="none",
            ecolor=ORANGE,
            elinewidth=1.0,
            capsize=3,
            zorder=4,
        )
        ax.plot(
            lrs,
            values,
            linestyle="none",
            marker="D",
            markersize=6,
            markerfacecolor="white",
            color=ORANGE,
            zorder=5,
            label=f"{stage} trials: {metric} after {refinement.steps_per_trial} steps",
        )
        tied = [i for i in ok if choice.tied[i]]
        ax.plot(
            [ordered[i].lr for i in tied],
            [choice.scores[i] for i in tied],
            linestyle="none",
            marker="D",
            markersize=6,
            color=ORANGE,
            zorder=6,
            label="tied with the best (within 1 standard error)",
        )
        if choice.best is not None:
            ax.axhline(
                choice.scores[choice.best], color=GREY, linestyle=":", linewidth=1.0, zorder=2
            )
    if failed:
        low, high = ax.get_ylim()
        ax.plot(
            [ordered[i].lr for i in failed],
            [low + 0.9 * (high - low)] * len(failed),
            linestyle="none",
            marker="X",
            markersize=9,
            color=ORANGE,
            markeredgecolor=BLACK,
            zorder=6,
            label=f"{stage} trial diverged",
        )
    chosen = refinement.chosen_lr
    position = choice.position(chosen) if chosen is not None else None
    if chosen is not None and position is not None and math.isfinite(choice.scores[position]):
        _star(ax, chosen, choice.scores[position], ORANGE, 17, f"{stage} chose {short_lr(chosen)}")
    if suggestion_lr is not None and suggestion_lr > 0:
        ax.axvline(suggestion_lr, color=VERMILLION, linestyle="--", linewidth=1.2, zorder=3)
    ax.set_ylabel(f"{stage}: {metric}")
    ax.set_title(_panel_title(refinement, choice), loc="left", color=GREY, parse_math=False)


def _draw_earlier_rungs(ax: Axes, refinement: Refinement) -> None:
    """The horizon stage's earlier rungs, faint: how the scores (and their best LR) moved as
    the candidates trained longer. The y range then spans every rung, on a log scale."""
    earlier = refinement.rungs[:-1]
    if not earlier:
        return
    scores: list[float] = []
    for index, rung in enumerate(earlier):
        choice = choose(rung)
        ok = [i for i, s in enumerate(choice.scores) if math.isfinite(s) and s > 0]
        if not ok:
            continue
        values = [choice.scores[i] for i in ok]
        scores += values
        shade = 0.75 - 0.45 * index / max(1, len(earlier))
        steps = max(choice.trials[i].steps for i in ok)
        ax.plot(
            [choice.trials[i].lr for i in ok],
            values,
            color=(shade, shade, shade),
            linewidth=1.0,
            marker="o",
            markersize=3.5,
            zorder=3,
            label=f"after {steps} steps" if index in (0, len(earlier) - 1) else None,
        )
    final = [s for s in (score(t, metric_for(refinement.trials)) for t in refinement.trials) if s]
    scores += [s for s in final if math.isfinite(s) and s > 0]
    if scores and min(scores) > 0:
        ax.set_yscale("log")
        ax.set_ylim(min(scores) / 1.15, max(scores) * 1.3)


def _tied_run(choice: Choice) -> tuple[int, int] | None:
    """First and last index of the unbroken run of tied trials that holds the best one."""
    if choice.best is None:
        return None
    first = last = choice.best
    while first > 0 and choice.tied[first - 1]:
        first -= 1
    while last < len(choice.trials) - 1 and choice.tied[last + 1]:
        last += 1
    return first, last


def _panel_title(refinement: Refinement, choice: Choice) -> str:
    stage = "search" if refinement.stage == "search" else "refine"
    count = len(choice.trials)
    text = f"{stage}: {count} trials × {refinement.steps_per_trial} steps from the same weights"
    if refinement.rungs:
        counts = "/".join(str(len(rung)) for rung in refinement.rungs)
        lengths = "/".join(str(max((t.steps for t in r), default=0)) for r in refinement.rungs)
        text = f"horizon: {counts} trials at {lengths} steps, the best and those below continued"
    chosen, best = refinement.chosen_lr, choice.best_lr
    if chosen is None:
        return text + " · no trial chosen"
    position = choice.position(chosen)
    if position is None and refinement.drift is not None and choice.best is not None:
        return text + f" · best {short_lr(choice.best_lr or 0)}, carried to {short_lr(chosen)}"
    text += f" · chose {short_lr(chosen)}"
    if best is None or position is None:
        return text
    if position == choice.best:
        return text + ", the best trial"
    if choice.tied[position]:
        return text + f", the lowest LR tied with the best ({short_lr(best)})"
    return text + f"; best trial {short_lr(best)}"


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
    scored_by = metric_for(ordered)  # the metric the choice rule scores these trials by
    use_val = scored_by == "val_loss"

    def metric(trial: Trial) -> float:
        value = score(trial, scored_by)
        return float("nan") if value is None else value

    ok = [t for t in ordered if not t.diverged and math.isfinite(metric(t))]
    failed = [t for t in ordered if t not in ok]
    metric_name = "validation loss" if use_val else "training loss"
    with styled():
        figure, ax = new_figure()
        style_lr_axis(ax, *lr_bounds([t.lr for t in ordered], [suggestion_lr or 0, best_lr or 0]))
        limits = Limits()
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
            ax.set_xticks([t.lr for t in ordered], [compact_lr(t.lr) for t in ordered])
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
                    finite_values([t.train_loss for t in ok]),
                    color=SKY,
                    marker="s",
                    markersize=4,
                    linewidth=1.0,
                    linestyle="--",
                    label="training loss",
                    zorder=4,
                )
        else:
            message_box(ax, "every trial diverged" if ordered else "no trials")
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
                label=f"range-test suggestion {short_lr(suggestion_lr)}",
            )
        if best_lr is not None and best_lr > 0:
            best = [t for t in ok if math.isclose(t.lr, best_lr, rel_tol=1e-6)]
            if best:
                _star(ax, best[0].lr, metric(best[0]), GREEN, 20, f"best trial {short_lr(best_lr)}")
            else:
                ax.axvline(
                    best_lr,
                    color=GREEN,
                    linestyle="-.",
                    linewidth=1.5,
                    zorder=3,
                    label=f"best {short_lr(best_lr)}",
                )
        steps = {t.steps for t in ordered}
        after = f" after {steps.pop()} steps" if len(steps) == 1 else ""
        ax.set_ylabel(f"{metric_name}{after}")
        figure.suptitle(plain(title) if title else "Constant-LR trials", fontweight="bold")
        ax.set_title(
            f"{len(ordered)} trials from the same initial weights · {len(failed)} diverged",
            color=GREY,
            parse_math=False,
        )
        outside_legend(figure, *ax.get_legend_handles_labels())
        return save_figure(figure, path)
