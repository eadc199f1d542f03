"""The exceptions lrfind raises, one root class, each carrying the CLI exit code it maps to.

The library raises these; only ``lrfind.cli`` turns them into a one-line message and an exit code.
Exit codes: 0 ok, 1 a check failed, 2 bad usage/config/data/environment, 3 no reliable answer,
130 interrupted.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_ANSWER = 3
EXIT_INTERRUPTED = 130


class LrfindError(Exception):
    """Root of every error lrfind raises on purpose; ``exit_code`` is what the CLI exits with."""

    exit_code: int = EXIT_USAGE


class ConfigError(LrfindError):
    """The configuration is invalid. ``problems`` lists every problem found, one line each."""

    def __init__(self, problems: Sequence[str] | str, source: str | None = None) -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems)
        )
        self.source = source
        where = f"{source}: " if source else ""
        if len(self.problems) == 1:
            message = f"{where}{self.problems[0]}"
        else:
            listed = "\n".join(f"  - {problem}" for problem in self.problems)
            message = f"{where}{len(self.problems)} problems in the config:\n{listed}"
        super().__init__(message)


class ComponentError(LrfindError):
    """A model, dataset, loss, optimizer or step function could not be imported or built."""


class DataError(LrfindError):
    """The data is unusable: empty, smaller than one batch, unreadable, or of the wrong shape."""


class SweepError(LrfindError):
    """The range test itself could not run (non-scalar loss, frozen parameters, shape mismatch).

    ``partial`` is the History recorded before the failure, when the sweep got that far (the
    engine adds it), so that the steps already taken can still be written.
    """

    partial: object | None = None


class SnapshotError(SweepError):
    """A disk snapshot could not be written or read back (a full disk, a folder removed)."""


class UserCodeError(SweepError):
    """User code raised mid-run: the model's forward, the loss, a step function or the data.

    ``component`` says which ("forward", "loss", "model loss", "step", "data", "collate",
    "backward", "optimizer step"); ``step`` is the sweep step it failed at and ``partial`` the
    History recorded before it, once the sweep loop has added them.
    """

    def __init__(self, message: str, component: str) -> None:
        super().__init__(message)
        self.component = component
        self.step: int | None = None
        self.partial: object | None = None

    def at_step(self, step: int, lr: float, partial: object) -> None:
        """Record the sweep step (and its LR) the failure happened at, and the steps before."""
        self.step, self.partial = step, partial
        self.args = (f"{self.args[0]}, at sweep step {step} (lr {lr:.3g})",)


class OutputError(LrfindError):
    """An output could not be written (not writable, disk full) or a saved run could not be read."""


class DistributedError(LrfindError):
    """Multi-process set-up or launch failed."""


class NoReliableSuggestion(LrfindError):
    """The sweep ran but its curve gives no trustworthy learning rate (exit code 3).

    ``run``: what was done before the answer was found missing, when there is something to
    keep (``lrfind.check``: its ``CheckRun``, with the run directory and CI reports written).
    """

    exit_code = EXIT_NO_ANSWER
    run: object | None = None


class Interrupted(LrfindError):
    """The run was stopped by SIGINT or SIGTERM; partial results were written (exit code 130)."""

    exit_code = EXIT_INTERRUPTED
