"""`lrfind schedule`: a saved run -> a scheduler snippet (python, yaml or json)."""

from __future__ import annotations

from pathlib import Path

from lrfind.analysis.schedule_plan import (
    DEFAULT_WARMUP_FRACTION,
    SCHEDULE_FORMATS,
    ScheduleFormat,
    ScheduleKind,
    plan_schedule,
)
from lrfind.errors import ConfigError
from lrfind.outputs.runs import load_run
from lrfind.outputs.schedule_snippets import render_json, render_python, render_yaml
from lrfind.results import LRRange, RangeTestResult


def schedule(
    result_or_range: RangeTestResult | LRRange | str | Path,
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

    ``result_or_range`` is a result, a bare LRRange, or a saved run's directory. The YAML and
    JSON forms share one layout (Lightning-style ``class_path``/``init_args``, plus
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
        OutputError: ``result_or_range`` is a run directory that cannot be read.
    """
    source = (
        load_run(Path(result_or_range))
        if isinstance(result_or_range, (str, Path))
        else result_or_range
    )
    if fmt not in SCHEDULE_FORMATS:
        raise ConfigError(f"unknown format {fmt!r} (expected one of {', '.join(SCHEDULE_FORMATS)})")
    plan = plan_schedule(
        source,
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
    renderers = {"python": render_python, "yaml": render_yaml, "json": render_json}
    return renderers[fmt](plan)
