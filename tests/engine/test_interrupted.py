"""Issue 21: interrupted and failed range tests keep what they finished, and say what was cut."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lrfind import RangeTestResult, StepEvent, StopFlag, TrialEvent, plot_result, range_test
from lrfind.errors import DataError, UserCodeError
from lrfind.results import History
from tests.fixtures.tasks import classification_task


def test_a_repeat_cut_midway_is_left_out_of_the_answer() -> None:
    task = classification_task()
    stop = StopFlag()
    starts: list[int] = []

    def progress(event: object) -> None:
        if isinstance(event, StepEvent):
            starts.append(event.step) if event.step == 0 else None
            if len(starts) == 2 and event.step == 5:
                stop.request()

    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        steps=30, repeats=3, refine="off", progress=progress, stop=stop,
    )  # fmt: skip
    assert not result.complete
    assert result.history.steps > 6  # the finished repeat, not truncated to the cut one
    assert result.repeats == ()
    assert any("repeat 2 of 3 was cut short" in warning for warning in result.warnings)


def test_a_stop_during_refine_keeps_the_finished_trials(tmp_path: Path) -> None:
    task = classification_task()
    stop = StopFlag()

    def progress(event: object) -> None:
        if isinstance(event, TrialEvent):
            stop.request()

    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        val_loader=task.val_loader, steps=30, refine="on", progress=progress, stop=stop,
    )  # fmt: skip
    assert not result.complete
    assert result.confidence.level != "high"
    assert any("cut short" in reason for reason in result.confidence.reasons)
    assert any("refine/search stage was cut short" in w for w in result.warnings)
    assert result.refinement is not None and result.refinement.chosen_lr is None
    assert len(result.refinement.trials) == 1  # the trial that finished before the stop
    document = result.to_dict()
    assert len(document["refine"]["trials"]) == 1
    assert RangeTestResult.from_dict(document, result.history).refinement is not None
    assert plot_result(result, tmp_path / "cut.png").is_file()


def test_a_second_interrupt_ends_the_sweep_like_the_first() -> None:
    task = classification_task()
    stop = StopFlag()
    calls = [0]

    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == 8:
            stop.request()
            raise KeyboardInterrupt  # what the CLI's handler raises on a second Ctrl-C
        return torch.nn.functional.cross_entropy(outputs, targets)

    result = range_test(
        task.model, task.optimizer, loss, task.train_loader, steps=30, refine="off", stop=stop
    )
    assert not result.complete and result.history.steps == 7
    assert result.history.stop_reason == "interrupted"


def test_a_forward_that_raises_mid_sweep_names_itself_the_step_and_keeps_the_steps() -> None:
    task = classification_task()
    calls = [0]
    inner = task.model

    class Flaky(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            if calls[0] == 13:
                raise ValueError("bad batch")
            return self.inner(inputs)

    with pytest.raises(UserCodeError) as caught:
        range_test(Flaky(), task.optimizer, task.loss_fn, task.train_loader, steps=30)
    error = caught.value
    assert error.component == "forward" and error.step == 12
    assert "the model's forward raised ValueError: bad batch" in str(error)
    assert "at sweep step 12" in str(error)
    assert isinstance(error.partial, History) and error.partial.steps == 12


def test_a_generator_as_the_loader_is_said_to_be_one_shot() -> None:
    task = classification_task()
    batches = (batch for batch in list(task.train_loader)[:3])
    with pytest.raises(DataError, match=r"one-shot iterator \(generator\), empty after 3 batch"):
        range_test(task.model, task.optimizer, task.loss_fn, batches, steps=30)


def test_a_sweep_cut_by_a_nan_loss_says_so_and_gives_a_range_to_try() -> None:
    task = classification_task()
    calls = [0]

    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        value = torch.nn.functional.cross_entropy(outputs, targets)
        return value * float("nan") if calls[0] > 13 else value

    result = range_test(task.model, task.optimizer, loss, task.train_loader, steps=40, refine="off")
    assert result.history.stop_reason == "non_finite"
    assert result.suggestion.lr is None
    assert result.confidence.reasons[0].startswith("cut by a non-finite loss")
    assert result.confidence.try_range is not None
