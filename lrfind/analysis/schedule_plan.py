"""Planning a training schedule (onecycle, cyclic, plateau, cosine, linear) from an LR range."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from lrfind.analysis.scheduler_specs import (
    SchedulerSpec,
    cosine_spec,
    cyclic_spec,
    half_cycle,
    linear_spec,
    onecycle_spec,
    per_group,
    plateau_spec,
    round_lr,
    scales_text,
)
from lrfind.errors import ConfigError, NoReliableSuggestion
from lrfind.format import format_lr
from lrfind.results import LRRange, RangeTestResult

ScheduleKind = Literal["onecycle", "cyclic", "plateau", "cosine", "linear"]

ScheduleFormat = Literal["yaml", "python", "json", "transformers"]

SCHEDULE_KINDS: tuple[str, ...] = get_args(ScheduleKind)

SCHEDULE_FORMATS: tuple[str, ...] = get_args(ScheduleFormat)

#: The cosine and linear warm-up when none is given: this share of the run.
DEFAULT_WARMUP_FRACTION = 0.05

DEFAULT_PCT_START = 0.3

#: Kinds that need the run's length (total steps), and kinds that start from one peak LR.
SIZED_KINDS = ("onecycle", "cosine", "linear")
PEAK_KINDS = ("plateau", "cosine", "linear")


@dataclass(frozen=True)
class SchedulePlan:
    """What ``lrfind.schedule`` renders: the scheduler and how to drive it.

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
    #: The peak LR before lr_scale (cosine, linear, plateau start), the warm-up and run length in
    #: optimizer steps, the epochs the length came from, and the range's min_lr: what
    #: ``--format transformers`` needs.
    peak_lr: float | None = None
    warmup_steps: int = 0
    total_steps: int | None = None
    epochs: int | None = None
    range_min_lr: float | None = None


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
    if kind in SIZED_KINDS and total is None and len(problems) == before:
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
    pct_start: float | None = None,
    warmup_steps: int | None = None,
    warmup_fraction: float | None = None,
    step_size_up: int | None = None,
    lr_scales: Sequence[float] | None = None,
) -> SchedulePlan:
    """Return the scheduler ``lrfind.schedule`` renders, as data (see ``lrfind.schedule``).

    ``lr_scales`` are the param groups' LR multipliers, in the optimizer's order (default: those
    the run recorded, ``result.info.lr_scales``). With more than one group, or a scale other
    than 1, every LR becomes one value per group (``max_lr=[...]``, per-group base LRs), so a
    group swept at 0.1x also trains at 0.1x.

    The warm-up is ``warmup_steps`` or ``warmup_fraction`` of the run: for cosine and linear a
    LinearLR rise to the peak (default 5%), for onecycle its rising phase (instead of
    ``pct_start``, default 0.3); cyclic and plateau take none.

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
    if pct_start is not None and not 0.0 < pct_start < 1.0:
        problems.append(f"pct_start must be between 0 and 1, got {pct_start!r}")
    if warmup_fraction is not None and not 0.0 <= warmup_fraction < 1.0:
        problems.append(f"warmup_fraction must be in [0, 1), got {warmup_fraction!r}")
    warmup_given = warmup_steps is not None or warmup_fraction is not None
    if warmup_given and kind in ("cyclic", "plateau"):
        problems.append(_no_warmup(kind))
    if warmup_given and pct_start is not None and kind == "onecycle":
        problems.append("onecycle: give a warm-up or pct_start, not both (the warm-up sets it)")
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
    if isinstance(result_or_range, LRRange) and kind in PEAK_KINDS and lr is None:
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
    if kind in PEAK_KINDS and not _usable(peak):
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
    grouped = isinstance(per_group(1.0, scales), list)
    if grouped:
        header += (
            f"{len(scales)} param groups with lr_scale {scales_text(scales)}: one LR per group, "
            "in the optimizer's order",
        )
    if kind == "onecycle":
        assert total is not None  # _resolve_total reported its absence
        rise = _warmup_length(total, warmup_steps, warmup_fraction, 0.0)
        if pct_start is None:
            pct_start = max(rise, 1) / max(total, 2) if warmup_given else DEFAULT_PCT_START
        spec = onecycle_spec(min_lr, max_lr, total, pct_start, scales)
        rise = max(1, round(pct_start * total))
        return SchedulePlan(
            "onecycle", spec, None, "step", None, header,
            warmup_steps=rise, total_steps=total, epochs=epochs,
        )  # fmt: skip
    if kind == "cyclic":
        half, why_half = half_cycle(step_size_up, per_epoch, total)
        spec = cyclic_spec(min_lr, max_lr, half, why_half, scales)
        return SchedulePlan("cyclic", spec, None, "step", None, header)
    assert peak is not None  # checked above for plateau, cosine and linear
    start_lr = round_lr(peak)
    scaled_start = per_group(start_lr, scales)
    start = tuple(scaled_start) if isinstance(scaled_start, list) else scaled_start
    peak_note = "the range test's suggestion" if lr is None else "lr as given"
    if any(scale != 1.0 for scale in scales):
        peak_note += f" × lr_scale ({scales_text(scales)})"
    if kind == "plateau":
        return SchedulePlan(
            "plateau", plateau_spec(min_lr, scales), start, "epoch", "val_loss", header, peak_note,
            peak_lr=start_lr,
        )  # fmt: skip
    assert total is not None
    warmup = _warmup_length(total, warmup_steps, warmup_fraction, DEFAULT_WARMUP_FRACTION)
    spec = _decay_spec(kind, result_or_range, lr is None, start_lr, min_lr, total, warmup, scales)
    return SchedulePlan(
        kind, spec, start, "step", None, header, peak_note, peak_lr=start_lr,
        range_min_lr=min_lr, warmup_steps=warmup, total_steps=total, epochs=epochs,
    )  # fmt: skip


def _decay_spec(
    kind: str,
    source: RangeTestResult | LRRange,
    measured_peak: bool,
    peak: float,
    min_lr: float,
    total: int,
    warmup: int,
    scales: Sequence[float],
) -> SchedulerSpec:
    """The cosine or linear scheduler; a stated cosine run's measured peak decays to 0, the
    shape the trials ran (``measured_peak``: the peak is the run's answer, not one given)."""
    if kind != "cosine":
        return linear_spec(peak, min_lr, total, warmup, scales)
    train = source.info.train if isinstance(source, RangeTestResult) else None
    stated = measured_peak and train is not None and train.schedule == "cosine"
    return cosine_spec(peak, min_lr, total, warmup, scales, to_zero=stated)


def _no_warmup(kind: str) -> str:
    if kind == "cyclic":
        return (
            "cyclic takes no warm-up: each cycle already rises from base_lr to max_lr "
            "(step_size_up sets how fast); use onecycle, cosine or linear for a warm-up"
        )
    return (
        "plateau takes no warm-up: ReduceLROnPlateau only lowers the LR once per epoch; "
        "use cosine or linear for a warm-up"
    )


def _warmup_length(
    total: int, warmup_steps: int | None, warmup_fraction: float | None, default: float
) -> int:
    """Warm-up steps: as given, else ``warmup_fraction`` (else ``default``) of the run, rounded
    to at least one step when the share is positive, and always below ``total``."""
    if warmup_steps is None:
        fraction = default if warmup_fraction is None else warmup_fraction
        warmup_steps = max(1, round(total * fraction)) if fraction > 0 else 0
    return max(0, min(warmup_steps, total - 1))
