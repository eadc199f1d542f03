"""The horizon stage: continued trials are exact, and range_test answers for a stated run."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from lrfind import range_test
from lrfind.engine.options import SweepOptions
from lrfind.engine.state import snapshot_state
from lrfind.engine.trials import Resume, run_trial
from lrfind.outputs.report.summary import summary_rows
from lrfind.results import RangeTestResult, TrainRun
from tests.fixtures.tasks import classification_task

CPU = torch.device("cpu")


@pytest.mark.parametrize("accumulation", [1, 2])
def test_a_continued_trial_equals_an_uninterrupted_one(accumulation: int) -> None:
    # Dropout draws from the RNG and the 6-batch epochs wrap (and reshuffle) inside the trial:
    # both must be replayed exactly for the continuation to match.
    task = classification_task(dropout=0.2, optimizer="adam")
    loaders = [task.train_loader, task.val_loader]
    options = SweepOptions(accumulation_steps=accumulation)
    snapshot = snapshot_state(task.model, task.optimizer, loaders)

    def trial(steps: int, resume: Resume | None = None):  # type: ignore[no-untyped-def]
        return run_trial(
            task.model, task.optimizer, lambda m, b: task.loss_fn(m(b[0]), b[1]),
            task.train_loader, task.val_loader, 3e-3, steps, snapshot, options, CPU,
            resume=resume, lr_factor=lambda step: 1 / (1 + step),
        )  # fmt: skip

    whole = trial(20)
    whole_weights = {k: v.clone() for k, v in task.model.state_dict().items()}
    first = trial(8)
    resume = Resume(first.steps, snapshot_state(task.model, task.optimizer, loaders))
    rest = trial(12, resume)
    assert rest.steps == whole.steps == 20
    assert rest.val_loss == whole.val_loss
    assert rest.val_batch_losses == whole.val_batch_losses
    for key, value in task.model.state_dict().items():
        assert torch.equal(value, whole_weights[key]), key


def test_range_test_answers_for_a_stated_run_and_restores_state() -> None:
    task = classification_task(optimizer="adam", dropout=0.1)
    weights = {k: v.clone() for k, v in task.model.state_dict().items()}
    rng = torch.get_rng_state()
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        val_loader=task.val_loader, start_lr=1e-5, end_lr=10.0, steps=60, train_steps=500,
    )  # fmt: skip
    for key, value in task.model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert torch.equal(torch.get_rng_state(), rng)
    refinement = result.refinement
    assert refinement is not None and refinement.stage == "horizon"
    assert len(refinement.rungs) >= 2
    lengths = [max(t.steps for t in rung) for rung in refinement.rungs]
    assert all(b == 2 * a for a, b in itertools.pairwise(lengths))
    assert len(refinement.rungs[0]) >= len(refinement.rungs[-1]) >= 2
    # Only the first rung's candidates start from scratch: the finalists were continued.
    finalists = {t.lr for t in refinement.rungs[-1]}
    assert finalists <= {t.lr for t in refinement.rungs[0]}
    assert refinement.cost_multiple is not None and refinement.cost_multiple <= 4.0 + 1e-9
    assert result.info.train == TrainRun(500)
    assert result.answer_steps == 500
    assert result.suggestion.method == "lrfind+horizon"
    assert any("for a 500-step constant-LR run" in r for r in result.confidence.reasons)
    document = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert document["train"]["steps"] == 500 and document["answer_steps"] == 500
    assert document["refine"]["rungs"] and document["refine"]["stage"] == "horizon"
    again = RangeTestResult.from_dict(document, result.history)
    assert again.info.train == TrainRun(500)
    assert again.refinement is not None and again.refinement.rungs == refinement.rungs
    assert again.refinement.drift == refinement.drift
    assert dict(summary_rows(result))["for"] == "a 500-step constant-LR run"


def test_without_a_run_the_answer_says_how_long_it_holds_for() -> None:
    task = classification_task()
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        val_loader=task.val_loader, start_lr=1e-5, end_lr=10.0, steps=60,
    )  # fmt: skip
    assert result.refinement is not None and result.refinement.stage == "refine"
    assert result.answer_steps == max(t.steps for t in result.refinement.trials)
    text = dict(summary_rows(result))["for"]
    assert text.startswith(f"runs of about {result.answer_steps} steps")
    assert "set train.steps" in text


def test_a_scheduled_run_answers_with_the_peak() -> None:
    task = classification_task(optimizer="adam")
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        val_loader=task.val_loader, start_lr=1e-5, end_lr=10.0, steps=60,
        train_steps=300, train_schedule="linear", train_warmup=0.1, drift_prior=None,
    )  # fmt: skip
    assert result.suggestion.lr is not None
    assert result.lr_range.max_lr == result.suggestion.lr
    assert result.refinement is not None and result.refinement.drift is None
    assert result.info.train == TrainRun(300, "linear", 0.1)


def test_stated_run_options_are_checked() -> None:
    task = classification_task()
    common = dict(val_loader=task.val_loader, steps=30)
    with pytest.raises(ValueError, match="give train_steps too"):
        range_test(task.model, task.optimizer, task.loss_fn, task.train_loader,
                   train_schedule="cosine", **common)  # fmt: skip
    with pytest.raises(ValueError, match="needs the run's length"):
        range_test(task.model, task.optimizer, task.loss_fn, task.train_loader,
                   budget="5%", **common)  # fmt: skip
    with pytest.raises(ValueError, match="drift_prior"):
        range_test(task.model, task.optimizer, task.loss_fn, task.train_loader,
                   train_steps=100, drift_prior=3.0, **common)  # fmt: skip


def test_a_stated_run_without_validation_data_says_nothing_measured_it() -> None:
    task = classification_task()
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        start_lr=1e-5, end_lr=10.0, steps=60, train_steps=1000,
    )  # fmt: skip
    assert result.refinement is None
    assert result.suggestion.lr is not None
    assert any("no trials toward a 1000-step" in r for r in result.confidence.reasons)
    assert result.confidence.level != "high"


def test_paused_candidates_follow_the_snapshot_store_and_leave_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    answers = []
    for store in ("memory", "disk"):
        task = classification_task(optimizer="adam")
        result = range_test(
            task.model, task.optimizer, task.loss_fn, task.train_loader,
            val_loader=task.val_loader, start_lr=1e-5, end_lr=10.0, steps=60,
            train_steps=500, snapshot=store, snapshot_dir=tmp_path,
        )  # fmt: skip
        assert result.refinement is not None and result.refinement.stage == "horizon"
        answers.append((result.suggestion.lr, result.refinement.rungs))
    assert answers[0] == answers[1]
    assert list(tmp_path.iterdir()) == []


def test_labels_say_what_the_trials_reached_when_nothing_reached_the_run() -> None:
    task = classification_task()
    common = dict(val_loader=task.val_loader, start_lr=1e-5, end_lr=10.0, steps=60)
    # refine: off: the sweep's answer, said to hold for runs as long as the sweep.
    off = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        train_steps=1000, refine="off", **common,
    )  # fmt: skip
    assert off.refinement is None and off.answer_steps is None
    assert dict(summary_rows(off))["for"] == (
        f"runs about as long as the sweep's {off.history.steps} steps: nothing reached toward "
        "a 1000-step constant-LR run"
    )
    assert any("refine is off" in r for r in off.confidence.reasons)
    assert not any("no validation data" in r for r in off.confidence.reasons)
    # refine_steps given: refine's trials answer, carried to the run by the prior, and said so.
    fixed = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        train_steps=2000, refine_steps=20, **common,
    )  # fmt: skip
    refinement = fixed.refinement
    assert refinement is not None and refinement.stage == "refine"
    assert refinement.drift is not None and refinement.drift.to_steps == 2000
    assert refinement.drift.from_steps == 20 and refinement.drift.factor < 1
    assert fixed.answer_steps == 2000
    assert any("carried by the prior alone" in r for r in fixed.confidence.reasons)
    assert not any(r.endswith("try higher LRs too") for r in fixed.confidence.reasons)
    assert fixed.confidence.level != "high"


def test_a_warmup_the_truncated_trials_never_leave_is_said() -> None:
    task = classification_task()
    result = range_test(
        task.model, task.optimizer, task.loss_fn, task.train_loader,
        val_loader=task.val_loader, start_lr=1e-5, end_lr=10.0, steps=60,
        train_steps=2000, train_schedule="linear", train_warmup=0.5, compress_schedule=False,
    )  # fmt: skip
    assert result.refinement is not None and result.refinement.stage == "horizon"
    assert any("outlasts the trials" in r for r in result.confidence.reasons)
    assert result.confidence.level in ("low", "none")
