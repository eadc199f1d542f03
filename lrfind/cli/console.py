"""The only rich user: progress and summaries on stderr, honouring NO_COLOR, non-TTY and CI.

On a terminal the sweep shows a live progress bar with the current LR and loss. Without a TTY, or
when ``CI`` is set, there is no animation and no colour, but a plain line every 10% so CI logs show
progress. stdout is left alone: it is reserved for ``--json`` output.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from lrfind.format import format_lr
from lrfind.outputs.report.summary import summary_rows
from lrfind.results import RangeTestResult, Trial


def is_ci() -> bool:
    """Return True when running under a CI system (the ``CI`` variable is set and not false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def make_console(file: IO[str] | None = None, width: int | None = None) -> Console:
    """Return the stderr console: no colour or animation off a TTY, under CI, or with NO_COLOR."""
    stream = file if file is not None else sys.stderr
    interactive = stream.isatty() and not is_ci()
    return Console(
        file=stream,
        width=width,
        force_terminal=None if interactive else False,
        no_color=bool(os.environ.get("NO_COLOR")) or not interactive,
        highlight=False,
        soft_wrap=True,
    )


#: How the closing line names a sweep's stop reason.
_STOPPED = {
    "diverged": "the loss diverged",
    "non_finite": "the loss became NaN/inf",
    "interrupted": "interrupted",
    "blew_up": "the loss blew up",
}


class SweepProgress:
    """Reports the sweep and the trials after it: live bars on a terminal, plain lines otherwise.

    The sweep gets a bar (or a line every 10%) with the LR, the loss and the time remaining,
    and a closing line when it ends (saying so when it stopped early). The refine/search stage
    gets the same: its plan, a bar over its trials with the time remaining, and one line per
    trial; a trial past the first planned ones reads "trial 6 (window extended)".
    """

    def __init__(self, console: Console, enabled: bool = True, label: str = "sweep") -> None:
        self.console = console
        self.enabled = enabled
        self.label = label
        self.live = enabled and console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._stage_task: TaskID | None = None
        self._last_decile = -1
        self._last_step: tuple[int, int, float] | None = None
        self._sweep_open = False
        self._plan: Any = None
        self._stage_started = 0.0

    def __enter__(self) -> SweepProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def phase(self, message: str) -> None:
        """Print a one-line status message (e.g. "building model")."""
        if self.enabled:
            self.console.print(message, markup=False)

    def step(self, step: int, steps: int, lr: float, loss: float, smoothed: float) -> None:
        """Report one recorded sweep step."""
        if not self.enabled:
            return
        if step == 0 and self._sweep_open:
            self._close_sweep(None)  # a repeat starts a new sweep
        if step == 0:
            self._last_decile = -1
            if self._progress is not None and self._task is not None:
                self._progress.reset(self._task, total=steps)
        self._sweep_open = True
        self._last_step = (step, steps, lr)
        detail = f"lr {format_lr(lr)}  loss {smoothed:.4g}"
        if self._progress is not None:
            if self._task is None:
                self._task = self._progress.add_task(self.label, total=steps, detail="")
            self._progress.update(self._task, completed=step + 1, detail=detail)
            return
        decile = (10 * (step + 1)) // steps
        if decile > self._last_decile and (decile > 0 or step == 0):
            self._last_decile = decile
            self.console.print(
                f"{self.label}: step {step + 1}/{steps} ({10 * decile}%)  {detail}", markup=False
            )

    def sweep_done(self, steps: int, planned: int, stop_reason: str) -> None:
        """Close the sweep's progress with one line (called once the run has ended)."""
        if self._sweep_open:
            self._close_sweep(stop_reason)

    def _close_sweep(self, stop_reason: str | None) -> None:
        self._sweep_open = False
        if not self.enabled or self._last_step is None:
            return
        step, steps, lr = self._last_step
        if self._progress is not None and self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        if step + 1 >= steps:
            self.console.print(f"{self.label}: done, {steps} steps", markup=False)
            return
        why = f": {_STOPPED[stop_reason]}" if stop_reason in _STOPPED else ""
        self.console.print(
            f"{self.label}: stopped early at step {step + 1} of {steps}, lr {format_lr(lr)}{why}",
            markup=False,
        )

    def stage(self, event: Any) -> None:
        """Follow the refine/search stage: its plan (a TrialPlan), then each trial (TrialEvent)."""
        if not self.enabled:
            return
        if hasattr(event, "describe"):
            self._start_stage(event)
            return
        plan = self._plan
        first = plan.first if plan is not None else event.count
        name = getattr(event, "stage", "refine")
        if name == "horizon":  # its extension joins the first rung, not the end
            first = max(first, event.count)
        counter = (
            f"trial {event.index + 1}/{first}"
            if event.index < first
            else f"trial {event.index + 1} (window extended)"
        )
        score = "diverged" if event.trial.diverged else _trial_score(event.trial)
        if self._progress is not None and self._stage_task is not None:
            self._progress.update(
                self._stage_task,
                total=max(first, event.index + 1),
                completed=event.index + 1,
                detail=f"lr {format_lr(event.trial.lr)}  {score}",
            )
        left = ""
        if self._progress is None and event.index + 1 < first:
            elapsed = time.perf_counter() - self._stage_started
            remaining = elapsed / (event.index + 1) * (first - event.index - 1)
            left = f"  (~{duration(remaining)} left)" if remaining >= 1 else ""
        # Horizon trials continue through rungs of growing length: say how far each one got.
        at = f" after {event.trial.steps} steps" if name == "horizon" else ""
        self.console.print(
            f"  {name} {counter}: lr {format_lr(event.trial.lr)}{at} -> {score}{left}",
            markup=False,
        )

    def _start_stage(self, plan: Any) -> None:
        if self._sweep_open:
            # Trials never follow an interrupted sweep: an early stop here was a blow-up.
            self._close_sweep("blew_up")
        self._plan = plan
        self._stage_started = time.perf_counter()
        self.console.print(plan.describe(), markup=False)
        if self._progress is not None:
            if self._stage_task is not None:
                self._progress.remove_task(self._stage_task)
            self._stage_task = self._progress.add_task(plan.stage, total=plan.first, detail="")

    def trial(self, index: int, count: int, trial: Trial) -> None:
        """Report one finished trial of a fixed plan (verify's)."""
        if not self.enabled:
            return
        score = "diverged" if trial.diverged else _trial_score(trial)
        self.console.print(
            f"  trial {index + 1}/{count}: lr {format_lr(trial.lr)} -> {score}", markup=False
        )


def duration(seconds: float) -> str:
    """``"4 s"``, ``"2 min 5 s"``: a time remaining for a progress line."""
    if seconds < 60:
        return f"{max(seconds, 0):.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def _trial_score(trial: Trial) -> str:
    """Return how a trial scored, for the progress line."""
    if trial.val_loss is not None:
        return f"val loss {trial.val_loss:.4g}"
    return f"train loss {trial.train_loss:.4g}"


def summary_table(result: RangeTestResult, files: dict[str, str] | None = None) -> Table:
    """Return the end-of-run summary table (the same rows as the Markdown/HTML reports)."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    confidence = result.confidence
    for label, value in summary_rows(result):
        table.add_row(label, value)
        if label == "confidence":
            for reason in confidence.reasons:
                table.add_row("", f"- {reason}")
            if confidence.try_range is not None:
                start, end = confidence.try_range
                table.add_row(
                    "try instead", f"start_lr {format_lr(start)}, end_lr {format_lr(end)}"
                )
    for warning in result.warnings:
        table.add_row("warning", warning)
    for label, path in (files or {}).items():
        table.add_row(label, path)
    return table
