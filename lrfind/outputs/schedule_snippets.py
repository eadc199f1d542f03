"""A planned LR schedule written as Python, YAML, JSON, or in Hugging Face transformers' terms."""

from __future__ import annotations

import json
from typing import Any

from lrfind.analysis.schedule_plan import SchedulePlan
from lrfind.analysis.scheduler_specs import (
    SCHEDULER_MODULE,
    SchedulerSpec,
    cosine_floor,
    float_text,
    round_lr,
)
from lrfind.errors import ConfigError

#: lrfind's kinds that transformers' ``get_scheduler`` has, by its name for them.
TRANSFORMERS_SCHEDULERS = {"linear": "linear", "cosine": "cosine_with_min_lr"}


def _python_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_text(value)
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


def _set_lrs(plan: SchedulePlan) -> list[str]:
    """Lines that set each param group's LR before the scheduler is built (none if not needed)."""
    if isinstance(plan.optimizer_lr, tuple):
        lrs = _python_value(list(plan.optimizer_lr))
        return [
            _with_note(
                f"for group, lr in zip(optimizer.param_groups, {lrs}, strict=True):",
                plan.optimizer_lr_note,
            ),
            '    group["lr"] = lr',
            "",
        ]
    if plan.optimizer_lr is not None:
        return [
            "for group in optimizer.param_groups:",
            _with_note(
                f'    group["lr"] = {float_text(plan.optimizer_lr)}', plan.optimizer_lr_note
            ),
            "",
        ]
    return []


def render_python(plan: SchedulePlan) -> str:
    """The plan as Python that builds the scheduler for an ``optimizer`` in scope."""
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
        f"from {SCHEDULER_MODULE} import {', '.join(classes)}",
        "",
    ]
    lines += _set_lrs(plan)
    for child in spec.children:
        lines += [*_python_call(child), ""]
    children = ", ".join(child.variable for child in spec.children)
    lines += _python_call(spec, (("schedulers", f"[{children}]"),) if spec.children else ())
    return "\n".join(lines) + "\n"


def _yaml_scheduler(spec: SchedulerSpec, indent: str) -> list[str]:
    lines = [f"{indent}class_path: {SCHEDULER_MODULE}.{spec.class_name}", f"{indent}init_args:"]
    for key, value in spec.args:
        lines.append(_with_note(f"{indent}  {key}: {_yaml_value(value)}", spec.notes.get(key)))
    if spec.children:
        lines.append(f"{indent}  schedulers:")
        for child in spec.children:
            child_lines = _yaml_scheduler(child, indent + "      ")
            child_lines[0] = f"{indent}    - " + child_lines[0].lstrip()
            lines += child_lines
    return lines


def render_yaml(plan: SchedulePlan) -> str:
    """The plan as YAML: Lightning-style ``class_path``/``init_args``, ``interval``, ``monitor``."""
    lines = [f"# {line}" for line in plan.header]
    when = "once per epoch, with the monitored metric" if plan.monitor else "after every batch"
    lines.append(f"# interval: when to call scheduler.step() ({when}).")
    if plan.optimizer_lr is not None:
        lr = plan.optimizer_lr
        per_group = isinstance(lr, tuple)
        value = _yaml_value(list(lr) if isinstance(lr, tuple) else lr)
        where = "each param group's, in order, " if per_group else ""
        lines += [
            "optimizer:",
            f"  lr: {value}  # set {where}before building the scheduler: {plan.optimizer_lr_note}",
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
    return {"class_path": f"{SCHEDULER_MODULE}.{spec.class_name}", "init_args": init_args}


def render_json(plan: SchedulePlan) -> str:
    """The plan as JSON, in the YAML form's layout (plus ``kind``)."""
    document: dict[str, Any] = {
        "kind": plan.kind,
        "optimizer": {
            "lr": list(plan.optimizer_lr)
            if isinstance(plan.optimizer_lr, tuple)
            else plan.optimizer_lr
        },
        "lr_scheduler": {
            **_json_scheduler(plan.scheduler),
            "interval": plan.interval,
            "monitor": plan.monitor,
        },
    }
    return json.dumps(document, indent=2) + "\n"


def render_transformers(plan: SchedulePlan) -> str:
    """The plan in Hugging Face transformers' terms: ``TrainingArguments`` keyword arguments
    (``learning_rate``, ``lr_scheduler_type``, ``warmup_steps``, ``max_steps`` or
    ``num_train_epochs``) and the same schedule from ``get_scheduler`` for a hand-written loop.

    Raises:
        ConfigError: the kind has no transformers scheduler (onecycle, cyclic, plateau).
    """
    name = TRANSFORMERS_SCHEDULERS.get(plan.kind)
    if name is None or plan.peak_lr is None or plan.total_steps is None:
        raise ConfigError(
            f"--format transformers covers {' and '.join(TRANSFORMERS_SCHEDULERS)} (the schedules "
            f"transformers' get_scheduler has); {plan.kind} has none there: use --format python"
        )
    total, warmup = plan.total_steps, plan.warmup_steps
    extra: dict[str, Any] = {}
    if plan.kind == "cosine":
        # A rate of each group's own peak: transformers reads an absolute min_lr against the
        # optimizer's construction-time LR, not the LR set here.
        floor, _ = cosine_floor(plan.peak_lr, plan.range_min_lr or plan.peak_lr)
        extra = {"min_lr_rate": round_lr(floor / plan.peak_lr)}
    extra_text = "{" + ", ".join(f'"{k}": {_python_value(v)}' for k, v in extra.items()) + "}"
    share = f"{warmup / total:.0%} of {total} steps" if total else ""
    length = (
        f"    num_train_epochs={plan.epochs},  # {total} optimizer steps"
        if plan.epochs is not None
        else f"    max_steps={total},"
    )
    lines = [f"# {line}" for line in plan.header]
    lines += [
        "# For a Trainer: TrainingArguments(output_dir=..., **training_args).",
        "# For your own loop: `scheduler` below needs an `optimizer` in scope; call",
        "# scheduler.step() after every optimizer.step().",
        "from transformers import get_scheduler",
        "",
        "training_args = dict(",
        _with_note(f"    learning_rate={float_text(plan.peak_lr)},", "the peak LR"),
        f'    lr_scheduler_type="{name}",',
    ]
    if extra:
        lines.append(f"    lr_scheduler_kwargs={extra_text},")
    lines += [
        _with_note(f"    warmup_steps={warmup},", share),
        length,
        ")",
        "",
        *_set_lrs(plan),
        "scheduler = get_scheduler(",
        f'    "{name}",',
        "    optimizer,",
        f"    num_warmup_steps={warmup},",
        f"    num_training_steps={total},",
    ]
    if extra:
        lines.append(f"    scheduler_specific_kwargs={extra_text},")
    lines.append(")")
    return "\n".join(lines) + "\n"
