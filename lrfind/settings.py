"""The one settings object of a range test: how the sweep runs and how the answer is made.

Plain frozen dataclasses with their defaults and their checks, no torch. ``config`` builds them
from YAML (``Config.sweep_options()`` / ``Config.suggest_options()``), ``range_test``'s keywords
map onto them, and the engine runs them; nothing else declares a default or checks a value
again. Each check raises ValueError with a one-line message naming the setting.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

from lrfind.names import DEFAULT_METHOD, SUGGEST_METHODS
from lrfind.results import Budget, TrainRun, TrainSchedule, parse_budget

SweepMode = Literal["exp", "linear"]
Precision = Literal["fp32", "bf16", "fp16"]
RefineMode = Literal["auto", "on", "off"]

#: A param group's multiplier of the swept LR (``optimizer.param_groups[i]["lr_scale"]``).
LR_SCALE_KEY = "lr_scale"

#: ``suggest.budget`` without a stated run: the whole recommendation (sweep plus trials,
#: validation included) costs at most this many sweeps.
DEFAULT_BUDGET = 4.0

#: ... and with a stated run, the larger of that and this share of the run.
DEFAULT_RUN_SHARE = 0.05

#: A stated run longer than this many optimizer steps is a typo, not a plan.
MAX_TRAIN_STEPS = 10**9

#: The prior exponent of the drift, ``lr*(t) ~ t**-DRIFT_PRIOR``
#: (``lrfind.analysis.horizon.estimate_drift`` weighs it against the rungs). Measured on the
#: long-run ground truth (``benchmarks/longrun_truth.py``: runs 10-100x a sweep), where the
#: best constant LR's exponent from 100 to 10k steps runs from 0.1 to 0.8 across tasks (median
#: 0.44), and chosen among 0.3-0.45 by ``benchmarks/longrun_quality.py``: rungs of a 4-5 sweep
#: budget are too short to tell the tasks apart, so the prior carries most of the answer. The
#: numbers: benchmarks/README.md.
DRIFT_PRIOR = 0.35


def whole_number(
    name: str, value: object, *, minimum: int | None = 1, maximum: int | None = None
) -> int:
    """``value`` as an int when it is a whole number in range (numpy integers too; ``minimum``
    None: any).

    Raises:
        ValueError: a bool, a fraction, a string, or a number out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    number = int(value)
    if minimum is None:
        return number
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"from {minimum} to {maximum:,}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be a whole number {bound}, got {number}")
    return number


def real_number(name: str, value: object) -> float:
    """``value`` as a finite float (numpy floats too).

    Raises:
        ValueError: a bool, a string, None, NaN or infinity.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


@dataclass(frozen=True)
class SweepOptions:
    """How the sweep runs (``sweep:`` in the config; ``range_test``'s sweep keywords)."""

    start_lr: float = 1e-7
    end_lr: float = 10.0
    steps: int = 100
    mode: SweepMode = "exp"
    smoothing: float = 0.98
    diverge_factor: float = 4.0
    accumulation_steps: int = 1
    precision: Precision = "fp32"
    grad_clip: float | None = None
    check_every: int | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "accumulation_steps", "check_every"):
            if getattr(self, name) is not None:
                whole_number(name, getattr(self, name), minimum=None)
        if self.steps < 2:
            raise ValueError(f"steps must be at least 2, got {self.steps}")
        if not (0 < self.start_lr < self.end_lr < math.inf):
            raise ValueError("need 0 < start_lr < end_lr, both finite")
        if self.mode not in ("exp", "linear"):
            raise ValueError(f"mode must be 'exp' or 'linear', got {self.mode!r}")
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
class SuggestOptions:
    """How the answer is made after the sweep (``suggest:`` in the config).

    ``budget`` None: the default, ``default_budget(train)`` (it depends on the stated run).
    ``drift_prior`` None: the answer is not carried from the trials to the stated run.
    """

    method: str = DEFAULT_METHOD
    refine: RefineMode = "auto"
    refine_steps: int | None = None
    refine_candidates: int | None = None
    budget: Budget | None = None
    repeats: int = 1
    drift_prior: float | None = DRIFT_PRIOR
    compress_schedule: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.method not in SUGGEST_METHODS:
            raise ValueError(
                f"unknown suggestion method {self.method!r}; choose from "
                f"{', '.join(SUGGEST_METHODS)}"
            )
        if self.refine not in ("auto", "on", "off"):
            raise ValueError(f"refine must be 'auto', 'on' or 'off', got {self.refine!r}")
        if self.refine_steps is not None:
            whole_number("refine_steps", self.refine_steps)
        if self.refine_candidates is not None:
            whole_number("refine_candidates", self.refine_candidates)
        whole_number("repeats", self.repeats)
        if self.drift_prior is not None:
            prior = real_number("drift_prior", self.drift_prior)
            if not 0 <= prior <= 1:
                raise ValueError(
                    f"drift_prior must be between 0 and 1 (or None), got {self.drift_prior!r}"
                )
        if not isinstance(self.compress_schedule, bool):
            raise ValueError(
                f"compress_schedule must be True or False, got {self.compress_schedule!r}"
            )
        if self.seed is not None:
            whole_number("seed", self.seed, minimum=None)

    def budget_for(self, train: TrainRun | None) -> Budget:
        """The budget that applies: the one given, else the default for ``train``.

        Raises:
            ValueError: a share of the run without a stated run.
        """
        if self.budget is None:
            return default_budget(train)
        if self.budget.share is not None and train is None:
            self.budget.allowance(1, None)  # raises: a share needs the run's length
        return self.budget


def default_budget(train: TrainRun | None) -> Budget:
    """The budget when none is given: DEFAULT_BUDGET sweeps; for a stated run, the larger of
    that and DEFAULT_RUN_SHARE of the run (long runs afford long rungs)."""
    if train is None:
        return Budget(sweeps=DEFAULT_BUDGET)
    return Budget(share=DEFAULT_RUN_SHARE, at_least=DEFAULT_BUDGET)


def read_budget(value: Budget | float | str | None) -> Budget | None:
    """A budget as ``range_test`` takes it (a number of sweeps, "5%", a Budget, None: the
    default).

    Raises:
        ValueError: anything else, or out of range.
    """
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)
    return parse_budget(value)


def train_run(
    steps: object, schedule: TrainSchedule = "constant", warmup: object = 0.0
) -> TrainRun | None:
    """The stated run from ``range_test``'s keywords (None: no run stated).

    Raises:
        ValueError: a length that is not a whole number from 1 to MAX_TRAIN_STEPS, a schedule or
            warmup without a length, or an invalid run (``TrainRun``'s checks).
    """
    if steps is None:
        if schedule != "constant" or warmup:
            raise ValueError("train_schedule and train_warmup describe a run: give train_steps too")
        return None
    length = whole_number("train_steps", steps, maximum=MAX_TRAIN_STEPS)
    return TrainRun(length, schedule, real_number("train_warmup", warmup))
