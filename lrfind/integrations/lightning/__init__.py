"""``find_lr(trainer, module, datamodule=dm)``: the range test on a Lightning module's own objects.

The module's ``configure_optimizers`` (every form Lightning accepts; its scheduler, when it is a
shape lrfind models, read as the run's schedule), ``training_step``'s loss for the sweep and
``validation_step``'s for the trials, the data (a LightningDataModule, DataLoaders, or the
module's own ``*_dataloader`` hooks), and the Trainer's ``max_steps`` / ``max_epochs``,
``accumulate_grad_batches``, precision and gradient clipping as the run the answer is for.
Everything is put back afterwards; ``apply=True`` writes the answer where Lightning's tuner does
(``hparams.lr`` / ``hparams.learning_rate`` / ``module.lr`` / ``module.learning_rate``, or the
named ``attribute``), so the next ``trainer.fit`` trains with it.

    from lrfind.integrations.lightning import find_lr
    result = find_lr(trainer, module, datamodule=dm)   # module.hparams.lr is now the answer
    trainer.fit(module, datamodule=dm)

Under ``Trainer(strategy="ddp", devices=N)`` the ranks are started by Lightning's own launcher
and the sweep runs data-parallel (every rank returns the same result). Lightning itself is not
imported: the Trainer and module are duck-typed, so this module loads without it.
"""

from __future__ import annotations

from typing import Any

from lrfind.integrations.lightning.find import FindLRHook, apply_lr, find_lr, lr_holders
from lrfind.integrations.lightning.run import scheduler_schedule, split_optimizers, stated_run

__all__ = [
    "FindLRHook",
    "LRFindCallback",
    "apply_lr",
    "find_lr",
    "lr_holders",
    "scheduler_schedule",
    "split_optimizers",
    "stated_run",
]


def __getattr__(name: str) -> Any:
    # LRFindCallback subclasses Lightning's Callback: built on first use, so that importing
    # this package does not import Lightning.
    if name == "LRFindCallback":
        from lrfind.integrations.lightning.find import callback_class

        return callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
