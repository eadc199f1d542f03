"""The only rich user: progress and summaries on stderr, honouring NO_COLOR, non-TTY and CI.

On a terminal the sweep shows a live progress bar with the current LR and loss. Without a TTY, or
when ``CI`` is set, there is no animation and no colour, but a plain line every 10% so CI logs show
progress. stdout is left alone: it is reserved for ``--json`` output.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
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


class SweepProgress:
    """Reports sweep steps and refine trials: a live bar on a terminal, 10% lines otherwise."""

    def __init__(self, console: Console, enabled: bool = True, label: str = "sweep") -> None:
        self.console = console
        self.enabled = enabled
        self.label = label
        self.live = enabled and console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last_decile = -1

    def __enter__(self) -> SweepProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("lr {task.fields[lr]}  loss {task.fields[loss]}"),
                TimeElapsedColumn(),
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
            self.console.print(message)

    def step(self, step: int, steps: int, lr: float, loss: float, smoothed: float) -> None:
        """Report one recorded sweep step."""
        if not self.enabled:
            return
        if self._progress is not None:
            if self._task is None:
                self._task = self._progress.add_task(self.label, total=steps, lr="-", loss="-")
            self._progress.update(
                self._task, completed=step + 1, lr=format_lr(lr), loss=f"{smoothed:.4g}"
            )
            return
        decile = (10 * (step + 1)) // steps
        if decile > self._last_decile and (decile > 0 or step == 0):
            self._last_decile = decile
            self.console.print(
                f"{self.label}: step {step + 1}/{steps} ({10 * decile}%)  "
                f"lr {format_lr(lr)}  loss {smoothed:.4g}"
            )

    def trial(self, index: int, count: int, trial: Trial) -> None:
        """Report one finished refine/verify trial."""
        if not self.enabled:
            return
        score = "diverged" if trial.diverged else _trial_score(trial)
        self.console.print(f"  trial {index + 1}/{count}: lr {format_lr(trial.lr)} -> {score}")


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
