"""A ``loss_fn`` given (batch, time, classes) logits and (batch, time) targets: the built-in loss
names flatten them; a user's loss that cannot take them fails with one line saying what to pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lrfind import range_test
from lrfind.errors import SweepError


class TokenModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.head = nn.Linear(8, 10)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.embed(tokens))
        return logits


def loader() -> DataLoader[tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 10, (64, 12), generator=generator)
    return DataLoader(TensorDataset(tokens, tokens.roll(-1, dims=1)), batch_size=16)


def test_an_unflattened_sequence_loss_says_what_to_pass() -> None:
    """Bug: F.cross_entropy raised "Expected target size [16, 10], got [16, 12]" and no more."""
    model = TokenModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(SweepError) as raised:
        range_test(model, optimizer, F.cross_entropy, loader(), steps=10)
    message = str(raised.value)
    assert "\n" not in message
    assert "(batch, time, classes) outputs (16, 12, 10) with (batch, time) targets (16, 12)" in (
        message
    )
    assert message.endswith(
        "loss_fn=lambda logits, targets: F.cross_entropy(logits.flatten(0, 1), targets.flatten())"
    )


def test_the_suggested_loss_runs() -> None:
    model = TokenModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = range_test(
        model,
        optimizer,
        lambda logits, targets: F.cross_entropy(logits.flatten(0, 1), targets.flatten()),
        loader(),
        steps=20,
        refine="off",
    )
    assert len(result.history.losses) > 1
