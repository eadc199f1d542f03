"""Issue 21: the library's arguments are validated like the config's, with messages that say why."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from lrfind import range_test
from lrfind.errors import DataError, SweepError
from tests.fixtures.tasks import classification_task


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"refine": "yes"}, "refine must be 'auto', 'on' or 'off', got 'yes'"),
        ({"steps": 30.5}, "steps must be a whole number, got 30.5"),
        ({"repeats": True}, "repeats must be a whole number, got True"),
    ],
)
def test_bad_library_arguments_are_refused(options: dict[str, Any], message: str) -> None:
    task = classification_task()
    with pytest.raises(ValueError, match=message):
        range_test(task.model, task.optimizer, task.loss_fn, task.train_loader, **options)


def test_a_meta_device_model_is_refused() -> None:
    task = classification_task()
    model = torch.nn.Linear(10, 3, device="meta")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(SweepError, match="meta device"):
        range_test(model, optimizer, task.loss_fn, task.train_loader)


def test_an_inputs_key_the_batches_lack_names_their_keys() -> None:
    task = classification_task()
    batches = [{"x": x, "y": y} for x, y in task.train_loader]
    loader = DataLoader(batches, batch_size=None)
    with pytest.raises(DataError, match=r"inputs_key=?: the batches have no key 'inputs'.*x, y"):
        range_test(task.model, task.optimizer, task.loss_fn, loader, inputs_key="inputs")


def test_param_groups_with_different_lrs_are_said_to_lose_their_ratio() -> None:
    task = classification_task()
    first, second = task.model[0], task.model[-1]
    optimizer = torch.optim.SGD(
        [{"params": first.parameters(), "lr": 0.1}, {"params": second.parameters(), "lr": 0.01}]
    )
    result = range_test(task.model, optimizer, task.loss_fn, task.train_loader, steps=20)
    assert any("ratio is ignored" in w and "0.1, 0.01" in w for w in result.warnings)
    assert [group["lr"] for group in optimizer.param_groups] == [0.1, 0.01]  # given back
    scaled = torch.optim.SGD(
        [
            {"params": first.parameters(), "lr": 0.1, "lr_scale": 1.0},
            {"params": second.parameters(), "lr": 0.01, "lr_scale": 0.1},
        ]
    )
    result = range_test(task.model, scaled, task.loss_fn, task.train_loader, steps=20)
    assert any("times its lr_scale (x1, x0.1)" in w for w in result.warnings)


def test_library_forward_returning_none_is_said() -> None:
    task = classification_task()

    class NoReturn(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = task.model

        def forward(self, inputs: torch.Tensor) -> None:
            self.inner(inputs)

    with pytest.raises(SweepError, match="forward returned None"):
        range_test(NoReturn(), task.optimizer, task.loss_fn, task.train_loader, steps=20)
