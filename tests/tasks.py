"""Tiny, deterministic PyTorch tasks reused across engine and API tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


@dataclass
class Task:
    """A model, optimizer, loss and loaders ready for a range test."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    train_loader: DataLoader
    val_loader: DataLoader


def classification_task(
    seed: int = 0,
    samples: int = 256,
    features: int = 10,
    classes: int = 3,
    batch_size: int = 32,
    optimizer: str = "sgd",
    dropout: float = 0.0,
    batchnorm: bool = False,
) -> Task:
    """Return a small linearly separable-ish classification task with an MLP."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=generator) * 2
    labels = torch.randint(0, classes, (samples,), generator=generator)
    inputs = centers[labels] + torch.randn(samples, features, generator=generator)
    split = samples * 3 // 4
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(features, 32)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(32))
    layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, classes)]
    model = nn.Sequential(*layers)
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    train = TensorDataset(inputs[:split], labels[:split])
    val = TensorDataset(inputs[split:], labels[split:])
    return Task(
        model=model,
        optimizer=opt,
        loss_fn=nn.CrossEntropyLoss(),
        train_loader=DataLoader(
            train,
            batch_size=batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        ),
        val_loader=DataLoader(val, batch_size=batch_size),
    )


def regression_task(seed: int = 0, samples: int = 128, batch_size: int = 16) -> Task:
    """Return a linear regression task (y = Xw + noise) with a single Linear layer."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, 5, generator=generator)
    weights = torch.randn(5, 1, generator=generator)
    targets = inputs @ weights + 0.1 * torch.randn(samples, 1, generator=generator)
    torch.manual_seed(seed)
    model = nn.Linear(5, 1)
    dataset = TensorDataset(inputs, targets)
    return Task(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=1e-3),
        loss_fn=nn.MSELoss(),
        train_loader=DataLoader(dataset, batch_size=batch_size, shuffle=False),
        val_loader=DataLoader(dataset, batch_size=batch_size),
    )
