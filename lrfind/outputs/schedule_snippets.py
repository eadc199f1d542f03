"""A planned LR schedule written as Python, YAML or JSON."""

from __future__ import annotations

import json
from typing import Any

from lrfind.analysis.schedule_plan import SCHEDULER_MODULE, SchedulePlan, SchedulerSpec, float_text


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


def render_python(plan: SchedulePlan) -> str:
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
    if isinstance(plan.optimizer_lr, tuple):
        lrs = _python_value(list(plan.optimizer_lr))
        lines += [
            _with_note(
                f"for group, lr in zip(optimizer.param_groups, {lrs}, strict=True):",
                plan.optimizer_lr_note,
            ),
            '    group["lr"] = lr',
            "",
        ]
    elif plan.optimizer_lr is not None:
        lines += [
            "for group in optimizer.param_groups:",
            _with_note(
                f'    group["lr"] = {float_text(plan.optimizer_lr)}', plan.optimizer_lr_note
            ),
            "",
        ]
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
