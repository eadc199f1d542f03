"""The small offline tasks the recommendation-quality benchmark trains (see benchmarks/quality.py).

Each task is a model, an optimizer, a loss and fixed train/validation tensors. The data split is
fixed per task; the seed controls the initial weights and the order of the batches. Every task
trains for a few hundred steps in at most about three seconds on one CPU core.

The two language-model tasks (``text-gru``, ``text-transformer``) read real text offline: a fixed
list of standard-library modules of the running interpreter (``STDLIB_CORPUS``), see
``stdlib_corpus``. The fine-tuning task (``finetune-transformer``) starts from that transformer
pretrained on the same corpus by this module (``pretrained_state``: cached in
``benchmarks/cache/finetune-transformer.pt``, pretrained again when missing or stale, about a
minute) and fine-tunes it on English prose, the interpreter's ``pydoc_data/topics.py``
(``finetune_corpus``).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import itertools
import json
import math
import os
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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
    #: Identifies data read from the machine (the ground truth stores it; a mismatch warns).
    fingerprint: Callable[[], str] | None = None


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


#: The LM corpus: these modules of the running interpreter's standard library (every CPython 3.10+
#: ships them), read as bytes in this order, concatenated and cut to ``STDLIB_CORPUS_BYTES``. Their
#: text differs a little between Python versions; the ground truth records the corpus's sha256.
STDLIB_CORPUS: tuple[str, ...] = (
    "argparse.py",
    "dataclasses.py",
    "functools.py",
    "textwrap.py",
    "enum.py",
    "difflib.py",
    "statistics.py",
)
STDLIB_CORPUS_BYTES = 393_216
#: LM windows: this many input bytes, targets shifted by one.
TEXT_SEQUENCE_LENGTH = 32
#: Window i (by position in the corpus) goes to validation when i % TEXT_VAL_EVERY == last.
TEXT_VAL_EVERY = 10


@functools.lru_cache(maxsize=1)
def stdlib_corpus() -> bytes:
    """The LM corpus: the ``STDLIB_CORPUS`` modules' bytes, concatenated, first 384 KiB.

    Raises:
        FileNotFoundError: a module is missing from this interpreter's standard library.
    """
    root = Path(sysconfig.get_path("stdlib"))
    text = b"".join((root / name).read_bytes() for name in STDLIB_CORPUS)
    return text[:STDLIB_CORPUS_BYTES]


def corpus_sha256() -> str:
    """The sha256 of ``stdlib_corpus()`` (the ground truth is only valid for this text)."""
    return hashlib.sha256(stdlib_corpus()).hexdigest()


@functools.lru_cache(maxsize=1)
def corpus_vocabulary() -> tuple[int, ...]:
    """The byte values that occur in the corpus, sorted: token i is byte ``vocabulary[i]``."""
    return tuple(sorted(set(stdlib_corpus())))


@functools.lru_cache(maxsize=1)
def stdlib_text() -> Split:
    """Byte-level next-token prediction on the standard-library corpus.

    The corpus is cut into consecutive non-overlapping windows of ``TEXT_SEQUENCE_LENGTH + 1``
    bytes (inputs: the first 32, targets: the last 32); every tenth window by position (i % 10
    == 9) is validation, the rest training (about 10.7k / 1.2k windows). Tokens index the bytes
    seen in the corpus (``corpus_vocabulary``, about 100).
    """
    corpus = np.frombuffer(stdlib_corpus(), dtype=np.uint8)
    lookup = np.zeros(256, dtype=np.int64)
    vocabulary = corpus_vocabulary()
    lookup[list(vocabulary)] = np.arange(len(vocabulary))
    window = TEXT_SEQUENCE_LENGTH + 1
    count = len(corpus) // window
    windows = torch.as_tensor(lookup[corpus[: count * window]].reshape(count, window))
    is_val = torch.arange(count) % TEXT_VAL_EVERY == TEXT_VAL_EVERY - 1
    train, val = windows[~is_val], windows[is_val]
    return Split(train[:, :-1], train[:, 1:], val[:, :-1], val[:, 1:])


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


class TextGRU(nn.Module):
    """Byte-level LM: embedding (32) -> one-layer GRU (64) -> linear read-out to the bytes."""

    def __init__(self, embed: int = 32, hidden: int = 64) -> None:
        super().__init__()
        vocab = len(corpus_vocabulary())
        self.embed = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.gru(self.embed(tokens))
        return self.head(hidden)


class CausalBlock(nn.Module):
    """Pre-LayerNorm transformer block: causal multi-head self-attention, then a GELU MLP (4x)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, width = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, time, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, time, width))
        return x + self.mlp(self.norm2(x))


class TextTransformer(nn.Module):
    """Tiny decoder-only byte LM: token + learned position embeddings, causal blocks, read-out."""

    def __init__(self, width: int = 32, heads: int = 2, layers: int = 2) -> None:
        super().__init__()
        vocab = len(corpus_vocabulary())
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(0.02 * torch.randn(1, TEXT_SEQUENCE_LENGTH, width))
        self.blocks = nn.Sequential(*(CausalBlock(width, heads) for _ in range(layers)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position[:, : tokens.shape[1]]
        return self.head(self.norm(self.blocks(x)))


#: The fine-tuning text: the pydoc topics of the running interpreter (``help("assert")`` etc.):
#: reStructuredText English prose with grammar rules and short code examples, a clearly different
#: distribution from the pretraining corpus's Python source. Every CPython 3.10+ ships
#: ``pydoc_data/topics.py``; its ``topics`` dict is read without importing it, its values joined
#: in sorted key order, the bytes outside the pretraining vocabulary dropped (a few hundred
#: non-ASCII characters), the rest cut to ``FINETUNE_BYTES``: a small fine-tuning set (about
#: 3.6k training windows: 300 steps of 32 are 2.7 epochs, 4x that 11 epochs).
FINETUNE_SOURCE = "pydoc_data/topics.py"
FINETUNE_BYTES = 131_072
#: How ``finetune-transformer``'s starting point is pretrained on ``stdlib_text`` (seed fixed):
#: AdamW at ``peak_lr`` with a linear warmup, then cosine decay to zero. Part of the cache key.
PRETRAIN_RECIPE: dict[str, float | int | str] = {
    "model": "TextTransformer",
    "width": 32,
    "heads": 2,
    "layers": 2,
    "optimizer": "AdamW",
    "weight_decay": 0.01,
    "peak_lr": 1e-2,
    "schedule": "linear warmup, cosine to 0",
    "warmup_steps": 100,
    "steps": 3000,
    "batch_size": 32,
    "seed": 0,
}
#: The pretrained weights (about 140 KB, committed so the ground truth's starting point is the
#: file's, not a re-run's): a dict with ``key`` (``pretrain_key()``), ``state_dict`` and ``info``.
PRETRAINED_CACHE = Path(__file__).resolve().parent / "cache" / "finetune-transformer.pt"


@functools.lru_cache(maxsize=1)
def finetune_corpus() -> bytes:
    """The fine-tuning text (see ``FINETUNE_SOURCE``): pydoc's topics, first 128 KiB.

    Raises:
        FileNotFoundError: this interpreter's standard library lacks ``pydoc_data/topics.py``.
    """
    path = Path(sysconfig.get_path("stdlib")) / FINETUNE_SOURCE
    tree = ast.parse(path.read_text(encoding="utf-8"))
    topics: dict[str, str] = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(target, ast.Name) and target.id == "topics" for target in node.targets)
    )
    text = "".join(topics[key] for key in sorted(topics)).encode("utf-8")
    unknown = bytes(sorted(set(range(256)) - set(corpus_vocabulary())))
    return text.translate(None, delete=unknown)[:FINETUNE_BYTES]


def _byte_windows(data: bytes) -> Split:
    """``data`` as LM windows split like ``stdlib_text`` (tokens: ``corpus_vocabulary``)."""
    corpus = np.frombuffer(data, dtype=np.uint8)
    lookup = np.full(256, -1, dtype=np.int64)
    vocabulary = corpus_vocabulary()
    lookup[list(vocabulary)] = np.arange(len(vocabulary))
    window = TEXT_SEQUENCE_LENGTH + 1
    count = len(corpus) // window
    tokens = lookup[corpus[: count * window]]
    if (tokens < 0).any():
        raise ValueError("the text has bytes outside the corpus vocabulary")
    windows = torch.as_tensor(tokens.reshape(count, window))
    is_val = torch.arange(count) % TEXT_VAL_EVERY == TEXT_VAL_EVERY - 1
    train, val = windows[~is_val], windows[is_val]
    return Split(train[:, :-1], train[:, 1:], val[:, :-1], val[:, 1:])


@functools.lru_cache(maxsize=1)
def finetune_text() -> Split:
    """Byte-level next-token prediction on the fine-tuning text (windows as ``stdlib_text``'s:
    about 3.6k training and 400 validation windows)."""
    return _byte_windows(finetune_corpus())


def pretrain_key() -> str:
    """The pretrained weights' cache key: sha256 of the recipe and the pretraining corpus."""
    recipe = json.dumps(PRETRAIN_RECIPE, sort_keys=True)
    return hashlib.sha256(f"{recipe}\n{corpus_sha256()}".encode()).hexdigest()


def finetune_fingerprint() -> str:
    """``finetune-transformer``'s data: the pretraining key and the fine-tuning text's sha256."""
    text = hashlib.sha256(finetune_corpus()).hexdigest()
    return hashlib.sha256(f"{pretrain_key()}\n{text}".encode()).hexdigest()


def _pretrain_lr_factor(step: int) -> float:
    """The pretraining schedule's LR multiplier after ``step`` optimizer steps."""
    warmup, steps = int(PRETRAIN_RECIPE["warmup_steps"]), int(PRETRAIN_RECIPE["steps"])
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _val_loss(model: nn.Module, split: Split) -> float:
    model.eval()
    with torch.no_grad():
        return float(SequenceCrossEntropy()(model(split.x_val), split.y_val))


def pretrain() -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Pretrain the transformer on ``stdlib_text`` by ``PRETRAIN_RECIPE``; its weights and info
    (the final validation loss on the corpus and, zero-shot, on the fine-tuning text)."""
    recipe = PRETRAIN_RECIPE
    started = time.perf_counter()
    torch.manual_seed(int(recipe["seed"]))
    model = TextTransformer(int(recipe["width"]), int(recipe["heads"]), int(recipe["layers"]))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=float(recipe["peak_lr"]), weight_decay=float(recipe["weight_decay"])
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _pretrain_lr_factor)
    split = stdlib_text()
    loader = BatchLoader(
        split.x_train, split.y_train, int(recipe["batch_size"]), int(recipe["seed"])
    )
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    loss_fn = SequenceCrossEntropy()
    model.train()
    for _, (inputs, targets) in zip(range(int(recipe["steps"])), batches, strict=False):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        scheduler.step()
    info = {
        "pretrain_val_loss": _val_loss(model, split),
        "finetune_val_loss_zero_shot": _val_loss(model, finetune_text()),
        "seconds": time.perf_counter() - started,
    }
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, info


@functools.lru_cache(maxsize=1)
def pretrained_state() -> dict[str, torch.Tensor]:
    """The pretrained weights: from ``PRETRAINED_CACHE`` when its key matches, else pretrained
    now (about a minute on one core) and written there."""
    key = pretrain_key()
    if PRETRAINED_CACHE.exists():
        saved = torch.load(PRETRAINED_CACHE, weights_only=True)
        if saved.get("key") == key:
            return dict(saved["state_dict"])
        print(
            f"{PRETRAINED_CACHE.name} is stale (another recipe or corpus): pretraining again",
            file=sys.stderr,
        )
    state, info = pretrain()
    PRETRAINED_CACHE.parent.mkdir(parents=True, exist_ok=True)
    partial = PRETRAINED_CACHE.with_name(f"{PRETRAINED_CACHE.name}.{os.getpid()}.tmp")
    torch.save({"key": key, "state_dict": state, "info": info}, partial)
    partial.replace(PRETRAINED_CACHE)  # atomic: parallel workers never read half a file
    return state


def pretrained_transformer() -> nn.Module:
    """A fresh copy of the pretrained transformer, every weight pretrained (head included)."""
    recipe = PRETRAIN_RECIPE
    model = TextTransformer(int(recipe["width"]), int(recipe["heads"]), int(recipe["layers"]))
    model.load_state_dict(pretrained_state())
    return model


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
    Task(
        name="text-gru",
        kind="byte-level GRU LM on stdlib source",
        optimizer_name="Adam",
        build_model=TextGRU,
        make_optimizer=_adam,
        loss_fn=SequenceCrossEntropy(),
        data=stdlib_text,
        batch_size=32,
        budget_steps=300,
        fingerprint=corpus_sha256,
    ),
    Task(
        name="text-transformer",
        kind="2-layer decoder-only byte LM (d=32) on stdlib source",
        optimizer_name="AdamW(weight_decay=0.01)",
        build_model=TextTransformer,
        make_optimizer=_adamw,
        loss_fn=SequenceCrossEntropy(),
        data=stdlib_text,
        batch_size=32,
        budget_steps=300,
        fingerprint=corpus_sha256,
    ),
    Task(
        name="finetune-transformer",
        kind="text-transformer pretrained on stdlib source, fine-tuned on pydoc's English topics",
        optimizer_name="AdamW(weight_decay=0.01)",
        build_model=pretrained_transformer,
        make_optimizer=_adamw,
        loss_fn=SequenceCrossEntropy(),
        data=finetune_text,
        batch_size=32,
        budget_steps=300,
        fingerprint=finetune_fingerprint,
    ),
)

TASKS_BY_NAME: dict[str, Task] = {task.name: task for task in TASKS}
