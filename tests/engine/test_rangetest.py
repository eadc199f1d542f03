"""The Python API: range_test returns a full result and leaves model and optimizer untouched."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lrfind import RangeTestResult, plot_result, range_test
from lrfind.analysis import budget as budget_module
from lrfind.analysis.budget import TrialPlan, plan_trials
from lrfind.analysis.grid import grid_lr
from lrfind.engine import trials as trials_module
from lrfind.engine.trials import TrialEvent
from lrfind.errors import SweepError
from lrfind.results import History
from tests.fixtures.tasks import classification_task


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


def test_refine_trials_fit_the_budget_and_extend_a_window_set_too_high(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = classification_task()
    # A window far above any usable LR: every trial diverges within a few steps, so the stage
    # extends it downwards one grid step at a time, as long as the budget affords a full trial.
    window = [grid_lr(k) for k in (8, 9, 10)]
    monkeypatch.setattr(
        "lrfind.engine.stages.refine.refine_candidates", lambda history, result, count: window
    )
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        val_loader=task.val_loader, steps=30, refine="on",
    )  # fmt: skip
    refinement = result.refinement
    assert refinement is not None
    plan = plan_trials(
        "refine", sweep_steps=result.history.steps, budget=4.0, val_batches=len(task.val_loader)
    )
    assert plan is not None and refinement.steps_per_trial == plan.steps
    lrs = [t.lr for t in refinement.trials]
    assert lrs[:3] == window and len(lrs) > 4
    assert lrs[3:] == [grid_lr(k) for k in range(7, 7 - (len(lrs) - 3), -1)]
    assert refinement.cost_multiple is not None and refinement.cost_multiple <= 4.0


class CountingLoss(torch.nn.Module):
    """Counts training batches (grad on) and validation batches (grad off) it is applied to."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.CrossEntropyLoss()
        self.train_batches = 0
        self.val_batches = 0

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self.train_batches += 1
        else:
            self.val_batches += 1
        return self.inner(outputs, targets)


@pytest.mark.parametrize("budget", [4.0, 2.5])
@pytest.mark.parametrize("end_lr", [10.0, 1e-5])
def test_the_whole_recommendation_stays_within_its_budget(budget: float, end_lr: float) -> None:
    """Counted at the loss function: every training and validation batch of sweep and trials."""
    task = classification_task()
    loss = CountingLoss()
    events: list[object] = []
    result = range_test(
        task.model, task.optimizer, loss, task.train_loader, val_loader=task.val_loader,
        start_lr=1e-7, end_lr=end_lr, steps=40, budget=budget, progress=events.append,
    )  # fmt: skip
    assert result.refinement is not None
    sweep = result.history.steps
    assert (loss.train_batches + loss.val_batches) / sweep <= budget + 1e-9
    assert result.refinement.cost_multiple == pytest.approx(
        (loss.train_batches + loss.val_batches) / sweep
    )
    plans = [e for e in events if isinstance(e, TrialPlan)]
    trial_events = [e for e in events if isinstance(e, TrialEvent)]
    assert len(plans) == 1 and plans[0].multiple <= budget + 1e-9
    assert events.index(plans[0]) == sweep  # after the sweep's steps, before any trial
    assert [e.trial for e in trial_events] == list(result.refinement.trials)
    assert all(e.stage == result.refinement.stage for e in trial_events)


def test_a_budget_of_one_sweep_runs_no_trials_and_a_bad_budget_is_refused() -> None:
    task = classification_task()
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        val_loader=task.val_loader, steps=30, budget=1.0,
    )  # fmt: skip
    assert result.refinement is None and result.suggestion.method == "lrfind"
    with pytest.raises(ValueError, match="budget must be a finite number of sweeps >= 1"):
        range_test(task.model, task.optimizer, task.loss_fn, task.train_loader, budget=0.5)


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


def test_repeats_keep_their_answer_when_the_mean_curve_gives_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Whatever makes the mean curve unreadable (here it is cut to a few points, as when one
    # repeat stops early), an answer every repeat gives must not vanish.
    def unreadable_mean(histories):  # type: ignore[no-untyped-def]
        first = histories[0]
        return History(first.lrs[:5], first.losses[:5], first.smoothed_losses[:5], "completed")

    monkeypatch.setattr("lrfind.analysis.suggest.mean_history", unreadable_mean)
    task = classification_task(dropout=0.1)
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader, steps=40, repeats=3, seed=5
    )
    answers = [lr for lr in result.repeat_suggestions if lr is not None]
    assert len(answers) == 3
    assert result.suggestion.lr == sorted(answers)[1]
    assert result.confidence.level in ("low", "medium")
    assert result.confidence.reasons[0].startswith("the mean of the 3 repeats gave no answer")


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


def test_a_stop_during_the_last_refine_trial_keeps_only_the_finished_trials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lrfind.engine.options import StopFlag

    task = classification_task()
    before = state_of(task)
    stop = StopFlag()
    real_trial = trials_module.run_trial
    calls: list[float] = []

    def interrupted_at_the_last(*args, **kwargs):  # type: ignore[no-untyped-def]
        trial = real_trial(*args, **kwargs)
        calls.append(trial.lr)
        if len(calls) == 3:
            stop.request("SIGINT")  # as if Ctrl-C arrived during the last trial
        return trial

    monkeypatch.setattr(budget_module, "REFINE_EXTRA_TRIALS", 0)
    monkeypatch.setattr(trials_module, "run_trial", interrupted_at_the_last)
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader, val_loader=task.val_loader,
        start_lr=1e-5, end_lr=10.0, steps=40, refine="on", refine_candidates=3, refine_steps=5,
        stop=stop,
    )  # fmt: skip
    assert len(calls) == 3
    # The cut trial's score would not be comparable: the two before it are kept, none chosen.
    assert result.refinement is not None and result.refinement.chosen_lr is None
    assert [trial.lr for trial in result.refinement.trials] == calls[:2]
    assert_same_state(task, before)


@pytest.mark.parametrize("mode", ["eval", "mixed"])
def test_train_and_eval_modes_of_every_submodule_come_back(mode: str) -> None:
    task = classification_task(batchnorm=True, dropout=0.1)
    if mode == "eval":
        task.model.eval()
    else:  # a training model with a frozen BatchNorm, as fine-tuning code often leaves it
        task.model.train()
        task.model[1].eval()
    before = [module.training for module in task.model.modules()]
    range_test(task.model, task.optimizer, task.loss_fn, task.train_loader, steps=20, refine="off")
    assert [module.training for module in task.model.modules()] == before


def noisy_regression() -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader, DataLoader]:
    """A weak signal under heavy label noise: the sweep's per-step losses show no clear descent,
    but trials evaluated on the same validation batches tell the LRs apart."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(2048, 10, generator=generator)
    targets = 0.5 * inputs[:, :1] + 3.0 * torch.randn(2048, 1, generator=generator)
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 1)
    train = DataLoader(
        TensorDataset(inputs[:1024], targets[:1024]),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    val = DataLoader(TensorDataset(inputs[1024:], targets[1024:]), batch_size=64)
    return model, torch.optim.SGD(model.parameters(), lr=0.01), train, val


def test_a_flat_sweep_is_answered_by_a_search_within_the_budget() -> None:
    model, optimizer, train, val = noisy_regression()
    events: list[object] = []
    result = range_test(
        model, optimizer, torch.nn.MSELoss(), train, val_loader=val, steps=40, start_lr=1e-5,
        progress=events.append,
    )  # fmt: skip
    assert result.analysis.methods["lrfind"].lr is None  # the sweep alone has no answer
    refinement = result.refinement
    assert refinement is not None and refinement.stage == "search"
    assert result.suggestion.method == "search"
    assert result.suggestion.lr is not None
    assert result.confidence.level in ("low", "medium")
    assert result.confidence.reasons[0].startswith("the sweep showed no clear descent")
    assert refinement.start_score is not None
    chosen = next(t for t in refinement.trials if t.lr == result.suggestion.lr)
    assert chosen.val_loss is not None and chosen.val_loss < refinement.start_score
    assert refinement.cost_multiple is not None and refinement.cost_multiple <= 4.0
    plans = [e for e in events if isinstance(e, TrialPlan)]
    assert len(plans) == 1 and plans[0].describe().startswith("search planned: 2 trials")
    document = result.to_dict()
    assert document["refine"]["stage"] == "search"
    assert json.loads(json.dumps(document, allow_nan=False)) == document


def test_the_settings_are_the_one_home_of_the_defaults() -> None:
    """lrfind/settings.py declares every default; the YAML schema and range_test's keywords
    take theirs from it."""
    import dataclasses
    import inspect

    from lrfind.config.schema import SUGGEST_DEFAULTS, SWEEP_DEFAULTS
    from lrfind.settings import SuggestOptions, SweepOptions

    sweep, suggest = SweepOptions(), SuggestOptions()
    parameters = inspect.signature(range_test).parameters
    for field in dataclasses.fields(SweepOptions):
        assert parameters[field.name].default == getattr(sweep, field.name), field.name
        assert getattr(SWEEP_DEFAULTS, field.name) == getattr(sweep, field.name), field.name
    for field in dataclasses.fields(SuggestOptions):
        assert parameters[field.name].default == getattr(suggest, field.name), field.name
    for key, value in SUGGEST_DEFAULTS.model_dump().items():
        assert getattr(suggest, key) == value, key
    assert SWEEP_DEFAULTS.repeats == suggest.repeats
