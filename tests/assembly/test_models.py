"""Built-in models: sizes inferred from DataInfo, forward shapes, argument errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from lrfind.assembly.models import build_builtin_model, model_arguments
from lrfind.data.registry import load_builtin_dataset
from lrfind.data.types import DataInfo
from lrfind.errors import ComponentError

TABULAR = DataInfo((10,), 3, "classification", None, 100, 20)
IMAGE = DataInfo((1, 8, 8), 10, "classification", None, 100, 20)
REGRESSION = DataInfo((5,), 1, "regression", None, 100, 20)
SEQUENCE = DataInfo((12,), 9, "sequence", 9, 100, 20)


def build(name: str, info: DataInfo, **args: Any) -> nn.Module:
    return build_builtin_model(name, args, info)[0]


@pytest.mark.parametrize(
    ("name", "info", "inputs", "shape"),
    [
        ("linear", TABULAR, torch.randn(4, 10), (4, 3)),
        ("logistic", IMAGE, torch.randn(4, 1, 8, 8), (4, 10)),
        ("mlp", TABULAR, torch.randn(4, 10), (4, 3)),
        ("mlp", IMAGE, torch.randn(4, 1, 8, 8), (4, 10)),
        ("mlp", REGRESSION, torch.randn(4, 5), (4, 1)),
        ("cnn", IMAGE, torch.randn(4, 1, 8, 8), (4, 10)),
        ("gru", SEQUENCE, torch.randint(0, 9, (4, 12)), (4, 12, 9)),
        ("transformer", SEQUENCE, torch.randint(0, 9, (4, 12)), (4, 12, 9)),
    ],
)
def test_sizes_come_from_the_data(
    name: str, info: DataInfo, inputs: torch.Tensor, shape: tuple[int, ...]
) -> None:
    model = build(name, info)
    assert model(inputs).shape == shape


def test_cnn_handles_odd_image_sizes() -> None:
    info = DataInfo((3, 5, 7), 4, "classification", None, 10, 0)
    model = build("cnn", info, channels=[4, 8, 8], pool="avg", norm="batch")
    assert model(torch.randn(2, 3, 5, 7)).shape == (2, 4)


def test_transformer_is_causal() -> None:
    torch.manual_seed(0)
    model = build("transformer", SEQUENCE).eval()
    tokens = torch.randint(0, 9, (1, 12))
    changed = tokens.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 9
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert torch.allclose(before[0, :8], after[0, :8], atol=1e-5)
    assert not torch.allclose(before[0, 8:], after[0, 8:])


def test_transformer_rejects_sequences_longer_than_max_len() -> None:
    model = build("transformer", SEQUENCE)
    with pytest.raises(ValueError, match="sequence length 20 exceeds max_len 12"):
        model(torch.zeros(1, 20, dtype=torch.long))


def test_explicit_args_win_over_the_data() -> None:
    model, description = build_builtin_model(
        "mlp", {"hidden": [7], "out_features": 1, "norm": "layer", "dropout": 0.1}, TABULAR
    )
    assert model(torch.randn(3, 10)).shape == (3, 1)
    assert description == "mlp(7)"
    assert any(isinstance(m, nn.LayerNorm) for m in model.modules())
    assert any(isinstance(m, nn.Dropout) for m in model.modules())


def test_num_classes_is_an_alias_of_out_features() -> None:
    assert build("linear", TABULAR, num_classes=5)(torch.randn(2, 10)).shape == (2, 5)
    with pytest.raises(ComponentError, match="give 'out_features' or 'num_classes', not both"):
        build("linear", TABULAR, num_classes=5, out_features=5)


@pytest.mark.parametrize(
    ("name", "info", "description"),
    [
        ("linear", TABULAR, "linear(10->3)"),
        ("logistic", TABULAR, "logistic(10->3)"),
        ("mlp", TABULAR, "mlp(128, 64)"),
        ("cnn", IMAGE, "cnn(16, 32)"),
        ("gru", SEQUENCE, "gru(128)"),
        ("transformer", SEQUENCE, "transformer(d64, 2 layers)"),
    ],
)
def test_descriptions(name: str, info: DataInfo, description: str) -> None:
    assert build_builtin_model(name, {}, info)[1] == description


@pytest.mark.parametrize(
    ("hidden", "description"),
    [([64] * 8, "mlp(8×64)"), ([128, 64, 64, 64], "mlp(128, 3×64)"), ([32, 32], "mlp(32, 32)")],
)
def test_deep_stacks_stay_one_short_title(hidden: list[int], description: str) -> None:
    """Bug: mlp(64, 64, 64, 64, 64, 64, 64, 64) wrapped the plot title."""
    assert build_builtin_model("mlp", {"hidden": hidden}, TABULAR)[1] == description


def test_unknown_argument_lists_the_accepted_ones() -> None:
    with pytest.raises(ComponentError) as caught:
        build("mlp", TABULAR, hiden=[3])
    assert str(caught.value) == (
        "model.args: model 'mlp' has no argument 'hiden' (did you mean 'hidden'?); accepted: "
        "in_features, out_features, hidden, activation, dropout, norm"
    )


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("mlp", {"activation": "relu6"}, "activation must be one of relu, gelu, tanh, silu"),
        ("mlp", {"hidden": [0]}, "hidden must be a list of positive integers"),
        ("mlp", {"dropout": 1.0}, "dropout must be in [0, 1)"),
        ("cnn", {"pool": "median"}, "pool must be 'max', 'avg' or null"),
        ("transformer", {"d_model": 10, "num_heads": 4}, "d_model (10) must be divisible"),
    ],
)
def test_bad_values_name_model_args(name: str, args: dict[str, Any], message: str) -> None:
    info = {"mlp": TABULAR, "cnn": IMAGE, "transformer": SEQUENCE}[name]
    with pytest.raises(ComponentError) as caught:
        build(name, info, **args)
    text = str(caught.value)
    assert text.startswith(f"model.args: model '{name}' rejected its arguments: ")
    assert message in text
    assert "accepted: " in text


def test_cnn_on_flat_features_says_how_to_get_images() -> None:
    with pytest.raises(ComponentError) as caught:
        build("cnn", TABULAR)
    assert str(caught.value) == (
        "model.args: cannot infer 'in_channels' for model 'cnn' from the data (it needs "
        "(C, H, W) image inputs: e.g. data sklearn with args.as_image: true); "
        "set model.args.in_channels"
    )


def test_sequence_models_need_tokens() -> None:
    with pytest.raises(ComponentError, match="cannot infer 'vocab_size' for model 'gru'"):
        build("gru", TABULAR)


def test_tabular_models_refuse_token_sequences() -> None:
    with pytest.raises(ComponentError, match="model 'mlp' reads float features but the data"):
        build("mlp", SEQUENCE)


def test_unknown_sizes_must_be_given() -> None:
    unknown = DataInfo((4,), None, "classification", None, 10, 0)
    with pytest.raises(ComponentError, match=r"set model\.args\.out_features$"):
        build("mlp", unknown)
    assert build("mlp", unknown, out_features=2)(torch.randn(1, 4)).shape == (1, 2)


def test_model_arguments() -> None:
    assert model_arguments("gru") == [
        "vocab_size",
        "out_features",
        "embed_dim",
        "hidden_size",
        "num_layers",
        "dropout",
    ]


COMBINATIONS = [
    ("sklearn", {"name": "digits"}, "linear"),
    ("sklearn", {"name": "iris"}, "logistic"),
    ("sklearn", {"name": "wine"}, "mlp"),
    ("sklearn", {"name": "breast_cancer"}, "mlp"),
    ("sklearn", {"name": "diabetes"}, "mlp"),
    ("sklearn", {"name": "digits", "as_image": True}, "cnn"),
    ("sklearn", {"name": "digits", "as_image": True}, "mlp"),
    ("synthetic_classification", {"size": 64}, "mlp"),
    ("synthetic_classification", {"size": 64}, "linear"),
    ("synthetic_regression", {"size": 64, "outputs": 2}, "mlp"),
    ("sequence", {"size": 16, "length": 8}, "gru"),
    ("sequence", {"size": 16, "length": 8}, "transformer"),
]


@pytest.mark.parametrize(("dataset", "args", "model_name"), COMBINATIONS)
def test_every_sensible_builtin_pair_runs_forward(
    dataset: str, args: dict[str, Any], model_name: str
) -> None:
    split = load_builtin_dataset(dataset, args, seed=0, val_fraction=0.2, base_dir=Path())
    model = build(model_name, split.info)
    inputs, targets = split.train[:4]
    outputs = model(inputs)
    assert outputs.shape[0] == 4
    if split.info.task == "sequence":
        assert outputs.shape == (*targets.shape, split.info.vocab_size)
    else:
        assert outputs.shape[1] == split.info.num_outputs
