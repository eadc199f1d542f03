"""What a sweep takes and reports: the callables it runs, per-step events, the outcome and the stop
flag (its settings, ``SweepOptions``, are ``lrfind.settings``'s)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lrfind.errors import SweepError
from lrfind.results import History
from lrfind.settings import SweepOptions as SweepOptions

LossFn = Callable[[Any, Any], torch.Tensor]

StepFn = Callable[[torch.nn.Module, Any], torch.Tensor]

ComputeLoss = Callable[[torch.nn.Module, Any], torch.Tensor]

Reducer = Callable[[torch.Tensor], torch.Tensor]

PRECISION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: Consecutive fp16 steps skipped by GradScaler (after one was applied) that stop the sweep.
FP16_OVERFLOW_STREAK = 5

#: Skipped fp16 steps before any step was applied that stop the sweep (the scale has then
#: dropped from 2**16 to 2**-8: the gradients are not finite, not merely large).
FP16_MAX_INITIAL_SKIPS = 24


@dataclass(frozen=True)
class StepEvent:
    """Progress report for one recorded step."""

    step: int
    steps: int
    lr: float
    loss: float
    smoothed_loss: float


@dataclass(frozen=True)
class SweepOutcome:
    """What ``run_sweep`` returns: the history plus notes worth telling the user."""

    history: History
    notes: tuple[str, ...] = ()


class StopFlag:
    """Set by a signal handler (or any caller) to stop the sweep at the end of the current step.

    ``raised`` says this process was asked. ``requested`` is what loops act on: in one process
    it is ``raised``; once an engine loop has run under torch.distributed (``shared``), it only
    turns True where every rank learns of it at once (the engine all-reduces each rank's request
    with its losses), so every rank breaks out of the same step and skips the same trials.
    """

    def __init__(self) -> None:
        self.raised = False
        self.reason = ""
        self.shared = False
        self._agreed = False
        #: Set once the run has ended and its results are being written: a further signal
        #: must not abort the writing (the CLI's handler reads it).
        self.finishing = False

    @property
    def requested(self) -> bool:
        """True when the loops should stop (agreed by every rank in a multi-process run)."""
        return self._agreed if self.shared else self.raised

    def request(self, reason: str = "interrupted") -> None:
        """Ask the running loop to stop after the current step."""
        self.raised = True
        self.reason = self.reason or reason

    def share(self) -> None:
        """Mark the flag as used by every rank of a process group (called by the engine)."""
        self.shared = True

    def agree(self, any_rank_asked: bool) -> None:
        """Record the all-reduced decision: some rank asked to stop (called by the engine)."""
        if any_rank_asked:
            self._agreed = True
            self.reason = self.reason or "interrupted"


def check_model(model: torch.nn.Module) -> None:
    """Refuse a model the sweep cannot train (the settings check themselves).

    Raises:
        SweepError: the model's parameters are on the meta device.
    """
    if any(parameter.is_meta for parameter in model.parameters()):
        raise SweepError(
            "the model's parameters are on the meta device (shapes without data): materialize "
            "it first, e.g. model.to_empty(device='cpu') and then initialize its weights"
        )
