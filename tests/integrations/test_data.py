"""``datasets.Dataset`` factories and ``data.collate`` from the YAML, and DataLoader factories
whose data keys cannot apply (warned, and left out of the saved config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import lrfind
from lrfind.config.load import load_config
from lrfind.errors import ConfigError

pytest.importorskip("datasets")
pytest.importorskip("transformers")

COMPONENTS = "tests.integrations.hf_components"


def bert_config(tmp_path: Path, data: dict[str, Any], **extra: Any) -> Path:
    document = {
        "name": "hf",
        "seed": 0,
        "device": "cpu",
        "model": {"target": f"{COMPONENTS}:tiny_bert"},
        "data": data,
        "loss": "model",
        "optimizer": {"name": "adamw"},
        "sweep": {"steps": 30, "start_lr": 1e-5, "end_lr": 1.0},
        "suggest": {"refine": "off"},
        "output": {"dir": str(tmp_path / "runs")},
        **extra,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_a_datasets_factory_with_data_collate_runs_from_the_yaml(tmp_path: Path) -> None:
    data = {
        "target": f"{COMPONENTS}:sentences",
        "collate": f"{COMPONENTS}:pad_collator",
        "batch_size": 8,
        "val_fraction": 0.25,
    }
    run = lrfind.sweep(bert_config(tmp_path, data))
    assert run.result.history.steps > 10
    assert run.result.info.batch_size == 8
    assert run.result.info.batches_per_epoch == 9  # 72 of 96 rows (val_fraction 0.25), by 8
    saved = yaml.safe_load((run.run_dir / "config.yaml").read_text(encoding="utf-8"))  # type: ignore[operator]
    assert saved["data"]["collate"] == f"{COMPONENTS}:pad_collator"


def test_the_factory_may_return_its_collate_function(tmp_path: Path) -> None:
    data = {"target": f"{COMPONENTS}:sentences_with_collator", "batch_size": 16}
    run = lrfind.sweep(bert_config(tmp_path, data))
    assert run.result.info.batches_per_epoch == 6


def test_equal_length_rows_need_no_collate(tmp_path: Path) -> None:
    data = {"target": f"{COMPONENTS}:counting_tokens", "batch_size": 8}
    config = bert_config(tmp_path, data, model={"target": f"{COMPONENTS}:tiny_gpt2"})
    run = lrfind.sweep(config)
    assert run.result.history.steps > 10


def test_dataloader_factories_warn_about_keys_and_do_not_record_them(tmp_path: Path) -> None:
    data = {"target": f"{COMPONENTS}:loaders", "batch_size": 32, "shuffle": False}
    run = lrfind.sweep(bert_config(tmp_path, data))
    assert (
        "data.batch_size, data.shuffle ignored: loaders returned DataLoaders, which keep their "
        "own batching, order and workers; return Datasets to have them apply, or remove the keys"
    ) in run.result.warnings
    assert run.result.info.batch_size == 8  # the loader's own
    saved = yaml.safe_load((run.run_dir / "config.yaml").read_text(encoding="utf-8"))  # type: ignore[operator]
    assert not {"batch_size", "shuffle", "val_fraction", "collate"} & set(saved["data"])


def test_data_collate_must_be_an_import_path(tmp_path: Path) -> None:
    data = {"target": f"{COMPONENTS}:sentences", "collate": "pad_collator"}
    with pytest.raises(ConfigError, match=r"data\.collate"):
        load_config(bert_config(tmp_path, data))
