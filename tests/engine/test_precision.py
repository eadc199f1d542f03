"""Mixed precision (bf16/fp16 autocast, GradScaler), gradient accumulation and clipping, on CPU."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrfind.engine.ladder import lr_ladder
from lrfind.engine.loop import sweep_loop
from lrfind.engine.options import FP16_OVERFLOW_STREAK, SweepOptions
from lrfind.engine.state import restore_state, snapshot_state
from lrfind.engine.steps import make_compute_loss
from lrfind.engine.trials import run_trial
from lrfind.errors import DataError
from tests.fixtures.tasks import Task, classification_task, regression_task

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """Tiny models on a shared CPU: extra intra-op threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sweep(task: Task, compute: Any = None, **options: Any) -> Any:
    return sweep_loop(
        task.model,
        task.optimizer,
        compute or make_compute_loss(task.loss_fn),
        task.train_loader,
        SweepOptions(**options),
        CPU,
    )


class _GradientBomb(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``factor`` (inf: an fp16 overflow)."""

    factor = 1.0

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor) -> torch.Tensor:
        return value.view_as(value)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * _GradientBomb.factor


def _overflowing_from(task: Task, first_bad_call: int) -> Any:
    """A loss whose value stays normal but whose gradients overflow from the given call on."""
    calls = {"count": 0}

    def compute(model: nn.Module, batch: Any) -> torch.Tensor:
        inputs, targets = batch
        _GradientBomb.factor = math.inf if calls["count"] >= first_bad_call else 1.0
        calls["count"] += 1
        return task.loss_fn(_GradientBomb.apply(model(inputs)), targets)

    return compute


def test_fp16_sweep_completes_with_finite_losses() -> None:
    history = _sweep(classification_task(), steps=30, precision="fp16").history
    assert history.steps == 30
    assert history.stop_reason == "completed"
    assert all(math.isfinite(v) for v in history.losses)


def test_fp16_losses_track_fp32_at_small_lrs() -> None:
    options = {"start_lr": 1e-6, "end_lr": 1e-4, "steps": 10}
    fp32 = _sweep(classification_task(), **options).history
    fp16 = _sweep(classification_task(), precision="fp16", **options).history
    for full, half in zip(fp32.losses, fp16.losses, strict=True):
        assert half == pytest.approx(full, rel=2e-3)


def test_fp16_gradient_overflow_streak_stops_the_sweep_and_is_reported() -> None:
    task = classification_task()
    outcome = _sweep(
        task, _overflowing_from(task, 10), steps=50, diverge_factor=1e9, precision="fp16"
    )
    history = outcome.history
    # GradScaler skips every step from 10 on: the loss stays flat because the weights stopped
    # moving. The sweep stops after the streak and cuts the history at its first step.
    assert history.stop_reason == "non_finite"
    assert history.steps == 11
    assert all(math.isfinite(v) for v in history.losses)
    assert any("overflowed" in note and "step 10" in note for note in outcome.notes)


def test_in_fp32_the_same_overflow_shows_as_a_nan_loss() -> None:
    # The same task in fp32: inf gradients make the parameters NaN, so the loss turns NaN.
    task = classification_task()
    outcome = sweep_loop(
        task.model,
        task.optimizer,
        _overflowing_from(task, 10),
        task.train_loader,
        SweepOptions(steps=50, diverge_factor=1e9, precision="fp32"),
        CPU,
    )
    assert outcome.history.stop_reason == "non_finite"
    assert outcome.history.steps == 12


def test_fp16_gradients_that_never_fit_stop_with_a_note() -> None:
    task = classification_task()
    outcome = _sweep(task, _overflowing_from(task, 0), steps=50, precision="fp16")
    assert outcome.history.stop_reason == "non_finite"
    assert any("no step was applied" in note for note in outcome.notes)


def test_fp16_loss_overflow_is_reported_as_such() -> None:
    task = regression_task()
    with torch.no_grad():
        task.model.weight.mul_(1e4)  # outputs ~1e4: their squares overflow fp16's 65504

    def squared_in_fp16(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ((outputs.half() - targets.half()) ** 2).mean()

    # At the initial weights no LR is to blame: an error (exit 2) that names fp16's limit.
    with pytest.raises(DataError, match=r"on the first step.*fp16 overflows above 65504"):
        _sweep(task, make_compute_loss(squared_in_fp16), steps=20, precision="fp16")


def test_fp16_trial_with_overflowing_gradients_is_diverged() -> None:
    task = classification_task()
    snapshot = snapshot_state(task.model, task.optimizer, [task.train_loader])
    trial = run_trial(
        task.model,
        task.optimizer,
        _overflowing_from(task, 3),
        task.train_loader,
        task.val_loader,
        0.01,
        30,
        snapshot,
        SweepOptions(precision="fp16"),
        CPU,
    )
    assert trial.diverged
    assert trial.steps == 3 + FP16_OVERFLOW_STREAK


def test_restore_after_fp16_sweep_is_bit_exact_and_repeatable() -> None:
    task = classification_task(optimizer="adam", batchnorm=True)
    for inputs, targets in list(task.train_loader)[:2]:  # give Adam some state
        task.optimizer.zero_grad()
        task.loss_fn(task.model(inputs), targets).backward()
        task.optimizer.step()
    before_model = copy.deepcopy(task.model.state_dict())
    before_optimizer = copy.deepcopy(task.optimizer.state_dict())
    snapshot = snapshot_state(task.model, task.optimizer, [task.train_loader])
    first = _sweep(task, steps=25, precision="fp16").history
    restore_state(snapshot, task.model, task.optimizer)
    for key, value in task.model.state_dict().items():
        assert torch.equal(value, before_model[key]), key
    after = task.optimizer.state_dict()
    assert after["param_groups"] == before_optimizer["param_groups"]
    for index, moments in before_optimizer["state"].items():
        for name, value in moments.items():
            assert torch.equal(after["state"][index][name], value), (index, name)
    # Each sweep makes its own GradScaler (initial scale 2**16): a rerun is identical.
    second = _sweep(task, steps=25, precision="fp16").history
    assert second == first


def test_bf16_losses_are_finite_and_close_to_fp32() -> None:
    options = {"start_lr": 1e-6, "end_lr": 1e-4, "steps": 10}
    fp32 = _sweep(classification_task(), **options).history
    bf16 = _sweep(classification_task(), precision="bf16", **options).history
    for full, half in zip(fp32.losses, bf16.losses, strict=True):
        assert half == pytest.approx(full, rel=3e-2)


def _linear_task(batch_size: int) -> tuple[nn.Module, torch.optim.Optimizer, DataLoader]:
    generator = torch.Generator().manual_seed(3)
    inputs = torch.randn(96, 4, generator=generator)
    targets = inputs @ torch.randn(4, 1, generator=generator)
    torch.manual_seed(3)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=batch_size, shuffle=False)
    return model, optimizer, loader


def test_accumulation_of_four_matches_a_hand_computation() -> None:
    model, optimizer, loader = _linear_task(batch_size=8)
    reference = copy.deepcopy(model)
    options = SweepOptions(start_lr=0.01, end_lr=0.1, steps=3, accumulation_steps=4, smoothing=0)
    history = sweep_loop(
        model, optimizer, make_compute_loss(nn.MSELoss()), loader, options, CPU
    ).history
    batches = list(loader)
    expected = []
    for step, lr in enumerate(lr_ladder(3, 0.01, 0.1)):
        micro = [
            nn.functional.mse_loss(reference(x), y) for x, y in batches[4 * step : 4 * step + 4]
        ]
        mean = torch.stack(micro).mean()
        expected.append(mean.item())
        reference.zero_grad()
        mean.backward()  # the gradient of the mean of the K micro-batch losses
        with torch.no_grad():
            for param in reference.parameters():
                param -= lr * param.grad
    assert history.losses == pytest.approx(expected, rel=1e-6)


def test_accumulation_of_four_batches_of_8_equals_one_batch_of_32() -> None:
    options = {"start_lr": 1e-3, "end_lr": 1.0, "steps": 8, "smoothing": 0.5}
    model, optimizer, loader = _linear_task(batch_size=8)
    accumulated = sweep_loop(
        model,
        optimizer,
        make_compute_loss(nn.MSELoss()),
        loader,
        SweepOptions(accumulation_steps=4, **options),
        CPU,
    ).history
    model, optimizer, loader = _linear_task(batch_size=32)
    whole = sweep_loop(
        model, optimizer, make_compute_loss(nn.MSELoss()), loader, SweepOptions(**options), CPU
    ).history
    assert accumulated.lrs == whole.lrs
    assert accumulated.losses == pytest.approx(whole.losses, rel=1e-5)


def _update_norms(task: Task, **options: Any) -> tuple[list[float], list[float]]:
    """Run a sweep; return each step's LR and the norm of its parameter update."""
    params = [p for p in task.model.parameters()]
    lrs: list[float] = []
    norms: list[float] = []
    before: list[torch.Tensor] = []

    def pre_hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        before[:] = [p.detach().clone() for p in params]
        lrs.append(optimizer.param_groups[0]["lr"])

    def post_hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        delta = torch.cat([(p.detach() - b).flatten() for p, b in zip(params, before, strict=True)])
        norms.append(float(delta.norm()))

    task.optimizer.register_step_pre_hook(pre_hook)
    task.optimizer.register_step_post_hook(post_hook)
    _sweep(task, **options)
    return lrs, norms


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_grad_clip_bounds_every_update(precision: str) -> None:
    # Plain SGD: an update is lr * gradient, so clipping the norm to c bounds it by lr * c.
    def task() -> Task:
        base = regression_task()
        base.optimizer = torch.optim.SGD(base.model.parameters(), lr=1e-3)
        return base

    options = {"start_lr": 1e-3, "end_lr": 0.1, "steps": 15, "diverge_factor": 1e9}
    lrs, clipped = _update_norms(task(), grad_clip=0.05, precision=precision, **options)
    # fp16 may skip a few steps on overflow (GradScaler then never calls optimizer.step).
    assert len(clipped) == 15 if precision == "fp32" else len(clipped) >= 10
    for lr, norm in zip(lrs, clipped, strict=True):
        assert norm <= lr * 0.05 * (1 + 1e-4)
    lrs, free = _update_norms(task(), precision=precision, **options)
    assert any(norm > lr * 0.05 * 2 for lr, norm in zip(lrs, free, strict=True))
