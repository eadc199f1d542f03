"""The range-test loop: ladder, stop rules, accumulation, chunked loss reads, state restore."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrfind.engine.ladder import lr_ladder
from lrfind.engine.loop import sweep_loop
from lrfind.engine.options import StepEvent, StopFlag, SweepOptions
from lrfind.engine.state import parameters_changed, restore_state, snapshot_state
from lrfind.engine.steps import make_compute_loss
from lrfind.engine.trials import run_trial
from lrfind.errors import DataError, SweepError
from lrfind.results import RAW_DIVERGE_STEPS, divergence_threshold, raw_divergence_step
from tests.fixtures.tasks import classification_task, regression_task

CPU = torch.device("cpu")


def _sweep(task, **options):  # type: ignore[no-untyped-def]
    compute = make_compute_loss(task.loss_fn)
    return sweep_loop(
        task.model, task.optimizer, compute, task.train_loader, SweepOptions(**options), CPU
    )


def test_lrs_follow_the_exact_ladder_and_are_set_on_the_optimizer() -> None:
    task = regression_task()
    seen: list[float] = []
    original_step = task.optimizer.step

    def recording_step(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(task.optimizer.param_groups[0]["lr"])
        return original_step(*args, **kwargs)

    task.optimizer.step = recording_step  # type: ignore[method-assign]
    outcome = _sweep(task, start_lr=1e-5, end_lr=1e-2, steps=10, diverge_factor=1e9)
    expected = [1e-5 * (1e-2 / 1e-5) ** (i / 9) for i in range(10)]
    assert list(outcome.history.lrs) == expected == lr_ladder(10, 1e-5, 1e-2)
    assert seen == expected
    assert outcome.history.lrs[0] == 1e-5 and outcome.history.lrs[-1] == 1e-2
    assert outcome.history.stop_reason == "completed"


def test_smoothed_loss_is_the_bias_corrected_ema_of_the_raw_loss() -> None:
    task = regression_task()
    history = _sweep(task, start_lr=1e-4, end_lr=1e-2, steps=20, smoothing=0.9).history
    average = 0.0
    for index, (raw, smooth) in enumerate(
        zip(history.losses, history.smoothed_losses, strict=True)
    ):
        average = 0.9 * average + 0.1 * raw
        assert smooth == pytest.approx(average / (1 - 0.9 ** (index + 1)), rel=1e-12)


def test_sweep_stops_at_first_divergent_step() -> None:
    task = regression_task()
    history = _sweep(task, start_lr=1e-3, end_lr=1e3, steps=100, smoothing=0.5).history
    assert history.stop_reason in ("diverged", "non_finite")
    assert history.steps < 100
    last = history.smoothed_losses[-1]
    best = min(v for v in history.smoothed_losses if math.isfinite(v))
    if history.stop_reason == "diverged":
        raw_rule = raw_divergence_step(history.losses, history.smoothed_losses)
        assert last > 4.0 * best or raw_rule == history.steps - 1
        # Every earlier step was within the threshold (the history is cut at the first one).
        running_best = math.inf
        for value in history.smoothed_losses[:-1]:
            running_best = min(running_best, value)
            assert value <= 4.0 * running_best
        assert raw_divergence_step(history.losses[:-1], history.smoothed_losses[:-1]) is None


@pytest.mark.parametrize("check_every", [1, 3, 7])
def test_history_does_not_depend_on_how_often_the_host_reads_losses(check_every: int) -> None:
    reference = _sweep(regression_task(), start_lr=1e-3, end_lr=1e3, steps=60, smoothing=0.5)
    chunked = _sweep(
        regression_task(),
        start_lr=1e-3,
        end_lr=1e3,
        steps=60,
        smoothing=0.5,
        check_every=check_every,
    )
    assert chunked.history == reference.history


def test_nan_loss_stops_with_non_finite_reason() -> None:
    task = regression_task()

    def nan_after_three(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        nan_after_three.calls += 1  # type: ignore[attr-defined]
        loss = nn.functional.mse_loss(outputs, targets)
        return loss * float("nan") if nan_after_three.calls > 3 else loss  # type: ignore[attr-defined]

    nan_after_three.calls = 0  # type: ignore[attr-defined]
    outcome = sweep_loop(
        task.model,
        task.optimizer,
        make_compute_loss(nan_after_three),
        task.train_loader,
        SweepOptions(steps=20),
        CPU,
    )
    assert outcome.history.stop_reason == "non_finite"
    assert outcome.history.steps == 4
    assert math.isnan(outcome.history.losses[-1])


def test_nan_from_first_step_is_a_data_or_model_error() -> None:
    task = regression_task()
    compute = make_compute_loss(lambda o, t: nn.functional.mse_loss(o, t) * float("nan"))
    with pytest.raises(DataError, match="NaN/inf on the first step, before any update"):
        sweep_loop(task.model, task.optimizer, compute, task.train_loader, SweepOptions(), CPU)


def test_nan_in_a_later_batch_before_the_weights_move_names_the_batch() -> None:
    inputs = torch.randn(64, 5)
    inputs[8 * 3 + 2, 1] = float("nan")  # in batch 3
    loader = DataLoader(TensorDataset(inputs, torch.randn(64, 1)), batch_size=8)
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    initial = snapshot_state(model, optimizer)
    # An LR far too small to move float32 weights: the NaN cannot be the LR's fault.
    options = SweepOptions(start_lr=1e-30, end_lr=1e-29, steps=20, smoothing=0)
    compute = make_compute_loss(nn.functional.mse_loss)
    with pytest.raises(DataError, match=r"at step 3 .*check training batch 3"):
        sweep_loop(model, optimizer, compute, loader, options, CPU, initial=initial)


def test_nan_after_the_weights_moved_is_left_to_the_analysis() -> None:
    task = regression_task()
    initial = snapshot_state(task.model, task.optimizer)
    outcome = sweep_loop(
        task.model,
        task.optimizer,
        make_compute_loss(nn.functional.mse_loss),
        task.train_loader,
        SweepOptions(start_lr=1e-2, end_lr=1e6, steps=60),
        CPU,
        initial=initial,
    )
    assert outcome.history.stop_reason in ("diverged", "non_finite")


def test_accumulation_records_mean_of_micro_batches_and_changes_lr_once_per_step() -> None:
    inputs = torch.arange(8, dtype=torch.float32).reshape(8, 1)
    loader = DataLoader(TensorDataset(inputs, torch.zeros(8, 1)), batch_size=1)
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    calls: list[float] = []

    def loss_of_input(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        # Each micro-batch's loss is its input value (the model term only carries the gradient).
        calls.append(float(batch[0]))
        return model(batch[0]).sum() * 0 + batch[0].sum()

    outcome = sweep_loop(
        model,
        optimizer,
        loss_of_input,
        loader,
        SweepOptions(start_lr=1e-9, end_lr=1e-8, steps=2, accumulation_steps=4, smoothing=0),
        CPU,
    )
    assert calls == [0, 1, 2, 3, 4, 5, 6, 7]
    assert outcome.history.losses == (1.5, 5.5)


def test_non_scalar_loss_is_a_clear_error() -> None:
    task = regression_task()
    compute = make_compute_loss(nn.MSELoss(reduction="none"))
    with pytest.raises(SweepError, match=r"shape \(16, 1\), not a scalar"):
        sweep_loop(task.model, task.optimizer, compute, task.train_loader, SweepOptions(), CPU)


def test_frozen_model_is_refused() -> None:
    task = regression_task()
    for param in task.model.parameters():
        param.requires_grad_(False)
    with pytest.raises(SweepError, match="no trainable parameters"):
        _sweep(task)


def test_empty_loader_is_a_data_error() -> None:
    task = regression_task()
    empty = DataLoader(TensorDataset(torch.zeros(0, 5), torch.zeros(0, 1)), batch_size=4)
    with pytest.raises(DataError, match="no batches"):
        sweep_loop(
            task.model, task.optimizer, make_compute_loss(task.loss_fn), empty, SweepOptions(), CPU
        )


def test_shape_mismatch_on_first_step_is_a_sweep_error() -> None:
    task = regression_task()
    task.model = nn.Linear(7, 1)
    task.optimizer = torch.optim.SGD(task.model.parameters(), lr=0.1)
    with pytest.raises(SweepError, match="first training step failed"):
        _sweep(task)


def test_stop_flag_ends_the_sweep_after_the_current_step() -> None:
    task = regression_task()
    stop = StopFlag()

    def progress(event: StepEvent) -> None:
        if event.step == 4:
            stop.request()

    outcome = sweep_loop(
        task.model,
        task.optimizer,
        make_compute_loss(task.loss_fn),
        task.train_loader,
        SweepOptions(steps=50),
        CPU,
        progress=progress,
        stop=stop,
    )
    assert outcome.history.stop_reason == "interrupted"
    assert outcome.history.steps == 6


def test_snapshot_restore_is_bit_exact_for_model_optimizer_and_batchnorm() -> None:
    task = classification_task(optimizer="adam", batchnorm=True, dropout=0.2)
    # Give Adam some state first, so restore must bring back non-empty moments too.
    for inputs, targets in list(task.train_loader)[:2]:
        task.optimizer.zero_grad()
        task.loss_fn(task.model(inputs), targets).backward()
        task.optimizer.step()
    before_model = {k: v.clone() for k, v in task.model.state_dict().items()}
    before_optimizer = task.optimizer.state_dict()
    before_moments = {
        k: {n: t.clone() if torch.is_tensor(t) else t for n, t in v.items()}
        for k, v in before_optimizer["state"].items()
    }
    before_groups = [dict(g) for g in before_optimizer["param_groups"]]
    snapshot = snapshot_state(task.model, task.optimizer, [task.train_loader])
    _sweep(task, steps=30)
    assert parameters_changed(snapshot, task.model)
    restore_state(snapshot, task.model, task.optimizer)
    for key, value in task.model.state_dict().items():
        assert torch.equal(value, before_model[key]), key
    after = task.optimizer.state_dict()
    assert after["param_groups"] == before_groups
    for key, moments in before_moments.items():
        for name, value in moments.items():
            restored = after["state"][key][name]
            assert torch.equal(restored, value) if torch.is_tensor(value) else restored == value


def test_trials_start_from_the_same_weights_and_data_order() -> None:
    task = classification_task(dropout=0.1)
    compute = make_compute_loss(task.loss_fn)
    snapshot = snapshot_state(task.model, task.optimizer, [task.train_loader])
    options = SweepOptions(steps=10)
    first = run_trial(
        task.model,
        task.optimizer,
        compute,
        task.train_loader,
        task.val_loader,
        0.05,
        20,
        snapshot,
        options,
        CPU,
    )
    second = run_trial(
        task.model,
        task.optimizer,
        compute,
        task.train_loader,
        task.val_loader,
        0.05,
        20,
        snapshot,
        options,
        CPU,
    )
    assert first == second
    assert first.val_loss is not None and not first.diverged


def test_trial_at_absurd_lr_is_marked_diverged() -> None:
    task = regression_task()
    compute = make_compute_loss(task.loss_fn)
    snapshot = snapshot_state(task.model, task.optimizer)
    trial = run_trial(
        task.model,
        task.optimizer,
        compute,
        task.train_loader,
        task.val_loader,
        1e4,
        30,
        snapshot,
        SweepOptions(),
        CPU,
    )
    assert trial.diverged and trial.val_loss is None


@pytest.mark.parametrize(
    ("best", "first", "expected"),
    [(2.0, 3.0, 8.0), (-1.0, 0.0, 2.0), (0.0, 1.0, 3.0), (0.0, 0.0, math.inf)],
)
def test_divergence_threshold(best: float, first: float, expected: float) -> None:
    assert divergence_threshold(best, first, 4.0) == expected


def _scripted_loss(levels: dict[int, float], base: float = 1.0):  # type: ignore[no-untyped-def]
    """A differentiable loss whose value is ``levels.get(step, base)`` at each forward pass."""
    counter = {"calls": 0}

    def compute(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        loss = nn.functional.mse_loss(model(batch[0]), batch[1])
        level = levels.get(counter["calls"], base)
        counter["calls"] += 1
        return loss / loss.detach() * level

    return compute


def _scripted_sweep(levels: dict[int, float], reduce=None, **options):  # type: ignore[no-untyped-def]
    task = regression_task()
    settings = {"start_lr": 1e-6, "end_lr": 1e-4, "steps": 100, "smoothing": 0.98, **options}
    return sweep_loop(
        task.model,
        task.optimizer,
        _scripted_loss(levels),
        task.train_loader,
        SweepOptions(**settings),
        CPU,
        reduce=reduce,
    ).history


def test_a_raw_loss_far_above_its_best_stops_the_sweep_while_the_ema_lags() -> None:
    # From step 60 the raw loss sits at 10x its best; the 0.98 EMA needs ~16 steps to pass 4x.
    history = _scripted_sweep({step: 10.0 for step in range(60, 100)})
    assert history.stop_reason == "diverged"
    assert history.steps == 60 + RAW_DIVERGE_STEPS
    assert max(history.smoothed_losses) < 4.0 * min(history.smoothed_losses)
    assert raw_divergence_step(history.losses, history.smoothed_losses) == history.steps - 1


@pytest.mark.parametrize("check_every", [3, 8])
def test_the_raw_rule_cuts_the_same_history_whatever_the_read_schedule(
    check_every: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CUDA schedule (chunks read one late) on the CPU: the decision is per recorded step.
    levels = {step: 10.0 for step in range(60, 100)}
    reference = _scripted_sweep(levels)
    monkeypatch.setattr("lrfind.engine.loop.inspects_one_chunk_late", lambda device: True)
    assert _scripted_sweep(levels, check_every=check_every) == reference


@pytest.mark.parametrize(
    "levels",
    [
        # Isolated spikes, however tall, and a burst one step short of the rule are noise.
        {step: 8.0 for step in range(10, 100, 3)},
        {step: 10.0 for step in range(60, 60 + RAW_DIVERGE_STEPS - 1)},
        # A sustained rise below the threshold is not a blow-up either.
        {step: 3.5 for step in range(50, 100)},
    ],
)
def test_noisy_but_healthy_raw_losses_do_not_stop_the_sweep(levels: dict[int, float]) -> None:
    history = _scripted_sweep(levels)
    assert history.stop_reason == "completed" and history.steps == 100
    assert raw_divergence_step(history.losses, history.smoothed_losses) is None


def test_the_raw_rule_reads_the_all_reduced_losses_every_rank_sees() -> None:
    # This rank's losses stay at 1; another rank's blow up from step 40: the mean is 5.5.
    calls: list[int] = []

    def other_rank_blows_up(chunk: torch.Tensor) -> torch.Tensor:
        reduced = chunk.clone()
        if len(calls) >= 40:
            reduced[:-1] = (chunk[:-1] + 10.0) / 2
        calls.append(len(calls))
        return reduced

    history = _scripted_sweep({}, reduce=other_rank_blows_up)
    assert history.stop_reason == "diverged"
    assert history.steps == 40 + RAW_DIVERGE_STEPS
    assert history.losses[-1] == pytest.approx(5.5)
    assert len(calls) == history.steps  # one collective per step: no rank read more or fewer


def test_bf16_autocast_runs_on_cpu() -> None:
    task = classification_task()
    history = _sweep(task, steps=10, precision="bf16").history
    assert history.steps == 10
    assert all(math.isfinite(v) for v in history.losses)


def _counting_loss(task):  # type: ignore[no-untyped-def]
    """Return (compute_loss, counter): the counter holds how many forward passes ran."""
    counter = {"calls": 0}

    def compute(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        counter["calls"] += 1
        return task.loss_fn(model(batch[0]), batch[1])

    return compute, counter


@pytest.mark.parametrize("lagged", [False, True])
@pytest.mark.parametrize("check_every", [1, 3, 8])
def test_divergence_is_acted_on_within_the_documented_lag(
    lagged: bool, check_every: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CUDA schedule (inspect chunk m once chunk m+1 is queued), exercised on the CPU.
    monkeypatch.setattr("lrfind.engine.loop.inspects_one_chunk_late", lambda device: lagged)
    options = {"start_lr": 1e-3, "end_lr": 1e3, "steps": 80, "smoothing": 0.5}
    reference = _sweep(regression_task(), **options).history
    task = regression_task()
    compute, counter = _counting_loss(task)
    outcome = sweep_loop(
        task.model,
        task.optimizer,
        compute,
        task.train_loader,
        SweepOptions(check_every=check_every, **options),
        CPU,
    )
    assert outcome.history == reference
    assert reference.stop_reason in ("diverged", "non_finite") and reference.steps < 80
    extra_steps = counter["calls"] - reference.steps
    assert 0 <= extra_steps <= (2 * check_every - 1 if lagged else check_every - 1)


def test_lagged_reads_keep_stop_requests_and_the_last_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("lrfind.engine.loop.inspects_one_chunk_late", lambda device: True)
    completed = _sweep(regression_task(), start_lr=1e-5, end_lr=1e-3, steps=21, check_every=4)
    assert completed.history.steps == 21 and completed.history.stop_reason == "completed"
    task = regression_task()
    stop = StopFlag()
    stop.request()
    outcome = sweep_loop(
        task.model,
        task.optimizer,
        make_compute_loss(task.loss_fn),
        task.train_loader,
        SweepOptions(steps=50, check_every=4),
        CPU,
        stop=stop,
    )
    # Raised before the first chunk was queued: that chunk carries it.
    assert outcome.history.stop_reason == "interrupted"
    assert outcome.history.steps == 4


def test_stop_flag_in_one_process_acts_at_once() -> None:
    stop = StopFlag()
    assert not stop.requested
    stop.request("SIGINT")
    assert stop.raised and stop.requested and stop.reason == "SIGINT"


def test_grad_clip_and_check_every_are_validated() -> None:
    with pytest.raises(ValueError, match="grad_clip"):
        SweepOptions(grad_clip=0.0)
    with pytest.raises(ValueError, match="check_every"):
        SweepOptions(check_every=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"end_lr": math.inf}, "finite"),
        ({"start_lr": math.nan}, "start_lr"),
        ({"diverge_factor": math.inf}, "diverge_factor"),
        ({"grad_clip": math.inf}, "grad_clip"),
        ({"grad_clip": math.nan}, "grad_clip"),
    ],
)
def test_non_finite_options_are_rejected(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SweepOptions(**options)  # type: ignore[arg-type]
