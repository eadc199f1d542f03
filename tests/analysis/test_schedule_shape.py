"""``lr_at``: the LR of each training step, checked against the schedulers users train with."""

from __future__ import annotations

import pytest
import torch

from lrfind.analysis.schedule_shape import TRAIN_SCHEDULES, lr_at
from tests.fixtures.schedules import lr_trajectory

PEAK = 0.01


def sgd() -> torch.optim.Optimizer:
    return torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=PEAK)


@pytest.mark.parametrize("warmup", [0, 30])
def test_onecycle_matches_torch(warmup: int) -> None:
    total = 100
    pct = warmup / total if warmup else 0.3
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        sgd(), max_lr=PEAK, total_steps=total, pct_start=pct, cycle_momentum=False
    )
    expected = lr_trajectory(scheduler, scheduler.optimizer, total)
    assert [lr_at(s, total, "onecycle", warmup, peak=PEAK) for s in range(total)] == pytest.approx(
        expected, rel=1e-9
    )


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
def test_hugging_face_shapes_match_get_scheduler(kind: str) -> None:
    transformers = pytest.importorskip("transformers")
    total, warmup = 50, 6
    name = {"constant": "constant_with_warmup"}.get(kind, kind)
    scheduler = transformers.get_scheduler(
        name, sgd(), num_warmup_steps=warmup, num_training_steps=total
    )
    expected = lr_trajectory(scheduler, scheduler.optimizer, total)
    got = [lr_at(s, total, kind, warmup, peak=PEAK) for s in range(total)]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_shapes_by_hand() -> None:
    assert lr_at(0, 10, "linear", 2) == 0.0
    assert lr_at(1, 10, "linear", 2) == 0.5
    assert lr_at(2, 10, "linear", 2) == 1.0
    assert lr_at(6, 10, "linear", 2) == 0.5
    assert lr_at(10, 10, "linear", 2) == 0.0
    assert lr_at(50, 10, "linear", 2) == 0.0  # past the end: the final LR
    assert lr_at(6, 10, "cosine", 2) == pytest.approx(0.5)
    assert lr_at(9, 10, "constant", 0, peak=3.0) == 3.0
    assert lr_at(0, 1, "linear") == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 10, "step"), "unknown schedule 'step' \\(expected one of constant, onecycle, cosine"),
        ((0, 0, "linear"), "total must be at least 1 step, got 0"),
        ((0, 10, "linear", 10), "warmup must be in \\[0, total\\) steps, got 10 of 10"),
        ((-1, 10, "linear"), "step must be non-negative, got -1"),
    ],
)
def test_bad_arguments(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lr_at(*args)  # type: ignore[arg-type]


def test_every_schedule_peaks_at_peak() -> None:
    for kind in TRAIN_SCHEDULES:
        assert max(lr_at(s, 40, kind, 8, peak=PEAK) for s in range(40)) == pytest.approx(PEAK)
