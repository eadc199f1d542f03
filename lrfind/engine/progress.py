"""``range_test(progress=True)``: a progress bar on stderr for interactive use.

One line redrawn in place on a terminal (the sweep's step, LR and smoothed loss; then each
refine or search trial); elsewhere (a log file, CI) a line per quarter of the sweep and per
trial, so logs stay short. Plain text: the engine does not depend on a console library, and
lrfind's own CLI draws its richer display from the same events.
"""

from __future__ import annotations

import sys
from typing import IO, Any

BAR_WIDTH = 24


class ProgressBar:
    """Receives range_test's progress events (StepEvent, TrialPlan, TrialEvent) and draws them."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty()) if callable(isatty) else False
        self.open_line = False
        self.last_quarter = -1

    def __call__(self, event: Any) -> None:
        if hasattr(event, "smoothed_loss"):
            self._step(event)
        elif hasattr(event, "trial"):
            trial = event.trial
            loss = trial.val_loss
            shown = f"  val loss {loss:.4g}" if isinstance(loss, float) else ""
            self._line(
                f"{event.stage} trial {event.index + 1}/{event.count}  lr {trial.lr:.3g}{shown}"
            )
        elif callable(getattr(event, "describe", None)):
            self._line(str(event.describe()))

    def _step(self, event: Any) -> None:
        done = (event.step + 1) / max(event.steps, 1)
        filled = round(BAR_WIDTH * done)
        text = (
            f"sweep [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {event.step + 1}/{event.steps}"
            f"  lr {event.lr:.3g}  loss {event.smoothed_loss:.4g}"
        )
        if self.live:
            self.stream.write("\r" + text)
            self.open_line = True
            self.stream.flush()
            return
        quarter = int(done * 4)
        if quarter != self.last_quarter:
            self.last_quarter = quarter
            self._line(text)

    def _line(self, text: str) -> None:
        if self.open_line:
            self.stream.write("\n")
            self.open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the line a live bar left open."""
        if self.open_line:
            self.stream.write("\n")
            self.open_line = False
            self.stream.flush()
