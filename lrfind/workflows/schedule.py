"""`lrfind schedule`: a saved run -> a scheduler snippet (python, yaml or json)."""

from __future__ import annotations

import os
from pathlib import Path

from lrfind.analysis.schedule_plan import (
    SCHEDULE_FORMATS,
    ScheduleFormat,
    ScheduleKind,
    plan_schedule,
)
from lrfind.errors import ConfigError
from lrfind.outputs.runs import load_run
from lrfind.outputs.schedule_snippets import (
    render_json,
    render_python,
    render_transformers,
    render_yaml,
)
from lrfind.results import LRRange, RangeTestResult


def schedule(
    result_or_range: RangeTestResult | LRRange | str | os.PathLike[str],
    kind: ScheduleKind | None,
    fmt: ScheduleFormat,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    *,
    lr: float | None = None,
    pct_start: float | None = None,
    warmup_steps: int | None = None,
    warmup_fraction: float | None = None,
    step_size_up: int | None = None,
) -> str:
    """Return a ready-to-paste scheduler configuration (``fmt`` "python", "yaml", "json" or
    "transformers").

    ``result_or_range`` is a result, a bare LRRange, or a saved run's directory. The YAML and
    JSON forms share one layout (Lightning-style ``class_path``/``init_args``, plus
    ``interval`` and ``monitor``); ``optimizer.lr`` is the LR to set before building the
    scheduler (null in JSON, absent in YAML, when the scheduler sets it). "transformers" (linear
    and cosine) writes the ``TrainingArguments`` keyword arguments and a ``get_scheduler`` call.

    A result whose run was stated (``train:``) supplies the defaults: ``kind`` None takes its
    schedule, and its steps and warmup stand in for ``total_steps`` and the warm-up options
    when none is given (the suggestion is then that schedule's peak, measured for that run); a
    warmup stated as a fraction of the run is carried as that fraction of another length.

    The schedule's length is ``total_steps`` or ``epochs * steps_per_epoch`` (onecycle, cosine
    and linear need it). ``lr`` overrides the suggestion as the plateau start / cosine and linear
    peak (and is required with a bare ``LRRange``); ``pct_start`` is one-cycle's rising share
    (default 0.3); ``warmup_steps``, or ``warmup_fraction`` of the total, is the warm-up of
    cosine and linear (default 5%) and one-cycle's rise (instead of ``pct_start``); cyclic and
    plateau take none. ``step_size_up`` is the cyclic half-cycle (default: 4 epochs, else 4
    cycles over the run, else 2000). LRs are rounded to three significant digits.

    Raises:
        ConfigError: unknown kind or format, or a bad option combination (every problem listed).
        NoReliableSuggestion: the result has no suggestion or range that this kind needs.
        OutputError: ``result_or_range`` is a run directory that cannot be read.
    """
    source = (
        load_run(Path(result_or_range))
        if isinstance(result_or_range, (str, os.PathLike))
        else result_or_range
    )
    train = source.info.train if isinstance(source, RangeTestResult) else None
    if kind is None:
        if train is None or train.schedule == "constant":
            stated = "" if train is None else " (its stated run is constant-LR)"
            raise ConfigError(f"give --kind: the run names no schedule{stated}")
        kind = train.schedule
    if train is not None:
        if total_steps is None and epochs is None:
            total_steps = train.steps
        no_warmup_given = warmup_steps is None and warmup_fraction is None and pct_start is None
        if no_warmup_given and kind in ("cosine", "linear", "onecycle") and train.warmup_steps:
            # Carried as stated: a fraction stays a fraction of whatever length is asked for.
            if train.warmup < 1:
                warmup_fraction = train.warmup
            else:
                warmup_steps = train.warmup_steps
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
    renderers = {
        "python": render_python,
        "yaml": render_yaml,
        "json": render_json,
        "transformers": render_transformers,
    }
    return renderers[fmt](plan)
