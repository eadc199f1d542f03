"""Tiny Hugging Face tasks built from configs (random init, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

transformers.utils.logging.set_verbosity_error()

VOCAB = 64


def token_dataset(rows: int = 64, length: int = 16, seed: int = 0) -> Any:
    """A datasets.Dataset of counting sequences from random starts (the next token is the last
    plus one, something a tiny model learns in a few steps); labels are the inputs."""
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, VOCAB, (rows, 1), generator=generator)
    ids = (starts + torch.arange(length)) % VOCAB
    return datasets.Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})


def tiny_gpt2() -> Any:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=1, n_head=2, n_embd=16, vocab_size=VOCAB, n_positions=32,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(config)


def tiny_bert() -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=2, pad_token_id=0,
    )  # fmt: skip
    return transformers.BertForSequenceClassification(config)


def sentence_dataset(rows: int = 64, seed: int = 0) -> Any:
    """Sentences of 4 to 12 tokens; the label is whether token 1 occurs."""
    generator = torch.Generator().manual_seed(seed)
    records: dict[str, list[Any]] = {"input_ids": [], "label": []}
    for _ in range(rows):
        length = int(torch.randint(4, 13, (1,), generator=generator))
        ids = torch.randint(1, VOCAB, (length,), generator=generator).tolist()
        records["input_ids"].append(ids)
        records["label"].append(int(1 in ids))
    return datasets.Dataset.from_dict(records)


def pad_collator(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pads to the longest row and builds the attention mask (what a tokenizer's collator does)."""
    longest = max(len(row["input_ids"]) for row in rows)
    ids = torch.zeros(len(rows), longest, dtype=torch.long)
    mask = torch.zeros(len(rows), longest, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row["input_ids"])] = torch.tensor(row["input_ids"])
        mask[i, : len(row["input_ids"])] = 1
    labels = torch.tensor([row["label"] for row in rows])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def training_args(out: Path, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "output_dir": str(out),
        "per_device_train_batch_size": 8,
        "num_train_epochs": 2,
        "learning_rate": 5e-4,
        "report_to": [],
        "use_cpu": True,
        "save_strategy": "no",
        "logging_strategy": "no",
        "disable_tqdm": True,
        **overrides,
    }
    return transformers.TrainingArguments(**options)
