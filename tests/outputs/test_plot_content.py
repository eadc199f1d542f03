"""What the figures draw: the trend the decision used, the trials' own panel, clear labels."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation

import lrfind
from lrfind.analysis.curve import describe_curve
from lrfind.errors import OutputError
from lrfind.outputs.plot.guard import plot_or_warning
from lrfind.outputs.plot.overlay import draw_overlay
from lrfind.outputs.plot.single import draw_result, trend_of
from lrfind.outputs.plot.style import TITLE_CHARS, VERMILLION, run_title, shorten, styled
from lrfind.results import RangeTestResult, Refinement, Trial
from tests.fixtures.results import CURVES, make_result


def drawn(result: RangeTestResult) -> Figure:
    with styled():
        figure = draw_result(result)
        figure.canvas.draw()
    return figure


def labelled(ax: Axes, prefix: str) -> Line2D:
    return next(line for line in ax.get_lines() if str(line.get_label()).startswith(prefix))


def test_the_bold_line_is_the_trend_the_suggestion_reads() -> None:
    """Bug: the bold line was the lagging EMA, so the suggestion sat where it still looked flat."""
    result = make_result("noisy")
    figure = drawn(result)
    ax = figure.axes[0]
    bold = labelled(ax, "trend (what the suggestion reads)")
    shape = describe_curve(result.history)
    drawn_values = np.asarray(bold.get_ydata(), dtype=float)[: shape.points]
    finite = np.isfinite(drawn_values)
    assert finite.sum() > shape.points // 2
    assert np.allclose(drawn_values[finite], shape.trend[finite])
    ema = np.asarray(result.history.smoothed_losses[: shape.points])
    assert not np.allclose(drawn_values[finite], ema[finite])
    lr = result.suggestion.lr
    assert lr is not None
    dot = next(
        line
        for line in ax.get_lines()
        if line.get_marker() == "o" and line.get_color() == VERMILLION
    )
    x = np.log10(np.asarray(result.history.lrs[: shape.points]))
    expected = float(np.interp(math.log10(lr), x[finite], drawn_values[finite]))
    assert float(dot.get_ydata()[0]) == pytest.approx(expected, rel=1e-9)


def test_trend_of_leaves_out_the_clipped_plateau_after_the_blow_up() -> None:
    history = make_result("diverged").history
    values, is_trend = trend_of(history)
    assert is_trend
    shape = describe_curve(history)
    finite = np.flatnonzero(np.isfinite(values))
    assert finite[-1] < history.steps - 1 or shape.rise_index is None


def tied_refinement() -> Refinement:
    """Four trials on the same four validation batches: the two lowest LRs are tied."""
    batches = (0.50, 0.46, 0.54, 0.50)

    def trial(lr: float, offset: float, spread: float) -> Trial:
        losses = tuple(b + offset + spread * (-1) ** i for i, b in enumerate(batches))
        return Trial(lr, 0.4, sum(losses) / 4, False, 60, losses, (32, 32, 32, 32))

    trials = (trial(1e-3, 0.01, 0.03), trial(3e-3, 0.0, 0.0), trial(1e-2, 0.2, 0.0))
    diverged = Trial(3e-2, math.nan, None, True, 60)
    return Refinement(trials=(*trials, diverged), chosen_lr=1e-3, steps_per_trial=60, seconds=1.0)


def test_trials_get_their_own_panel_on_the_same_lr_axis() -> None:
    """Bug: refine trials shared the loss axes on a twin y-axis with another scale."""
    result = make_result("clean").with_updates(refinement=tied_refinement())
    figure = drawn(result)
    ax, panel = figure.axes
    assert ax.get_shared_x_axes().joined(ax, panel)
    assert panel.get_ylabel() == "refine: val loss"
    assert not any(str(line.get_label()).startswith("refine") for line in ax.get_lines())
    star = labelled(panel, "refine chose 1.0e-03")
    assert star.get_xdata()[0] == pytest.approx(1e-3)
    tied = labelled(panel, "tied with the best")
    assert sorted(tied.get_xdata()) == pytest.approx([1e-3, 3e-3])  # the tie band's trials
    assert any(type(patch).__name__ in ("Polygon", "Rectangle") for patch in panel.patches)
    low, high = panel.get_ylim()
    cross = labelled(panel, "refine trial diverged")
    assert low < cross.get_ydata()[0] < high  # inside the panel, not on its edge
    legend_texts = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "tied with the best (within 1 standard error)" in legend_texts


def test_the_stop_cross_sits_inside_the_axes() -> None:
    """Bug: the stop cross was drawn on the axes' top edge."""
    for curve in ("diverged", "non_finite"):
        figure = drawn(make_result(curve))
        ax = figure.axes[0]
        cross = labelled(ax, "stopped:")
        low, high = ax.get_ylim()
        y = float(cross.get_ydata()[0])
        assert low <= y < high
        assert cross.get_clip_on()


@pytest.mark.parametrize("curve", CURVES)
def test_labels_never_overlap(curve: str) -> None:
    """Bug: the off-scale note sat on the suggestion label (synthetic-deep-mlp)."""
    figure = drawn(make_result(curve))  # type: ignore[arg-type]
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    notes = [child for child in figure.axes[0].texts if isinstance(child, Annotation)]
    boxes = [note.get_window_extent(renderer) for note in notes]
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            assert not first.overlaps(second)


def test_the_title_is_one_line_and_fits() -> None:
    """Bug: the title wrapped, and long optimizer arguments were cut mid-word."""
    info = make_result("clean").info
    info = replace(
        info,
        name="synthetic-deep-mlp",
        model="GPT2LMHeadModel",
        optimizer="AdamW(weight_decay=0.01, betas=(0.9, 0.95), eps=1e-08, amsgrad=True)",
    )
    title = run_title(info)
    assert "\n" not in title and len(title) <= TITLE_CHARS + 2
    assert "GPT2LMHeadModel · AdamW(weight_decay=0.01" in title
    optimizer = title.split(" · ")[1]
    assert optimizer.endswith(", …)") or optimizer.endswith(")")
    for argument in optimizer.removeprefix("AdamW(").removesuffix(")").split(", "):
        assert argument == "…" or "=" in argument  # whole arguments only
    figure = drawn(make_result("clean").with_updates(info=info))
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    suptitle = figure.get_suptitle()
    assert "\n" not in suptitle
    box = figure._suptitle.get_window_extent(renderer)  # type: ignore[union-attr]
    assert box.x0 >= 0 and box.x1 <= figure.bbox.width


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("SGD(momentum=0.9)", 40, "SGD(momentum=0.9)"),
        (
            "AdamW(weight_decay=0.01, betas=(0.9, 0.95), eps=1e-08)",
            40,
            "AdamW(weight_decay=0.01, …)",
        ),
        ("AdamW(betas=(0.9, 0.95), eps=1e-08)", 30, "AdamW(betas=(0.9, 0.95), …)"),
        ("a rather long model description here", 20, "a rather long model…"),
    ],
)
def test_shorten_keeps_whole_arguments_and_words(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit) == expected
    assert len(shorten(text, limit)) <= limit


def test_class_name_not_factory_in_the_title() -> None:
    info = replace(make_result("clean").info, model="GPT2LMHeadModel")
    assert run_title(info).split(": ", 1)[1].startswith("GPT2LMHeadModel · ")


def test_compare_puts_range_bars_in_their_own_strip() -> None:
    """Bug: the overlay drew range bars at loss values (1.80–1.87) where they read as data."""
    results = [make_result("clean", name=n, shift=s) for n, s in (("a", 0), ("b", 0.5), ("c", 1))]
    with styled():
        figure = draw_overlay(results, ["a", "b", "c"])
    ax, strip = figure.axes
    assert ax.get_shared_x_axes().joined(ax, strip)
    assert not any(line.get_linewidth() >= 5 for line in ax.get_lines())
    bars = [line for line in strip.get_lines() if line.get_linewidth() >= 5]
    assert len(bars) == 3
    for bar, result in zip(bars, results, strict=True):
        assert tuple(bar.get_xdata()) == pytest.approx(
            (result.lr_range.min_lr, result.lr_range.max_lr)
        )
    assert [t.get_text() for t in strip.get_yticklabels()] == ["c", "b", "a"]


def test_a_failing_plot_becomes_one_warning() -> None:
    def boom() -> Path:
        raise RuntimeError("no display\nsecond line")

    assert plot_or_warning(boom) == (None, "plot failed: RuntimeError: no display")
    assert (
        plot_or_warning(boom, "overlay plot")[1] == "overlay plot failed: RuntimeError: no display"
    )

    def unwritable() -> Path:
        raise OutputError("cannot write x.png: no space left on device")

    assert plot_or_warning(unwritable) == (
        None,
        "plot not written: cannot write x.png: no space left on device",
    )


def test_a_sweep_whose_plot_fails_keeps_its_numbers(
    tiny_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lrfind.outputs.plot.single as single

    def broken(result: RangeTestResult, path: Path) -> Path:
        raise ValueError("bad figure")

    monkeypatch.setattr(single, "plot_result", broken)
    run = lrfind.sweep(tiny_config, out=tmp_path / "run")
    assert run.run_dir is not None
    document = json.loads((run.run_dir / "result.json").read_text(encoding="utf-8"))
    assert "plot failed: ValueError: bad figure" in document["warnings"]
    assert not (run.run_dir / "lr_finder.png").exists()


def test_a_horizon_result_shows_its_run_and_every_rung() -> None:
    from lrfind.results import Drift, TrainRun

    base = make_result("clean")
    rung = lambda steps, best: tuple(  # noqa: E731
        Trial(lr, 1.0, 1.0 + (math.log10(lr) - best) ** 2 / steps, False, steps)
        for lr in (0.01, 0.0178, 0.0316, 0.0562)
    )
    rungs = (rung(10, -1.3), rung(20, -1.5), rung(40, -1.7)[:2])
    drift = Drift(((10, 0.05), (20, 0.03), (40, 0.02)), 0.6, 0.25, 0.3, 40, 400, "moved")
    refinement = Refinement(
        trials=rungs[-1], chosen_lr=0.0056, steps_per_trial=40, seconds=1.0,
        stage="horizon", rungs=rungs, drift=drift,
    )  # fmt: skip
    result = replace(
        base,
        refinement=refinement,
        info=replace(base.info, train=TrainRun(400, "linear", 0.1)),
        analysis=replace(base.analysis, suggestion=replace(base.analysis.suggestion, lr=0.0056)),
    )
    figure = drawn(result)
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert any("for the 400-step linear run" in text for text in texts)
    panel = figure.axes[1]
    assert panel.get_title(loc="left").startswith("horizon: 4/4/2 trials at 10/20/40 steps")
    assert "carried to 5.6e-03" in panel.get_title(loc="left")
    labels = [str(line.get_label()) for line in panel.get_lines()]
    assert "after 10 steps" in labels and "after 20 steps" in labels
    assert panel.get_yscale() == "log"
