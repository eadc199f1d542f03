"""Shared plot style: colours, figure set-up, LR axes, limits, labels and atomic saving."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from lrfind.format import format_lr
from lrfind.outputs.runs import PLOT_FORMATS, atomic_write_bytes
from lrfind.results import RunInfo

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


@contextmanager
def styled() -> Iterator[None]:
    style: Any = STYLE  # matplotlib's stubs type the keys as a Literal of every rcParam
    with matplotlib.rc_context(style):
        yield


def new_figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` in the format its suffix names (PLOT_FORMATS; PNG for any other)."""
    suffix = Path(path).suffix.lower().removeprefix(".")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=suffix if suffix in PLOT_FORMATS else "png", dpi=DPI)
    return atomic_write_bytes(Path(path), buffer.getvalue())


def plain(text: object, limit: int = _MAX_TEXT) -> str:
    """User text made safe for matplotlib: one line, no mathtext, bounded length."""
    return shorten(" ".join(str(text).split()), limit).replace("$", r"\$")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a boundary, never inside a word or an argument.

    ``AdamW(weight_decay=0.01, betas=(0.9, 0.95))`` keeps whole arguments: ``AdamW(weight_decay=
    0.01, …)``; other text is cut at the last space (or after a word) and ends with "…".
    """
    if len(text) <= limit:
        return text
    opening = text.find("(")
    if 0 < opening < limit - 3 and text.endswith(")"):
        head, arguments = text[: opening + 1], _top_level_parts(text[opening + 1 : -1])
        kept: list[str] = []
        for argument in arguments:
            candidate = ", ".join([*kept, argument])
            if len(head) + len(candidate) + len(", …)") > limit:
                break
            kept.append(argument)
        return head + ", ".join([*kept, "…"]) + ")"
    cut = text.rfind(" ", 0, limit)
    return (text[:cut] if cut > limit // 2 else text[: limit - 1]).rstrip(" ,;:") + "…"


def _top_level_parts(text: str) -> list[str]:
    """Split ``a=1, b=(2, 3)`` at the commas outside brackets."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def short_lr(lr: float | None) -> str:
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


def compact_lr(value: float) -> str:
    mantissa, power = f"{value:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(power)}"


def style_lr_axis(ax: Axes, low: float, high: float) -> None:
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


def finite_values(values: Sequence[float]) -> np.ndarray:
    """Values as a float array with inf replaced by NaN (matplotlib breaks lines at NaN)."""
    array = np.asarray(values, dtype=float)
    return np.where(np.isfinite(array), array, np.nan)


def _head_size(count: int) -> int:
    return max(3, round(count * _HEAD_FRACTION))


def initial_level(smoothed: np.ndarray) -> float | None:
    """The loss where the sweep starts: a median of its first few points, robust to one spike."""
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size == 0:
        return None
    return float(np.median(finite[: _head_size(finite.size)]))


class Limits:
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
        initial = initial_level(curve)
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


def value_at(lr: float, lrs: Sequence[float], values: np.ndarray) -> float | None:
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


#: A white box behind text drawn over curves.
LABEL_BOX = {"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "none", "alpha": 0.88}

#: A figure title longer than this wraps at the house figure width and font size.
TITLE_CHARS = 80


def run_title(info: RunInfo, limit: int = TITLE_CHARS) -> str:
    """One line: "name: model · optimizer · batch"; long parts lose whole arguments, not words."""
    name = f"{plain(info.name, 30)}: " if info.name and info.name != "range-test" else ""
    batch = _batch_text(info)
    tail = f" · {batch}" if batch else ""
    room = max(limit - len(name) - len(tail) - len(" · "), 20)
    model, optimizer = " ".join(info.model.split()), " ".join(info.optimizer.split())
    model_room = max(room - len(optimizer), room // 2)
    model = shorten(model, model_room)
    optimizer = shorten(optimizer, max(room - len(model), 12))
    return f"{name}{model} · {optimizer}{tail}".replace("$", r"\$")


def clip_y(ax: Axes, value: float) -> float:
    low, high = ax.get_ylim()
    return min(max(value, low), high)


def mark_off_scale(
    ax: Axes, lrs: Sequence[float], curve: np.ndarray, color: str
) -> Annotation | None:
    """A note where a curve leaves the top of the plot, with its highest value; returns it."""
    high = ax.get_ylim()[1]
    finite = np.isfinite(curve)
    if not finite.any():
        return None
    peak = float(np.nanmax(curve))
    if peak <= high:
        return None
    best_index = int(np.nanargmin(curve))
    above = np.flatnonzero(finite & (curve > high) & (np.arange(curve.size) > best_index))
    if above.size == 0:
        return None
    exit_lr = float(lrs[int(above[0])])
    # To the right of the exit: the blow-up side, away from the descent and the suggestion.
    x_low, x_high = (math.log10(v) for v in ax.get_xlim())
    left_of_edge = (math.log10(exit_lr) - x_low) / (x_high - x_low) < 0.8
    return ax.annotate(
        f"↑ off scale, max {peak:.3g}",
        xy=(exit_lr, high),
        xytext=(4 if left_of_edge else -4, -4),
        textcoords="offset points",
        ha="left" if left_of_edge else "right",
        va="top",
        fontsize=8.5,
        color=color,
        annotation_clip=False,
        parse_math=False,
        bbox=LABEL_BOX,
        zorder=9,
    )


def _overlaps(figure: Figure, first: Artist, second: Artist, pad: float = 3.0) -> bool:
    """Whether two drawn artists' boxes overlap (``pad`` pixels of clearance)."""
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    one = first.get_window_extent(renderer).padded(pad)
    two = second.get_window_extent(renderer)
    return bool(one.overlaps(two))


def place_clear(
    figure: Figure,
    label: Annotation,
    obstacles: Sequence[Artist | None],
    offsets: Sequence[tuple[float, float, Literal["left", "right"]]],
) -> None:
    """Move ``label`` through ``offsets`` (x, y points, ha) until it overlaps no obstacle."""
    present = [obstacle for obstacle in obstacles if obstacle is not None]
    if not present:
        return
    for x, y, align in offsets:
        if not any(_overlaps(figure, label, obstacle) for obstacle in present):
            return
        label.xyann = (x, y)
        label.set_horizontalalignment(align)


def message_box(ax: Axes, headline: str, detail: str | None = None) -> None:
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


def outside_legend(figure: Figure, handles: list[Any], labels: list[str]) -> None:
    """One legend under the axes: it can never hide the curve, however many entries it has."""
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(3, len(handles)))


def lr_bounds(*groups: Sequence[float]) -> tuple[float, float]:
    values = [v for group in groups for v in group if v is not None and v > 0 and math.isfinite(v)]
    if not values:
        return 1e-4, 1.0
    low, high = min(values), max(values)
    if low == high:
        low, high = low / 3.0, high * 3.0
    return low, high
