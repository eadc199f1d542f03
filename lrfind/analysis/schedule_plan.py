"""Planning a training schedule (onecycle, cyclic, plateau, cosine) from a recommended LR range."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from lrfind.errors import ConfigError, NoReliableSuggestion
from lrfind.format import format_lr
from lrfind.results import LRRange, RangeTestResult

ScheduleKind = Literal["onecycle", "cyclic", "plateau", "cosine"]

ScheduleFormat = Literal["yaml", "python", "json"]

SCHEDULE_KINDS: tuple[str, ...] = get_args(ScheduleKind)

SCHEDULE_FORMATS: tuple[str, ...] = get_args(ScheduleFormat)

#: OneCycleLR's div_factor is max_lr / min_lr clipped to this interval: below 4 there is hardly a
#: warm-up; above 100 the warm-up crawls through LRs too small to train anything.
DIV_FACTOR_BOUNDS = (4.0, 100.0)

#: OneCycleLR's final LR is its initial LR divided by this (torch's default).
FINAL_DIV_FACTOR = 1e4

#: CyclicLR half-cycle in epochs when steps_per_epoch is known (Smith suggests 2-10 epochs).
CYCLIC_EPOCHS_PER_HALF_CYCLE = 4

#: CyclicLR half-cycle when only total_steps is known: four full cycles over the run.
CYCLIC_CYCLES = 4

#: CyclicLR half-cycle when nothing is known (torch's default).
CYCLIC_DEFAULT_STEP_SIZE = 2000

PLATEAU_FACTOR = 0.5

PLATEAU_PATIENCE = 5

PLATEAU_THRESHOLD = 1e-4

#: ReduceLROnPlateau's floor is the range's min_lr divided by this.
PLATEAU_FLOOR_DIVISOR = 10.0

#: Cosine warm-up starts at min_lr / peak, kept inside this interval.
WARMUP_START_BOUNDS = (0.01, 0.5)

DEFAULT_WARMUP_FRACTION = 0.05

_MODULE = "torch.optim.lr_scheduler"


@dataclass(frozen=True)
class SchedulerSpec:
    """One torch scheduler: its class in ``torch.optim.lr_scheduler`` and its keyword arguments.

    ``args`` exclude the optimizer; ``notes`` explain some of them (rendered as comments);
    ``children`` are the nested schedulers of a SequentialLR, in order.
    """

    class_name: str
    args: tuple[tuple[str, Any], ...]
    variable: str = "scheduler"
    notes: Mapping[str, str] = field(default_factory=dict)
    children: tuple[SchedulerSpec, ...] = ()

    def kwargs(self) -> dict[str, Any]:
        """The arguments as a dict."""
        return dict(self.args)


@dataclass(frozen=True)
class SchedulePlan:
    """What ``build_schedule`` renders: the scheduler and how to drive it.

    ``optimizer_lr`` is the LR to set on every param group before building the scheduler (None
    when the scheduler sets the LR itself); ``interval`` says when to call ``scheduler.step()``;
    ``monitor`` is the metric ReduceLROnPlateau's ``step`` takes; ``header`` lines become comments.
    """

    kind: ScheduleKind
    scheduler: SchedulerSpec
    optimizer_lr: float | None
    interval: Literal["step", "epoch"]
    monitor: str | None
    header: tuple[str, ...]
    optimizer_lr_note: str = ""


def _round(value: float) -> float:
    """Three significant digits: the range test is not more precise than that."""
    return float(_float_text(value))


def _float_text(value: float) -> str:
    # PyYAML (YAML 1.1) reads "1e-05" as a string: a float needs a dot and a signed exponent.
    text = f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        power = int(exponent)
        return f"{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    return text if "." in text else f"{text}.0"


def _one_line(text: str, limit: int = 60) -> str:
    """User text made safe for a comment: no line breaks or control characters, bounded length."""
    flat = "".join(c if c.isprintable() else " " for c in text)
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _positive_int(name: str, value: int | None, problems: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{name} must be a positive integer, got {value!r}")
        return None
    return value


def _resolve_total(
    kind: str,
    total_steps: int | None,
    epochs: int | None,
    steps_per_epoch: int | None,
    problems: list[str],
) -> int | None:
    """The schedule's length in optimizer steps, or None; appends what is wrong to ``problems``."""
    before = len(problems)
    total = _positive_int("total_steps", total_steps, problems)
    epoch_count = _positive_int("epochs", epochs, problems)
    per_epoch = _positive_int("steps_per_epoch", steps_per_epoch, problems)
    if epoch_count is not None and per_epoch is not None:
        product = epoch_count * per_epoch
        if total is not None and total != product:
            problems.append(
                f"total_steps ({total}) disagrees with epochs × steps_per_epoch "
                f"({epoch_count} × {per_epoch} = {product})"
            )
        total = product if total is None else total
    if kind in ("onecycle", "cosine") and total is None and len(problems) == before:
        if epoch_count is not None:
            problems.append(f"{kind}: epochs needs steps_per_epoch (or give total_steps)")
        else:
            problems.append(
                f"{kind} needs the schedule's length: give total_steps (--total-steps), "
                "or epochs and steps_per_epoch (--epochs, --steps-per-epoch)"
            )
    return total


def _source(
    result_or_range: RangeTestResult | LRRange,
) -> tuple[str | None, float | None, str, LRRange]:
    """(run name, suggestion, why there is no suggestion, range) of a result or a bare range."""
    if isinstance(result_or_range, LRRange):
        return None, None, "a bare LRRange carries no suggestion", result_or_range
    suggestion = result_or_range.suggestion
    why = suggestion.reason or "; ".join(result_or_range.confidence.reasons[:1])
    return result_or_range.info.name, suggestion.lr, why, result_or_range.lr_range


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def plan_schedule(
    result_or_range: RangeTestResult | LRRange,
    kind: ScheduleKind,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    *,
    lr: float | None = None,
    pct_start: float = 0.3,
    warmup_steps: int | None = None,
    warmup_fraction: float = DEFAULT_WARMUP_FRACTION,
    step_size_up: int | None = None,
) -> SchedulePlan:
    """Return the scheduler ``build_schedule`` would render, as data (see ``build_schedule``).

    Raises:
        ConfigError: unknown kind or a bad option combination (every problem listed).
        NoReliableSuggestion: the result has no suggestion or range that this kind needs.
    """
    problems: list[str] = []
    if kind not in SCHEDULE_KINDS:
        problems.append(
            f"unknown schedule kind {kind!r} (expected one of {', '.join(SCHEDULE_KINDS)})"
        )
    total = _resolve_total(kind, total_steps, epochs, steps_per_epoch, problems)
    per_epoch = (
        steps_per_epoch if isinstance(steps_per_epoch, int) and steps_per_epoch > 0 else None
    )
    if not 0.0 < pct_start < 1.0:
        problems.append(f"pct_start must be between 0 and 1, got {pct_start!r}")
    if not 0.0 <= warmup_fraction < 1.0:
        problems.append(f"warmup_fraction must be in [0, 1), got {warmup_fraction!r}")
    if warmup_steps is not None and (
        isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0
    ):
        problems.append(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
    elif warmup_steps is not None and total is not None and warmup_steps >= total:
        problems.append(f"warmup_steps ({warmup_steps}) must be below the total steps ({total})")
    _positive_int("step_size_up", step_size_up, problems)
    if lr is not None and not _usable(lr):
        problems.append(f"lr must be a positive number, got {lr!r}")
    name, suggested, why, lr_range = _source(result_or_range)
    if isinstance(result_or_range, LRRange) and kind in ("plateau", "cosine") and lr is None:
        problems.append(f"{kind} starts from a single LR: pass lr= when building from an LRRange")
    if problems:
        raise ConfigError(problems)

    label = f"run {name!r}" if name is not None else "the given range"
    min_lr, max_lr = lr_range.min_lr, lr_range.max_lr
    if min_lr is None or max_lr is None or not (_usable(min_lr) and _usable(max_lr)):
        raise NoReliableSuggestion(
            f"{label} has no recommended range: cannot build a {kind} schedule"
        )
    if min_lr >= max_lr:
        raise NoReliableSuggestion(
            f"{label}'s recommended range is empty ({format_lr(min_lr)} to {format_lr(max_lr)}): "
            f"cannot build a {kind} schedule"
        )
    peak = lr if lr is not None else suggested
    if kind in ("plateau", "cosine") and not _usable(peak):
        detail = f" ({_one_line(why, 120)})" if why else ""
        raise NoReliableSuggestion(
            f"no reliable suggestion for {label}: cannot build a {kind} schedule{detail}"
        )

    header = (
        f"lrfind {kind} schedule from {_one_line(label)}",
        f"range {format_lr(min_lr)} to {format_lr(max_lr)}, suggested {format_lr(suggested)}",
    )
    if kind == "onecycle":
        assert total is not None  # _resolve_total reported its absence
        return SchedulePlan(
            "onecycle", _onecycle(min_lr, max_lr, total, pct_start), None, "step", None, header
        )
    if kind == "cyclic":
        half, why_half = _half_cycle(step_size_up, per_epoch, total)
        return SchedulePlan(
            "cyclic", _cyclic(min_lr, max_lr, half, why_half), None, "step", None, header
        )
    assert peak is not None  # checked above for plateau and cosine
    start_lr = _round(peak)
    peak_note = "the range test's suggestion" if lr is None else "lr as given"
    if kind == "plateau":
        return SchedulePlan(
            "plateau", _plateau(min_lr), start_lr, "epoch", "val_loss", header, peak_note
        )
    assert total is not None
    if warmup_steps is None:
        warmup_steps = max(1, round(total * warmup_fraction)) if warmup_fraction > 0 else 0
    warmup = min(warmup_steps, total - 1)
    return SchedulePlan(
        "cosine",
        _cosine(start_lr, min_lr, total, warmup),
        start_lr,
        "step",
        None,
        header,
        peak_note,
    )


def _onecycle(min_lr: float, max_lr: float, total: int, pct_start: float) -> SchedulerSpec:
    ratio = max_lr / min_lr
    div_factor = _round(min(max(ratio, DIV_FACTOR_BOUNDS[0]), DIV_FACTOR_BOUNDS[1]))
    rounded_max = _round(max_lr)
    note = f"starts at max_lr / div_factor = {format_lr(rounded_max / div_factor)}"
    if div_factor != _round(ratio):
        bound = "capped" if ratio > div_factor else "raised"
        note += f" (the range spans ×{ratio:.0f}; {bound} to ×{div_factor:g})"
    return SchedulerSpec(
        "OneCycleLR",
        (
            ("max_lr", rounded_max),
            ("total_steps", total),
            ("pct_start", _round(pct_start)),
            ("div_factor", div_factor),
            ("final_div_factor", FINAL_DIV_FACTOR),
            ("anneal_strategy", "cos"),
            ("cycle_momentum", False),
        ),
        notes={
            "max_lr": "the range's max_lr",
            "div_factor": note,
            "cycle_momentum": "True also cycles momentum/beta1 (needs momentum or betas)",
        },
    )


def _half_cycle(
    step_size_up: int | None, per_epoch: int | None, total: int | None
) -> tuple[int, str]:
    """CyclicLR's step_size_up and why: as given, else 4 epochs, else 4 cycles, else 2000."""
    if step_size_up is not None:
        return step_size_up, "as given"
    if per_epoch is not None:
        epochs = CYCLIC_EPOCHS_PER_HALF_CYCLE
        return epochs * per_epoch, f"{epochs} epochs of {per_epoch} steps"
    if total is not None:
        return max(
            1, total // (2 * CYCLIC_CYCLES)
        ), f"{CYCLIC_CYCLES} full cycles over {total} steps"
    return CYCLIC_DEFAULT_STEP_SIZE, "torch's default; pass steps_per_epoch"


def _cyclic(min_lr: float, max_lr: float, half: int, why_half: str) -> SchedulerSpec:
    return SchedulerSpec(
        "CyclicLR",
        (
            ("base_lr", _round(min_lr)),
            ("max_lr", _round(max_lr)),
            ("step_size_up", half),
            ("mode", "triangular2"),
            ("cycle_momentum", False),
        ),
        notes={
            "base_lr": "the range's min_lr",
            "max_lr": "the range's max_lr",
            "step_size_up": why_half,
            "cycle_momentum": "True also cycles SGD momentum (needs momentum)",
        },
    )


def _plateau(min_lr: float) -> SchedulerSpec:
    return SchedulerSpec(
        "ReduceLROnPlateau",
        (
            ("mode", "min"),
            ("factor", PLATEAU_FACTOR),
            ("patience", PLATEAU_PATIENCE),
            ("threshold", PLATEAU_THRESHOLD),
            ("min_lr", _round(min_lr / PLATEAU_FLOOR_DIVISOR)),
        ),
        notes={"min_lr": "the range's min_lr / 10"},
    )


def _cosine(peak: float, min_lr: float, total: int, warmup: int) -> SchedulerSpec:
    """Linear warm-up from about min_lr to ``peak``, then cosine decay to min_lr."""
    floor_is_min_lr = min_lr < peak
    decay = SchedulerSpec(
        "CosineAnnealingLR",
        (("T_max", total - warmup), ("eta_min", _round(min_lr if floor_is_min_lr else peak / 10))),
        variable="decay" if warmup else "scheduler",
        notes={"eta_min": "the range's min_lr" if floor_is_min_lr else "peak / 10"},
    )
    if warmup == 0:
        return decay
    low, high = WARMUP_START_BOUNDS
    start_factor = _round(min(max(min_lr / peak, low), high))
    warm = SchedulerSpec(
        "LinearLR",
        (("start_factor", start_factor), ("end_factor", 1.0), ("total_iters", warmup)),
        variable="warmup",
        notes={"start_factor": f"warm-up starts at {format_lr(peak * start_factor)}"},
    )
    return SchedulerSpec("SequentialLR", (("milestones", [warmup]),), children=(warm, decay))
