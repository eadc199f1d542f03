"""A user model and data factory for configs/custom/custom.yaml (any importable code works).

lrfind imports this file because custom.yaml names ``models:TinyResNet`` and
``models:make_spirals`` and the config's folder is searched first.
"""

# ruff: noqa: TID253  (user code, not lrfind's start-up path: importing torch at the top is fine)

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import TensorDataset


class Block(nn.Module):
    """A residual MLP block: x + W2 relu(W1 norm(x))."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.hidden = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(torch.relu(self.hidden(self.norm(x))))


class TinyResNet(nn.Module):
    """A residual MLP; lrfind fills ``in_features`` and ``num_classes`` from the data."""

    def __init__(
        self, in_features: int, num_classes: int, width: int = 64, blocks: int = 2
    ) -> None:
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(*(Block(width) for _ in range(blocks)))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def make_spirals(
    size: int = 1500, arms: int = 3, turns: float = 0.75, noise: float = 0.15, seed: int = 0
) -> TensorDataset:
    """Interleaved 2-D spirals, one class per arm: inputs float32 (N, 2), targets int64 (N,)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(size) % arms
    radius = torch.rand(size, generator=generator)
    angle = labels * (2 * math.pi / arms) + radius * turns * 2 * math.pi
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    points += noise * radius[:, None] * torch.randn(size, 2, generator=generator)
    return TensorDataset(points * 2, labels)
