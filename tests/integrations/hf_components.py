"""Components a YAML config names by import path: a ``datasets.Dataset`` factory, its collate
function and a tiny BERT (tests/integrations/test_data.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from tests.integrations.hf_tasks import (
    pad_collator,
    sentence_dataset,
    tiny_bert,
    tiny_gpt2,
    token_dataset,
)

__all__ = ["pad_collator", "sentence_dataset", "tiny_bert", "tiny_gpt2", "token_dataset"]


def sentences(rows: int = 96) -> Any:
    """One ``datasets.Dataset``: lrfind splits it and batches it with ``data.collate``."""
    return sentence_dataset(rows)


def sentences_with_collator(rows: int = 96) -> tuple[Any, Any, Any]:
    """``(train, val, collate)``: the collate function comes with the data."""
    return sentence_dataset(rows), sentence_dataset(32, seed=1), pad_collator


def counting_tokens(rows: int = 64) -> Any:
    """Equal-length token rows: no collate function needed (lrfind asks for torch tensors)."""
    return token_dataset(rows)


def loaders(batch_size: int = 8) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """DataLoaders the factory batches itself: data.batch_size and friends cannot apply."""
    generator = torch.Generator().manual_seed(0)
    train = DataLoader(
        sentence_dataset(64), batch_size=batch_size, shuffle=True, collate_fn=pad_collator,
        generator=generator,
    )  # fmt: skip
    val = DataLoader(sentence_dataset(16, seed=1), batch_size=batch_size, collate_fn=pad_collator)
    return train, val
