"""The names lrfind knows by heart: suggestion methods and built-in components.

The one home of every built-in name. ``config`` validates against these lists (it cannot import
``assembly`` or ``data``, which hold the implementations), and ``assembly`` and ``data`` key their
implementations by them through ``registry``, so a name without an implementation (or the other
way round) fails at import, not in a user's run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, TypeVar, get_args

#: The rules that read a suggestion off one sweep (``suggest.method``).
SuggestMethod = Literal["lrfind", "steepest", "minimum", "valley"]
SUGGEST_METHODS: tuple[str, ...] = get_args(SuggestMethod)
DEFAULT_METHOD: SuggestMethod = "lrfind"

#: Built-in models (``model.target``): ``lrfind.assembly.models.MODELS``.
BUILTIN_MODELS = ("linear", "logistic", "mlp", "cnn", "gru", "transformer")

#: Built-in data sources (``data.target``): ``lrfind.data.registry.DATASETS``.
BUILTIN_DATASETS = (
    "sklearn",
    "synthetic_classification",
    "synthetic_regression",
    "sequence",
    "csv",
    "npz",
    "pt",
)

#: Built-in loss classes (``loss``): ``lrfind.assembly.losses.LOSSES``.
LOSS_CLASSES = (
    "cross_entropy",
    "nll",
    "mse",
    "l1",
    "smooth_l1",
    "huber",
    "bce_with_logits",
)

#: ``loss: auto``: one of LOSS_CLASSES, chosen from the data's task.
AUTO_LOSS: Final = "auto"

#: The ``loss:`` value (and ``range_test(loss_fn=...)`` value) meaning "the model's own loss".
MODEL_LOSS: Final = "model"

#: Every name ``loss`` accepts besides an import path.
BUILTIN_LOSSES = (AUTO_LOSS, *LOSS_CLASSES, MODEL_LOSS)

#: Built-in optimizers (``optimizer.name``): ``lrfind.assembly.optim.OPTIMIZERS``.
BUILTIN_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")

Implementation = TypeVar("Implementation")


def registry(
    names: tuple[str, ...], implementations: Mapping[str, Implementation]
) -> dict[str, Implementation]:
    """Return ``implementations`` in the order of ``names``.

    Raises:
        RuntimeError: a name has no implementation, or an implementation no name (a bug in
            lrfind, caught when the module that builds the registry is imported).
    """
    if set(names) != set(implementations):
        unmatched = sorted(set(names) ^ set(implementations))
        raise RuntimeError(f"built-in names and implementations disagree: {unmatched}")
    return {name: implementations[name] for name in names}
