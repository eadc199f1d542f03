"""LR ladders: exact endpoints and values, and set_lr on param groups."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lrfind.engine.ladder import log_spaced, lr_at, lr_ladder, set_lr


def test_exponential_ladder_is_exact() -> None:
    ladder = lr_ladder(5, 1e-4, 1.0)
    assert ladder == [1e-4 * (1.0 / 1e-4) ** (i / 4) for i in range(5)]
    assert ladder[0] == 1e-4 and ladder[-1] == 1.0
    ratios = [b / a for a, b in itertools.pairwise(ladder)]
    assert all(r == pytest.approx(10.0) for r in ratios)


def test_linear_ladder_is_exact() -> None:
    assert lr_ladder(5, 0.1, 0.5, "linear") == [0.1, 0.2, 0.30000000000000004, 0.4, 0.5]
    assert lr_ladder(3, 0.1, 0.5, "linear")[-1] == 0.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 1, 1e-3, 1.0), "steps must be at least 2"),
        ((2, 2, 1e-3, 1.0), r"step must be in \[0, 2\)"),
        ((0, 5, 0.0, 1.0), "must be positive"),
        ((0, 5, 1.0, 1.0), "must be below end_lr"),
    ],
)
def test_invalid_ladders(args: tuple[int, int, float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lr_at(*args)


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown sweep mode"):
        lr_at(0, 5, 1e-3, 1.0, "cubic")  # type: ignore[arg-type]


def test_log_spaced() -> None:
    values = log_spaced(1e-3, 1e-1, 3)
    assert values[0] == pytest.approx(1e-3) and values[-1] == pytest.approx(1e-1)
    assert values[1] == pytest.approx(1e-2)
    assert log_spaced(0.5, 2.0, 1) == [0.5]
    with pytest.raises(ValueError):
        log_spaced(0.0, 1.0, 3)


def test_set_lr_applies_group_scale_and_tensor_lrs() -> None:
    weight = torch.nn.Parameter(torch.zeros(2))
    bias = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [weight]}, {"params": [bias], "lr_scale": 0.1}], lr=1.0)
    set_lr(optimizer, 0.5)
    assert optimizer.param_groups[0]["lr"] == 0.5
    assert math.isclose(optimizer.param_groups[1]["lr"], 0.05)
    adam = torch.optim.Adam([weight], lr=torch.tensor(0.01))
    set_lr(adam, 0.2)
    assert float(adam.param_groups[0]["lr"]) == pytest.approx(0.2)
