"""PNG plots of range tests: the single-run report, overlays of several runs, constant-LR trials.

The only matplotlib user in lrfind, imported lazily by everything else. Figures are built with
``matplotlib.figure.Figure`` and the Agg canvas, never pyplot's global state, inside an
``rc_context`` so the house style never leaks into the caller's matplotlib settings. Each PNG is
rendered to memory first and then written atomically, so a reader never sees half a file.

    from lrfind.plot import plot_result
    plot_result(result, Path("runs/mnist/lr_finder.png"))
"""

from __future__ import annotations

import io
import math
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from lrfind.report import format_lr
from lrfind.results import History, RangeTestResult, RunInfo, Trial
from lrfind.runs import atomic_write_bytes

# Okabe-Ito: distinguishable with every common colour-vision deficiency and in greyscale print.
BLUE = "#0072B2"
SKY = "#56B4E9"
GREEN = "#009E73"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
BLACK = "#000000"
YELLOW = "#F0E442"
GREY = "#555555"
#: Colours for one series per run (yellow last: it is faint on white).
SERIES_COLORS = (BLUE, VERMILLION, GREEN, PURPLE, ORANGE, SKY, BLACK, YELLOW)
CONFIDENCE_COLORS = {"high": GREEN, "medium": ORANGE, "low": VERMILLION, "none": VERMILLION}

FIGSIZE = (9.0, 5.5)
DPI = 130
STYLE: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10.5,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "legend.fontsize": 9,
    "figure.titlesize": 13,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.color": "#b0b0b0",
    "grid.alpha": 0.45,
    "grid.linewidth": 0.7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#444444",
    "axes.titlepad": 8,
    "legend.framealpha": 0.92,
    "legend.edgecolor": "#cccccc",
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
}

#: Fraction of the sweep's start used to estimate "the initial loss" robustly against noise.
_HEAD_FRACTION = 0.05
#: Show y on a log scale when the visible losses span more than this factor.
_LOG_Y_RATIO = 30.0
_MAX_TEXT = 90


# --------------------------------------------------------------------------------------------
# Shared helpers


@contextmanager
def _styled() -> Iterator[None]:
    style: Any = STYLE  # matplotlib's stubs type the keys as a Literal of every rcParam
    with matplotlib.rc_context(style):
        yield


def _new_figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return atomic_write_bytes(Path(path), buffer.getvalue())


def _plain(text: object, limit: int = _MAX_TEXT) -> str:
    """User text made safe for matplotlib: one line, no mathtext, bounded length."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat.replace("$", r"\$")


def _short_lr(lr: float | None) -> str:
    return format_lr(lr, digits=2)


def _lr_tick(value: float, _position: float) -> str:
    if value <= 0 or not math.isfinite(value):
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) < 1e-6:
        power = round(exponent)
        return {0: "1", 1: "10"}.get(power, f"1e{power}")
    mantissa, power_text = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(power_text)}"


def _loss_tick(value: float, _position: float) -> str:
    return f"{value:g}" if value > 0 and math.isfinite(value) else ""


def _compact_lr(value: float) -> str:
    mantissa, power = f"{value:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(power)}"


def _style_lr_axis(ax: Axes, low: float, high: float) -> None:
    """Log x axis labelled with readable LR values; minor labels when the span is short."""
    ax.set_xscale("log")
    pad = max((high / low) ** 0.02, 1.25) if high > low else 2.0
    ax.set_xlim(low / pad, high * pad)
    ax.xaxis.set_major_locator(LogLocator(base=10.0, numticks=15))
    ax.xaxis.set_major_formatter(FuncFormatter(_lr_tick))
    decades = math.log10(high / low) if high > low else 0.0
    if decades < 1.6:
        ax.xaxis.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 3.0, 5.0), numticks=15))
        ax.xaxis.set_minor_formatter(FuncFormatter(_lr_tick))
    else:
        ax.xaxis.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 5.0), numticks=15))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("learning rate (log scale)")


def _finite(values: Sequence[float]) -> np.ndarray:
    """Values as a float array with inf replaced by NaN (matplotlib breaks lines at NaN)."""
    array = np.asarray(values, dtype=float)
    return np.where(np.isfinite(array), array, np.nan)


def _head_size(count: int) -> int:
    return max(3, round(count * _HEAD_FRACTION))


def _initial_level(smoothed: np.ndarray) -> float | None:
    """The loss where the sweep starts: a median of its first few points, robust to one spike."""
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size == 0:
        return None
    return float(np.median(finite[: _head_size(finite.size)]))


class _Limits:
    """The y-range that shows the interesting part of one or more loss curves.

    The top sits a little above the highest point *before* each curve's minimum (normally its
    initial loss), so the blow-up at the end of a sweep cannot squash the descent; the bottom sits
    a little below the lowest point. Curves spanning many orders of magnitude get a log scale.
    """

    def __init__(self) -> None:
        self.low = math.inf
        self.high = -math.inf

    def add(self, curve: np.ndarray, raw: np.ndarray | None = None) -> None:
        """Widen the range to show ``curve`` (and the low end of its ``raw`` noise)."""
        finite_index = np.flatnonzero(np.isfinite(curve))
        if finite_index.size == 0:
            return
        best_index = int(finite_index[np.nanargmin(curve[finite_index])])
        best = float(curve[best_index])
        initial = _initial_level(curve)
        top = best if initial is None else max(best, initial)
        # The first few EMA points are as noisy as single batches: they count through the median.
        head_end = int(finite_index[min(_head_size(finite_index.size), finite_index.size - 1)])
        descent = curve[head_end : best_index + 1]
        if np.isfinite(descent).any():
            top = max(top, float(np.nanmax(descent)))
        if raw is not None:
            head = raw[: best_index + 1]
            head = head[np.isfinite(head)]
            if head.size:
                best = min(best, float(np.percentile(head, 1)))
        self.low = min(self.low, best)
        self.high = max(self.high, top)

    @property
    def empty(self) -> bool:
        return not math.isfinite(self.low)

    @property
    def log(self) -> bool:
        return not self.empty and self.low > 0 and self.high / self.low > _LOG_Y_RATIO

    def apply(self, ax: Axes, top_margin: float = 0.18, bottom_margin: float = 0.1) -> None:
        if self.empty:
            ax.set_ylim(0.0, 1.0)
            return
        if self.log:
            ratio = self.high / self.low
            ax.set_yscale("log")
            ax.set_ylim(self.low / ratio**bottom_margin, self.high * ratio**top_margin)
            # Plain numbers ("20", "0.5") read faster than 10^x on a loss axis.
            ax.yaxis.set_major_formatter(FuncFormatter(_loss_tick))
            if ratio < 100:
                ax.yaxis.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 5.0)))
                ax.yaxis.set_minor_formatter(FuncFormatter(_loss_tick))
            return
        # A floor on the span keeps a flat, noisy curve from being zoomed into fake structure.
        low, high = self.low, self.high
        span = max(high - low, 0.1 * abs(high), 1e-12)
        middle = (low + high) / 2
        low, high = min(low, middle - span / 2), max(high, middle + span / 2)
        ax.set_ylim(low - bottom_margin * span, high + top_margin * span)


def _value_at(lr: float, lrs: Sequence[float], values: np.ndarray) -> float | None:
    """Interpolate ``values`` at ``lr`` in log10(lr); None outside the finite part of the curve."""
    lrs_array = np.asarray(lrs, dtype=float)
    mask = np.isfinite(values) & (lrs_array > 0)
    if not mask.any() or lr <= 0:
        return None
    xs, ys = np.log10(lrs_array[mask]), values[mask]
    x = math.log10(lr)
    if x < xs[0] - 1e-9 or x > xs[-1] + 1e-9:
        return None
    return float(np.interp(x, xs, ys))


def _batch_text(info: RunInfo) -> str | None:
    if info.batch_size is None:
        return None
    if info.global_batch_size == info.batch_size:
        return f"batch {info.batch_size}"
    parts = [str(info.batch_size)]
    if info.world_size > 1:
        parts.append(f"{info.world_size} processes")
    if info.accumulation_steps > 1:
        parts.append(f"{info.accumulation_steps} accumulation")
    return f"batch {info.global_batch_size} ({' × '.join(parts)})"


def _run_title(info: RunInfo) -> str:
    parts = [_plain(info.model, 40), _plain(info.optimizer, 40)]
    batch = _batch_text(info)
    if batch:
        parts.append(batch)
    title = " · ".join(parts)
    if info.name and info.name != "range-test":
        title = f"{_plain(info.name, 40)}: {title}"
    return textwrap.fill(
        title,
        width=72,
        max_lines=2,
        placeholder=" …",
        break_on_hyphens=False,
        break_long_words=False,
    )


def _clip_y(ax: Axes, value: float) -> float:
    low, high = ax.get_ylim()
    return min(max(value, low), high)


def _mark_off_scale(ax: Axes, lrs: Sequence[float], curve: np.ndarray, color: str) -> None:
    """An arrow where a curve leaves the top of the plot, with its highest value."""
    high = ax.get_ylim()[1]
    finite = np.isfinite(curve)
    if not finite.any():
        return
    peak = float(np.nanmax(curve))
    if peak <= high:
        return
    best_index = int(np.nanargmin(curve))
    above = np.flatnonzero(finite & (curve > high) & (np.arange(curve.size) > best_index))
    if above.size == 0:
        return
    exit_lr = float(lrs[int(above[0])])
    ax.annotate(
        f"off scale ↑ max {peak:.3g}",
        xy=(exit_lr, high),
        xytext=(-6, -14),
        textcoords="offset points",
        ha="right",
        va="top",
        fontsize=8.5,
        color=color,
        annotation_clip=False,
        parse_math=False,
    )


def _message_box(ax: Axes, headline: str, detail: str | None = None) -> None:
    """A headline the reader cannot miss (e.g. "no reliable suggestion"), with a quieter detail."""
    ax.text(
        0.5,
        0.6,
        headline,
        transform=ax.transAxes,
        ha="center",
        va="bottom",
        fontsize=14,
        fontweight="bold",
        color=VERMILLION,
        parse_math=False,
        bbox={"boxstyle": "round,pad=0.5", "facecolor": "white", "edgecolor": VERMILLION},
        zorder=10,
    )
    if detail:
        ax.text(
            0.5,
            0.56,
            detail,
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=10.5,
            color=BLACK,
            linespacing=1.4,
            parse_math=False,
            bbox={
                "boxstyle": "round,pad=0.4",
                "facecolor": "white",
                "edgecolor": "none",
                "alpha": 0.9,
            },
            zorder=10,
        )


def _outside_legend(figure: Figure, handles: list[Any], labels: list[str]) -> None:
    """One legend under the axes: it can never hide the curve, however many entries it has."""
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(3, len(handles)))


def _lr_bounds(*groups: Sequence[float]) -> tuple[float, float]:
    values = [v for group in groups for v in group if v is not None and v > 0 and math.isfinite(v)]
    if not values:
        return 1e-4, 1.0
    low, high = min(values), max(values)
    if low == high:
        low, high = low / 3.0, high * 3.0
    return low, high


# --------------------------------------------------------------------------------------------
# The single-run report


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


def plot_result(result: RangeTestResult, path: Path) -> Path:
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
        return _save(figure, path)


# --------------------------------------------------------------------------------------------
# Several runs on one axes


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


# --------------------------------------------------------------------------------------------
# Constant-LR trials ("verify")


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
