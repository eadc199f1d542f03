"""Progress on stderr: the sweep's closing line, the trials' plan, honest counters, time left."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

import lrfind
from lrfind.analysis.budget import TrialPlan
from lrfind.cli.console import SweepProgress, make_console
from lrfind.engine.trials import TrialEvent
from lrfind.results import Trial

PLAN = TrialPlan(
    stage="refine",
    first=3,
    trials=4,
    steps=60,
    val_batches=6,
    val_batch_cost=1.0,
    sweep_steps=88,
    budget=4.0,
)


def trial_event(index: int) -> TrialEvent:
    trial = Trial(
        lr=1e-3 * (index + 1), train_loss=0.5, val_loss=0.4 - index / 100, diverged=False, steps=60
    )
    return TrialEvent("refine", index, min(index + 1, 4), trial)


def feed(progress: SweepProgress, steps_done: int = 88, planned: int = 100) -> None:
    with progress:
        for step in range(steps_done):
            progress.step(step, planned, 1e-5 * 1.15**step, 2.3, 2.3)
        progress.stage(PLAN)
        for index in range(4):
            progress.stage(trial_event(index))
        progress.sweep_done(steps_done, planned, "diverged")


def plain_output(steps_done: int = 88) -> str:
    stream = io.StringIO()
    feed(SweepProgress(make_console(stream)), steps_done)
    return stream.getvalue()


def test_an_early_stop_gets_a_closing_line_before_the_trials() -> None:
    """Bug: a diverged sweep's progress ended at "80%" with no word of the stop."""
    lines = plain_output().splitlines()
    assert lines[8].startswith("sweep: step 80/100 (80%)")
    assert lines[9].startswith("sweep: stopped early at step 88 of 100, lr ")
    assert lines[9].endswith(": the loss blew up")
    assert lines[10] == PLAN.describe()


def test_trial_counters_are_honest_when_the_window_grows() -> None:
    """Bug: the counter read 5/6, 6/7, 7/7 as the window grew."""
    text = plain_output()
    assert "  refine trial 1/3: lr 1.00e-03 -> val loss 0.4" in text
    assert "  refine trial 3/3: lr 3.00e-03" in text
    assert "  refine trial 4 (window extended): lr 4.00e-03 -> val loss 0.37" in text
    assert "4/4" not in text


def test_a_completed_sweep_without_trials_says_done() -> None:
    stream = io.StringIO()
    progress = SweepProgress(make_console(stream))
    with progress:
        for step in range(50):
            progress.step(step, 50, 1e-5, 2.3, 2.3)
        progress.sweep_done(50, 50, "completed")
    assert stream.getvalue().splitlines()[-1] == "sweep: done, 50 steps"


def test_a_sweep_that_diverged_without_trials_names_the_reason() -> None:
    stream = io.StringIO()
    progress = SweepProgress(make_console(stream))
    with progress:
        for step in range(30):
            progress.step(step, 50, 1e-5, 2.3, 2.3)
        progress.sweep_done(30, 50, "diverged")
    assert stream.getvalue().splitlines()[-1].endswith(": the loss diverged")


def test_the_live_bars_run_the_same_events_on_a_terminal() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=120, no_color=True)
    progress = SweepProgress(console)
    assert progress.live
    feed(progress)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert "stopped early at step 88 of 100" in text
    assert "refine trial 4 (window extended)" in text


def test_quiet_prints_nothing() -> None:
    stream = io.StringIO()
    feed(SweepProgress(make_console(stream), enabled=False))
    assert stream.getvalue() == ""


def test_a_real_sweep_reports_its_stage(tiny_config: Path, tmp_path: Path) -> None:
    stream = io.StringIO()
    progress = SweepProgress(make_console(stream))
    with progress:
        lrfind.sweep(
            tiny_config, overrides=["suggest.refine=on"], out=tmp_path / "r", reporter=progress
        )
    text = stream.getvalue()
    assert "sweep: " in text and ("stopped early" in text or "sweep: done" in text)
    assert "refine trial 1/" in text or "search trial 1/" in text


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (42.0, "42 s"), (125.0, "2 min 5 s")])
def test_durations(seconds: float, text: str) -> None:
    from lrfind.cli.console import duration

    assert duration(seconds) == text
