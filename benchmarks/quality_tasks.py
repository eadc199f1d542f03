"""The small offline tasks the recommendation-quality benchmark trains (see benchmarks/quality.py).

Each task is a model, an optimizer, a loss and fixed train/validation tensors. The data split is
fixed per task; the seed controls the initial weights and the order of the batches. Every task
trains for a few hundred steps in well under a few seconds on one CPU core.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

OptimizerFactory = Callable[[list[nn.Parameter], float], torch.optim.Optimizer]


@dataclass(frozen=True)
class Split:
    """Train and validation tensors of one task."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


@dataclass(frozen=True)
class Task:
    """One benchmark task: how to build its model and optimizer, its loss, data and budget."""

    name: str
    kind: str
    optimizer_name: str
    build_model: Callable[[], nn.Module]
    make_optimizer: OptimizerFactory
    loss_fn: nn.Module
    data: Callable[[], Split]
    batch_size: int
    budget_steps: int


class BatchLoader:
    """An iterable of shuffled mini-batches over fixed tensors, reproducible from its seed.

    Each ``iter()`` yields one epoch (drop_last); a new epoch reshuffles with the loader's own
    generator, like a ``DataLoader`` with ``shuffle=True`` and a seeded generator, but without the
    per-batch collate overhead (the tasks are tiny, so that overhead would dominate).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.x) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.x), generator=self.generator)
        for batch in range(len(self)):
            index = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            yield self.x[index], self.y[index]


def _split(x: np.ndarray, y: np.ndarray, *, classify: bool, seed: int = 0) -> Split:
    """Split 70/30 with a fixed permutation and standardize features (and regression targets)."""
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.7 * len(x))
    train, val = order[:cut], order[cut:]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
    x = (x - mean) / std
    if classify:
        y_tensor = torch.as_tensor(y, dtype=torch.long)
    else:
        y = (y - y[train].mean()) / y[train].std()
        y_tensor = torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)
    x_tensor = torch.as_tensor(x, dtype=torch.float32)
    return Split(x_tensor[train], y_tensor[train], x_tensor[val], y_tensor[val])


def digits_flat() -> Split:
    """sklearn digits as 64 standardized features, 10 classes."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _split(digits.data.astype(np.float64), digits.target, classify=True)


def digits_images() -> Split:
    """sklearn digits as 1x8x8 images."""
    split = digits_flat()
    return Split(
        split.x_train.reshape(-1, 1, 8, 8),
        split.y_train,
        split.x_val.reshape(-1, 1, 8, 8),
        split.y_val,
    )


def diabetes() -> Split:
    """sklearn diabetes: 10 features, standardized target."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    return _split(data.data, data.target.astype(np.float64), classify=False)


def friedman() -> Split:
    """Friedman #1 synthetic regression: 10 features (5 informative), noise 1.0."""
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=0)
    return _split(x, y, classify=False)


def markov_tokens(vocab: int = 12, length: int = 24, sequences: int = 1500) -> Split:
    """Next-token prediction on sequences from a fixed random second-order Markov chain.

    Each (previous two tokens) context allows only three next tokens, with random probabilities,
    so a recurrent model can learn a loss well below log(vocab) but not zero.
    """
    rng = np.random.default_rng(1234)
    allowed = np.stack([rng.choice(vocab, size=3, replace=False) for _ in range(vocab * vocab)])
    weights = rng.dirichlet(np.ones(3), size=vocab * vocab)
    tokens = np.zeros((sequences, length + 1), dtype=np.int64)
    tokens[:, :2] = rng.integers(0, vocab, size=(sequences, 2))
    for t in range(2, length + 1):
        context = tokens[:, t - 2] * vocab + tokens[:, t - 1]
        pick = np.array([rng.choice(3, p=weights[c]) for c in context])
        tokens[:, t] = allowed[context, pick]
    cut = int(0.7 * sequences)
    x = torch.as_tensor(tokens[:, :-1])
    y = torch.as_tensor(tokens[:, 1:])
    return Split(x[:cut], y[:cut], x[cut:], y[cut:])


class SequenceCrossEntropy(nn.Module):
    """Cross-entropy over every position of a (batch, time, vocab) output."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))


class TokenGRU(nn.Module):
    """Embedding -> one-layer GRU -> linear read-out to the vocabulary."""

    def __init__(self, vocab: int = 12, embed: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.gru(self.embed(tokens))
        return self.head(hidden)


def _mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def _small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def _sgd_momentum(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def _adam(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


def _adamw(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def _rmsprop(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr)


def _adagrad(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=lr)


TASKS: tuple[Task, ...] = (
    Task(
        name="digits-logreg",
        kind="logistic regression",
        optimizer_name="SGD(momentum=0.9)",
        build_model=lambda: nn.Linear(64, 10),
        make_optimizer=_sgd_momentum,
        loss_fn=nn.CrossEntropyLoss(),
        data=digits_flat,
        batch_size=64,
        budget_steps=400,
    ),
    Task(
        name="digits-mlp",
        kind="MLP 64-128-10",
        optimizer_name="Adam",
        build_model=lambda: _mlp([64, 128, 10]),
        make_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        data=digits_flat,
        batch_size=64,
        budget_steps=400,
    ),
    Task(
        name="digits-cnn",
        kind="CNN on 1x8x8",
        optimizer_name="AdamW(weight_decay=0.01)",
        build_model=_small_cnn,
        make_optimizer=_adamw,
        loss_fn=nn.CrossEntropyLoss(),
        data=digits_images,
        batch_size=64,
        budget_steps=400,
    ),
    Task(
        name="diabetes-mlp",
        kind="regression MLP 10-32-1",
        optimizer_name="RMSprop",
        build_model=lambda: _mlp([10, 32, 1]),
        make_optimizer=_rmsprop,
        loss_fn=nn.MSELoss(),
        data=diabetes,
        batch_size=32,
        budget_steps=400,
    ),
    Task(
        name="friedman-mlp",
        kind="regression MLP 10-64-64-1",
        optimizer_name="Adagrad",
        build_model=lambda: _mlp([10, 64, 64, 1]),
        make_optimizer=_adagrad,
        loss_fn=nn.MSELoss(),
        data=friedman,
        batch_size=64,
        budget_steps=400,
    ),
    Task(
        name="deep-mlp",
        kind="8-layer un-normalized ReLU MLP",
        optimizer_name="SGD(momentum=0.9)",
        build_model=lambda: _mlp([64] * 8 + [10]),
        make_optimizer=_sgd_momentum,
        loss_fn=nn.CrossEntropyLoss(),
        data=digits_flat,
        batch_size=64,
        budget_steps=400,
    ),
    Task(
        name="markov-gru",
        kind="GRU next-token",
        optimizer_name="Adam",
        build_model=TokenGRU,
        make_optimizer=_adam,
        loss_fn=SequenceCrossEntropy(),
        data=markov_tokens,
        batch_size=32,
        budget_steps=400,
    ),
)

TASKS_BY_NAME: dict[str, Task] = {task.name: task for task in TASKS}
