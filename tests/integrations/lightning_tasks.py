"""A tiny character-level LSTM language model as a Lightning user writes one: a LightningModule
(AdamW, ``self.log`` in its steps, ``configure_optimizers`` in a chosen form) and a
LightningDataModule over a few hundred windows of generated text."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("pytorch_lightning")

WORDS = ("the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "it")
VOCAB = sorted(set(" ".join(WORDS)))
LENGTH = 24


def text(words: int, seed: int) -> str:
    """Words drawn from a small list: enough structure for an LSTM to learn in a few steps."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def windows(chars: str, count: int, seed: int) -> TensorDataset:
    """``count`` (input, next-character target) windows of ``LENGTH`` characters."""
    ids = torch.tensor([VOCAB.index(char) for char in chars])
    starts = torch.randint(
        0, len(ids) - LENGTH - 1, (count,), generator=torch.Generator().manual_seed(seed)
    )
    rows = torch.stack([ids[start : start + LENGTH + 1] for start in starts.tolist()])
    return TensorDataset(rows[:, :-1], rows[:, 1:])


class CharData(pl.LightningDataModule):
    """Training and validation windows; ``setup`` builds them (as a real datamodule would)."""

    def __init__(self, batch_size: int = 16, train_windows: int = 128) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.train_windows = train_windows

    def setup(self, stage: str | None = None) -> None:
        self.train = windows(text(600, 0), self.train_windows, 0)
        self.val = windows(text(200, 1), 32, 1)

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.val, batch_size=self.batch_size)


class CharLM(pl.LightningModule):
    """An embedding, a one-layer LSTM and a head over ``VOCAB``; ``form`` picks which of
    Lightning's ``configure_optimizers`` forms it returns."""

    def __init__(self, lr: float = 1e-3, form: str = "dict", hidden: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(len(VOCAB), 16)
        self.lstm = nn.LSTM(16, hidden, batch_first=True)
        self.head = nn.Linear(hidden, len(VOCAB))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.embed(inputs))
        logits: torch.Tensor = self.head(hidden)
        return logits

    def _loss(self, batch: Any) -> torch.Tensor:
        inputs, targets = batch
        return F.cross_entropy(self(inputs).flatten(0, 1), targets.flatten())

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        form = self.hparams.form
        if form == "optimizer":
            return optimizer
        if form == "list":
            return [optimizer]
        total = 40
        if form == "tuple":
            cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
            return [optimizer], [{"scheduler": cosine, "interval": "step"}]
        if form == "onecycle":
            onecycle = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=self.hparams.lr, total_steps=total, pct_start=0.25
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": onecycle, "interval": "step"},
            }
        warmup = 4

        def linear(step: int) -> float:
            return step / warmup if step < warmup else max(0.0, (total - step) / (total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def trainer(**kwargs: Any) -> Any:
    """A quiet CPU Trainer: no logger, checkpoints or progress bar."""
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": 40,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return pl.Trainer(**(options | kwargs))
