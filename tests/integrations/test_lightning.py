"""``find_lr(trainer, module, datamodule=dm)``: a character-level LSTM LightningModule gets the
answer ``range_test`` gives on the same objects, with its own optimizer, schedule and steps;
every piece of state comes back bit-exact; ``hparams.lr`` is set; DDP runs under Lightning's own
launcher."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from lrfind.errors import ConfigError
from lrfind.integrations.lightning import (
    find_lr,
    scheduler_schedule,
    split_optimizers,
    stated_run,
)
from tests.integrations.lightning_tasks import CharData, CharLM, pl, trainer
from tests.test_readme import section

ROOT = Path(__file__).resolve().parents[2]
FAST = {"steps": 30, "refine": "off"}


def state(module: Any, trainer: Any) -> dict[str, Any]:
    """Everything find_lr could touch, copied."""
    return {
        "weights": {k: v.clone() for k, v in module.state_dict().items()},
        "training": [m.training for m in module.modules()],
        "grads": [None if p.grad is None else p.grad.clone() for p in module.parameters()],
        "attached": module._trainer,
        "own": sorted(k for k in vars(module) if k in ("log", "log_dict")),
        "trainer": (trainer.global_step, trainer.current_epoch, str(trainer.state.fn)),
        "optimizers": [copy.deepcopy(o.state_dict()) for o in trainer.optimizers],
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state()[1].copy(),
        "python_rng": random.getstate(),
    }


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    for key in before:
        old, new = before[key], after[key]
        if key == "weights":
            assert all(torch.equal(old[name], new[name]) for name in old), key
        elif key == "grads":
            assert all(
                (a is None and b is None) or (a is not None and torch.equal(a, b))
                for a, b in zip(old, new, strict=True)
            ), key
        elif isinstance(old, torch.Tensor | np.ndarray):
            assert (old == new).all(), key
        else:
            assert repr(old) == repr(new), key


def test_find_lr_gives_range_tests_answer_sets_hparams_and_gives_everything_back() -> None:
    torch.manual_seed(0)
    module, data = CharLM(lr=1e-3), CharData()
    fit = trainer(max_steps=40)
    module(torch.zeros(2, 3, dtype=torch.long)).sum().backward()  # a pending gradient
    before = state(module, fit)
    result = find_lr(fit, module, datamodule=data, steps=40)
    assert_same(before, state(module, fit))
    assert result.suggestion.lr is not None
    assert module.hparams.lr == result.suggestion.lr  # where Lightning's tuner writes it
    run = result.info.train
    assert run is not None and (run.steps, run.schedule, run.warmup) == (40, "linear", 4)
    assert result.refinement is not None  # the datamodule's val_dataloader feeds the trials

    # The same range test by hand, on the same objects: the same answer, step for step.
    optimizer, _, _ = split_optimizers(module.configure_optimizers())
    data.setup("fit")

    def step(model: Any, batch: Any) -> torch.Tensor:
        loss: torch.Tensor = model._loss(batch)
        return loss

    by_hand = pytest.importorskip("lrfind").range_test(
        module, optimizer, None, data.train_dataloader(), val_loader=data.val_dataloader(),
        step_fn=step, steps=40, train_steps=40, train_schedule="linear", train_warmup=4,
    )  # fmt: skip
    assert by_hand.suggestion.lr == result.suggestion.lr
    assert by_hand.history.losses == result.history.losses


@pytest.mark.parametrize(
    ("form", "schedule"),
    [
        ("optimizer", ("constant", 0)),
        ("list", ("constant", 0)),
        ("tuple", ("cosine", 0)),
        ("onecycle", ("onecycle", 10)),
        ("dict", ("linear", 4)),
    ],
)
def test_every_configure_optimizers_form_is_read_with_its_schedule(
    form: str, schedule: tuple[str, int]
) -> None:
    module = CharLM(form=form)
    optimizer, scheduler, interval = split_optimizers(module.configure_optimizers())
    assert isinstance(optimizer, torch.optim.AdamW)
    options, warnings = stated_run(trainer(max_steps=40), range(8), scheduler, interval)
    assert (options["train_schedule"], options["train_warmup"]) == schedule
    assert options["train_steps"] == 40 and warnings == []


def test_a_long_runs_warmup_schedule_is_read_exactly_from_samples() -> None:
    total, warmup = 100_000, 6001
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)

    def linear(step: int) -> float:
        return step / warmup if step < warmup else (total - step) / (total - warmup)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear)
    assert scheduler_schedule(scheduler, "step", total, 100) == ("linear", warmup)
    per_epoch = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.5**epoch)
    assert scheduler_schedule(per_epoch, "epoch", 400, 100) is None  # a decay lrfind does not model


def test_the_run_is_the_trainers_epochs_accumulation_precision_and_clipping() -> None:
    fit = trainer(
        max_steps=-1, max_epochs=3, accumulate_grad_batches=3, precision="bf16-mixed",
        gradient_clip_val=1.0,
    )  # fmt: skip
    options, _ = stated_run(fit, range(8), None, "epoch")
    assert options == {
        "accumulation_steps": 3, "precision": "bf16", "grad_clip": 1.0,
        "train_steps": 9, "train_schedule": "constant", "train_warmup": 0,
    }  # fmt: skip
    unstated, _ = stated_run(trainer(max_steps=-1), range(8), None, "epoch")
    assert "train_steps" not in unstated  # Lightning's default 1000 epochs states nothing


def test_a_schedule_lrfind_does_not_model_is_a_warning_and_a_constant_run() -> None:
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    step = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    assert scheduler_schedule(step, "step", 40, 8) is None
    options, warnings = stated_run(trainer(), range(8), step, "step")
    assert "train_schedule" not in options and "StepLR is not a schedule" in warnings[0]


def test_configure_optimizers_with_two_optimizers_is_one_line() -> None:
    params = list(torch.nn.Linear(2, 1).parameters())
    two = [torch.optim.SGD(params, lr=0.1), torch.optim.Adam(params)]
    with pytest.raises(ConfigError, match="returned 2 optimizers: lrfind sweeps exactly one"):
        split_optimizers(two)


def test_attached_module_logs_through_find_lr_and_the_trainer_is_untouched() -> None:
    """Bug: after a fit (or Tuner.lr_find) self.log raised MisconfigurationException."""
    torch.manual_seed(0)
    module, data = CharLM(form="optimizer"), CharData()
    fit = trainer(max_steps=2)
    fit.fit(module, datamodule=data)
    assert module._trainer is fit
    before = state(module, fit)
    result = find_lr(fit, module, datamodule=data, **FAST)
    assert_same(before, state(module, fit))
    assert module.hparams.lr == result.suggestion.lr


def test_apply_writes_a_named_attribute_and_refuses_nowhere_up_front() -> None:
    module = CharLM()
    module.base_lr = 0.5
    result = find_lr(trainer(), module, datamodule=CharData(), attribute="base_lr", **FAST)
    assert module.base_lr == result.suggestion.lr and module.hparams.lr == 1e-3
    with pytest.raises(ConfigError, match="no 'missing' attribute or hparams entry"):
        find_lr(trainer(), module, datamodule=CharData(), attribute="missing", **FAST)
    with pytest.raises(ConfigError, match="not an option of range_test: stepz"):
        find_lr(trainer(), module, datamodule=CharData(), stepz=3)


class Silent(CharLM):
    """A validation_step that neither returns nor logs a loss."""

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._loss(batch)


def test_a_validation_step_without_a_loss_and_manual_optimization_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match=r"validation_step returned no loss and logged no "):
        find_lr(trainer(), Silent(), datamodule=CharData(), steps=30)
    manual = CharLM()
    manual.automatic_optimization = False
    with pytest.raises(ConfigError, match="manual optimization"):
        find_lr(trainer(), manual, datamodule=CharData(), **FAST)


def test_dataloaders_instead_of_a_datamodule_and_apply_off() -> None:
    data = CharData()
    data.setup()
    module = CharLM()
    result = find_lr(
        trainer(), module, train_dataloaders=data.train_dataloader(),
        val_dataloaders=data.val_dataloader(), apply=False, **FAST,
    )  # fmt: skip
    assert result.suggestion.lr is not None and module.hparams.lr == 1e-3


def test_callback_sweeps_at_fit_start_and_fit_trains_with_the_answer() -> None:
    from lrfind.integrations.lightning import LRFindCallback

    torch.manual_seed(0)
    callback = LRFindCallback(**FAST)
    assert isinstance(callback, pl.Callback)
    module = CharLM(form="optimizer")
    fit = trainer(max_steps=3, callbacks=[callback])
    fit.fit(module, datamodule=CharData())
    assert callback.result is not None and callback.result.suggestion.lr is not None
    assert module.hparams.lr == callback.result.suggestion.lr
    assert fit.optimizers[0].param_groups[0]["lr"] == callback.result.suggestion.lr
    assert fit.global_step == 3

    data = CharData()
    data.setup()
    module, callback = CharLM(form="optimizer"), LRFindCallback(**FAST)
    fit = trainer(max_steps=1, callbacks=[callback])
    fit.fit(module, data.train_dataloader(), data.val_dataloader())  # loaders, no datamodule
    assert callback.result is not None and module.hparams.lr == callback.result.suggestion.lr


def test_a_datamodule_is_a_config_data_target(tmp_path: Path) -> None:
    import lrfind

    config = {
        "name": "char-lstm",
        "device": "cpu",
        "model": {"target": "tests.integrations.lightning_tasks:CharLM"},
        "data": {"target": "tests.integrations.lightning_tasks:CharData"},
        "step": "tests.integrations.test_lightning:config_step",
        "sweep": {"steps": 20},
        "suggest": {"refine": "off"},
        "output": {"dir": str(tmp_path)},
    }
    path = tmp_path / "char.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run = lrfind.sweep(path)
    assert run.result.suggestion.lr is not None
    assert run.result.info.batch_size == 16  # the datamodule's own loaders


def config_step(model: Any, batch: Any) -> torch.Tensor:
    """The config test's ``step``: the module's loss."""
    loss: torch.Tensor = model._loss(batch)
    return loss


WORKER = ROOT / "tests" / "integrations" / "lightning_ddp_worker.py"


def test_ddp_under_lightnings_launcher_gives_every_rank_the_same_answer(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for name in ("LOCAL_RANK", "MASTER_PORT", "MASTER_ADDR", "WORLD_SIZE", "NODE_RANK"):
        env.pop(name, None)
    errors = []
    for _attempt in range(2):
        for stale in tmp_path.glob("rank*.json"):
            stale.unlink()
        done = subprocess.run(
            [sys.executable, str(WORKER), str(tmp_path)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        ranks = sorted(tmp_path.glob("rank*.json"))
        # Judged by what the ranks wrote: torch 2.13 may abort at exit after a clean run
        # ("terminate called without an active exception"), and a free port Lightning picked
        # may be taken by another job before its ranks bind it. One retry for either.
        if len(ranks) == 2:
            break
        errors.append(f"exit {done.returncode}: {done.stderr[-1500:]}")
    assert len(ranks) == 2, "\n---\n".join(errors)
    answers = [json.loads(path.read_text()) for path in ranks]
    assert answers[0] == answers[1], done.stderr[-1500:]
    assert answers[0]["world_size"] == 2 and answers[0]["lr"] is not None
    assert answers[0]["hparams_lr"] == answers[0]["lr"]


def _blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_readmes_and_coming_froms_lightning_examples_run() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (readme_example,) = _blocks(readme.split("\n## Lightning\n")[1].split("\n## ")[0])
    (coming_from,) = _blocks(section("Lightning's tuner"))
    for example in (readme_example, coming_from):
        torch.manual_seed(0)
        module = CharLM(form="optimizer")
        namespace = {"trainer": trainer(max_steps=2), "module": module, "dm": CharData()}
        exec(compile(example, "example.md", "exec"), namespace)
        assert module.hparams.lr == namespace["result"].suggestion.lr
        assert namespace["trainer"].global_step in (0, 2)  # the README's trains afterwards


def test_the_lightning_pages_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example, callback_example = _blocks(section("Lightning"))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(example, "lightning.md", "exec"), namespace)
    result, module = namespace["result"], namespace["module"]
    assert result.info.train is not None and result.info.train.schedule == "onecycle"
    assert module.hparams.lr == result.suggestion.lr
    assert namespace["trainer"].global_step == 60
    exec(compile(callback_example, "lightning.md", "exec"), namespace)
    assert namespace["callback"].result.suggestion.lr is not None
