"""Planning a training schedule (onecycle, cyclic, plateau, cosine) from a recommended LR range."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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

SCHEDULER_MODULE = "torch.optim.lr_scheduler"


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

    ``optimizer_lr`` is the LR to set on every param group before building the scheduler (a
    tuple: one per param group, in order; None when the scheduler sets the LR itself);
    ``interval`` says when to call ``scheduler.step()``;
    ``monitor`` is the metric ReduceLROnPlateau's ``step`` takes; ``header`` lines become comments.
    """

    kind: ScheduleKind
    scheduler: SchedulerSpec
    optimizer_lr: float | tuple[float, ...] | None
    interval: Literal["step", "epoch"]
    monitor: str | None
    header: tuple[str, ...]
    optimizer_lr_note: str = ""


def _round(value: float) -> float:
    """Three significant digits: the range test is not more precise than that."""
    return float(float_text(value))


def float_text(value: float) -> str:
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
            problems.append(
                f"{kind}: epochs needs steps_per_epoch (--steps-per-epoch; the run did not "
                "record its batches per epoch), or give total_steps"
            )
        else:
            problems.append(
                f"{kind} needs the schedule's length: give total_steps (--total-steps), "
                "or epochs and steps_per_epoch (--epochs, --steps-per-epoch)"
            )
    return total


def _run_steps_per_epoch(result_or_range: RangeTestResult | LRRange) -> tuple[int | None, str]:
    """Optimizer steps per epoch of the run's own training loader, and a line saying so.

    ``ceil(batches / accumulation_steps)``: a last partial accumulation still steps, and a
    scheduler stepped more often than its ``total_steps`` raises, so the count never falls short.
    """
    if isinstance(result_or_range, LRRange):
        return None, ""
    info = result_or_range.info
    batches = info.batches_per_epoch
    if not isinstance(batches, int) or batches < 1:
        return None, ""
    per_epoch = math.ceil(batches / max(1, info.accumulation_steps))
    how = f"{batches} batches of {info.batch_size}" if info.batch_size else f"{batches} batches"
    if info.accumulation_steps > 1:
        how += f" / {info.accumulation_steps} accumulation steps"
    return per_epoch, f"{per_epoch} optimizer steps per epoch, as in the run ({how})"


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


Scalable = float | list[float]


def _per_group(value: float, scales: Sequence[float]) -> Scalable:
    """``value`` (rounded) when no group scales its LR, else one rounded value per param group."""
    if all(scale == 1.0 for scale in scales):
        return _round(value)
    values = [_round(value * scale) for scale in scales]
    return values[0] if len(values) == 1 else values


def _scales_text(scales: Sequence[float]) -> str:
    return ", ".join(f"{scale:g}" for scale in scales)


def _check_scales(scales: Sequence[float], problems: list[str]) -> tuple[float, ...]:
    checked: list[float] = []
    for scale in scales:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not _usable(scale):
            problems.append(f"lr_scales must be positive numbers, got {scale!r}")
            return ()
        checked.append(float(scale))
    return tuple(checked)


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
    lr_scales: Sequence[float] | None = None,
) -> SchedulePlan:
    """Return the scheduler ``build_schedule`` would render, as data (see ``build_schedule``).

    ``lr_scales`` are the param groups' LR multipliers, in the optimizer's order (default: those
    the run recorded, ``result.info.lr_scales``). With more than one group, or a scale other
    than 1, every LR becomes one value per group (``max_lr=[...]``, per-group base LRs), so a
    group swept at 0.1x also trains at 0.1x.

    Raises:
        ConfigError: unknown kind or a bad option combination (every problem listed).
        NoReliableSuggestion: the result has no suggestion or range that this kind needs.
    """
    problems: list[str] = []
    if kind not in SCHEDULE_KINDS:
        problems.append(
            f"unknown schedule kind {kind!r} (expected one of {', '.join(SCHEDULE_KINDS)})"
        )
    derived = ""
    if epochs is not None and steps_per_epoch is None and total_steps is None:
        steps_per_epoch, derived = _run_steps_per_epoch(result_or_range)
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
    if lr_scales is None and isinstance(result_or_range, RangeTestResult):
        lr_scales = result_or_range.info.lr_scales
    scales = _check_scales(lr_scales or (), problems)
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

    header: tuple[str, ...] = (
        f"lrfind {kind} schedule from {_one_line(label)}",
        f"range {format_lr(min_lr)} to {format_lr(max_lr)}, suggested {format_lr(suggested)}",
    )
    if derived:
        header += (derived,)
    grouped = isinstance(_per_group(1.0, scales), list)
    if grouped:
        header += (
            f"{len(scales)} param groups with lr_scale {_scales_text(scales)}: one LR per group, "
            "in the optimizer's order",
        )
    if kind == "onecycle":
        assert total is not None  # _resolve_total reported its absence
        spec = _onecycle(min_lr, max_lr, total, pct_start, scales)
        return SchedulePlan("onecycle", spec, None, "step", None, header)
    if kind == "cyclic":
        half, why_half = _half_cycle(step_size_up, per_epoch, total)
        spec = _cyclic(min_lr, max_lr, half, why_half, scales)
        return SchedulePlan("cyclic", spec, None, "step", None, header)
    assert peak is not None  # checked above for plateau and cosine
    start_lr = _round(peak)
    scaled_start = _per_group(start_lr, scales)
    start = tuple(scaled_start) if isinstance(scaled_start, list) else scaled_start
    peak_note = "the range test's suggestion" if lr is None else "lr as given"
    if any(scale != 1.0 for scale in scales):
        peak_note += f" × lr_scale ({_scales_text(scales)})"
    if kind == "plateau":
        return SchedulePlan(
            "plateau", _plateau(min_lr, scales), start, "epoch", "val_loss", header, peak_note
        )
    assert total is not None
    if warmup_steps is None:
        warmup_steps = max(1, round(total * warmup_fraction)) if warmup_fraction > 0 else 0
    warmup = min(warmup_steps, total - 1)
    return SchedulePlan(
        "cosine",
        _cosine(start_lr, min_lr, total, warmup, scales),
        start,
        "step",
        None,
        header,
        peak_note,
    )


def _scaled_note(note: str, scales: Sequence[float]) -> str:
    return f"{note} × each group's lr_scale" if isinstance(_per_group(1.0, scales), list) else note


def _onecycle(
    min_lr: float, max_lr: float, total: int, pct_start: float, scales: Sequence[float] = ()
) -> SchedulerSpec:
    ratio = max_lr / min_lr
    div_factor = _round(min(max(ratio, DIV_FACTOR_BOUNDS[0]), DIV_FACTOR_BOUNDS[1]))
    rounded_max = _round(max_lr)
    note = f"starts at max_lr / div_factor = {format_lr(rounded_max / div_factor)}"
    if isinstance(_per_group(1.0, scales), list):
        note = "starts at max_lr / div_factor"
    if div_factor != _round(ratio):
        bound = "capped" if ratio > div_factor else "raised"
        note += f" (the range spans ×{ratio:.0f}; {bound} to ×{div_factor:g})"
    return SchedulerSpec(
        "OneCycleLR",
        (
            ("max_lr", _per_group(rounded_max, scales)),
            ("total_steps", total),
            ("pct_start", _round(pct_start)),
            ("div_factor", div_factor),
            ("final_div_factor", FINAL_DIV_FACTOR),
            ("anneal_strategy", "cos"),
            ("cycle_momentum", False),
        ),
        notes={
            "max_lr": _scaled_note("the range's max_lr", scales),
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


def _cyclic(
    min_lr: float, max_lr: float, half: int, why_half: str, scales: Sequence[float] = ()
) -> SchedulerSpec:
    return SchedulerSpec(
        "CyclicLR",
        (
            ("base_lr", _per_group(_round(min_lr), scales)),
            ("max_lr", _per_group(_round(max_lr), scales)),
            ("step_size_up", half),
            ("mode", "triangular2"),
            ("cycle_momentum", False),
        ),
        notes={
            "base_lr": _scaled_note("the range's min_lr", scales),
            "max_lr": _scaled_note("the range's max_lr", scales),
            "step_size_up": why_half,
            "cycle_momentum": "True also cycles SGD momentum (needs momentum)",
        },
    )


def _plateau(min_lr: float, scales: Sequence[float] = ()) -> SchedulerSpec:
    return SchedulerSpec(
        "ReduceLROnPlateau",
        (
            ("mode", "min"),
            ("factor", PLATEAU_FACTOR),
            ("patience", PLATEAU_PATIENCE),
            ("threshold", PLATEAU_THRESHOLD),
            ("min_lr", _per_group(_round(min_lr / PLATEAU_FLOOR_DIVISOR), scales)),
        ),
        notes={"min_lr": _scaled_note("the range's min_lr / 10", scales)},
    )


def _cosine(
    peak: float, min_lr: float, total: int, warmup: int, scales: Sequence[float] = ()
) -> SchedulerSpec:
    """Linear warm-up from about min_lr to ``peak``, then cosine decay to min_lr.

    CosineAnnealingLR takes one ``eta_min`` for every group: with several groups it is the
    lowest group's floor, so no group's floor sits above its own peak.
    """
    floor_is_min_lr = min_lr < peak
    floor = min_lr if floor_is_min_lr else peak / 10
    floor_note = "the range's min_lr" if floor_is_min_lr else "peak / 10"
    lowest = min(scales) if scales else 1.0
    if lowest != 1.0:
        floor *= lowest
        floor_note += f" × the lowest lr_scale ({lowest:g}): one eta_min serves every group"
    decay = SchedulerSpec(
        "CosineAnnealingLR",
        (("T_max", total - warmup), ("eta_min", _round(floor))),
        variable="decay" if warmup else "scheduler",
        notes={"eta_min": floor_note},
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
