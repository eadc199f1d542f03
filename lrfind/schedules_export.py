"""Ready-to-paste LR scheduler configurations built from a range test's answer.

``build_schedule(result, "onecycle", "python", total_steps=5000)`` returns a Python snippet (it
expects an ``optimizer`` variable in scope) or a YAML block (``class_path`` / ``init_args``, the
layout LightningCLI and most dotted-path config loaders read) for one of four schedules:

- ``onecycle``: OneCycleLR peaking at the range's ``max_lr`` and starting near its ``min_lr``.
- ``cyclic``: CyclicLR (triangular2) between ``min_lr`` and ``max_lr``.
- ``plateau``: ReduceLROnPlateau starting at the suggestion, floored at ``min_lr / 10``.
- ``cosine``: linear warm-up to the *suggestion*, then cosine decay to ``min_lr``.

Why the cosine peak is the suggestion and not ``max_lr``: one-cycle only touches its peak briefly
(and the high LR doubles as regularisation), but a warm-up-then-cosine run stays near its peak for
a large share of training; ``max_lr`` is the edge of stability under a short, fast ramp, so the
steepest-descent suggestion is the safe long-run peak. Pass ``lr=`` to choose another.

No torch at module level: the snippets are text; only running them needs torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from lrfind.errors import ConfigError, NoReliableSuggestion
from lrfind.report import format_lr
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


# --------------------------------------------------------------------------------------------
# Rendering


def _python_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_python_value(item) for item in value) + "]"
    raise TypeError(f"cannot render {value!r}")


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(item) for item in value) + "]"
    if isinstance(value, str):
        return value
    return _python_value(value)


def _with_note(line: str, note: str | None) -> str:
    return f"{line}  # {note}" if note else line


def _python_call(spec: SchedulerSpec, extra: tuple[tuple[str, str], ...] = ()) -> list[str]:
    lines = [f"{spec.variable} = {spec.class_name}(", "    optimizer,"]
    for key, text in extra:
        lines.append(f"    {key}={text},")
    for key, value in spec.args:
        lines.append(_with_note(f"    {key}={_python_value(value)},", spec.notes.get(key)))
    lines.append(")")
    return lines


def _render_python(plan: SchedulePlan) -> str:
    spec = plan.scheduler
    classes = sorted({spec.class_name, *(child.class_name for child in spec.children)})
    step = (
        f"scheduler.step({plan.monitor}) once per epoch, after validation"
        if plan.monitor
        else "scheduler.step() after every optimizer.step()"
    )
    lines = [f"# {line}" for line in plan.header]
    lines += [
        "# Expects an `optimizer` variable in scope (any torch.optim optimizer).",
        f"# Call {step}.",
        f"from {_MODULE} import {', '.join(classes)}",
        "",
    ]
    if plan.optimizer_lr is not None:
        lines += [
            "for group in optimizer.param_groups:",
            _with_note(
                f'    group["lr"] = {_float_text(plan.optimizer_lr)}', plan.optimizer_lr_note
            ),
            "",
        ]
    for child in spec.children:
        lines += [*_python_call(child), ""]
    children = ", ".join(child.variable for child in spec.children)
    lines += _python_call(spec, (("schedulers", f"[{children}]"),) if spec.children else ())
    return "\n".join(lines) + "\n"


def _yaml_scheduler(spec: SchedulerSpec, indent: str) -> list[str]:
    lines = [f"{indent}class_path: {_MODULE}.{spec.class_name}", f"{indent}init_args:"]
    for key, value in spec.args:
        lines.append(_with_note(f"{indent}  {key}: {_yaml_value(value)}", spec.notes.get(key)))
    if spec.children:
        lines.append(f"{indent}  schedulers:")
        for child in spec.children:
            child_lines = _yaml_scheduler(child, indent + "      ")
            child_lines[0] = f"{indent}    - " + child_lines[0].lstrip()
            lines += child_lines
    return lines


def _render_yaml(plan: SchedulePlan) -> str:
    lines = [f"# {line}" for line in plan.header]
    when = "once per epoch, with the monitored metric" if plan.monitor else "after every batch"
    lines.append(f"# interval: when to call scheduler.step() ({when}).")
    if plan.optimizer_lr is not None:
        lines += [
            "optimizer:",
            f"  lr: {_float_text(plan.optimizer_lr)}  # set before building the scheduler: "
            f"{plan.optimizer_lr_note}",
        ]
    lines.append("lr_scheduler:")
    lines += _yaml_scheduler(plan.scheduler, "  ")
    lines.append(f"  interval: {plan.interval}")
    if plan.monitor:
        lines.append(f"  monitor: {plan.monitor}")
    return "\n".join(lines) + "\n"


def _json_scheduler(spec: SchedulerSpec) -> dict[str, Any]:
    init_args: dict[str, Any] = spec.kwargs()
    if spec.children:
        init_args["schedulers"] = [_json_scheduler(child) for child in spec.children]
    return {"class_path": f"{_MODULE}.{spec.class_name}", "init_args": init_args}


def _render_json(plan: SchedulePlan) -> str:
    document: dict[str, Any] = {
        "kind": plan.kind,
        "optimizer": {"lr": plan.optimizer_lr},
        "lr_scheduler": {
            **_json_scheduler(plan.scheduler),
            "interval": plan.interval,
            "monitor": plan.monitor,
        },
    }
    return json.dumps(document, indent=2) + "\n"


def build_schedule(
    result_or_range: RangeTestResult | LRRange,
    kind: ScheduleKind,
    fmt: ScheduleFormat,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    *,
    lr: float | None = None,
    pct_start: float = 0.3,
    warmup_steps: int | None = None,
    warmup_fraction: float = DEFAULT_WARMUP_FRACTION,
    step_size_up: int | None = None,
) -> str:
    """Return a ready-to-paste scheduler configuration (``fmt`` "python", "yaml" or "json").

    The YAML and JSON forms share one layout (Lightning-style ``class_path``/``init_args``, plus
    ``interval`` and ``monitor``); ``optimizer.lr`` is the LR to set before building the
    scheduler (null in JSON, absent in YAML, when the scheduler sets it).

    The schedule's length is ``total_steps`` or ``epochs * steps_per_epoch`` (onecycle and cosine
    need it). ``lr`` overrides the suggestion as the plateau start / cosine peak (and is required
    with a bare ``LRRange``); ``pct_start`` is one-cycle's rising share; ``warmup_steps`` (default:
    ``warmup_fraction`` of the total) is the cosine warm-up; ``step_size_up`` is the cyclic
    half-cycle (default: 4 epochs, else 4 cycles over the run, else 2000). LRs are rounded to
    three significant digits.

    Raises:
        ConfigError: unknown kind or format, or a bad option combination (every problem listed).
        NoReliableSuggestion: the result has no suggestion or range that this kind needs.
    """
    if fmt not in SCHEDULE_FORMATS:
        raise ConfigError(f"unknown format {fmt!r} (expected one of {', '.join(SCHEDULE_FORMATS)})")
    plan = plan_schedule(
        result_or_range,
        kind,
        total_steps,
        epochs,
        steps_per_epoch,
        lr=lr,
        pct_start=pct_start,
        warmup_steps=warmup_steps,
        warmup_fraction=warmup_fraction,
        step_size_up=step_size_up,
    )
    renderers = {"python": _render_python, "yaml": _render_yaml, "json": _render_json}
    return renderers[fmt](plan)
