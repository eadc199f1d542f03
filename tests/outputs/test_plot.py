"""The PNG plots: every kind renders a real, non-blank picture, whatever the curve looks like."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
import pytest

import lrfind.outputs.plot
from lrfind.errors import OutputError
from lrfind.outputs.plot.overlay import plot_overlay
from lrfind.outputs.plot.single import plot_result
from lrfind.outputs.plot.style import Limits
from lrfind.outputs.plot.trials import plot_trials
from lrfind.results import History, Trial
from tests.fixtures.results import make_history, make_result, make_trials

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_readable_png(path: Path) -> np.ndarray:
    """A real PNG of a sane size, with a picture on it (not one flat colour)."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert 10_000 < len(data) < 2_000_000
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert 900 <= width <= 1400 and 550 <= height <= 900
    rgb = pixels[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.05
    channels = (rgb * 255).astype(np.uint32)
    colours = channels[:, 0] << 16 | channels[:, 1] << 8 | channels[:, 2]
    assert len(np.unique(colours)) > 50  # lines, text, shading, markers: not a blank canvas
    non_white = (rgb < 0.95).any(axis=1).mean()
    assert non_white > 0.02
    return pixels


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("curve", ["diverged", "non_finite", "flat", "noisy"])
def test_plot_result_renders_every_curve_shape(tmp_path: Path, curve: str) -> None:
    path = plot_result(make_result(curve), tmp_path / "lr_finder.png")  # type: ignore[arg-type]
    assert path == tmp_path / "lr_finder.png"
    assert_readable_png(path)
    assert leftovers(tmp_path) == []


def test_plot_result_with_repeats_refinement_and_distributed_title(tmp_path: Path) -> None:
    result = make_result("clean", repeats=3, with_refine=True, world_size=4, accumulation_steps=2)
    assert_readable_png(plot_result(result, tmp_path / "full.png"))


def test_result_plot_method_replaces_a_file_atomically_without_touching_rc_params(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lr_finder.png"
    path.write_bytes(b"old")
    before = dict(matplotlib.rcParams)
    assert plot_result(make_result("clean"), str(path)) == path
    assert dict(matplotlib.rcParams) == before  # the house style stays inside plot.py
    assert_readable_png(path)
    assert leftovers(tmp_path) == []


def test_all_non_finite_and_empty_histories_still_plot(tmp_path: Path) -> None:
    nan, inf = float("nan"), float("inf")
    broken = History(
        lrs=(1e-5, 1e-4, 1e-3, 1e-2),
        losses=(nan, inf, -inf, nan),
        smoothed_losses=(nan, nan, inf, nan),
        stop_reason="non_finite",
    )
    empty = History(lrs=(), losses=(), smoothed_losses=(), stop_reason="interrupted")
    for name, history in (("broken", broken), ("empty", empty)):
        result = make_result("flat").with_updates(history=history)
        data = plot_result(result, tmp_path / f"{name}.png").read_bytes()
        assert data.startswith(PNG_SIGNATURE)


def test_hostile_text_does_not_break_rendering(tmp_path: Path) -> None:
    result = make_result(
        "clean",
        name="$x_1$ <script>alert('x')</script> & \"q\"",
        model="Net$$\n\tweird",
        optimizer="$\\frac{",  # would be invalid mathtext if not escaped
        confidence="low",
        reasons=("$unbalanced " + "very long reason " * 20,),
    )
    assert_readable_png(plot_result(result, tmp_path / "hostile.png"))


def test_suggestion_outside_the_recorded_curve(tmp_path: Path) -> None:
    result = make_result("diverged", suggestion_lr=50.0, lr_range=(1e-9, 1e-8))
    assert_readable_png(plot_result(result, tmp_path / "outside.png"))


def test_overlay_of_four_runs(tmp_path: Path) -> None:
    results = [
        make_result("clean", shift=1.0),
        make_result("diverged", seed=3, shift=-1.5),
        make_result("clean", seed=5, start_lr=1e-7, end_lr=1.0, shift=-1.2, loss_scale=1.1),
        make_result("flat", seed=2),
    ]
    labels = ["SGD", "Adam", "AdamW", "RMSprop <b>&"]
    path = plot_overlay(results, labels, tmp_path / "overlay.png", title="SGD vs Adam")
    assert_readable_png(path)


def test_overlay_with_very_different_loss_scales(tmp_path: Path) -> None:
    results = [make_result("clean"), make_result("clean", loss_scale=200.0, seed=4)]
    assert_readable_png(plot_overlay(results, ["small", "large"], tmp_path / "scales.png"))
    path = tmp_path / "normalized.png"
    assert_readable_png(plot_overlay(results, ["small", "large"], path, normalize=True))


def test_overlay_rejects_mismatched_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 results but 1 labels"):
        plot_overlay([make_result(), make_result()], ["one"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one"):
        plot_overlay([], [], tmp_path / "x.png")


def test_trials_plot_with_diverged_trials(tmp_path: Path) -> None:
    trials = make_trials()
    best = min((t for t in trials if t.val_loss is not None), key=lambda t: t.val_loss or 0.0)
    path = plot_trials(trials, tmp_path / "trials.png", suggestion_lr=3e-4, best_lr=best.lr)
    assert_readable_png(path)


def test_trials_plot_train_loss_many_trials_and_all_diverged(tmp_path: Path) -> None:
    lrs = [10 ** (-5 + i * 0.2) for i in range(20)]
    train_only = make_trials(lrs, diverged_above=1e-2, with_val=False)
    assert_readable_png(plot_trials(train_only, tmp_path / "train.png", None, 2e-3, title="t"))
    all_diverged = tuple(
        Trial(lr=lr, train_loss=math.inf, val_loss=None, diverged=True, steps=10)
        for lr in (1e-2, 1e-1)
    )
    assert_readable_png(plot_trials(all_diverged, tmp_path / "diverged.png", 1e-3, None))
    assert plot_trials((), tmp_path / "none.png", None, None).read_bytes()[:8] == PNG_SIGNATURE


def test_unwritable_destination_raises_output_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write"):
        plot_result(make_result(), tmp_path / "missing" / "lr_finder.png")
    assert list(tmp_path.iterdir()) == []


def test_y_range_follows_the_descent_not_the_blow_up() -> None:
    history = make_history("clean")  # smoothed loss climbs past 10 at the end of the sweep
    smoothed = np.array(history.smoothed_losses)
    limits = Limits()
    limits.add(smoothed, np.array(history.losses))
    assert smoothed.max() > 10
    assert not limits.log
    assert limits.high == pytest.approx(smoothed[:10].max(), rel=0.05)  # about the initial loss
    assert limits.low < float(np.nanmin(smoothed))


def test_one_noisy_first_point_does_not_set_the_top() -> None:
    curve = np.array([5.0, 2.4, 2.3, 2.35, 2.3, *np.linspace(2.3, 1.0, 40), 3.0, 9.0])
    limits = Limits()
    limits.add(curve)
    assert limits.high == pytest.approx(2.4)  # median of the first three points
    assert limits.low == pytest.approx(1.0)


def test_y_range_switches_to_log_for_curves_spanning_decades() -> None:
    limits = Limits()
    limits.add(np.array([1000.0, 100.0, 10.0, 1.0, 0.5, 5.0]))
    assert limits.log
    empty = Limits()
    empty.add(np.array([math.nan, math.inf]))
    assert empty.empty and not empty.log


def test_plot_module_never_uses_pyplot() -> None:
    """pyplot's global figure manager leaks figures and needs a GUI-free backend: Figure() only."""
    sources = [
        path.read_text(encoding="utf-8")
        for path in Path(lrfind.outputs.plot.__file__).parent.glob("*.py")
    ]
    source = "\n".join(sources)
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    assert not any("pyplot" in name for name in imported)
    assert ".show(" not in source
