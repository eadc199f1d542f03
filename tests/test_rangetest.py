"""The Python API: range_test returns a full result and leaves model and optimizer untouched."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lrfind import RangeTestResult, plot_result, range_test
from lrfind.analysis import refine
from lrfind.analysis.grid import grid_lr
from lrfind.engine import rangetest
from lrfind.errors import SweepError
from tests.tasks import classification_task


def state_of(task) -> tuple[dict[str, torch.Tensor], dict[str, object]]:  # type: ignore[no-untyped-def]
    model = {k: v.clone() for k, v in task.model.state_dict().items()}
    return model, task.optimizer.state_dict()


def assert_same_state(task, before) -> None:  # type: ignore[no-untyped-def]
    model, optimizer = before
    for key, value in task.model.state_dict().items():
        assert torch.equal(value, model[key]), key
    assert task.optimizer.state_dict()["param_groups"] == optimizer["param_groups"]
    assert task.optimizer.state_dict()["state"].keys() == optimizer["state"].keys()


def test_range_test_with_refine_returns_everything_and_restores_state() -> None:
    task = classification_task(batchnorm=True, dropout=0.1)
    before = state_of(task)
    rng_before = torch.get_rng_state()
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        val_loader=task.val_loader, start_lr=1e-5, end_lr=10.0, steps=60, refine_steps=15,
    )  # fmt: skip
    assert isinstance(result, RangeTestResult)
    assert_same_state(task, before)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert result.refinement is not None and len(result.refinement.trials) >= 2
    lr = result.suggestion.lr
    assert lr is not None and result.lr_range.min_lr is not None and result.lr_range.max_lr
    assert result.lr_range.min_lr < lr <= result.lr_range.max_lr
    assert set(result.analysis.methods) >= {"lrfind", "steepest", "minimum", "valley"}
    document = result.to_dict()
    assert json.loads(json.dumps(document, allow_nan=False)) == document
    assert document["refine"]["metric"] == "val_loss"
    assert document["model"] == "Sequential" and document["optimizer"] == "SGD"
    assert document["batch_size"] == 32


def test_refine_trials_default_to_twice_the_sweep_and_extend_a_window_set_too_high(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = classification_task()
    # A window far above any usable LR: its lowest trial is the choice (or none survives), so the
    # stage extends it downwards one grid step at a time, REFINE_EXTRA_TRIALS times at most.
    window = [grid_lr(k) for k in (8, 9, 10)]
    monkeypatch.setattr(rangetest, "refine_candidates", lambda history, result, count: window)
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        val_loader=task.val_loader, steps=30, refine="on", refine_candidates=3,
    )  # fmt: skip
    assert result.refinement is not None
    assert result.refinement.steps_per_trial == 60
    extra = [grid_lr(k) for k in (7, 6, 5)][: refine.REFINE_EXTRA_TRIALS]
    assert [t.lr for t in result.refinement.trials] == window + extra


def test_plain_sweep_without_validation_skips_refine_by_default() -> None:
    task = classification_task()
    result = range_test(task.model, task.optimizer, task.loss_fn, task.train_loader, steps=40)
    assert result.refinement is None
    assert result.history.steps <= 40
    assert result.info.planned_steps == 40


def test_calling_twice_gives_identical_results() -> None:
    task = classification_task(dropout=0.2)
    first = range_test(task.model, task.optimizer, task.loss_fn, task.train_loader, steps=30)
    second = range_test(task.model, task.optimizer, task.loss_fn, task.train_loader, steps=30)
    assert first.history == second.history


def test_repeats_report_spread_and_mean_curve() -> None:
    task = classification_task(dropout=0.1)
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader, steps=40, repeats=3, seed=5
    )
    assert len(result.repeats) == 3
    assert len(result.repeat_suggestions) == 3
    assert result.history.steps == min(h.steps for h in result.repeats)
    index = 0
    mean = sum(h.losses[index] for h in result.repeats) / 3
    assert math.isclose(result.history.losses[index], mean)
    assert result.to_dict()["repeats"]["count"] == 3


def test_plot_writes_png(tmp_path: Path) -> None:
    task = classification_task()
    result = range_test(task.model, task.optimizer, task.loss_fn, task.train_loader, steps=30)
    path = plot_result(result, tmp_path / "lr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_method_is_a_value_error() -> None:
    task = classification_task()
    with pytest.raises(ValueError, match="unknown suggestion method 'best'"):
        range_test(task.model, task.optimizer, task.loss_fn, task.train_loader, method="best")


def test_frozen_optimizer_is_reported() -> None:
    task = classification_task()

    class IgnoresLr(torch.optim.SGD):
        def step(self, closure=None):  # type: ignore[no-untyped-def, override]
            return None

    optimizer = IgnoresLr(task.model.parameters(), lr=0.1)
    with pytest.raises(SweepError, match="never changed the parameters"):
        range_test(task.model, optimizer, task.loss_fn, task.train_loader, steps=10)


def test_invalid_options_are_value_errors() -> None:
    task = classification_task()
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        range_test(
            task.model, task.optimizer, task.loss_fn, task.train_loader, start_lr=1, end_lr=1
        )


def test_a_stop_during_the_last_refine_trial_leaves_no_refinement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lrfind.engine.options import StopFlag

    task = classification_task()
    before = state_of(task)
    stop = StopFlag()
    real_trial = rangetest.run_trial
    calls: list[float] = []

    def interrupted_at_the_last(*args, **kwargs):  # type: ignore[no-untyped-def]
        trial = real_trial(*args, **kwargs)
        calls.append(trial.lr)
        if len(calls) == 3:
            stop.request("SIGINT")  # as if Ctrl-C arrived during the last trial
        return trial

    monkeypatch.setattr(rangetest, "REFINE_EXTRA_TRIALS", 0)
    monkeypatch.setattr(rangetest, "run_trial", interrupted_at_the_last)
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader, val_loader=task.val_loader,
        start_lr=1e-5, end_lr=10.0, steps=40, refine="on", refine_candidates=3, refine_steps=5,
        stop=stop,
    )  # fmt: skip
    assert len(calls) == 3
    assert result.refinement is None
    assert_same_state(task, before)
