"""What the GPU check runs: its problem sizes, models, synthetic data and the timed loops.

The models are a small MLP (steps bound by kernel launches) and a mid-size CNN (six 3x3
conv-BN-ReLU layers, about 4.6M parameters at full size); the data are 10-class synthetic
samples (a class prototype plus unit noise), pre-built on the device. The loops are the four
contenders of the overhead measurement (see ``gpu_check.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import overhead
import torch
from torch import nn

START_LR, END_LR = 1e-5, 1e-1  # the overhead sweeps: trainable, so every contender runs every step

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Sizes:
    """Problem sizes: the full check for a GPU, or a quick one that runs on a CPU."""

    steps: int
    repeats: int
    warmup: int
    cost_repeats: int
    mlp_width: int
    mlp_batch: int
    cnn_width: int
    cnn_batch: int
    image: int
    train_batches: int
    val_batches: int


FULL = Sizes(100, 15, 2, 2, 512, 128, 128, 128, 32, 50, 10)
QUICK = Sizes(30, 3, 1, 1, 32, 16, 4, 8, 16, 8, 2)


@dataclass
class Task(overhead.Task):
    """overhead.py's task (model, optimizer, loss, batches, reset) plus validation batches."""

    val_batches: list[Batch]

    @property
    def parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)


def _task(name: str, model: nn.Module, batches: list[Batch], val: list[Batch]) -> Task:
    optimizer = torch.optim.SGD(model.parameters(), lr=START_LR, momentum=0.9)
    return Task(
        name=name,
        model=model,
        optimizer=optimizer,
        loss_fn=nn.CrossEntropyLoss(),
        batches=batches,
        val_batches=val,
        initial_model=copy.deepcopy(model.state_dict()),
        initial_optimizer=copy.deepcopy(optimizer.state_dict()),
    )


def _prototype_batches(
    shape: tuple[int, ...], batch: int, count: int, device: torch.device, seed: int
) -> list[Batch]:
    """``count`` batches of 10-class data: a class prototype plus unit noise per sample."""
    generator = torch.Generator().manual_seed(0)
    prototypes = torch.randn(10, *shape, generator=generator)
    generator.manual_seed(seed)
    out = []
    for _ in range(count):
        labels = torch.randint(0, 10, (batch,), generator=generator)
        inputs = prototypes[labels] + torch.randn(batch, *shape, generator=generator)
        out.append((inputs.to(device), labels.to(device)))
    return out


def small_mlp(sizes: Sizes, device: torch.device) -> Task:
    """64-W-W/2-10 MLP: steps of well under a millisecond on a GPU, bound by kernel launches."""
    torch.manual_seed(0)
    width = sizes.mlp_width
    model = nn.Sequential(
        nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width // 2), nn.ReLU(),
        nn.Linear(width // 2, 10),
    ).to(device)  # fmt: skip
    batches = _prototype_batches((64,), sizes.mlp_batch, sizes.train_batches, device, 1)
    return _task(f"mlp (batch {sizes.mlp_batch})", model, batches, [])


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def mid_cnn(sizes: Sizes, device: torch.device) -> Task:
    """Six 3x3 conv-BN-ReLU layers (W, W, 2W, 2W, 4W, 4W channels), two max-pools, global pool."""
    torch.manual_seed(0)
    w = sizes.cnn_width
    model = nn.Sequential(
        *_conv(3, w), *_conv(w, w), nn.MaxPool2d(2),
        *_conv(w, 2 * w), *_conv(2 * w, 2 * w), nn.MaxPool2d(2),
        *_conv(2 * w, 4 * w), *_conv(4 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, 10),
    ).to(device)  # fmt: skip
    shape = (3, sizes.image, sizes.image)
    batches = _prototype_batches(shape, sizes.cnn_batch, sizes.train_batches, device, 1)
    val = _prototype_batches(shape, sizes.cnn_batch, sizes.val_batches, device, 2)
    task = _task("cnn", model, batches, val)
    count = task.parameters
    shown = f"{count / 1e6:.1f}M" if count >= 1e6 else f"{count / 1e3:.1f}k"
    task.name = f"cnn {shown} params (batch {sizes.cnn_batch}, {sizes.image}x{sizes.image})"
    return task


def _bare(task: Task, steps: int, read_each_step: bool) -> list[float]:
    """The loop a careful user writes by hand; ``read_each_step``: ``loss.item()`` every step."""
    from lrfind.engine.ladder import lr_ladder

    model, optimizer, loss_fn = task.model, task.optimizer, task.loss_fn
    read: list[float] = []
    kept: list[torch.Tensor] = []
    model.train()
    for step, lr in enumerate(lr_ladder(steps, START_LR, END_LR, "exp")):
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, targets = task.batches[step % len(task.batches)]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        if read_each_step:
            read.append(loss.item())
        else:
            kept.append(loss.detach())
    return read if read_each_step else torch.stack(kept).tolist()


def run_bare(task: Task, steps: int, device: torch.device) -> list[float]:
    """The hand-written loop, reading each loss as it goes (one host sync per step)."""
    return _bare(task, steps, read_each_step=True)


def run_bare_nosync(task: Task, steps: int, device: torch.device) -> list[float]:
    """The same loop with no host read until the end (it could not stop on divergence)."""
    return _bare(task, steps, read_each_step=False)


def run_engine(task: Task, steps: int, device: torch.device) -> list[float]:
    """lrfind's sweep loop alone (no snapshot, restore or analysis)."""
    from lrfind.engine.loop import sweep_loop
    from lrfind.engine.options import SweepOptions
    from lrfind.engine.steps import make_compute_loss

    options = SweepOptions(
        start_lr=START_LR, end_lr=END_LR, steps=steps, smoothing=0.98, diverge_factor=1e9
    )
    outcome = sweep_loop(
        task.model, task.optimizer, make_compute_loss(task.loss_fn), task.batches, options, device
    )
    return list(outcome.history.losses)


def run_range_test(task: Task, steps: int, device: torch.device) -> list[float]:
    """The public API, state snapshot and restore included (refine off)."""
    from lrfind import range_test

    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.batches, start_lr=START_LR,
        end_lr=END_LR, steps=steps, diverge_factor=1e9, refine="off", device=device,
    )  # fmt: skip
    return list(result.history.losses)


Contender = Callable[[Task, int, torch.device], list[float]]
CONTENDERS: dict[str, Contender] = {
    "bare": run_bare,
    "bare-nosync": run_bare_nosync,
    "engine": run_engine,
    "range_test": run_range_test,
}
