"""The built-in model architectures (plain nn.Modules): linear, MLP, CNN, GRU, transformer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def _positive_ints(value: Sequence[int] | int, name: str) -> list[int]:
    values = [value] if isinstance(value, int) else list(value)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name} must be a list of positive integers, got {value!r}")
    return values


def _check_size(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_dropout(value: float) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {value!r}")
    return float(value)


class LinearModel(nn.Module):
    """One ``nn.Linear`` on the flattened input (logistic regression with a cross-entropy loss)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(
            _check_size(in_features, "in_features"), _check_size(out_features, "out_features"), bias
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Return ``(N, out_features)``."""
        output: torch.Tensor = self.linear(inputs.flatten(1))
        return output


class MLP(nn.Module):
    """A multi-layer perceptron on the flattened input.

    Each hidden layer is Linear -> [BatchNorm1d | LayerNorm] -> activation -> [Dropout]; the head
    is a plain Linear. ``norm`` is None, "batch" or "layer".
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] | int = (128, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str | None = None,
    ) -> None:
        super().__init__()
        sizes = _positive_ints(hidden, "hidden")
        dropout = _check_dropout(dropout)
        if norm not in (None, "batch", "layer"):
            raise ValueError(f"norm must be null, 'batch' or 'layer', got {norm!r}")
        layers: list[nn.Module] = []
        previous = _check_size(in_features, "in_features")
        for size in sizes:
            layers.append(nn.Linear(previous, size))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(size))
            elif norm == "layer":
                layers.append(nn.LayerNorm(size))
            layers.append(_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            previous = size
        layers.append(nn.Linear(previous, _check_size(out_features, "out_features")))
        self.hidden = tuple(sizes)
        self.layers = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Return ``(N, out_features)``."""
        output: torch.Tensor = self.layers(inputs.flatten(1))
        return output


class CNN(nn.Module):
    """A small convolutional net for ``(C, H, W)`` images.

    Each block is Conv2d(kernel_size, same padding) -> [BatchNorm2d] -> activation -> 2x2 pool
    ("max", "avg", or None for no pooling); then an adaptive average pool to ``head_size`` x
    ``head_size``, flatten, [Dropout] and a Linear head.
    """

    def __init__(
        self,
        in_channels: int,
        out_features: int,
        channels: Sequence[int] | int = (16, 32),
        kernel_size: int = 3,
        pool: str | None = "max",
        norm: str | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
        head_size: int = 2,
    ) -> None:
        super().__init__()
        widths = _positive_ints(channels, "channels")
        kernel_size = _check_size(kernel_size, "kernel_size")
        head_size = _check_size(head_size, "head_size")
        dropout = _check_dropout(dropout)
        if pool not in (None, "max", "avg"):
            raise ValueError(f"pool must be 'max', 'avg' or null, got {pool!r}")
        if norm not in (None, "batch"):
            raise ValueError(f"norm must be null or 'batch', got {norm!r}")
        layers: list[nn.Module] = []
        previous = _check_size(in_channels, "in_channels")
        for width in widths:
            layers.append(nn.Conv2d(previous, width, kernel_size, padding=kernel_size // 2))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(width))
            layers.append(_activation(activation))
            if pool == "max":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            elif pool == "avg":
                layers.append(nn.AvgPool2d(2, ceil_mode=True))
            previous = width
        layers.extend([nn.AdaptiveAvgPool2d(head_size), nn.Flatten()])
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(
            nn.Linear(previous * head_size * head_size, _check_size(out_features, "out_features"))
        )
        self.channels = tuple(widths)
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return ``(N, out_features)`` for ``(N, C, H, W)`` images."""
        output: torch.Tensor = self.layers(images)
        return output


class GRUModel(nn.Module):
    """Token embedding -> GRU -> Linear: next-token logits ``(N, T, out_features)``."""

    def __init__(
        self,
        vocab_size: int,
        out_features: int | None = None,
        embed_dim: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        vocab_size = _check_size(vocab_size, "vocab_size")
        dropout = _check_dropout(dropout)
        self.embedding = nn.Embedding(vocab_size, _check_size(embed_dim, "embed_dim"))
        self.gru = nn.GRU(
            embed_dim,
            _check_size(hidden_size, "hidden_size"),
            num_layers=_check_size(num_layers, "num_layers"),
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, _check_size(out_features or vocab_size, "out_features"))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return ``(N, T, out_features)`` for int64 ``(N, T)`` tokens."""
        hidden, _ = self.gru(self.embedding(tokens))
        output: torch.Tensor = self.head(hidden)
        return output


class TransformerModel(nn.Module):
    """A small causal (decoder-only) pre-norm transformer over tokens.

    Token + learned position embeddings -> ``num_layers`` encoder layers with a causal mask ->
    LayerNorm -> Linear: next-token logits ``(N, T, out_features)``. ``max_len`` bounds T.
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        out_features: int | None = None,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        dim_feedforward: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        vocab_size = _check_size(vocab_size, "vocab_size")
        d_model = _check_size(d_model, "d_model")
        num_heads = _check_size(num_heads, "num_heads")
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.max_len = _check_size(max_len, "max_len")
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(self.max_len, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model,
            num_heads,
            dim_feedforward=_check_size(dim_feedforward or 4 * d_model, "dim_feedforward"),
            dropout=_check_dropout(dropout),
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, _check_size(num_layers, "num_layers"), enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, _check_size(out_features or vocab_size, "out_features"))
        self.d_model = d_model
        self.num_layers = num_layers

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return ``(N, T, out_features)`` for int64 ``(N, T)`` tokens, T <= max_len."""
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(
                f"sequence length {length} exceeds max_len {self.max_len}; set model.args.max_len"
            )
        positions = torch.arange(length, device=tokens.device)
        hidden = self.token_embedding(tokens) + self.position_embedding(positions)
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
        hidden = self.encoder(hidden, mask=mask, is_causal=True)
        output: torch.Tensor = self.head(self.norm(hidden))
        return output
