"""What a sweep takes and reports: SweepOptions, per-step events, the outcome and the stop flag."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lrfind.config.schema import SWEEP_DEFAULTS, Config
from lrfind.engine.ladder import SweepMode
from lrfind.errors import SweepError
from lrfind.results import History

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
class SweepOptions:
    """How the sweep runs (the engine's own view of ``sweep:`` in the config)."""

    start_lr: float = SWEEP_DEFAULTS.start_lr
    end_lr: float = SWEEP_DEFAULTS.end_lr
    steps: int = SWEEP_DEFAULTS.steps
    mode: SweepMode = SWEEP_DEFAULTS.mode
    smoothing: float = SWEEP_DEFAULTS.smoothing
    diverge_factor: float = SWEEP_DEFAULTS.diverge_factor
    accumulation_steps: int = SWEEP_DEFAULTS.accumulation_steps
    precision: str = SWEEP_DEFAULTS.precision
    grad_clip: float | None = SWEEP_DEFAULTS.grad_clip
    check_every: int | None = SWEEP_DEFAULTS.check_every

    def __post_init__(self) -> None:
        if self.steps < 2:
            raise ValueError(f"steps must be at least 2, got {self.steps}")
        if not (0 < self.start_lr < self.end_lr < math.inf):
            raise ValueError("need 0 < start_lr < end_lr, both finite")
        if not 0 <= self.smoothing < 1:
            raise ValueError("smoothing must be in [0, 1)")
        if not 1 < self.diverge_factor < math.inf:
            raise ValueError("diverge_factor must be above 1 and finite")
        if self.accumulation_steps < 1:
            raise ValueError("accumulation_steps must be at least 1")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"unknown precision {self.precision!r}")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ValueError("grad_clip must be positive and finite")
        if self.check_every is not None and self.check_every < 1:
            raise ValueError("check_every must be at least 1")


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


def sweep_options(config: Config) -> SweepOptions:
    """Return the engine's SweepOptions for ``config.sweep``."""
    sweep = config.sweep
    return SweepOptions(
        start_lr=sweep.start_lr,
        end_lr=sweep.end_lr,
        steps=sweep.steps,
        mode=sweep.mode,
        smoothing=sweep.smoothing,
        diverge_factor=sweep.diverge_factor,
        accumulation_steps=sweep.accumulation_steps,
        precision=sweep.precision,
        grad_clip=sweep.grad_clip,
        check_every=sweep.check_every,
    )


def check_range_test_arguments(model: torch.nn.Module, *, refine: object, **counts: object) -> None:
    """Refuse ``range_test`` arguments that would be misread or fail deep inside the sweep.

    Raises:
        ValueError: ``refine`` is not auto/on/off, or a count is not a whole number.
        SweepError: the model's parameters are on the meta device.
    """
    if refine not in ("auto", "on", "off"):
        raise ValueError(f"refine must be 'auto', 'on' or 'off', got {refine!r}")
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    if any(parameter.is_meta for parameter in model.parameters()):
        raise SweepError(
            "the model's parameters are on the meta device (shapes without data): materialize "
            "it first, e.g. model.to_empty(device='cpu') and then initialize its weights"
        )
