"""The training run the answer is for (``train:``), and how the trials reached toward it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lrfind.results.history import finite_or_none

TrainSchedule = Literal["constant", "onecycle", "cosine", "linear"]

#: The schedules a stated run may use; the answer is the constant LR or the schedule's peak.
TRAIN_SCHEDULES: tuple[TrainSchedule, ...] = ("constant", "onecycle", "cosine", "linear")


@dataclass(frozen=True)
class TrainRun:
    """The run the user will train: its length in optimizer steps, schedule and warmup.

    ``warmup`` below 1 is a fraction of ``steps``; 1 or more is a number of steps (0: none).
    The suggestion is the LR to use for this run: the constant LR, or the schedule's peak.
    """

    steps: int
    schedule: TrainSchedule = "constant"
    warmup: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"train steps must be a whole number >= 1, got {self.steps!r}")
        if self.schedule not in TRAIN_SCHEDULES:
            choices = ", ".join(TRAIN_SCHEDULES)
            raise ValueError(f"unknown train schedule {self.schedule!r}; choose from {choices}")
        warmup = self.warmup
        if isinstance(warmup, bool) or not isinstance(warmup, int | float):
            raise ValueError(f"train warmup must be a number, got {warmup!r}")
        if not math.isfinite(warmup) or warmup < 0:
            raise ValueError(f"train warmup must be >= 0, got {warmup!r}")
        if warmup >= 1 and warmup != int(warmup):
            raise ValueError(
                f"train warmup of {warmup:g} steps must be a whole number (or a fraction below 1)"
            )
        # In steps either way: a fraction that rounds to the whole run leaves no run after it.
        if self.warmup_steps >= self.steps:
            given = (
                f"{warmup:g} steps"
                if warmup >= 1
                else f"{warmup:g} of the run ({self.warmup_steps} steps)"
            )
            raise ValueError(f"train warmup of {given} must be below the run's {self.steps} steps")

    @property
    def warmup_steps(self) -> int:
        """Warmup in optimizer steps."""
        if self.warmup >= 1:
            return int(self.warmup)
        return round(self.warmup * self.steps)

    def describe(self) -> str:
        """A few words for people: "a 400-step constant-LR run", "a 3000-step linear run"."""
        kind = "constant-LR" if self.schedule == "constant" else self.schedule
        warm = f" with {self.warmup_steps} warmup steps" if self.warmup_steps else ""
        return f"a {self.steps}-step {kind} run{warm}"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "steps": self.steps,
            "schedule": self.schedule,
            "warmup": self.warmup,
            "warmup_steps": self.warmup_steps,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainRun:
        """Build from the JSON form."""
        return cls(
            steps=int(data["steps"]),
            schedule=data.get("schedule", "constant"),
            warmup=float(data.get("warmup", 0.0)),
        )


@dataclass(frozen=True)
class Drift:
    """How the best LR moved with training length across the trials' checkpoints.

    ``observed``: (steps, best LR) per checkpoint; ``exponent``: the fitted beta of
    ``lr*(t) ~ t**-beta`` after shrinking toward ``prior``; ``factor``: what the answer was
    multiplied by to carry it from ``from_steps`` to ``to_steps`` (1: no change); ``reason``:
    one line for people.
    """

    observed: tuple[tuple[int, float], ...]
    exponent: float
    prior: float
    factor: float
    from_steps: int
    to_steps: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "observed": [[steps, lr] for steps, lr in self.observed],
            "exponent": finite_or_none(self.exponent),
            "prior": self.prior,
            "factor": finite_or_none(self.factor),
            "from_steps": self.from_steps,
            "to_steps": self.to_steps,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Drift:
        """Build from the JSON form."""
        exponent = data.get("exponent")
        factor = data.get("factor")
        return cls(
            observed=tuple((int(s), float(lr)) for s, lr in data.get("observed", ())),
            exponent=math.nan if exponent is None else float(exponent),
            prior=float(data.get("prior", 0.0)),
            factor=math.nan if factor is None else float(factor),
            from_steps=int(data.get("from_steps", 0)),
            to_steps=int(data.get("to_steps", 0)),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class Budget:
    """What the recommendation may cost: a multiple of the sweep, or a share of the stated run.

    ``sweeps``: sweep plus trials cost at most this many sweeps (``suggest.budget: 4``).
    ``share``: they cost at most this fraction of the run the user will train (``budget: 5%``),
    which needs the run's length (``train.steps``): a 100k-step run affords far longer trials
    than a 400-step one. ``at_least``: with a share, never fewer sweeps than this (the default
    for a stated run: the larger of 4 sweeps and a share of the run).
    """

    sweeps: float | None = None
    share: float | None = None
    at_least: float = 1.0

    def __post_init__(self) -> None:
        if (self.sweeps is None) == (self.share is None):
            raise ValueError("a budget is either a number of sweeps or a share of the run")
        if self.sweeps is not None and not (1 <= self.sweeps < math.inf):
            share = (
                f"; for a share of the run write '{100 * self.sweeps:g}%'"
                if 0 < self.sweeps < 1
                else ""
            )
            raise ValueError(
                f"budget must be a finite number of sweeps >= 1, got {self.sweeps!r}{share}"
            )
        if self.share is not None and not (0 < self.share <= 1):
            raise ValueError(
                f"a budget share must be above 0% and at most 100%, got {100 * self.share:g}%"
            )
        if not 1 <= self.at_least < math.inf:
            raise ValueError(
                f"at_least must be a finite number of sweeps >= 1, got {self.at_least}"
            )

    def allowance(self, sweep_steps: int, horizon: int | None) -> float:
        """Sweep steps the trials may spend after a sweep of ``sweep_steps``.

        Raises:
            ValueError: a share of the run without the run's length.
        """
        if self.sweeps is not None:
            return (self.sweeps - 1) * sweep_steps
        if horizon is None:
            raise ValueError(
                f"a budget of {self.describe()} needs the run's length: give train.steps "
                "(range_test(train_steps=...)) or a budget in sweeps"
            )
        floor = (self.at_least - 1) * sweep_steps
        return max(0.0, floor, (self.share or 0.0) * horizon - sweep_steps)

    def after_sweep(self, sweep_steps: int, horizon: int | None) -> str:
        """What the budget leaves for trials after a sweep of ``sweep_steps``, for people: "the
        budget (4x) leaves 120 steps after the 40-step sweep", or, for a share of the run
        smaller than the sweep itself, that the sweep alone exceeds it.

        Raises:
            ValueError: a share of the run without the run's length.
        """
        allowance = self.allowance(sweep_steps, horizon)
        floored = self.at_least > 1
        if (
            self.share is not None
            and not floored
            and horizon is not None
            and self.share * horizon < sweep_steps
        ):
            return (
                f"the budget ({self.describe()}: {self.share * horizon:.0f} steps) is smaller "
                f"than the {sweep_steps}-step sweep: the sweep alone exceeds it"
            )
        return (
            f"the budget ({self.describe()}) leaves {allowance:.0f} steps after the "
            f"{sweep_steps}-step sweep"
        )

    def as_sweeps(self, sweep_steps: int, horizon: int | None) -> float:
        """The budget as a multiple of the sweep (what older records hold)."""
        if self.sweeps is not None:
            return self.sweeps
        return 1 + self.allowance(sweep_steps, horizon) / max(sweep_steps, 1)

    def describe(self) -> str:
        """ "4x" or "5% of the run"."""
        if self.sweeps is not None:
            return f"{self.sweeps:g}x"
        floor = f", at least {self.at_least:g}x" if self.at_least > 1 else ""
        return f"{100 * (self.share or 0.0):g}% of the run{floor}"


def parse_budget(value: Budget | float | int | str) -> Budget:
    """Read a budget: a number of sweeps (4, "4", "4x") or a share of the run ("5%").

    Raises:
        ValueError: anything else, or a value out of range (the message says which).
    """
    if isinstance(value, Budget):
        return value
    if isinstance(value, bool):
        raise ValueError(f"budget must be a number of sweeps or a percentage, got {value!r}")
    if isinstance(value, int | float):
        return Budget(sweeps=float(value))
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            if text.endswith("%"):
                return Budget(share=float(text[:-1].strip()) / 100)
            return Budget(sweeps=float(text.removesuffix("x").strip()))
        except ValueError as error:
            if "budget" in str(error):
                raise
    raise ValueError(
        f"budget must be a number of sweeps (e.g. 4) or a share of the run (e.g. '5%'), "
        f"got {value!r}"
    )
