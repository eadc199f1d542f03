"""torch schedulers for each schedule kind, as data: the SchedulerSpec and how LRs are rounded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lrfind.format import format_lr

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

#: Cosine and linear warm-ups start at min_lr / peak, kept inside this interval.
WARMUP_START_BOUNDS = (0.01, 0.5)

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


def round_lr(value: float) -> float:
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


Scalable = float | list[float]


def per_group(value: float, scales: Sequence[float]) -> Scalable:
    """``value`` (rounded) when no group scales its LR, else one rounded value per param group."""
    if all(scale == 1.0 for scale in scales):
        return round_lr(value)
    values = [round_lr(value * scale) for scale in scales]
    return values[0] if len(values) == 1 else values


def scales_text(scales: Sequence[float]) -> str:
    return ", ".join(f"{scale:g}" for scale in scales)


def scaled_note(note: str, scales: Sequence[float]) -> str:
    return f"{note} × each group's lr_scale" if isinstance(per_group(1.0, scales), list) else note


def onecycle_spec(
    min_lr: float, max_lr: float, total: int, pct_start: float, scales: Sequence[float] = ()
) -> SchedulerSpec:
    ratio = max_lr / min_lr
    div_factor = round_lr(min(max(ratio, DIV_FACTOR_BOUNDS[0]), DIV_FACTOR_BOUNDS[1]))
    rounded_max = round_lr(max_lr)
    note = f"starts at max_lr / div_factor = {format_lr(rounded_max / div_factor)}"
    if isinstance(per_group(1.0, scales), list):
        note = "starts at max_lr / div_factor"
    if div_factor != round_lr(ratio):
        bound = "capped" if ratio > div_factor else "raised"
        note += f" (the range spans ×{ratio:.0f}; {bound} to ×{div_factor:g})"
    return SchedulerSpec(
        "OneCycleLR",
        (
            ("max_lr", per_group(rounded_max, scales)),
            ("total_steps", total),
            ("pct_start", round_lr(pct_start)),
            ("div_factor", div_factor),
            ("final_div_factor", FINAL_DIV_FACTOR),
            ("anneal_strategy", "cos"),
            ("cycle_momentum", False),
        ),
        notes={
            "max_lr": scaled_note("the range's max_lr", scales),
            "div_factor": note,
            "cycle_momentum": "True also cycles momentum/beta1 (needs momentum or betas)",
        },
    )


def half_cycle(
    step_size_up: int | None, per_epoch: int | None, total: int | None
) -> tuple[int, str]:
    """CyclicLR's step_size_up and why: as given, else 4 epochs, else 4 cycles, else 2000."""
    if step_size_up is not None:
        return step_size_up, "as given"
    if per_epoch is not None:
        epochs = CYCLIC_EPOCHS_PER_HALF_CYCLE
        return epochs * per_epoch, f"{epochs} epochs of {per_epoch} steps"
    if total is not None:
        half = total // (2 * CYCLIC_CYCLES)
        if half >= 1:
            return half, f"{CYCLIC_CYCLES} full cycles over {total} steps"
        steps = "1 step is" if total == 1 else f"{total} steps are"
        return 1, f"1 step per half-cycle: {steps} too few for {CYCLIC_CYCLES} full cycles"
    return CYCLIC_DEFAULT_STEP_SIZE, "torch's default; pass steps_per_epoch"


def cyclic_spec(
    min_lr: float, max_lr: float, half: int, why_half: str, scales: Sequence[float] = ()
) -> SchedulerSpec:
    return SchedulerSpec(
        "CyclicLR",
        (
            ("base_lr", per_group(round_lr(min_lr), scales)),
            ("max_lr", per_group(round_lr(max_lr), scales)),
            ("step_size_up", half),
            ("mode", "triangular2"),
            ("cycle_momentum", False),
        ),
        notes={
            "base_lr": scaled_note("the range's min_lr", scales),
            "max_lr": scaled_note("the range's max_lr", scales),
            "step_size_up": why_half,
            "cycle_momentum": "True also cycles SGD momentum (needs momentum)",
        },
    )


def plateau_spec(min_lr: float, scales: Sequence[float] = ()) -> SchedulerSpec:
    return SchedulerSpec(
        "ReduceLROnPlateau",
        (
            ("mode", "min"),
            ("factor", PLATEAU_FACTOR),
            ("patience", PLATEAU_PATIENCE),
            ("threshold", PLATEAU_THRESHOLD),
            ("min_lr", per_group(round_lr(min_lr / PLATEAU_FLOOR_DIVISOR), scales)),
        ),
        notes={"min_lr": scaled_note("the range's min_lr / 10", scales)},
    )


def cosine_floor(peak: float, min_lr: float) -> tuple[float, str]:
    """Where a cosine decay ends, and why: the range's min_lr, or peak / 10 above the peak."""
    if min_lr < peak:
        return min_lr, "the range's min_lr"
    return peak / 10, "peak / 10"


def cosine_spec(
    peak: float,
    min_lr: float,
    total: int,
    warmup: int,
    scales: Sequence[float] = (),
    *,
    to_zero: bool = False,
) -> SchedulerSpec:
    """Linear warm-up from about min_lr to ``peak``, then cosine decay to min_lr (``to_zero``:
    to 0, the stated cosine run the trials measured the peak on).

    CosineAnnealingLR takes one ``eta_min`` for every group: with several groups it is the
    lowest group's floor, so no group's floor sits above its own peak.
    """
    floor, floor_note = cosine_floor(peak, min_lr)
    if to_zero:
        floor, floor_note = 0.0, "0: the stated cosine run the trials measured the peak on"
    lowest = min(scales) if scales else 1.0
    if lowest != 1.0:
        floor *= lowest
        floor_note += f" × the lowest lr_scale ({lowest:g}): one eta_min serves every group"
    decay = SchedulerSpec(
        "CosineAnnealingLR",
        (("T_max", total - warmup), ("eta_min", round_lr(floor))),
        variable="decay" if warmup else "scheduler",
        notes={"eta_min": floor_note},
    )
    return after_warmup(decay, peak, min_lr, warmup)


def linear_spec(
    peak: float, min_lr: float, total: int, warmup: int, scales: Sequence[float] = ()
) -> SchedulerSpec:
    """Linear warm-up from about min_lr to ``peak``, then a straight line to 0 at ``total``
    (Hugging Face's default ``linear`` schedule, whose warm-up starts at 0)."""
    decay = SchedulerSpec(
        "LinearLR",
        (("start_factor", 1.0), ("end_factor", 0.0), ("total_iters", total - warmup)),
        variable="decay" if warmup else "scheduler",
        notes={"end_factor": f"reaches 0 at step {total}"},
    )
    return after_warmup(decay, peak, min_lr, warmup)


def after_warmup(decay: SchedulerSpec, peak: float, min_lr: float, warmup: int) -> SchedulerSpec:
    """``decay`` after a LinearLR warm-up of ``warmup`` steps from about min_lr (a SequentialLR)."""
    if warmup == 0:
        return decay
    low, high = WARMUP_START_BOUNDS
    start_factor = round_lr(min(max(min_lr / peak, low), high))
    warm = SchedulerSpec(
        "LinearLR",
        (("start_factor", start_factor), ("end_factor", 1.0), ("total_iters", warmup)),
        variable="warmup",
        notes={"start_factor": f"warm-up starts at {format_lr(peak * start_factor)}"},
    )
    return SchedulerSpec("SequentialLR", (("milestones", [warmup]),), children=(warm, decay))
