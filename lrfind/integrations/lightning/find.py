"""``find_lr`` and ``LRFindCallback``: the range test on a LightningModule's own objects, run in
this process or in every rank Lightning's launcher starts, and the answer written back where
Lightning's tuner writes it. The package's docstring tells the story; ``run`` and ``steps`` hold
what is read from the Trainer and the module."""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import random
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lrfind.errors import ConfigError, NoReliableSuggestion
from lrfind.format import did_you_mean
from lrfind.integrations.lightning.run import split_optimizers, stated_run
from lrfind.integrations.lightning.steps import ModuleSteps, loaders, sharded, step_module

if TYPE_CHECKING:
    import torch

    from lrfind.results import RangeTestResult


#: Where Lightning's tuner looks for the LR to update, in this order.
LR_ATTRIBUTES = ("lr", "learning_rate")

#: range_test arguments find_lr takes from the module itself.
_OWN_ARGUMENTS = {"model", "optimizer", "loss_fn", "train_loader", "val_loader", "step_fn"}


def lr_holders(module: Any, attribute: str | None, datamodule: Any = None) -> list[tuple[Any, str]]:
    """Where the answer goes, as Lightning's tuner writes it: (holder, name) pairs for the
    module's attribute and ``hparams`` entry (and a datamodule's) named ``attribute``, else the
    first of ``lr`` / ``learning_rate`` found."""
    owners = [module, datamodule]
    if datamodule is None:
        trainer = getattr(module, "_trainer", None)
        owners[1] = getattr(trainer, "datamodule", None) if trainer is not None else None
    for name in (attribute,) if attribute else LR_ATTRIBUTES:
        holders: list[tuple[Any, str]] = []
        for owner in (owner for owner in owners if owner is not None):
            if name in vars(owner) or isinstance(getattr(type(owner), name, None), property):
                holders.append((owner, name))
            hparams = getattr(owner, "hparams", None)
            if isinstance(hparams, Mapping) and name in hparams:
                holders.append((hparams, name))
        if holders:
            return holders
    return []


def _check_options(options: Mapping[str, Any]) -> set[str]:
    from lrfind.engine.library import range_test

    accepted = set(inspect.signature(range_test).parameters) - _OWN_ARGUMENTS
    unknown = sorted(set(options) - accepted)
    if unknown:
        hints = "".join(did_you_mean(name, accepted) for name in unknown)
        raise ConfigError(f"find_lr: not an option of range_test: {', '.join(unknown)}{hints}")
    return accepted


def _distributed(trainer: Any) -> bool:
    return int(getattr(trainer, "world_size", 1) or 1) > 1


def find_lr(
    trainer: Any,
    module: Any,
    datamodule: Any = None,
    *,
    train_dataloaders: Any = None,
    val_dataloaders: Any = None,
    apply: bool = True,
    attribute: str | None = None,
    **range_test_options: Any,
) -> RangeTestResult:
    """Run the range test on a LightningModule's own objects, as ``trainer.fit`` would train it;
    return the result.

    Sweeps the optimizer ``module.configure_optimizers()`` builds with ``training_step``'s loss
    over the training data (``datamodule``, ``train_dataloaders``, or the module's own hooks);
    the trials score ``validation_step`` on the validation data. The Trainer states the run:
    its accumulation, precision and gradient clipping, and ``train_steps`` from ``max_steps`` /
    ``max_epochs``, with the scheduler's shape as ``train_schedule`` / ``train_warmup`` (see
    ``scheduler_schedule``), so the answer is the peak LR of the run ``fit`` will train.
    ``range_test_options`` override any of these (``steps=50``, ``train_steps=None``...).
    ``self.log`` works inside the steps whether or not the module is attached to a Trainer.

    The module (weights, buffers, gradients, modes), the Trainer, the datamodule's RNG draws
    and every RNG are left as they were. ``apply=True`` then writes the suggestion where
    Lightning's tuner does: every one of the module's attribute and ``hparams`` entry (and the
    datamodule's) named ``attribute``, by default the first of ``lr`` / ``learning_rate`` found.
    Under a Trainer with several devices (``strategy="ddp"``) Lightning's launcher starts the
    processes and every rank returns the same result.

    Raises:
        ConfigError: an option is not one of range_test's, ``apply=True`` with nowhere to write,
            manual optimization, no training data, or not one optimizer.
        NoReliableSuggestion: ``apply=True`` and the result has no suggestion (nothing applied).
        LrfindError: what ``range_test`` raises.
    """
    _check_options(range_test_options)
    if apply and not lr_holders(module, attribute, datamodule):
        where = repr(attribute) if attribute else "'lr' or 'learning_rate'"
        raise ConfigError(
            f"find_lr(apply=True): the module has no {where} attribute or hparams entry to "
            "write the answer to: give attribute=NAME, or apply=False"
        )
    if getattr(module, "automatic_optimization", True) is False:
        raise ConfigError(
            "find_lr: manual optimization (automatic_optimization=False) steps its own "
            "optimizers: call lrfind.range_test with a step_fn instead"
        )
    run = (trainer, module, datamodule, train_dataloaders, val_dataloaders, range_test_options)
    if _distributed(trainer):
        import torch.distributed as dist

        if not dist.is_initialized():
            launcher: Any = getattr(trainer.strategy, "launcher", None)
            if type(launcher).__name__ != "_SubprocessScriptLauncher":
                raise ConfigError(
                    "find_lr: several devices need Lightning's script launcher: "
                    "Trainer(strategy='ddp'), not spawn or a notebook"
                )
            result: RangeTestResult = launcher.launch(_in_process, *run, True)
        else:
            result = _in_process(*run, False)
    else:
        result = _in_process(*run, False)
    if apply:
        apply_lr(module, result, attribute, datamodule)
    return result


def _in_process(
    trainer: Any,
    module: Any,
    datamodule: Any,
    train_dataloaders: Any,
    val_dataloaders: Any,
    range_test_options: Mapping[str, Any],
    launched: bool,
) -> RangeTestResult:
    """``find_lr`` in this process (one of the ranks under DDP), RNGs given back afterwards."""
    import numpy as np
    import torch

    from lrfind.engine.library import range_test

    rngs = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    if launched:
        # The process group, as fit's set-up makes it (it may reseed: put back below).
        trainer.strategy.setup_environment()
    # fit attaches the Trainer before configure_optimizers (which may read self.trainer).
    attached = getattr(module, "_trainer", trainer) is None
    if attached:
        module.trainer = trainer
    # fit moves the module to the strategy's device (a GPU): the sweep runs there too.
    device: Any = getattr(trainer.strategy, "root_device", None)
    home = next((parameter.device for parameter in module.parameters()), None)
    moved = isinstance(device, torch.device) and home is not None and device != home
    if moved:
        module.to(device)
    try:
        train, val = loaders(module, datamodule, train_dataloaders, val_dataloaders)
        configured = module.configure_optimizers()
        optimizer, scheduler, interval = split_optimizers(configured)
        steps = ModuleSteps(module)
        model: torch.nn.Module = module
        if _distributed(trainer):
            replicas, rank = int(trainer.world_size), int(trainer.global_rank)
            train, val = sharded(train, replicas, rank), sharded(val, replicas, rank)
            device_ids = [device.index] if moved and device.type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(
                step_module(steps),
                device_ids=device_ids,
                **getattr(trainer.strategy, "_ddp_kwargs", {}),
            )
        options, warnings = stated_run(trainer, train, scheduler, interval)
        options = {**options, **range_test_options}
        if options.get("train_steps") is None:
            options = {
                k: v for k, v in options.items() if k not in ("train_schedule", "train_warmup")
            }
        with steps.logging_recorded():
            result = range_test(
                model, optimizer, None, train, val_loader=val, step_fn=steps, **options
            )
    finally:
        if moved:
            module.to(home)
        if attached:
            module.trainer = None
        torch.set_rng_state(rngs[0])
        np.random.set_state(rngs[1])
        random.setstate(rngs[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
    if warnings and "train_steps" not in range_test_options:
        result = replace(result, warnings=(*result.warnings, *warnings))
    return result


def apply_lr(
    module: Any, result: RangeTestResult, attribute: str | None = None, datamodule: Any = None
) -> float:
    """Write ``result``'s suggestion where Lightning's tuner would (see ``lr_holders``); return it.

    Raises:
        NoReliableSuggestion: the result has no suggestion.
        ConfigError: there is nowhere to write it.
    """
    lr = result.suggestion.lr
    if lr is None or not math.isfinite(lr) or lr <= 0:
        why = result.suggestion.reason or "the range test gave no suggestion"
        raise NoReliableSuggestion(f"find_lr(apply=True): nothing applied: {why}")
    holders = lr_holders(module, attribute, datamodule)
    if not holders:
        raise ConfigError(f"find_lr: nowhere to write the answer ({attribute or 'lr'})")
    for holder, name in holders:
        if isinstance(holder, Mapping):
            holder[name] = lr  # type: ignore[index]
        else:
            setattr(holder, name, lr)
    return lr


class FindLRHook:
    """What ``LRFindCallback`` does, without Lightning's base class (see ``LRFindCallback``)."""

    def __init__(self, *, attribute: str | None = None, **range_test_options: Any) -> None:
        _check_options(range_test_options)
        self.attribute = attribute
        self.range_test_options = range_test_options
        self.result: RangeTestResult | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Run ``find_lr`` on what ``fit`` was given, apply the answer, rebuild the optimizers."""
        datamodule = getattr(trainer, "datamodule", None)
        train = val = None
        if datamodule is None:
            fit_loop = trainer.fit_loop
            train = fit_loop._data_source.dataloader()
            val_source = getattr(fit_loop.epoch_loop.val_loop, "_data_source", None)
            val = val_source.dataloader() if val_source is not None else None
        self.result = find_lr(
            trainer,
            pl_module,
            datamodule,
            train_dataloaders=train,
            val_dataloaders=val,
            apply=True,
            attribute=self.attribute,
            **self.range_test_options,
        )
        # fit built its optimizers before this hook: build them again, with the answer.
        trainer.strategy.setup_optimizers(trainer)


def _lightning() -> Any:
    """The Lightning package the user works with: the one already loaded (``pytorch_lightning``
    or ``lightning.pytorch``), else whichever is installed.

    Loaded by name, not by an import statement: the import contracts keep Lightning out of
    every import lrfind makes, so the ``lightning`` extra stays optional.
    """
    for name in ("pytorch_lightning", "lightning.pytorch"):
        if name in sys.modules:
            return sys.modules[name]
    try:
        return importlib.import_module("pytorch_lightning")
    except ImportError:
        return importlib.import_module("lightning.pytorch")


@functools.cache
def callback_class() -> type:
    """``LRFindCallback``: ``FindLRHook`` on the user's Lightning ``Callback`` (built once)."""
    Callback = _lightning().Callback

    class LRFindCallback(FindLRHook, Callback):  # type: ignore[misc, valid-type]
        """A Lightning callback that runs ``find_lr`` when ``fit`` starts and trains with its
        answer: ``Trainer(callbacks=[LRFindCallback()])``. On ``on_fit_start`` it sweeps the
        module on the data ``fit`` was given, writes the answer back (``attribute`` as in
        ``find_lr``) and rebuilds the Trainer's optimizers from ``configure_optimizers``, so the
        run uses it. Keyword arguments are ``find_lr``'s; the result is kept in ``.result``."""

    LRFindCallback.__module__ = "lrfind.integrations.lightning"
    return LRFindCallback
