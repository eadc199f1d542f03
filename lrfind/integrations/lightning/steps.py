"""A LightningModule's steps and data as ``range_test`` takes them: ``training_step`` and
``validation_step`` as one ``step_fn`` (``self.log`` recorded, attached to a Trainer or not),
the loaders ``trainer.fit`` would read, and each rank's share of them under DDP."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lrfind.errors import ConfigError

if TYPE_CHECKING:
    import torch


# --- the module's steps ----------------------------------------------------------------------


def _overrides(module: Any, name: str) -> bool:
    """Whether ``module``'s class defines hook ``name`` itself (not only Lightning's base)."""
    for cls in type(module).__mro__:
        if name in vars(cls):
            return not cls.__module__.startswith(("pytorch_lightning.", "lightning."))
    return False


def _as_loss(value: Any, keys: tuple[str, ...]) -> Any:
    import torch

    if isinstance(value, Mapping):
        value = next((value[key] for key in keys if key in value), None)
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (int, float)):
        return torch.tensor(float(value))
    return None


class ModuleSteps:
    """``step_fn`` for range_test: ``training_step``'s loss in train mode, in eval mode (the
    trials' validation passes) ``validation_step``'s: what it returns, else what it logged as
    ``val_loss`` (or the one logged name with "loss" in it). While it is in use, the module's
    ``self.log`` / ``self.log_dict`` record into ``logged`` instead of a Trainer's loop."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.validates = _overrides(module, "validation_step")
        self.logged: dict[str, Any] = {}
        self.train_index = 0
        self.val_index = 0

    def __call__(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        if model is not self.module:  # the DDP wrapper, or the StepModule inside it
            loss: torch.Tensor = model(batch)
            return loss
        return self.loss(batch)

    def loss(self, batch: Any) -> torch.Tensor:
        """The loss of one batch, by the module's mode."""
        if not self.module.training and self.validates:
            return self._validation_loss(batch)
        output = self.module.training_step(batch, self.train_index)
        self.train_index += 1
        loss = _as_loss(output, ("loss",))
        if loss is None:
            raise ConfigError(
                "find_lr: training_step returned no loss (a tensor or a dict with 'loss'): "
                "lrfind steps the optimizer itself"
            )
        return loss

    def _validation_loss(self, batch: Any) -> torch.Tensor:
        self.logged.clear()
        output = self.module.validation_step(batch, self.val_index)
        self.val_index += 1
        loss = _as_loss(output, ("loss", "val_loss"))
        if loss is None:
            lossy = [name for name in self.logged if "loss" in name]
            name = "val_loss" if "val_loss" in self.logged else lossy[0] if len(lossy) == 1 else ""
            loss = _as_loss(self.logged.get(name), ())
        if loss is None:
            raise ConfigError(
                "find_lr: validation_step returned no loss and logged no single one: return it, "
                "or self.log('val_loss', loss)"
            )
        return loss

    @contextmanager
    def logging_recorded(self) -> Iterator[None]:
        """``self.log`` / ``self.log_dict`` of the module (and its LightningModule children)
        record here: they work whether or not a Trainer's loop is running."""
        logged = self.logged

        def log(name: str, value: Any, *args: Any, **kwargs: Any) -> None:
            logged[name] = value

        def log_dict(dictionary: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
            logged.update(dictionary)

        patched = [m for m in self.module.modules() if callable(getattr(m, "log_dict", None))]
        saved = [{k: vars(m)[k] for k in ("log", "log_dict") if k in vars(m)} for m in patched]
        for m in patched:
            object.__setattr__(m, "log", log)
            object.__setattr__(m, "log_dict", log_dict)
        try:
            yield
        finally:
            for m, own in zip(patched, saved, strict=True):
                for key in ("log", "log_dict"):
                    if key in own:
                        object.__setattr__(m, key, own[key])
                    else:
                        del vars(m)[key]


def step_module(steps: ModuleSteps) -> torch.nn.Module:
    """An nn.Module whose forward is ``steps.loss``: what DDP wraps (its forward syncs grads)."""
    import torch

    class StepModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = steps.module

        def forward(self, batch: Any) -> torch.Tensor:
            return steps.loss(batch)

    return StepModule()


# --- data ------------------------------------------------------------------------------------


def _first(loaders: Any) -> Any:
    if isinstance(loaders, Mapping):
        return next(iter(loaders.values()), None)
    if isinstance(loaders, (list, tuple)):
        return loaders[0] if loaders else None
    return loaders


def loaders(
    module: Any, datamodule: Any, train_dataloaders: Any, val_dataloaders: Any
) -> tuple[Any, Any]:
    """The (training, validation or None) loaders ``trainer.fit`` would use, as Lightning picks
    them: a datamodule (prepared and set up for "fit"), the loaders given, or the module's own
    ``train_dataloader`` / ``val_dataloader``. Of several loaders, the first.

    Raises:
        ConfigError: no training data.
    """
    if datamodule is None and callable(getattr(train_dataloaders, "train_dataloader", None)):
        datamodule, train_dataloaders = train_dataloaders, None  # fit(module, datamodule)
    if datamodule is not None:
        if callable(getattr(datamodule, "prepare_data", None)):
            datamodule.prepare_data()
        if callable(getattr(datamodule, "setup", None)):
            datamodule.setup("fit")
        train = datamodule.train_dataloader()
        val = datamodule.val_dataloader() if _overrides(datamodule, "val_dataloader") else None
    elif train_dataloaders is not None:
        train, val = train_dataloaders, val_dataloaders
    elif _overrides(module, "train_dataloader"):
        train = module.train_dataloader()
        val = val_dataloaders
        if val is None and _overrides(module, "val_dataloader"):
            val = module.val_dataloader()
    else:
        raise ConfigError(
            "find_lr: no training data: give datamodule= or train_dataloaders=, or define "
            "the module's train_dataloader"
        )
    return _first(train), _first(val)


def sharded(loader: Any, replicas: int, rank: int) -> Any:
    """``loader`` reading this rank's share of its dataset (a DistributedSampler), as Lightning's
    ``use_distributed_sampler`` does; loaders with a sampler of their own stay as they are."""
    import torch
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

    if loader is None or not isinstance(loader, DataLoader):
        return loader
    if not isinstance(loader.sampler, (RandomSampler, SequentialSampler)):
        return loader
    sampler: DistributedSampler[Any] = DistributedSampler(
        loader.dataset,
        num_replicas=replicas,
        rank=rank,
        shuffle=isinstance(loader.sampler, RandomSampler),
        seed=int(torch.initial_seed()) % 2**31,
    )
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
    )
