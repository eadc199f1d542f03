"""Tasks for the long-run benchmark: runs of 10x to 100x a 100-step sweep.

Five tasks draw their data from a large pool made by a fixed generator (a teacher network, a
Gaussian mixture, a Markov chain): a 10k-step run sees each pool example two to five times, so it
does not just memorise a small set, and the best LR can keep moving as it trains. One task is
the opposite, real case: ``digits-mlp-long`` trains on sklearn's 1257 digits for hundreds of
epochs. The data split is fixed per task; the seed sets the initial weights and batch order.

Each task is a ``quality_tasks.Task`` so the benchmark helpers (``quality.validation_curve``,
``BatchLoader``) train it as they train the short tasks.
"""

from __future__ import annotations

import numpy as np
import torch
from quality_tasks import (
    SequenceCrossEntropy,
    Split,
    Task,
    _adam,
    _adamw,
    _mlp,
    _rmsprop,
    _sgd_momentum,
    digits_flat,
)
from torch import nn

#: Training pool and validation set sizes of the abundant-data tasks.
POOL = 262_144
VALIDATION = 4_096
#: The sweep the horizons are multiples of (lrfind's default ``sweep.steps``).
SWEEP_STEPS = 100


def _teacher_features(rng: np.random.Generator, count: int, width: int) -> np.ndarray:
    return rng.standard_normal((count, width)).astype(np.float32)


def _teacher_forward(x: np.ndarray, rng: np.random.Generator, hidden: int, out: int) -> np.ndarray:
    """A fixed random two-layer tanh network: the function the student learns."""
    first = rng.standard_normal((x.shape[1], hidden)) / np.sqrt(x.shape[1])
    second = rng.standard_normal((hidden, out)) / np.sqrt(hidden)
    return np.tanh(x @ first * 1.5) @ second


def _as_split(x: np.ndarray, y: torch.Tensor) -> Split:
    features = torch.as_tensor(x, dtype=torch.float32)
    return Split(features[VALIDATION:], y[VALIDATION:], features[:VALIDATION], y[:VALIDATION])


def teacher_regression() -> Split:
    """y = teacher(x) + noise (noise variance a quarter of the signal's), 16 features."""
    rng = np.random.default_rng(101)
    x = _teacher_features(rng, POOL + VALIDATION, 16)
    signal = _teacher_forward(x, rng, 32, 1)
    y = signal + 0.5 * signal.std() * rng.standard_normal(signal.shape)
    y = (y - y.mean()) / y.std()
    return _as_split(x, torch.as_tensor(y, dtype=torch.float32))


def teacher_classes() -> Split:
    """10 classes: the argmax of a random teacher's logits, 15% of labels replaced at random."""
    rng = np.random.default_rng(202)
    x = _teacher_features(rng, POOL + VALIDATION, 32)
    labels = _teacher_forward(x, rng, 64, 10).argmax(axis=1)
    noisy = rng.random(len(labels)) < 0.15
    labels[noisy] = rng.integers(0, 10, size=int(noisy.sum()))
    return _as_split(x, torch.as_tensor(labels, dtype=torch.long))


def gaussian_mixture() -> Split:
    """10 overlapping Gaussian classes in 32 dimensions (the Bayes error is well above 0)."""
    rng = np.random.default_rng(303)
    means = rng.standard_normal((10, 32)) * 0.45
    labels = rng.integers(0, 10, size=POOL + VALIDATION)
    x = means[labels] + rng.standard_normal((len(labels), 32))
    return _as_split(x.astype(np.float32), torch.as_tensor(labels, dtype=torch.long))


def markov_stream(vocab: int = 16, length: int = 8) -> Split:
    """Next-token prediction on a fixed random second-order Markov chain (4 allowed successors of
    each context, Dirichlet weights): 65k training sequences of 8 tokens, 4096 for validation."""
    rng = np.random.default_rng(404)
    count = 65_536 + VALIDATION
    allowed = np.stack([rng.choice(vocab, size=4, replace=False) for _ in range(vocab * vocab)])
    cumulative = np.cumsum(rng.dirichlet(np.ones(4), size=vocab * vocab), axis=1)
    tokens = np.zeros((count, length + 1), dtype=np.int64)
    tokens[:, :2] = rng.integers(0, vocab, size=(count, 2))
    for t in range(2, length + 1):
        context = tokens[:, t - 2] * vocab + tokens[:, t - 1]
        pick = (rng.random(count)[:, None] > cumulative[context]).sum(axis=1)
        tokens[:, t] = allowed[context, np.minimum(pick, 3)]
    x, y = torch.as_tensor(tokens[:, :-1]), torch.as_tensor(tokens[:, 1:])
    return Split(x[VALIDATION:], y[VALIDATION:], x[:VALIDATION], y[:VALIDATION])


class StreamGRU(nn.Module):
    """Embedding, one GRU layer, a linear head over the vocabulary."""

    def __init__(self, vocab: int = 16, width: int = 24) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.gru = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.gru(self.embed(tokens))
        return self.head(hidden)


def _norm_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(32, 64),
        nn.LayerNorm(64),
        nn.GELU(),
        nn.Linear(64, 64),
        nn.LayerNorm(64),
        nn.GELU(),
        nn.Linear(64, 10),
    )


LONG_TASKS: tuple[Task, ...] = (
    Task(
        name="teacher-mlp",
        kind="regression MLP 16-64-64-1 on a teacher network's outputs + noise",
        optimizer_name="Adam",
        build_model=lambda: _mlp([16, 64, 64, 1]),
        make_optimizer=_adam,
        loss_fn=nn.MSELoss(),
        data=teacher_regression,
        batch_size=64,
        budget_steps=SWEEP_STEPS,
    ),
    Task(
        name="teacher-classes-sgd",
        kind="MLP 32-128-10 on a teacher's labels (15% noise)",
        optimizer_name="SGD(momentum=0.9)",
        build_model=lambda: _mlp([32, 128, 10]),
        make_optimizer=_sgd_momentum,
        loss_fn=nn.CrossEntropyLoss(),
        data=teacher_classes,
        batch_size=64,
        budget_steps=SWEEP_STEPS,
    ),
    Task(
        name="mixture-softmax",
        kind="softmax regression on 10 overlapping Gaussians",
        optimizer_name="RMSprop",
        build_model=lambda: nn.Linear(32, 10),
        make_optimizer=_rmsprop,
        loss_fn=nn.CrossEntropyLoss(),
        data=gaussian_mixture,
        batch_size=64,
        budget_steps=SWEEP_STEPS,
    ),
    Task(
        name="norm-mlp-adamw",
        kind="LayerNorm GELU MLP 32-64-64-10 on a teacher's labels",
        optimizer_name="AdamW(weight_decay=0.01)",
        build_model=_norm_mlp,
        make_optimizer=_adamw,
        loss_fn=nn.CrossEntropyLoss(),
        data=teacher_classes,
        batch_size=64,
        budget_steps=SWEEP_STEPS,
    ),
    Task(
        name="markov-stream-gru",
        kind="GRU next-token on a Markov stream (65k sequences)",
        optimizer_name="Adam",
        build_model=StreamGRU,
        make_optimizer=_adam,
        loss_fn=SequenceCrossEntropy(),
        data=markov_stream,
        batch_size=32,
        budget_steps=SWEEP_STEPS,
    ),
    Task(
        name="digits-mlp-long",
        kind="MLP 64-128-10 on sklearn digits (1257 examples: hundreds of epochs)",
        optimizer_name="Adam",
        build_model=lambda: _mlp([64, 128, 10]),
        make_optimizer=_adam,
        loss_fn=nn.CrossEntropyLoss(),
        data=digits_flat,
        batch_size=64,
        budget_steps=SWEEP_STEPS,
    ),
)

LONG_TASKS_BY_NAME: dict[str, Task] = {task.name: task for task in LONG_TASKS}

#: The first quarter-decade window per task (exponents k of 10**(k/4)); the ground truth widens
#: it while the best LR at any checkpoint sits on its edge.
START_WINDOWS: dict[str, tuple[int, int]] = {
    "teacher-mlp": (-16, -8),
    "teacher-classes-sgd": (-11, -3),
    "mixture-softmax": (-15, -7),
    "norm-mlp-adamw": (-16, -8),
    "markov-stream-gru": (-13, -5),
    "digits-mlp-long": (-16, -8),
}

__all__ = ["LONG_TASKS", "LONG_TASKS_BY_NAME", "START_WINDOWS", "SWEEP_STEPS", "StreamGRU"]
