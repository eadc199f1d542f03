"""What ``range_test`` gives back: buffers, gradients, and the memory and disk snapshots."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

from lrfind import range_test
from lrfind.assembly.sharding import shard_units
from lrfind.engine.checkpoint import SNAPSHOT_PREFIX
from lrfind.engine.state import restore_state, snapshot_state
from lrfind.errors import ComponentError
from tests.fixtures.tasks import classification_task


class Counting(nn.Module):
    """An MLP that counts its forward calls in a non-persistent buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long), persistent=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        output: torch.Tensor = self.body(inputs)
        return output


def _sweep(model: nn.Module, optimizer: torch.optim.Optimizer, **options: object) -> None:
    task = classification_task()
    range_test(model, optimizer, nn.CrossEntropyLoss(), task.train_loader, steps=12, **options)  # type: ignore[arg-type]


def test_range_test_puts_back_a_non_persistent_buffer() -> None:
    torch.manual_seed(0)
    model = Counting()
    model.calls.fill_(5)
    buffer = model.calls
    _sweep(model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert model.calls is buffer and model.calls.item() == 5


def test_range_test_gives_back_the_gradients_the_user_had_accumulated() -> None:
    torch.manual_seed(0)
    model = Counting()
    task = classification_task()
    inputs, labels = next(iter(task.train_loader))
    nn.functional.cross_entropy(model(inputs), labels).backward()  # mid-accumulation
    pending = [param.grad.clone() for param in model.parameters()]  # type: ignore[union-attr]
    _sweep(model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert all(param.grad is not None for param in model.parameters())
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), pending, strict=True))  # type: ignore[arg-type]


def test_parameters_outside_the_optimizer_are_left_without_the_sweeps_gradients() -> None:
    torch.manual_seed(0)
    model = Counting()
    head = model.body[2]
    _sweep(model, torch.optim.SGD(model.body[0].parameters(), lr=0.1))
    assert head.weight.grad is None and head.bias.grad is None


def _adam_with_state() -> tuple[nn.Module, torch.optim.Optimizer]:
    task = classification_task(optimizer="adam")
    inputs, labels = next(iter(task.train_loader))
    nn.functional.cross_entropy(task.model(inputs), labels).backward()
    task.optimizer.step()
    task.optimizer.zero_grad()
    return task.model, task.optimizer


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    optimizer.param_groups[0]["lr"] = 0.5
    for inputs, labels in list(classification_task().train_loader)[:steps]:
        nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
        optimizer.zero_grad()


def test_a_disk_snapshot_restores_exactly_and_its_folder_is_removed(tmp_path: Path) -> None:
    model, optimizer = _adam_with_state()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = [optimizer.state[p]["exp_avg"].clone() for p in model.parameters()]
    snapshot = snapshot_state(model, optimizer, store="disk", folder=tmp_path)
    assert snapshot.store == "disk"
    [folder] = list(tmp_path.iterdir())
    assert folder.name.startswith(SNAPSHOT_PREFIX)
    for _ in range(2):  # restored twice: the snapshot itself stays untouched
        _train(model, optimizer, 3)
        restore_state(snapshot, model, optimizer)
        assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
        after = [optimizer.state[p]["exp_avg"] for p in model.parameters()]
        assert all(torch.equal(a, b) for a, b in zip(moments, after, strict=True))
        assert optimizer.param_groups[0]["lr"] == 1e-3
    snapshot.close()
    assert not folder.exists()


def test_a_fresh_optimizer_comes_back_fresh_from_a_disk_snapshot(tmp_path: Path) -> None:
    task = classification_task(optimizer="adam")
    _sweep(task.model, task.optimizer, snapshot="disk", snapshot_dir=tmp_path)
    assert not task.optimizer.state  # no state, as handed over (not a zero step's)
    assert list(tmp_path.iterdir()) == []


def test_the_disk_snapshot_is_removed_after_an_error(tmp_path: Path) -> None:
    task = classification_task()
    calls = 0

    def failing_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise RuntimeError("the loss broke")
        return nn.functional.cross_entropy(outputs, targets)

    with pytest.raises(Exception, match="the loss broke"):
        range_test(
            task.model,
            task.optimizer,
            failing_loss,
            task.train_loader,
            steps=12,
            snapshot="disk",
            snapshot_dir=tmp_path,
        )
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_snapshot_store_is_refused() -> None:
    task = classification_task()
    with pytest.raises(ValueError, match="snapshot must be 'memory' or 'disk'"):
        range_test(
            task.model, task.optimizer, nn.CrossEntropyLoss(), task.train_loader, snapshot="gpu"
        )  # type: ignore[arg-type]


def test_fsdp_units_are_the_built_in_blocks_or_the_named_classes() -> None:
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    model = nn.Sequential(nn.Embedding(10, 16), nn.TransformerEncoder(layer, 2), nn.Linear(16, 3))
    units = shard_units(model, [])
    # The encoder layers, not the Linears inside them.
    assert [type(unit).__name__ for unit in units] == [
        "Embedding",
        "TransformerEncoderLayer",
        "TransformerEncoderLayer",
        "Linear",
    ]
    assert len(shard_units(model, ["TransformerEncoderLayer"])) == 2
    with pytest.raises(ComponentError, match="no module of class 'GPT2Block' in the model"):
        shard_units(model, ["GPT2Block"])


def test_sigterm_during_a_library_sweep_removes_the_disk_snapshot(tmp_path: Path) -> None:
    task = classification_task()

    def progress(event: object) -> None:
        if getattr(event, "step", None) == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit) as raised:
        range_test(
            task.model,
            task.optimizer,
            nn.CrossEntropyLoss(),
            task.train_loader,
            steps=12,
            snapshot="disk",
            snapshot_dir=tmp_path,
            progress=progress,
        )
    assert raised.value.code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
