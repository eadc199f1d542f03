"""``find_lr(trainer)``: the range test on a Hugging Face ``Trainer``'s own objects.

The Trainer's model, the optimizer it would create (``create_optimizer``: its param groups and
weight decay), its training and evaluation DataLoaders (collator included), its loss
(``compute_loss``, so a subclass's custom loss is the one swept) and its ``TrainingArguments``
as the description of the real run. Everything is put back afterwards; ``apply=True`` writes
the answer into ``trainer.args.learning_rate``.

    from lrfind.integrations.transformers import find_lr
    result = find_lr(trainer, apply=True)
    trainer.train()

transformers itself is not imported here: the Trainer is duck-typed, so this module loads
without it.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lrfind.errors import ConfigError, DataError, NoReliableSuggestion
from lrfind.format import did_you_mean

if TYPE_CHECKING:
    import torch

    from lrfind.results import RangeTestResult

#: ``lr_scheduler_type`` -> the schedule range_test models the run with (the same shapes:
#: warm-up from 0, then flat, a line to 0, or a half cosine). Others are swept without one.
SCHEDULES = {
    "constant": "constant",
    "constant_with_warmup": "constant",
    "linear": "linear",
    "cosine": "cosine",
    "cosine_with_min_lr": "cosine",
}

#: Accelerator lists that ``Trainer.get_*_dataloader`` appends to through ``prepare``.
_ACCELERATOR_REGISTRIES = ("_dataloaders", "_models", "_optimizers", "_schedulers")


def steps_per_epoch(args: Any, batches: int) -> int:
    """Optimizer steps per epoch, as the Trainer counts them: a last partial accumulation steps."""
    accumulation = max(1, int(args.gradient_accumulation_steps))
    return max(1, math.ceil(batches / accumulation))


def scheduler_name(args: Any) -> str:
    """``args.lr_scheduler_type`` as a string ("linear"; it may be a SchedulerType enum)."""
    return str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))


def run_options(args: Any, batches: int | None) -> dict[str, Any]:
    """``range_test`` keyword arguments for the run ``args`` (TrainingArguments) describe.

    Accumulation, precision, gradient clipping and seed; and the run itself: ``train_steps``
    (``max_steps``, else epochs × optimizer steps per epoch), ``train_warmup`` (the Trainer's
    warm-up in steps) and ``train_schedule`` (from ``lr_scheduler_type``, when range_test models
    that schedule; the others are left out).
    """
    options: dict[str, Any] = {
        "accumulation_steps": max(1, int(args.gradient_accumulation_steps)),
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "grad_clip": float(args.max_grad_norm) if (args.max_grad_norm or 0) > 0 else None,
        "seed": int(args.seed),
    }
    if args.max_steps is not None and args.max_steps > 0:
        total = int(args.max_steps)
    elif batches:
        total = math.ceil(float(args.num_train_epochs) * steps_per_epoch(args, batches))
    else:
        return options
    name = scheduler_name(args)
    schedule = SCHEDULES.get(name)
    options["train_steps"] = total
    if schedule is not None:
        options["train_schedule"] = schedule
        # transformers' plain "constant" schedule ignores warmup_steps.
        warmup = int(args.get_warmup_steps(total)) if name != "constant" else 0
        options["train_warmup"] = min(warmup, total - 1)
    return options


def _registries(accelerator: Any) -> dict[str, int]:
    return {
        name: len(getattr(accelerator, name))
        for name in _ACCELERATOR_REGISTRIES
        if isinstance(getattr(accelerator, name, None), list)
    }


def _trim(accelerator: Any, lengths: dict[str, int]) -> None:
    for name, length in lengths.items():
        del getattr(accelerator, name)[length:]


def _compute_loss(trainer: Any) -> Any:
    def step(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        loss: torch.Tensor = trainer.compute_loss(model, dict(batch))
        return loss

    return step


def _length(dataset: Any) -> int | None:
    """``len(dataset)``, or None for a dataset without one (an IterableDataset)."""
    try:
        return len(dataset)
    except TypeError:
        return None


def _eval_loader(trainer: Any) -> Any:
    """The Trainer's evaluation DataLoader (the first of several named eval sets), or None."""
    eval_dataset = trainer.eval_dataset
    if eval_dataset is None:
        return None
    if isinstance(eval_dataset, dict):
        return trainer.get_eval_dataloader(next(iter(eval_dataset))) if eval_dataset else None
    return trainer.get_eval_dataloader()


def find_lr(trainer: Any, *, apply: bool = False, **range_test_options: Any) -> RangeTestResult:
    """Run the range test on a ``transformers.Trainer``'s own objects and return its result.

    Uses the Trainer's model, its optimizer (``trainer.optimizer`` if it has one, else the one
    ``create_optimizer`` builds, dropped again afterwards so ``train()`` builds its own), its
    train and eval DataLoaders (with an ``eval_dataset`` the refine stage runs; of a dict of
    them, the first), and its ``compute_loss``. ``TrainingArguments`` give accumulation,
    precision, clipping, seed and the run (``train_steps``, ``train_schedule``,
    ``train_warmup``: see ``run_options``), so the suggestion is the peak LR for the schedule
    the user chose. ``range_test_options`` override any of these (``steps=50``,
    ``refine="off"``...); ``train_steps=None`` states no run (the Trainer's schedule and
    warm-up are then left out too).

    The model, the optimizer, the RNGs and the Trainer are left as they were. ``apply=True``
    then sets ``trainer.args.learning_rate`` to the suggestion, and a user-supplied optimizer's
    LRs (and its scheduler's base LRs) to match, keeping the groups' ratios.

    Raises:
        ConfigError: the Trainer has no model or no train_dataset, or an option is not one of
            range_test's.
        DataError: the train_dataset is empty.
        NoReliableSuggestion: ``apply=True`` and the result has no suggestion (nothing applied).
        LrfindError: what ``range_test`` raises.
    """
    from lrfind.engine.library import range_test

    # find_lr passes these from the Trainer itself.
    accepted = set(inspect.signature(range_test).parameters) - {
        "model", "optimizer", "loss_fn", "train_loader", "val_loader", "step_fn",
    }  # fmt: skip
    unknown = sorted(set(range_test_options) - accepted)
    if unknown:
        hints = "".join(did_you_mean(name, accepted) for name in unknown)
        raise ConfigError(f"find_lr: not an option of range_test: {', '.join(unknown)}{hints}")
    if getattr(trainer, "model", None) is None:
        raise ConfigError("find_lr: the Trainer has no model")
    if getattr(trainer, "train_dataset", None) is None:
        raise ConfigError("find_lr: the Trainer has no train_dataset to sweep over")
    if _length(trainer.train_dataset) == 0:
        raise DataError("find_lr: the Trainer's train_dataset is empty: nothing to sweep over")
    had_optimizer = trainer.optimizer is not None
    accelerator = getattr(trainer, "accelerator", None)
    registered = _registries(accelerator)
    try:
        optimizer = trainer.optimizer if had_optimizer else trainer.create_optimizer()
        train_loader = trainer.get_train_dataloader()
        val_loader = _eval_loader(trainer)
        try:
            batches: int | None = len(train_loader)
        except TypeError:
            batches = None
        described = run_options(trainer.args, batches)
        if "train_steps" in range_test_options and range_test_options["train_steps"] is None:
            # No stated run: the Trainer's schedule and warm-up then describe nothing.
            described = {k: v for k, v in described.items() if not k.startswith("train_")}
        # Only what this range_test takes: the description may outrun an older lrfind.
        options = {k: v for k, v in described.items() if k in accepted} | range_test_options
        result = range_test(
            trainer.model,
            optimizer,
            None,
            train_loader,
            val_loader=val_loader,
            step_fn=_compute_loss(trainer),
            **options,
        )
    finally:
        if not had_optimizer:
            trainer.optimizer = None
        _trim(accelerator, registered)
    if options.get("train_steps") is not None and "train_schedule" not in options:
        kind = scheduler_name(trainer.args)
        result = replace(
            result,
            warnings=(
                *result.warnings,
                f"lr_scheduler_type {kind!r} is not one lrfind models: the answer is for a "
                "constant LR over the run's length",
            ),
        )
    if apply:
        apply_lr(trainer, result)
    return result


def apply_lr(trainer: Any, result: RangeTestResult) -> float:
    """Write ``result``'s suggestion into ``trainer`` and return it.

    ``trainer.args.learning_rate`` becomes the suggestion. A user-supplied optimizer (one the
    Trainer did not create) is rescaled so its largest group LR is the suggestion, groups keeping
    their ratios, with ``initial_lr`` and the scheduler's ``base_lrs`` alike: a LambdaLR (every
    transformers schedule) reads its base LRs from construction, not from the optimizer.

    Raises:
        NoReliableSuggestion: the result has no suggestion.
    """
    lr = result.suggestion.lr
    if lr is None or not math.isfinite(lr) or lr <= 0:
        why = result.suggestion.reason or "the range test gave no suggestion"
        raise NoReliableSuggestion(f"find_lr(apply=True): nothing applied: {why}")
    trainer.args.learning_rate = lr
    optimizer = trainer.optimizer
    if optimizer is None:
        return lr
    bases = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
    factor = lr / max(bases)
    for group in optimizer.param_groups:
        group["lr"] *= factor
        if "initial_lr" in group:
            group["initial_lr"] *= factor
    scheduler = getattr(trainer, "lr_scheduler", None)
    if scheduler is not None and isinstance(getattr(scheduler, "base_lrs", None), list):
        scheduler.base_lrs = [base * factor for base in scheduler.base_lrs]
    return lr
