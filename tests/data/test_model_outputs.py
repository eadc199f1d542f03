"""Models that return objects, dicts or their own loss: ``loss: model`` and ``model.output_key``."""

from __future__ import annotations

import math
import re
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from lrfind.assembly.probe import probe_task
from lrfind.assembly.task import BuiltTask, build_task
from lrfind.config.load import validate_config
from lrfind.data.model_outputs import MODEL_LOSS, loss_input, model_loss
from lrfind.engine.library import range_test
from lrfind.engine.steps import make_compute_loss
from lrfind.errors import ComponentError, SweepError

CPU = torch.device("cpu")


@dataclass
class Output:
    """A ModelOutput look-alike: attributes, no mapping interface."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    hidden: torch.Tensor | None = None


Pair = namedtuple("Pair", ["scores", "aux"])


# --- reading outputs -------------------------------------------------------------------------


def test_loss_input_reads_logits_from_objects_and_dicts() -> None:
    logits = torch.ones(2, 3)
    assert loss_input(logits) is logits
    assert loss_input(Output(logits)) is logits
    assert loss_input({"logits": logits, "x": 1}) is logits


def test_loss_input_reads_output_key_and_tuple_index() -> None:
    scores, aux = torch.ones(2, 3), torch.zeros(2)
    assert loss_input(Output(torch.zeros(1), hidden=scores), "hidden") is scores
    assert loss_input({"scores": scores}, "scores") is scores
    assert loss_input((scores, aux), 0) is scores
    assert loss_input(Pair(scores, aux), "scores") is scores


def test_loss_input_leaves_tuples_without_logits_to_the_loss() -> None:
    pair = (torch.ones(2), torch.zeros(2))
    assert loss_input(pair) is pair


def test_loss_input_names_a_missing_output_key() -> None:
    with pytest.raises(SweepError) as caught:
        loss_input({"logits": torch.ones(1), "pooled": torch.ones(1)}, "scores")
    assert str(caught.value) == (
        "model.output_key: the model's dict output has no 'scores' (fields: logits, pooled)"
    )


def test_model_loss_from_tensor_dict_and_object() -> None:
    loss = torch.tensor(0.5)
    assert model_loss(loss) is loss
    assert model_loss({"loss": loss, "logits": torch.ones(1)}) is loss
    assert model_loss(Output(torch.ones(1), loss=loss)) is loss


def test_model_loss_without_labels_says_what_to_do() -> None:
    with pytest.raises(SweepError, match=r"whose loss is None: give it the targets"):
        model_loss(Output(torch.ones(1)))
    with pytest.raises(SweepError, match=r"returned a dict with no loss \(fields: logits\)"):
        model_loss({"logits": torch.ones(1)})


# --- the engine ------------------------------------------------------------------------------


class SelfLossNet(nn.Module):
    """forward(features, labels) -> {"loss", "logits"}, like a transformers model."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        logits = self.linear(features)
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


def dict_batches(count: int = 8, size: int = 16) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        features = torch.randn(size, 4, generator=generator)
        batches.append({"features": features, "labels": (features[:, 0] > 0).long()})
    return batches


def test_compute_loss_model_passes_dict_batch_as_keywords() -> None:
    torch.manual_seed(0)
    model = SelfLossNet()
    batch = dict_batches(1)[0]
    compute = make_compute_loss(MODEL_LOSS)
    expected = nn.functional.cross_entropy(model.linear(batch["features"]), batch["labels"])
    assert torch.allclose(compute(model, batch), expected)


def test_compute_loss_builtin_reads_logits_of_dict_output() -> None:
    torch.manual_seed(0)
    model = SelfLossNet()
    features, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    compute = make_compute_loss(nn.CrossEntropyLoss())
    expected = nn.functional.cross_entropy(model.linear(features), labels)
    assert torch.allclose(compute(model, (features, labels)), expected)


def test_compute_loss_rejects_other_strings() -> None:
    with pytest.raises(ValueError, match="must be a callable or 'model'"):
        make_compute_loss("cross_entropy")  # type: ignore[arg-type]


def test_range_test_with_the_models_own_loss() -> None:
    torch.manual_seed(0)
    model = SelfLossNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    result = range_test(
        model, optimizer, MODEL_LOSS, dict_batches(), start_lr=1e-4, end_lr=10, steps=30
    )
    assert result.history.steps >= 10
    assert result.info.loss == "model" and result.info.model == "SelfLossNet"


# --- from a config ---------------------------------------------------------------------------

USER_MODULE = """
from dataclasses import dataclass
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset


@dataclass
class Output:
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None


@dataclass
class Hidden:
    states: torch.Tensor


class NoLogitsNet(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return Hidden(self.linear(x))


class ObjectNet(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x, labels=None):
        logits = self.linear(x)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return Output(logits=logits, loss=loss, start_logits=2 * logits)


class WrongLogitsNet(ObjectNet):
    def forward(self, x, labels=None):
        logits = self.linear(x)
        return Output(logits=torch.zeros(x.shape[0], 7, 7), start_logits=logits)


def make_object_net(in_features, out_features):
    return ObjectNet(in_features, out_features)


class DictData(Dataset):
    def __init__(self, size=128):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, 6, generator=generator)
        self.y = (self.x[:, 0] > 0).long()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return {"x": self.x[index], "labels": self.y[index]}


def make_dict_data(size=128):
    return DictData(size)


def make_unlabelled_data(size=128):
    return TensorDataset(torch.randn(size, 6))


def make_tensor_data(size=128):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(size, 6, generator=generator)
    return TensorDataset(x, (x[:, 0] > 0).long())
"""


def build_from(tmp_path: Path, **overrides: Any) -> BuiltTask:
    (tmp_path / "objmodels.py").write_text(USER_MODULE, encoding="utf-8")
    document: dict[str, Any] = {
        "name": "objects",
        "device": "cpu",
        "model": {"target": "objmodels:make_object_net", "args": {"out_features": 2}},
        "data": {"target": "objmodels:make_tensor_data", "batch_size": 16},
        "loss": "cross_entropy",
        "sweep": {"start_lr": 1e-4, "end_lr": 10, "steps": 30},
        "suggest": {"refine": "off"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    config = validate_config(document, base_dir=tmp_path)
    task = build_task(config, CPU)
    probe_task(task, CPU)
    return task


def sweep_task(task: BuiltTask) -> Any:
    return range_test(
        task.model,
        task.optimizer,
        task.loss_fn,
        task.train_loader,
        step_fn=task.step_fn,
        inputs_key=task.inputs_key,
        targets_key=task.targets_key,
        output_key=task.output_key,
        start_lr=1e-4,
        end_lr=10,
        steps=30,
    )


def test_config_builtin_loss_reads_logits_and_names_the_class(tmp_path: Path) -> None:
    task = build_from(tmp_path)
    assert task.description["model"] == "ObjectNet"  # the class, not the factory
    result = sweep_task(task)
    assert result.history.steps >= 10 and math.isfinite(result.history.losses[0])


def test_config_output_key(tmp_path: Path) -> None:
    task = build_from(
        tmp_path, model={"target": "objmodels:make_object_net", "output_key": "start_logits"}
    )
    assert task.output_key == "start_logits"
    batch = next(iter(task.train_loader))
    compute = make_compute_loss(task.loss_fn, output_key=task.output_key)  # type: ignore[arg-type]
    logits = task.model.linear(batch[0])
    expected = nn.functional.cross_entropy(2 * logits, batch[1])
    assert torch.allclose(compute(task.model, batch), expected)


def test_config_missing_output_key_fails_in_the_probe(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match=r"has no 'scores' \(fields: logits, loss, start_logits"):
        build_from(tmp_path, model={"target": "objmodels:make_object_net", "output_key": "scores"})


def test_config_loss_model_with_dict_batches(tmp_path: Path) -> None:
    task = build_from(
        tmp_path,
        loss="model",
        model={"target": "objmodels:ObjectNet", "args": {"in_features": 6, "out_features": 2}},
        data={"target": "objmodels:make_dict_data", "batch_size": 16},
    )
    assert task.loss_fn == MODEL_LOSS and task.description["loss"] == "model"
    result = sweep_task(task)
    assert result.history.steps >= 10


def test_config_loss_model_without_labels_fails_in_the_probe(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="whose loss is None: give it the targets"):
        build_from(
            tmp_path,
            loss="model",
            model={"args": {"in_features": 6, "out_features": 2}},
            data={"target": "objmodels:make_unlabelled_data"},
        )


def test_an_object_without_logits_names_model_output_key(tmp_path: Path) -> None:
    """Bug: the hint said "check model.args.out_features" for an object output."""
    with pytest.raises(SweepError) as caught:
        build_from(tmp_path, model={"target": "objmodels:NoLogitsNet"})
    message = str(caught.value)
    assert "model.args.out_features" not in message
    assert message.endswith(
        "(the model returns a Hidden: set model.output_key to the output the loss should read, "
        "or use loss: model for the model's own loss)"
    )
    task = build_from(tmp_path, model={"target": "objmodels:NoLogitsNet", "output_key": "states"})
    assert task.description["model"] == "NoLogitsNet"


def test_config_loss_model_takes_no_arguments(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="loss 'model' takes no arguments"):
        build_from(tmp_path, loss={"target": "model", "args": {"weight": 1}})


def test_the_sweep_workflow_reads_output_key(tmp_path: Path) -> None:
    """model.output_key reaches the engine, not only the probe (verify and sweep alike)."""
    import lrfind

    task_dir = tmp_path / "task"
    task_dir.mkdir()
    (task_dir / "objmodels.py").write_text(USER_MODULE, encoding="utf-8")
    config = task_dir / "c.yaml"
    config.write_text(
        "name: objects\ndevice: cpu\n"
        "model: {target: objmodels:WrongLogitsNet, args: {in_features: 6, out_features: 2},"
        " output_key: start_logits}\n"
        "data: {target: objmodels:make_tensor_data, batch_size: 16}\n"
        "loss: cross_entropy\nsweep: {start_lr: 1.0e-4, end_lr: 10, steps: 20}\n"
        "suggest: {refine: 'off'}\n",
        encoding="utf-8",
    )
    run = lrfind.sweep(config, out=tmp_path / "run")
    assert run.result.history.steps >= 10
    assert run.result.info.model == "WrongLogitsNet"


# --- a real transformers model (optional dev extra) ------------------------------------------

GPT2_MODULE = """
import torch
from torch.utils.data import Dataset
from transformers import GPT2Config, GPT2LMHeadModel


def make_model(vocab_size=64, length=16):
    config = GPT2Config(
        vocab_size=vocab_size, n_positions=length, n_embd=32, n_layer=1, n_head=2,
        bos_token_id=0, eos_token_id=0,
    )
    return GPT2LMHeadModel(config)


class Tokens(Dataset):
    def __init__(self, size=96, vocab_size=64, length=16):
        generator = torch.Generator().manual_seed(0)
        start = torch.randint(0, vocab_size, (size, 1), generator=generator)
        self.ids = (start + torch.arange(length)) % vocab_size  # counting: learnable

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        return {"input_ids": self.ids[index], "labels": self.ids[index]}


def make_data(size=96):
    return Tokens(size)
"""


@pytest.mark.parametrize("loss", ["model", "cross_entropy"])
def test_gpt2_from_config(tmp_path: Path, loss: str) -> None:
    pytest.importorskip("transformers")
    (tmp_path / "gpt2_task.py").write_text(GPT2_MODULE, encoding="utf-8")
    document = {
        "name": "gpt2",
        "device": "cpu",
        "model": {"target": "gpt2_task:make_model"},
        "data": {
            "target": "gpt2_task:make_data",
            "batch_size": 8,
            "inputs_key": "input_ids",
            "targets_key": "labels",
        },
        "loss": loss,
        "optimizer": {"name": "adamw", "args": {"weight_decay": 0.01}},
        "sweep": {"start_lr": 1e-5, "end_lr": 1.0, "steps": 20},
    }
    config = validate_config(document, base_dir=tmp_path)
    task = build_task(config, CPU)
    probe_task(task, CPU)
    assert task.description["model"] == "GPT2LMHeadModel"
    result = sweep_task(task)
    assert result.history.steps >= 10
    assert all(math.isfinite(v) for v in result.history.losses[:10])


def test_gpt2_sweep_names_the_class_in_the_summary_and_title(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    import lrfind
    from lrfind.outputs.plot.style import run_title

    (tmp_path / "gpt2_task.py").write_text(GPT2_MODULE, encoding="utf-8")
    config = tmp_path / "gpt2.yaml"
    config.write_text(
        "name: gpt2\ndevice: cpu\nmodel: {target: gpt2_task:make_model}\n"
        "data: {target: gpt2_task:make_data, batch_size: 8}\nloss: model\n"
        "optimizer: {name: adamw, args: {weight_decay: 0.01, betas: [0.9, 0.95]}}\n"
        "sweep: {start_lr: 1.0e-5, end_lr: 1.0, steps: 20}\nsuggest: {refine: 'off'}\n",
        encoding="utf-8",
    )
    run = lrfind.sweep(config, out=tmp_path / "run")
    assert run.result.info.model == "GPT2LMHeadModel"
    assert run.result.info.loss == "model"
    assert run_title(run.result.info).startswith("gpt2: GPT2LMHeadModel · AdamW(")
    assert run.run_dir is not None and (run.run_dir / "lr_finder.png").is_file()


def test_check_loss_says_what_is_not_a_loss() -> None:
    from lrfind.data.model_outputs import check_loss
    from lrfind.errors import SweepError

    cases = {
        "not a tensor": [1.0],
        "shape (3,), not a scalar": torch.ones(3),
        "must be floating point": torch.tensor(1),
    }
    for message, loss in cases.items():
        with pytest.raises(SweepError, match=re.escape(message)):
            check_loss(loss, "loss 'x'")
    check_loss(torch.tensor(1.0))  # a scalar needs no gradient unless asked
    with pytest.raises(SweepError, match="does not depend on any trainable parameter"):
        check_loss(torch.tensor(1.0), needs_grad=True)
    check_loss(torch.tensor(1.0, requires_grad=True) * 2, needs_grad=True)
