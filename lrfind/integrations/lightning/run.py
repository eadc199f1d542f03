"""The run ``trainer.fit`` will train, read off a Lightning Trainer and the module's
``configure_optimizers``: its length, accumulation, precision, clipping and LR schedule, as
``range_test``'s ``train_*`` and step options."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from lrfind.errors import ConfigError

#: ``Trainer.precision`` -> range_test's precision (autocast). "-true" precisions run the
#: weights themselves in that type; the module already is, so the sweep adds no autocast.
PRECISIONS = {"bf16-mixed": "bf16", "16-mixed": "fp16"}

#: Lightning's default length when neither max_steps nor max_epochs is given.
DEFAULT_MAX_EPOCHS = 1000

#: How closely a LambdaLR's factors must follow a shape (as a share of its peak) to be read as
#: it, and at how many steps of the run they are compared.
SHAPE_TOLERANCE = 1e-3
SHAPE_SAMPLES = 2000


# --- configure_optimizers --------------------------------------------------------------------


def split_optimizers(configured: Any) -> tuple[Any, Any, str]:
    """The (optimizer, scheduler or None, scheduler interval) ``configure_optimizers`` returned.

    Accepts every form Lightning does with one optimizer: an optimizer, a list or tuple of one,
    a ``([optimizers], [schedulers])`` pair, a dict with ``optimizer`` and optionally
    ``lr_scheduler`` (a scheduler or a dict with ``scheduler`` and ``interval``), or a list of
    one such dict.

    Raises:
        ConfigError: no optimizer, or several (lrfind sweeps one).
    """
    optimizers: list[Any] = []
    schedulers: list[Any] = []
    if isinstance(configured, Mapping):
        optimizers = [configured.get("optimizer")]
        schedulers = [configured["lr_scheduler"]] if configured.get("lr_scheduler") else []
    elif (
        isinstance(configured, (list, tuple))
        and len(configured) == 2
        and all(isinstance(part, (list, tuple)) for part in configured)
    ):
        optimizers, schedulers = list(configured[0]), list(configured[1])
    elif isinstance(configured, (list, tuple)):
        if len(configured) == 1 and isinstance(configured[0], Mapping):
            return split_optimizers(configured[0])
        optimizers = list(configured)
    else:
        optimizers = [configured]
    optimizers = [optimizer for optimizer in optimizers if optimizer is not None]
    if len(optimizers) != 1 or not hasattr(optimizers[0], "param_groups"):
        what = f"{len(optimizers)} optimizers" if len(optimizers) > 1 else "no optimizer"
        raise ConfigError(
            f"find_lr: configure_optimizers returned {what}: lrfind sweeps exactly one optimizer"
        )
    if len(schedulers) > 1:
        raise ConfigError("find_lr: configure_optimizers returned several schedulers; give one")
    scheduler = schedulers[0] if schedulers else None
    interval = "epoch"  # Lightning's default
    if isinstance(scheduler, Mapping):
        interval = str(scheduler.get("interval", interval))
        scheduler = scheduler.get("scheduler")
    return optimizers[0], scheduler, interval


def _lambda_shape(factor: Callable[[int], float], units: int) -> tuple[str, int] | None:
    """The (kind, warm-up units) whose ``lr_at`` a LambdaLR factor follows, or None.

    Read at up to ``SHAPE_SAMPLES`` evenly spread steps (every step of a shorter run), and at
    every step around the highest sample, where the warm-up ends.
    """
    from lrfind.analysis.schedule_shape import lr_at

    if units < 2:
        return None
    stride = max(1, units // SHAPE_SAMPLES)
    steps = sorted({*range(0, units, stride), units - 1})
    values = [float(factor(step)) for step in steps]
    peak = max(values)
    if not math.isfinite(peak) or peak <= 0:
        return None
    # The peak lies within a stride of the highest sample: read every step there.
    top = values.index(peak)
    window = range(steps[max(0, top - 1)], steps[min(len(steps) - 1, top + 1)] + 1)
    nearby = [float(factor(step)) for step in window]
    peak = max(peak, *nearby)
    warmup = next(step for step, value in zip(window, nearby, strict=True) if value >= peak)
    for kind in ("constant", "linear", "cosine"):
        shape = [lr_at(step, units, kind, warmup, peak=peak) for step in steps]
        if all(abs(a - b) <= SHAPE_TOLERANCE * peak for a, b in zip(values, shape, strict=True)):
            return kind, warmup
    return None


def scheduler_schedule(
    scheduler: Any, interval: str, total_steps: int, steps_per_epoch: int
) -> tuple[str, int] | None:
    """The (``train_schedule``, warm-up steps) a scheduler runs, or None when it is not a shape
    lrfind models.

    OneCycleLR is ``onecycle`` (its ``pct_start`` the rise), CosineAnnealingLR ``cosine``, a
    LambdaLR (as ``transformers.get_*_schedule_with_warmup`` and hand-written warm-ups build)
    whatever constant, linear or cosine shape with a linear warm-up its factors follow over the
    run; ``None`` (no scheduler) is ``constant``. ``interval`` is Lightning's: "step" or "epoch".
    """
    if scheduler is None:
        return "constant", 0
    name = type(scheduler).__name__
    if name == "OneCycleLR":
        # Its rise as a share of its own length, carried to the run's length.
        rise = float(scheduler._schedule_phases[0]["end_step"]) + 1.0
        warmup = round(rise / max(1, int(scheduler.total_steps)) * total_steps)
        return "onecycle", min(max(0, warmup), total_steps - 1)
    if name == "CosineAnnealingLR":
        return "cosine", 0
    if name == "LambdaLR" and getattr(scheduler, "lr_lambdas", None):
        per_unit = 1 if interval == "step" else steps_per_epoch
        shape = _lambda_shape(scheduler.lr_lambdas[0], max(1, total_steps // per_unit))
        if shape is not None:
            kind, warmup_units = shape
            return kind, min(warmup_units * per_unit, total_steps - 1)
    return None


# --- the Trainer's run -----------------------------------------------------------------------


def _limited(trainer: Any, batches: int) -> int:
    limit = getattr(trainer, "limit_train_batches", None)
    if isinstance(limit, float) and limit < 1.0:
        return max(1, int(batches * limit))
    if isinstance(limit, int) and not isinstance(limit, bool):
        return max(1, min(batches, limit))
    return batches


def run_length(trainer: Any, batches: int | None) -> int | None:
    """The optimizer steps ``trainer.fit`` will take: ``max_steps``, or ``max_epochs`` × steps per
    epoch (a last partial accumulation steps at an epoch's end), whichever ends first; None when
    the Trainer states no length (Lightning's default of 1000 epochs) or it cannot be counted."""
    max_steps = int(getattr(trainer, "max_steps", -1) or -1)
    max_epochs = getattr(trainer, "max_epochs", None)
    lengths = [max_steps] if max_steps > 0 else []
    if max_epochs is not None and max_epochs > 0 and batches:
        if max_steps <= 0 and max_epochs == DEFAULT_MAX_EPOCHS:
            return None
        accumulation = max(1, int(getattr(trainer, "accumulate_grad_batches", 1)))
        per_epoch = max(1, math.ceil(_limited(trainer, batches) / accumulation))
        lengths.append(int(max_epochs) * per_epoch)
    return min(lengths) if lengths else None


def trainer_options(trainer: Any) -> dict[str, Any]:
    """``range_test`` keyword arguments for how ``trainer`` steps: accumulation, precision and
    gradient clipping (by norm)."""
    clip = getattr(trainer, "gradient_clip_val", None)
    algorithm = str(getattr(trainer, "gradient_clip_algorithm", None) or "norm")
    return {
        "accumulation_steps": max(1, int(getattr(trainer, "accumulate_grad_batches", 1))),
        "precision": PRECISIONS.get(str(getattr(trainer, "precision", "32-true")), "fp32"),
        "grad_clip": float(clip) if clip and algorithm == "norm" else None,
    }


def stated_run(
    trainer: Any, train_loader: Any, scheduler: Any, interval: str
) -> tuple[dict[str, Any], list[str]]:
    """``range_test`` options for the run ``trainer.fit`` will train, and warnings about it.

    How the Trainer steps (``trainer_options``), ``train_steps`` (``run_length``), and the
    scheduler's shape and warm-up (``scheduler_schedule``); a scheduler lrfind does not model is
    left out, and the warning says the answer is for a constant LR.
    """
    options = trainer_options(trainer)
    try:
        batches: int | None = len(train_loader)
    except TypeError:
        batches = None
    total = run_length(trainer, batches)
    if total is None:
        return options, []
    accumulation = options["accumulation_steps"]
    per_epoch = max(1, math.ceil(_limited(trainer, batches or 1) / accumulation))
    schedule = scheduler_schedule(scheduler, interval, total, per_epoch)
    options["train_steps"] = total
    if schedule is None:
        return options, [
            f"{type(scheduler).__name__} is not a schedule lrfind models: the answer is for "
            "a constant LR over the run's length"
        ]
    options["train_schedule"], options["train_warmup"] = schedule
    return options, []
