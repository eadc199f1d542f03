"""``find_lr(accelerator, model, optimizer, loss_fn, train_loader)``: the range test on the
objects ``Accelerator.prepare`` returned, with the accelerator's gradient accumulation.

``lrfind.range_test`` takes prepared objects as they are (single process, or every process of
``accelerate launch``, where the losses are all-reduced and every rank returns the same
answer); this adds what the accelerator knows. The prepared model already runs in the
accelerator's mixed precision (accelerate wraps its forward in autocast), so the sweep's own
``precision`` stays fp32 unless given. accelerate itself is not imported: the accelerator is
duck-typed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from lrfind.results import RangeTestResult


def accelerator_options(accelerator: Any) -> dict[str, Any]:
    """``range_test`` keyword arguments from an ``Accelerator``: its gradient accumulation."""
    return {"accumulation_steps": max(1, int(accelerator.gradient_accumulation_steps))}


def find_lr(
    accelerator: Any,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Any,
    train_loader: Iterable[Any],
    **range_test_options: Any,
) -> RangeTestResult:
    """Run ``range_test`` on prepared objects with the accelerator's settings; return the result.

    ``range_test_options`` are ``range_test``'s keyword arguments and override the accelerator's
    (``accumulation_steps``). Everything is restored afterwards, accelerate's dataloader state
    (its epoch counter and the accelerator's record of open dataloaders) included.

    Raises:
        LrfindError: what ``range_test`` raises.
    """
    from lrfind.engine.library import range_test

    options = {**accelerator_options(accelerator), **range_test_options}
    return range_test(model, optimizer, loss_fn, train_loader, **options)
