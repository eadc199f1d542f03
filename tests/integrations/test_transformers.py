"""``find_lr(trainer)``: a tiny GPT-2 and a tiny BERT Trainer get an answer from their own objects,
every piece of Trainer state comes back bit-exact, and ``apply=True`` training runs."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lrfind.errors import ConfigError, DataError, NoReliableSuggestion
from lrfind.integrations.transformers import apply_lr, find_lr, run_options
from tests.fixtures.results import make_result
from tests.integrations.hf_tasks import (
    pad_collator,
    sentence_dataset,
    tiny_bert,
    tiny_gpt2,
    token_dataset,
    training_args,
    transformers,
)

FAST = {"steps": 30, "refine": "off"}


def trainer_state(trainer: Any) -> dict[str, Any]:
    """Everything find_lr could touch, copied."""
    return {
        "weights": {k: v.clone() for k, v in trainer.model.state_dict().items()},
        "training": [m.training for m in trainer.model.modules()],
        "grads": [p.grad for p in trainer.model.parameters()],
        "args": trainer.args.to_dict(),
        "optimizer": None if trainer.optimizer is None else copy.deepcopy(
            trainer.optimizer.state_dict()
        ),
        "scheduler": None if trainer.lr_scheduler is None else trainer.lr_scheduler.state_dict(),
        "state": trainer.state.to_json_string() if hasattr(trainer.state, "to_json_string") else "",
        "registries": [
            len(getattr(trainer.accelerator, name))
            for name in ("_dataloaders", "_models", "_optimizers")
        ],
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state()[1].copy(),
        "python_rng": random.getstate(),
    }  # fmt: skip


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before.keys() == after.keys()
    for key in before:
        old, new = before[key], after[key]
        if key == "weights":
            assert all(torch.equal(old[name], new[name]) for name in old), key
        elif isinstance(old, torch.Tensor | np.ndarray):
            assert (old == new).all(), key
        else:
            assert repr(old) == repr(new), key


def gpt2_trainer(tmp_path: Path, **args: Any) -> Any:
    return transformers.Trainer(
        model=tiny_gpt2(),
        args=training_args(tmp_path, **args),
        train_dataset=token_dataset(),
        eval_dataset=token_dataset(16, seed=1),
    )


def test_gpt2_trainer_gets_an_answer_and_is_given_back_bit_exact(tmp_path: Path) -> None:
    trainer = gpt2_trainer(tmp_path, lr_scheduler_type="cosine", warmup_steps=0.1)
    before = trainer_state(trainer)
    result = find_lr(trainer, steps=30)
    assert result.suggestion.lr is not None
    assert result.refinement is not None  # the eval_dataset feeds the refine stage
    assert result.info.accumulation_steps == 1
    assert_same(before, trainer_state(trainer))
    assert trainer.optimizer is None and trainer.lr_scheduler is None


def test_bert_with_a_collator_and_apply_then_trains(tmp_path: Path) -> None:
    trainer = transformers.Trainer(
        model=tiny_bert(),
        args=training_args(tmp_path, lr_scheduler_type="linear", warmup_steps=2),
        train_dataset=sentence_dataset(),
        data_collator=pad_collator,
    )
    before = trainer_state(trainer)
    result = find_lr(trainer, apply=True, **FAST)
    after = trainer_state(trainer)
    assert trainer.args.learning_rate == result.suggestion.lr
    before["args"]["learning_rate"] = after["args"]["learning_rate"]
    assert_same(before, after)
    output = trainer.train()
    assert np.isfinite(output.training_loss)
    assert trainer.lr_scheduler.base_lrs == [result.suggestion.lr] * 2


def test_the_trainers_own_loss_is_the_one_swept(tmp_path: Path) -> None:
    calls: list[int] = []

    class Counting(transformers.Trainer):  # type: ignore[misc]
        def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return super().compute_loss(model, inputs, *args, **kwargs)

    trainer = Counting(
        model=tiny_gpt2(), args=training_args(tmp_path), train_dataset=token_dataset()
    )
    find_lr(trainer, **FAST)
    assert len(calls) >= 30


def test_training_arguments_describe_the_run(tmp_path: Path) -> None:
    args = training_args(
        tmp_path, num_train_epochs=3, gradient_accumulation_steps=3, warmup_steps=0.1,
        lr_scheduler_type="linear", max_grad_norm=0.5,
    )  # fmt: skip
    options = run_options(args, batches=10)  # 4 optimizer steps per epoch (a partial one too)
    assert options == {
        "accumulation_steps": 3, "precision": "fp32", "grad_clip": 0.5, "seed": 42,
        "train_steps": 12, "train_schedule": "linear", "train_warmup": 2,
    }  # fmt: skip
    by_steps = run_options(training_args(tmp_path, max_steps=500, warmup_steps=30), batches=10)
    assert (by_steps["train_steps"], by_steps["train_warmup"]) == (500, 30)
    assert by_steps["train_schedule"] == "linear"  # transformers' default
    plain = run_options(
        training_args(tmp_path, lr_scheduler_type="constant", warmup_steps=5), batches=10
    )
    assert (plain["train_schedule"], plain["train_warmup"]) == ("constant", 0)
    other = run_options(training_args(tmp_path, lr_scheduler_type="polynomial"), batches=10)
    assert "train_schedule" not in other and other["train_steps"] == 20


def test_a_schedule_lrfind_does_not_model_is_said(tmp_path: Path) -> None:
    trainer = gpt2_trainer(tmp_path, lr_scheduler_type="inverse_sqrt")
    result = find_lr(trainer, **FAST)
    assert any("'inverse_sqrt' is not one lrfind models" in w for w in result.warnings)


def test_a_user_supplied_optimizer_and_scheduler_are_rescaled(tmp_path: Path) -> None:
    model = tiny_gpt2()
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in model.named_parameters() if "wte" in n], "lr": 1e-3},
            {"params": [p for n, p in model.named_parameters() if "wte" not in n], "lr": 5e-4},
        ]
    )
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, 2, 16)
    trainer = transformers.Trainer(
        model=model, args=training_args(tmp_path), train_dataset=token_dataset(),
        optimizers=(optimizer, scheduler),
    )  # fmt: skip
    before = trainer_state(trainer)
    result = find_lr(trainer, **FAST)
    assert_same(before, trainer_state(trainer))
    assert trainer.optimizer is optimizer
    lr = apply_lr(trainer, result)
    assert scheduler.base_lrs == pytest.approx([lr, lr / 2])
    assert [g["initial_lr"] for g in optimizer.param_groups] == pytest.approx([lr, lr / 2])
    trainer.train()
    assert max(scheduler.get_last_lr()) <= lr


def test_apply_without_a_suggestion_applies_nothing(tmp_path: Path) -> None:
    trainer = gpt2_trainer(tmp_path)
    flat = make_result("flat")
    with pytest.raises(NoReliableSuggestion, match=r"^find_lr\(apply=True\): nothing applied: "):
        apply_lr(trainer, flat)
    assert trainer.args.learning_rate == 5e-4


def test_a_trainer_without_training_data_is_a_one_line_error(tmp_path: Path) -> None:
    trainer = transformers.Trainer(model=tiny_gpt2(), args=training_args(tmp_path))
    with pytest.raises(ConfigError, match=r"^find_lr: the Trainer has no train_dataset"):
        find_lr(trainer)


def test_an_empty_train_dataset_is_a_one_line_error(tmp_path: Path) -> None:
    trainer = transformers.Trainer(
        model=tiny_gpt2(), args=training_args(tmp_path), train_dataset=token_dataset(rows=0)
    )
    with pytest.raises(DataError) as caught:
        find_lr(trainer, **FAST)
    assert str(caught.value) == (
        "find_lr: the Trainer's train_dataset is empty: nothing to sweep over"
    )


def test_train_steps_none_states_no_run(tmp_path: Path) -> None:
    trainer = gpt2_trainer(tmp_path, lr_scheduler_type="cosine", warmup_steps=0.1, max_steps=200)
    result = find_lr(trainer, train_steps=None, **FAST)
    assert result.info.train is None


def test_a_misspelt_option_is_named_before_anything_runs(tmp_path: Path) -> None:
    trainer = gpt2_trainer(tmp_path)
    with pytest.raises(ConfigError) as caught:
        find_lr(trainer, stepz=10)
    assert str(caught.value) == (
        "find_lr: not an option of range_test: stepz (did you mean 'steps'?)"
    )


def test_the_first_of_several_eval_sets_feeds_refine(tmp_path: Path) -> None:
    trainer = transformers.Trainer(
        model=tiny_gpt2(), args=training_args(tmp_path), train_dataset=token_dataset(),
        eval_dataset={"a": token_dataset(16, seed=1), "b": token_dataset(8, seed=2)},
    )  # fmt: skip
    result = find_lr(trainer, steps=30, refine="on", refine_steps=5, refine_candidates=2)
    assert result.refinement is not None
