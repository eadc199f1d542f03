"""On a CUDA GPU: state restore, bf16/fp16 sweeps, lagged loss reads, pinned-memory loaders.

Skipped where torch sees no CUDA device (every CI machine today); ``benchmarks/gpu_check.sh``
runs them on a GPU machine. Tiny tasks: each test takes seconds on a GPU.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any, Literal

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lrfind import RangeTestResult, range_test
from lrfind.data.loaders import make_loaders
from lrfind.data.types import DataInfo, DataSplit
from tests.fixtures.tasks import Task, classification_task, regression_task

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = "cuda"

#: A sweep from a trainable LR into divergence (the lag test needs it to diverge early).
STEPS = 80
DIVERGING: dict[str, Any] = {
    "start_lr": 1e-3,
    "end_lr": 1e3,
    "steps": STEPS,
    "smoothing": 0.5,
    "refine": "off",
}


def on_cuda(task: Task) -> Task:
    """Move the task's model to the GPU (the optimizer keeps the same Parameter objects)."""
    task.model.to(CUDA)
    return task


def train_a_little(task: Task, steps: int = 3) -> None:
    """Real optimizer steps first, so the optimizer has state (Adam's moments) to restore."""
    for inputs, targets in itertools.islice(task.train_loader, steps):
        task.optimizer.zero_grad()
        task.loss_fn(task.model(inputs.to(CUDA)), targets.to(CUDA)).backward()
        task.optimizer.step()
    task.optimizer.zero_grad(set_to_none=True)


def state_of(task: Task) -> dict[str, Any]:
    """Exact copies of everything a range test must put back."""
    return {
        "model": {k: v.detach().clone() for k, v in task.model.state_dict().items()},
        "optimizer": copy.deepcopy(task.optimizer.state_dict()),
        "cpu_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(),
    }


def assert_same(actual: Any, expected: Any, where: str = "") -> None:
    """Bit-exact comparison of nested dicts/lists of tensors (same dtype and device too)."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), where
        assert (actual.dtype, actual.device) == (expected.dtype, expected.device), where
        assert torch.equal(actual, expected), where
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, list | tuple):
        assert type(actual) is type(expected) and len(actual) == len(expected), where
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{index}]")
    else:
        assert actual == expected, where


def assert_restored(task: Task, before: dict[str, Any]) -> None:
    """The model, optimizer and both RNGs are bit-for-bit what they were before."""
    assert_same(state_of(task), before)
    assert all(p.device.type == CUDA for p in task.model.parameters())
    assert all(p.grad is None for p in task.model.parameters())


def assert_sweep_ran(result: RangeTestResult, min_steps: int = 10) -> None:
    """A sweep of real steps on the GPU, finite up to (not counting) its stopping step."""
    history = result.history
    assert result.complete
    assert result.info.device.startswith(CUDA)
    assert history.steps >= min_steps
    assert all(math.isfinite(loss) for loss in history.losses[:-1])
    assert history.stop_reason in ("completed", "diverged", "non_finite")


def test_range_test_on_cuda_restores_model_optimizer_and_rng_bit_exactly() -> None:
    task = on_cuda(classification_task(optimizer="adam", batchnorm=True, dropout=0.1))
    train_a_little(task)
    before = state_of(task)
    assert before["optimizer"]["state"], "Adam should have moments to restore"
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        val_loader=task.val_loader, start_lr=1e-5, end_lr=10.0, steps=40, device=CUDA,
    )  # fmt: skip
    assert_sweep_ran(result)
    assert result.refinement is not None and result.refinement.trials
    assert_restored(task, before)
    # Everything was put back, RNGs and data order included: the same call, the same sweep.
    again = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        start_lr=1e-5, end_lr=10.0, steps=40, device=CUDA, refine="off",
    )  # fmt: skip
    assert again.history.lrs == result.history.lrs
    assert again.history.losses == pytest.approx(result.history.losses, rel=1e-4)
    assert_restored(task, before)


class _CountingScaler(torch.amp.GradScaler):
    """GradScaler that counts its optimizer steps (proves fp16 went through a scaler)."""

    steps = 0

    def step(self, optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        _CountingScaler.steps += 1
        return super().step(optimizer, *args, **kwargs)


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_mixed_precision_sweeps_run_under_autocast_and_restore_state(
    precision: Literal["bf16", "fp16"], dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.amp, "GradScaler", _CountingScaler)
    _CountingScaler.steps = 0
    task = on_cuda(classification_task(optimizer="adam"))
    train_a_little(task)
    before = state_of(task)
    seen: set[torch.dtype] = set()
    hook = task.model.get_submodule("0").register_forward_hook(
        lambda module, args, out: seen.add(out.dtype)
    )
    try:
        result = range_test(
            task.model, task.optimizer, task.loss_fn, task.train_loader,
            start_lr=1e-5, end_lr=10.0, steps=50, precision=precision, device=CUDA,
            refine="off",
        )  # fmt: skip
    finally:
        hook.remove()
    assert_sweep_ran(result, min_steps=20)
    assert result.info.precision == precision
    assert seen == {dtype}, "the forward pass ran outside autocast"
    assert result.suggestion.lr is not None and math.isfinite(result.suggestion.lr)
    if precision == "fp16":
        assert _CountingScaler.steps >= result.history.steps
    else:
        assert _CountingScaler.steps == 0
    assert_restored(task, before)
    assert all(p.dtype == torch.float32 for p in task.model.parameters())


def _counting_step(task: Task) -> tuple[Any, dict[str, int]]:
    """A ``step_fn`` that counts the forward passes (optimizer steps, without accumulation)."""
    counter = {"calls": 0}

    def step(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        counter["calls"] += 1
        inputs, targets = batch
        return task.loss_fn(model(inputs), targets)

    return step, counter


@pytest.mark.parametrize("check_every", [1, 4, None])
def test_divergence_stops_the_sweep_within_the_documented_lag(check_every: int | None) -> None:
    # engine/loop.py: on CUDA the sweep stops at most 2 * check_every - 1 steps after the first
    # divergent step (default check_every 8 on accelerators); the history is cut there whatever
    # check_every is.
    reference_task = on_cuda(regression_task())
    reference_step, _ = _counting_step(reference_task)
    reference = range_test(
        reference_task.model, reference_task.optimizer, None, reference_task.train_loader,
        step_fn=reference_step, check_every=1, device=CUDA, **DIVERGING,
    ).history  # fmt: skip
    assert reference.stop_reason in ("diverged", "non_finite")
    assert reference.steps < STEPS - 16, "diverge early enough to leave room to lag"

    task = on_cuda(regression_task())
    step, counter = _counting_step(task)
    history = range_test(
        task.model, task.optimizer, None, task.train_loader,
        step_fn=step, check_every=check_every, device=CUDA, **DIVERGING,
    ).history  # fmt: skip
    assert (history.steps, history.stop_reason, history.lrs) == (
        reference.steps,
        reference.stop_reason,
        reference.lrs,
    )
    assert history.losses[:-1] == pytest.approx(reference.losses[:-1], rel=1e-5)
    extra_steps = counter["calls"] - history.steps
    assert 0 <= extra_steps <= 2 * (check_every or 8) - 1


def _pinned(loader: DataLoader[Any], shuffle: bool, seed: int = 0) -> DataLoader[Any]:
    """The same data and order as ``loader``, with batches in page-locked host memory."""
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=True,
    )


def test_pinned_memory_loaders_give_the_same_sweep_as_pageable_ones() -> None:
    plain = on_cuda(classification_task(optimizer="adam"))
    pinned = on_cuda(classification_task(optimizer="adam"))
    pinned.train_loader = _pinned(plain.train_loader, shuffle=True)
    pinned.val_loader = _pinned(plain.val_loader, shuffle=False)
    assert next(iter(_pinned(plain.train_loader, shuffle=True)))[0].is_pinned()
    options: dict[str, Any] = {"start_lr": 1e-5, "end_lr": 10.0, "steps": 40, "device": CUDA}
    results = []
    for task in (plain, pinned):
        before = state_of(task)
        result = range_test(
            task.model, task.optimizer, task.loss_fn, task.train_loader,
            val_loader=task.val_loader, **options,
        )  # fmt: skip
        results.append(result)
        assert_restored(task, before)
    assert_sweep_ran(results[1])
    assert results[1].history.lrs == results[0].history.lrs
    assert results[1].history.losses == pytest.approx(results[0].history.losses, rel=1e-5)
    refined = [r.refinement for r in results]
    assert refined[0] is not None and refined[1] is not None
    assert [t.lr for t in refined[1].trials] == [t.lr for t in refined[0].trials]


def test_lrfinds_own_cuda_loaders_pin_memory_and_sweep_with_workers() -> None:
    task = on_cuda(classification_task(optimizer="adam"))
    train = task.train_loader.dataset
    val = task.val_loader.dataset
    assert isinstance(train, TensorDataset) and isinstance(val, TensorDataset)
    info = DataInfo(
        input_shape=(10,),
        num_outputs=3,
        task="classification",
        vocab_size=None,
        num_train=len(train),
        num_val=len(val),
    )
    loaders = make_loaders(
        DataSplit(train=train, val=val, info=info),
        batch_size=32,
        num_workers=2,
        seed=0,
        device=torch.device(CUDA),
    )
    assert loaders.train.pin_memory and loaders.val is not None and loaders.val.pin_memory
    assert next(iter(loaders.train))[0].is_pinned()
    before = state_of(task)
    result = range_test(
        task.model, task.optimizer, task.loss_fn, loaders.train, val_loader=loaders.val,
        start_lr=1e-5, end_lr=10.0, steps=40, device=CUDA,
    )  # fmt: skip
    assert_sweep_ran(result)
    assert_restored(task, before)
