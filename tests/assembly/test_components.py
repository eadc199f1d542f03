"""Import paths, build_task (data, model, optimizer, loss, step), param groups and the probe."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from lrfind.assembly import losses, optim
from lrfind.assembly.imports import resolve_import
from lrfind.assembly.losses import build_loss
from lrfind.assembly.models import build_builtin_model
from lrfind.assembly.optim import group_parameters, no_decay_parameters
from lrfind.assembly.probe import probe_task
from lrfind.assembly.task import BuiltTask, build_task
from lrfind.config.load import load_config, validate_config
from lrfind.config.schema import (
    ComponentSpec,
    Config,
    ParamGroupRule,
)
from lrfind.data.types import DataInfo
from lrfind.errors import ComponentError, DataError, SweepError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
USER_FILE = FIXTURES / "user_components.py"
CPU = torch.device("cpu")


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Merge config sections; a section naming another target/name starts with empty args."""
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            section = dict(result[key])
            if {"target", "name"} & set(value):
                section["args"] = {}
            section.update(value)
            result[key] = section
        else:
            result[key] = value
    return result


BASE: dict[str, Any] = {
    "seed": 0,
    "model": {"target": "mlp", "args": {"hidden": [8]}},
    "data": {
        "target": "synthetic_classification",
        "args": {"size": 80, "features": 4, "classes": 3},
        "batch_size": 16,
    },
    "optimizer": {"name": "sgd", "args": {"momentum": 0.9}},
    "sweep": {"start_lr": 1e-4, "end_lr": 1.0, "steps": 10},
}


def make_config(base_dir: Path = FIXTURES, **sections: Any) -> Config:
    return validate_config(merge(BASE, sections), base_dir=base_dir)


def build(**sections: Any) -> BuiltTask:
    return build_task(make_config(**sections), CPU)


def user(name: str) -> str:
    return f"user_components:{name}"


def user_object(name: str) -> Any:
    """The object as build_task sees it (imported as top-level ``user_components``)."""
    return resolve_import(user(name), FIXTURES, "test")


# --- resolve_import --------------------------------------------------------------------------


def write_module(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    return path


def test_colon_and_dotted_forms() -> None:
    small_net = resolve_import(user("SmallNet"), FIXTURES, "model.target")
    assert small_net.__name__ == "SmallNet" and small_net.__module__ == "user_components"
    assert resolve_import("user_components.SmallNet", FIXTURES, "model.target") is small_net
    assert resolve_import("torch.optim.SGD", FIXTURES, "optimizer.name") is torch.optim.SGD
    forward = resolve_import(user("SmallNet.forward"), FIXTURES, "model.target")
    assert forward is small_net.forward


def test_module_beside_the_config_and_no_sys_path_leak(tmp_path: Path) -> None:
    write_module(tmp_path, "beside_config", "VALUE = 41\n")
    before = list(sys.path)
    assert resolve_import("beside_config:VALUE", tmp_path, "model.target") == 41
    assert sys.path == before


def test_same_module_name_in_two_config_folders(tmp_path: Path) -> None:
    write_module(tmp_path / "one", "models", "NAME = 'one'\n")
    write_module(tmp_path / "two", "models", "NAME = 'two'\n")
    assert resolve_import("models:NAME", tmp_path / "one", "model.target") == "one"
    assert resolve_import("models:NAME", tmp_path / "two", "model.target") == "two"
    assert resolve_import("models:NAME", tmp_path / "one", "model.target") == "one"
    (tmp_path / "three").mkdir()
    with pytest.raises(ComponentError, match="no module named 'models'"):
        resolve_import("models:NAME", tmp_path / "three", "model.target")


def test_missing_module(tmp_path: Path) -> None:
    with pytest.raises(ComponentError) as caught:
        resolve_import("nosuchmodule_xyz:Net", tmp_path, "model.target")
    assert str(caught.value) == (
        "model.target: cannot import 'nosuchmodule_xyz:Net': no module named 'nosuchmodule_xyz' "
        f"(looked in {tmp_path.resolve()} and {Path.cwd().resolve()} and the installed packages)"
    )


def test_missing_attribute_suggests_close_names() -> None:
    with pytest.raises(ComponentError) as caught:
        resolve_import(user("SmallNett"), FIXTURES, "model.target")
    assert str(caught.value) == (
        f"model.target: module 'user_components' ({USER_FILE}) has no attribute 'SmallNett' "
        "(did you mean 'SmallNet'?)"
    )
    with pytest.raises(
        ComponentError, match=r"module 'torch\.optim' .*'SGDD' \(did you mean 'SGD'"
    ):
        resolve_import("torch.optim.SGDD", FIXTURES, "optimizer.name")


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write_module(tmp_path, "broken_syntax", "x = 1\ndef oops(:\n")
    with pytest.raises(ComponentError) as caught:
        resolve_import("broken_syntax:x", tmp_path, "data.target")
    assert str(caught.value).startswith(f"data.target: syntax error in {path}:2: ")


def test_exception_while_importing(tmp_path: Path) -> None:
    path = write_module(tmp_path, "raises_on_import", "VALUE = 1 / 0\n")
    with pytest.raises(ComponentError) as caught:
        resolve_import("raises_on_import:VALUE", tmp_path, "model.target")
    assert str(caught.value) == (
        "model.target: importing module 'raises_on_import' raised ZeroDivisionError: "
        f"division by zero ({path}:1)"
    )


def test_missing_dependency_of_a_user_module(tmp_path: Path) -> None:
    path = write_module(tmp_path, "needs_dependency", "import not_installed_pkg_xyz\n")
    with pytest.raises(ComponentError) as caught:
        resolve_import("needs_dependency:x", tmp_path, "model.target")
    assert str(caught.value) == (
        "model.target: importing module 'needs_dependency' failed: no module named "
        f"'not_installed_pkg_xyz' ({path}:1)"
    )


@pytest.mark.parametrize("path", ["a:b:c", "nodots", "pkg.:x", "pkg:1x"])
def test_malformed_paths(path: str) -> None:
    with pytest.raises(ComponentError) as caught:
        resolve_import(path, FIXTURES, "step")
    assert str(caught.value) == (
        f"step: {path!r} is not an import path; write 'package.module:name' "
        "(or 'package.module.Name')"
    )


# --- build_task: data and model --------------------------------------------------------------


def test_builtin_task() -> None:
    task = build()
    assert task.description == {
        "model": "mlp(8)",
        "data": "synthetic_classification(80x4, 3 classes)",
        "optimizer": "SGD(momentum=0.9)",
        "loss": "cross_entropy",
    }
    assert task.batch_size == 16
    assert task.info == DataInfo((4,), 3, "classification", None, 64, 16)
    assert isinstance(task.optimizer, torch.optim.SGD)
    assert task.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert task.step_fn is None and task.loss_fn is not None
    assert task.val_loader is not None
    assert task.warnings == []
    probe_task(task, CPU)


def test_build_is_reproducible() -> None:
    one, two = build(), build()
    for a, b in zip(one.model.parameters(), two.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(next(iter(one.train_loader))[0], next(iter(two.train_loader))[0])


def test_user_model_and_data_get_their_sizes() -> None:
    task = build(
        model={"target": user("SmallNet"), "args": {"width": 5}},
        data={"target": user("make_tensor_data"), "args": {"size": 50, "features": 6}},
    )
    assert isinstance(task.model, user_object("SmallNet"))
    assert task.model.head.out_features == 3
    assert task.model.body[0].in_features == 6
    assert task.description["model"] == "SmallNet"
    assert task.description["data"] == "make_tensor_data"
    assert task.info.num_train == 40 and task.info.num_val == 10
    probe_task(task, CPU)


def test_user_loader_without_validation_warns() -> None:
    task = build(data={"target": user("make_loader"), "args": {}, "batch_size": 64})
    assert task.val_loader is None
    assert task.batch_size == 16  # the loader's own
    assert task.warnings[0].startswith("data.target returned a DataLoader, which cannot be split")


def test_dict_batches_with_keys() -> None:
    task = build(
        model={"target": user("SmallNet"), "args": {"num_classes": 3}},
        data={
            "target": user("make_dict_data"),
            "args": {},
            "inputs_key": "pixels",
            "targets_key": "digit",
        },
    )
    probe_task(task, CPU)
    without_keys = build(
        model={"target": user("SmallNet"), "args": {"in_features": 4, "num_classes": 3}},
        data={"target": user("make_dict_data"), "args": {}},
        loss="cross_entropy",
    )
    with pytest.raises(DataError, match=r"set data\.inputs_key and data\.targets_key"):
        probe_task(without_keys, CPU)


def test_required_size_that_cannot_be_inferred() -> None:
    with pytest.raises(ComponentError) as caught:
        build(
            model={"target": user("SmallNet")},
            data={"target": user("make_dict_data"), "inputs_key": "pixels", "targets_key": "digit"},
        )
    assert str(caught.value) == (
        "model.args: 'SmallNet': missing a required argument: 'num_classes'"
    )


def test_data_factory_that_raises() -> None:
    with pytest.raises(DataError) as caught:
        build(data={"target": user("broken_factory"), "args": {}})
    assert str(caught.value).startswith(
        "data.target: 'user_components:broken_factory' raised ValueError: the data server is "
        f"down ({USER_FILE}:"
    )


def test_data_factory_with_an_unknown_argument() -> None:
    with pytest.raises(ComponentError) as caught:
        build(data={"target": user("make_tensor_data"), "args": {"siz": 10}})
    assert str(caught.value) == (
        "data.args: 'make_tensor_data' has no argument 'siz' (did you mean 'size'?); "
        "accepted: size, features, classes"
    )


def test_data_factory_of_the_wrong_type() -> None:
    with pytest.raises(ComponentError, match=r"^data\.target returned a list; expected"):
        build(data={"target": user("wrong_type"), "args": {}})


def test_model_factory_errors() -> None:
    with pytest.raises(ComponentError) as caught:
        build(model={"target": user("not_a_module"), "args": {}})
    assert str(caught.value) == (
        "model.target: 'user_components:not_a_module' returned a str, not a torch.nn.Module"
    )
    with pytest.raises(ComponentError, match=r"raised RuntimeError: cannot build width 3 \("):
        build(model={"target": user("model_raises"), "args": {"width": 3}})


def test_frozen_model() -> None:
    with pytest.raises(SweepError, match="the model has no trainable parameters"):
        build(model={"target": user("FrozenNet"), "args": {}})


def test_world_size_two_uses_a_distributed_sampler() -> None:
    task = build_task(make_config(), CPU, rank=1, world_size=2)
    sampler = task.train_loader.sampler
    assert isinstance(sampler, DistributedSampler)
    assert (sampler.rank, sampler.num_replicas) == (1, 2)
    assert len(list(sampler)) == 32


# --- optimizer and param groups --------------------------------------------------------------


def norm_mlp() -> nn.Module:
    info = DataInfo((4,), 3, "classification", None, 10, 0)
    return build_builtin_model("mlp", {"hidden": [6, 5], "norm": "layer"}, info)[0]


def names_of(model: nn.Module, group: dict[str, Any]) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def test_param_groups_first_match_wins() -> None:
    model = norm_mlp()
    rules = [
        ParamGroupRule(match="@no_decay", weight_decay=0.0),
        ParamGroupRule(match=r"^layers\.0\.", lr_scale=0.1),
    ]
    groups, warnings = group_parameters(model, rules)
    assert warnings == []
    assert names_of(model, groups[0]) == {
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
        "layers.3.bias",
        "layers.4.weight",
        "layers.4.bias",
        "layers.6.bias",
    }
    assert groups[0]["weight_decay"] == 0.0
    assert names_of(model, groups[1]) == {"layers.0.weight"}
    assert groups[1]["lr_scale"] == 0.1
    assert names_of(model, groups[2]) == {"layers.3.weight", "layers.6.weight"}
    assert set(groups[2]) == {"params"}


def test_param_groups_in_the_optimizer() -> None:
    task = build(
        model={"target": "mlp", "args": {"hidden": [8], "norm": "batch"}},
        optimizer={
            "name": "adamw",
            "args": {"weight_decay": 0.05},
            "param_groups": [
                {"match": "@no_decay", "weight_decay": 0.0},
                {"match": r"layers\.3\.weight", "lr_scale": 0.5},
            ],
        },
    )
    groups = task.optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.0, 0.05, 0.05]
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 5e-5, 1e-4])
    assert task.description["optimizer"] == "AdamW(weight_decay=0.05) [3 param groups]"


def test_rules_that_match_nothing_warn() -> None:
    model = norm_mlp()
    rules = [
        ParamGroupRule(match="weight"),
        ParamGroupRule(match=r"layers\.0\.weight"),
        ParamGroupRule(match="encoder"),
    ]
    groups, warnings = group_parameters(model, rules)
    assert warnings == [
        "optimizer.param_groups.1 (match 'layers\\\\.0\\\\.weight') matches only parameters an "
        "earlier rule already took",
        "optimizer.param_groups.2 (match 'encoder') matches no trainable parameter",
    ]
    assert len(groups) == 2


def test_no_decay_covers_biases_and_norms_but_not_embeddings() -> None:
    info = DataInfo((6,), 5, "sequence", 5, 10, 0)
    transformer = build_builtin_model("transformer", {"num_layers": 1}, info)[0]
    chosen = no_decay_parameters(transformer)
    names = {n for n, p in transformer.named_parameters() if id(p) in chosen}
    assert "encoder.layers.0.self_attn.in_proj_bias" in names
    assert "encoder.layers.0.norm1.weight" in names
    assert "norm.weight" in names and "head.bias" in names
    assert "token_embedding.weight" not in names
    assert "encoder.layers.0.linear1.weight" not in names
    gru = build_builtin_model("gru", {}, info)[0]
    gru_names = {n for n, p in gru.named_parameters() if id(p) in no_decay_parameters(gru)}
    assert gru_names == {"gru.bias_ih_l0", "gru.bias_hh_l0", "head.bias"}


def test_no_decay_recognises_custom_norm_classes() -> None:
    class MyRMSNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))

    model = nn.Sequential(nn.Linear(3, 3), MyRMSNorm())
    chosen = no_decay_parameters(model)
    assert {n for n, p in model.named_parameters() if id(p) in chosen} == {"0.bias", "1.scale"}


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        (
            {"name": "sgd", "args": {"momentun": 0.9}},
            "optimizer.args: SGD has no argument 'momentun' (did you mean 'momentum'?); accepted: ",
        ),
        (
            {"name": "sgd", "args": {"nesterov": True}},
            "optimizer.args: SGD rejected its arguments: Nesterov momentum requires a momentum",
        ),
        (
            {"name": "adamw", "param_groups": [{"match": "@no_decay", "weight_decy": 0.0}]},
            "optimizer.param_groups.0: AdamW has no option 'weight_decy' "
            "(did you mean 'weight_decay'?)",
        ),
        (
            {"name": "adam", "param_groups": [{"match": "bias", "lr": 0.1}]},
            "optimizer.param_groups.0: do not set 'lr' (the sweep sets it); use lr_scale",
        ),
        (
            {"name": "adam", "param_groups": [{"match": "bias", "lr_scale": -1}]},
            "optimizer.param_groups.0.lr_scale must be a positive number, got -1",
        ),
    ],
)
def test_optimizer_errors(optimizer: dict[str, Any], message: str) -> None:
    with pytest.raises(ComponentError) as caught:
        build(optimizer={"args": {}, **optimizer})
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_builtin_optimizers(name: str) -> None:
    task = build(optimizer={"name": name, "args": {}})
    assert type(task.optimizer) is optim.OPTIMIZERS[name]


def test_user_optimizer() -> None:
    task = build(optimizer={"name": user("PlainSGD"), "args": {"momentum": 0.5}})
    assert isinstance(task.optimizer, user_object("PlainSGD"))
    assert task.optimizer.param_groups[0]["momentum"] == 0.5
    assert task.description["optimizer"] == "PlainSGD(momentum=0.5)"


# --- losses ----------------------------------------------------------------------------------

CLASSES = DataInfo((4,), 3, "classification", None, 10, 0)
REGRESSION = DataInfo((4,), 1, "regression", None, 10, 0)
SEQUENCE = DataInfo((5,), 7, "sequence", 7, 10, 0)


def loss_of(loss: str | dict[str, Any], info: DataInfo = CLASSES) -> tuple[Any, str]:
    spec = loss if isinstance(loss, str) else ComponentSpec(**loss)
    return build_loss(spec, info, FIXTURES)


def test_auto_loss_follows_the_task() -> None:
    assert loss_of("auto", CLASSES)[1] == "cross_entropy"
    assert loss_of("auto", SEQUENCE)[1] == "cross_entropy"
    assert loss_of("auto", REGRESSION)[1] == "mse"
    with pytest.raises(ComponentError, match=r"^loss: 'auto' cannot tell the task from the data"):
        loss_of("auto", DataInfo((4,), None, None, None, 1, 0))


def test_cross_entropy_flattens_sequence_logits() -> None:
    loss_fn, _ = loss_of("cross_entropy", SEQUENCE)
    logits, targets = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    expected = nn.functional.cross_entropy(logits.reshape(10, 7), targets.reshape(10))
    assert torch.allclose(loss_fn(logits, targets), expected)


def test_cross_entropy_squeezes_column_targets_and_casts_ints() -> None:
    loss_fn, _ = loss_of("cross_entropy")
    logits, targets = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    expected = nn.functional.cross_entropy(logits, targets)
    assert torch.allclose(loss_fn(logits, targets[:, None]), expected)
    assert torch.allclose(loss_fn(logits, targets.int()), expected)


@pytest.mark.parametrize("name", ["mse", "l1", "smooth_l1", "huber"])
def test_regression_losses_match_column_outputs_to_flat_targets(name: str) -> None:
    loss_fn, _ = loss_of(name, REGRESSION)
    outputs, targets = torch.randn(6, 1), torch.randn(6)
    reference = losses.LOSSES[name]()
    assert torch.allclose(loss_fn(outputs, targets), reference(outputs[:, 0], targets))


def test_mismatched_regression_shapes_fail_instead_of_broadcasting() -> None:
    loss_fn, _ = loss_of("mse", REGRESSION)
    with pytest.raises(SweepError) as caught:
        loss_fn(torch.randn(6, 3), torch.randn(6))
    assert str(caught.value) == (
        "loss 'mse': model outputs of shape (6, 3) do not match targets of shape (6,); "
        "give the model one output (model.args.out_features: 1)"
    )


def test_bce_with_logits_casts_targets() -> None:
    loss_fn, _ = loss_of("bce_with_logits")
    logits, targets = torch.randn(5, 1), torch.tensor([0, 1, 1, 0, 1])
    expected = nn.functional.binary_cross_entropy_with_logits(logits[:, 0], targets.float())
    assert torch.allclose(loss_fn(logits, targets), expected)
    with pytest.raises(SweepError, match=r"out_features: 1\) or use loss: cross_entropy$"):
        loss_fn(torch.randn(5, 2), targets)


def test_builtin_loss_args() -> None:
    loss_fn, description = loss_of(
        {"target": "cross_entropy", "args": {"label_smoothing": 0.1, "weight": [1, 2, 3]}}
    )
    assert description == "cross_entropy(label_smoothing=0.1, weight=(1, 2, 3))"
    logits, targets = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    expected = nn.functional.cross_entropy(
        logits, targets, weight=torch.tensor([1.0, 2.0, 3.0]), label_smoothing=0.1
    )
    assert torch.allclose(loss_fn(logits, targets), expected)
    with pytest.raises(ComponentError, match=r"^loss\.args: loss 'huber' has no argument 'delt'"):
        loss_of({"target": "huber", "args": {"delt": 1.0}})


def test_user_losses() -> None:
    logits, targets = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    plain = nn.functional.cross_entropy(logits, targets)
    scaled, description = loss_of({"target": user("scaled_loss"), "args": {"scale": 2.0}})
    assert description == "scaled_loss"
    assert torch.allclose(scaled(logits, targets), 2 * plain)
    focal, _ = loss_of({"target": user("FocalLoss"), "args": {"gamma": 0.0}})
    assert torch.allclose(focal(logits, targets), plain)
    task = build(loss=user("vector_loss"))
    assert task.description["loss"] == "vector_loss"


def test_step_function_replaces_the_loss() -> None:
    task = build(step=user("step_fn"))
    assert task.loss_fn is None and task.step_fn is user_object("step_fn")
    assert task.description["loss"] == "step:step_fn"
    probe_task(task, CPU)
    ignored = build(step=user("step_fn"), loss="mse")
    assert ignored.warnings == ["loss is ignored: the step function computes the loss"]


# --- probe -----------------------------------------------------------------------------------


def test_probe_leaves_no_trace() -> None:
    task = build(model={"target": "mlp", "args": {"hidden": [8], "norm": "batch", "dropout": 0.5}})
    reference = build(
        model={"target": "mlp", "args": {"hidden": [8], "norm": "batch", "dropout": 0.5}}
    )
    state = {k: v.clone() for k, v in task.model.state_dict().items()}
    rng = torch.get_rng_state()
    probe_task(task, CPU)
    for key, value in task.model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert torch.equal(torch.get_rng_state(), rng)
    ours = [batch[1].tolist() for batch in task.train_loader]
    theirs = [batch[1].tolist() for batch in reference.train_loader]
    assert ours == theirs


def test_probe_model_does_not_fit() -> None:
    task = build(model={"target": "mlp", "args": {"hidden": [8], "in_features": 7}})
    with pytest.raises(SweepError) as caught:
        probe_task(task, CPU)
    text = str(caught.value)
    assert text.startswith(
        "model 'mlp(8)' does not fit the data: the first batch has inputs of shape (16, 4) "
        "(float32) and the model raised RuntimeError: mat1 and mat2 shapes cannot be multiplied"
    )
    assert text.endswith("(check model.args or data.args)")


def test_probe_non_scalar_loss() -> None:
    task = build(loss=user("vector_loss"))
    with pytest.raises(SweepError) as caught:
        probe_task(task, CPU)
    assert str(caught.value) == (
        "loss 'vector_loss' returned a tensor of shape (16,), not a scalar; use reduction='mean'"
    )


def test_probe_loss_that_does_not_fit_the_outputs() -> None:
    with pytest.raises(SweepError, match=r"^loss 'mse': model outputs of shape \(16, 3\)"):
        probe_task(build(loss="mse"), CPU)
    with pytest.raises(SweepError) as caught:
        probe_task(build(loss="nll", model={"args": {"out_features": 2}}), CPU)
    assert str(caught.value).startswith(
        "loss 'nll' failed on model outputs of shape (16, 2) (float32) and targets of shape "
        "(16,) (int64): IndexError: Target 2 is out of bounds."
    )


def test_probe_nan_inputs() -> None:
    task = build(data={"target": user("nan_data"), "args": {}})
    with pytest.raises(DataError, match=r"^data: the first training batch has NaN or inf inputs"):
        probe_task(task, CPU)


def test_probe_failing_step() -> None:
    task = build(step=user("failing_step"))
    with pytest.raises(SweepError, match=r"^step 'failing_step' failed on the first batch"):
        probe_task(task, CPU)


# --- shipped configs -------------------------------------------------------------------------

CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def test_there_are_enough_example_configs() -> None:
    assert len(CONFIGS) >= 7
    assert ROOT / "configs" / "quickstart.yaml" in CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_shipped_config_builds_and_probes(path: Path) -> None:
    config = load_config(path)
    task = build_task(config, CPU)
    probe_task(task, CPU)
    assert set(task.description) == {"model", "data", "optimizer", "loss"}
    assert task.val_loader is not None
    assert task.warnings == []
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), "every example starts with a comment saying what it shows"
