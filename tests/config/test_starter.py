"""``render_starter``: commented, valid starter configs for every sensible combination."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lrfind.assembly.probe import probe_task
from lrfind.assembly.task import build_task
from lrfind.config.load import parse_yaml, validate_config
from lrfind.config.starter import render_starter
from lrfind.errors import ConfigError
from lrfind.names import BUILTIN_DATASETS, BUILTIN_MODELS, BUILTIN_OPTIMIZERS

SEQUENCE_MODELS = {"gru", "transformer"}


def compatible(model: str, dataset: str) -> bool:
    if dataset in ("npz", "pt"):
        return True
    if model in SEQUENCE_MODELS:
        return dataset == "sequence"
    if model == "cnn":
        return dataset == "sklearn"
    return dataset != "sequence"


PAIRS = [(m, d) for m in BUILTIN_MODELS for d in BUILTIN_DATASETS]


@pytest.mark.parametrize(("model", "dataset"), PAIRS)
def test_every_pair_renders_valid_yaml_or_says_why_not(model: str, dataset: str) -> None:
    if not compatible(model, dataset):
        with pytest.raises(ConfigError, match=f"'{model}'|'{dataset}'"):
            render_starter(model, dataset)
        return
    for optimizer in BUILTIN_OPTIMIZERS:
        text = render_starter(model, dataset, optimizer)
        data, _ = parse_yaml(text)
        config = validate_config(data)
        assert config.model.target == model
        assert config.data.target == dataset
        assert config.optimizer.name == optimizer
        assert max(len(line) for line in text.splitlines()) <= 100


RUNNABLE = [
    ("mlp", "sklearn", "sgd"),
    ("linear", "synthetic_regression", "adam"),
    ("logistic", "synthetic_classification", "adamw"),
    ("cnn", "sklearn", "rmsprop"),
    ("gru", "sequence", "adagrad"),
    ("transformer", "sequence", "adamw"),
]


@pytest.mark.parametrize(("model", "dataset", "optimizer"), RUNNABLE)
def test_starters_without_files_build_and_probe(
    model: str, dataset: str, optimizer: str, tmp_path: Path
) -> None:
    data, _ = parse_yaml(render_starter(model, dataset, optimizer))
    config = validate_config(data, base_dir=tmp_path)
    task = build_task(config, torch.device("cpu"))
    probe_task(task, torch.device("cpu"))


def test_every_section_is_explained() -> None:
    text = render_starter()
    for section in ("model", "data", "optimizer", "loss", "sweep", "suggest", "expect"):
        assert f"# --- {section}" in text
    assert text.startswith("# lrfind starter config: mlp on sklearn with sgd.")
    assert yaml.safe_load(text)["name"] == "mlp-sklearn"


def test_cnn_starter_asks_for_images() -> None:
    data = yaml.safe_load(render_starter("cnn", "sklearn"))
    assert data["data"]["args"] == {"name": "digits", "as_image": True}


def test_adamw_starter_shows_param_groups() -> None:
    data = yaml.safe_load(render_starter(optimizer="adamw"))
    assert data["optimizer"]["param_groups"] == [{"match": "@no_decay", "weight_decay": 0.0}]
    assert "param_groups" not in yaml.safe_load(render_starter(optimizer="sgd"))["optimizer"]


def test_file_datasets_point_at_a_placeholder() -> None:
    text = render_starter("mlp", "csv")
    assert "REPLACE" in text
    assert yaml.safe_load(text)["data"]["args"]["path"] == "data/train.csv"


def test_import_paths_are_accepted() -> None:
    text = render_starter("mypkg.models:Net", "mypkg.data:make", "mypkg.optim:Lion", name="mine")
    data, _ = parse_yaml(text)
    config = validate_config(data)
    assert config.name == "mine"
    assert config.model.target == "mypkg.models:Net"
    assert config.optimizer.name == "mypkg.optim:Lion"


def test_unknown_choice_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as caught:
        render_starter(model="mpl")
    assert str(caught.value) == (
        "unknown model 'mpl' (did you mean 'mlp'?); choose one of linear, logistic, mlp, cnn, "
        "gru, transformer or an import path 'pkg.module:callable'"
    )


def test_invalid_name() -> None:
    with pytest.raises(ConfigError, match="invalid run name 'my run'"):
        render_starter(name="my run")


def test_incompatible_pair_message() -> None:
    with pytest.raises(ConfigError) as caught:
        render_starter("gru", "sklearn")
    assert str(caught.value) == (
        "model 'gru' reads token sequences: use dataset 'sequence' (or npz/pt tokens)"
    )
