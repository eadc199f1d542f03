"""lrfind/names.py: the one home of the built-in names, and the registries keyed by them."""

from __future__ import annotations

import pytest

from lrfind.names import (
    BUILTIN_DATASETS,
    BUILTIN_LOSSES,
    BUILTIN_MODELS,
    BUILTIN_OPTIMIZERS,
    LOSS_CLASSES,
    SUGGEST_METHODS,
    registry,
)


def test_registry_orders_implementations_by_name() -> None:
    assert list(registry(("b", "a"), {"a": 1, "b": 2})) == ["b", "a"]


@pytest.mark.parametrize(
    "implementations", [{"a": 1}, {"a": 1, "b": 2, "c": 3}], ids=["missing", "unnamed"]
)
def test_registry_refuses_names_and_implementations_that_disagree(
    implementations: dict[str, int],
) -> None:
    with pytest.raises(RuntimeError, match="built-in names and implementations disagree"):
        registry(("a", "b"), implementations)


def test_every_registry_is_keyed_by_its_names() -> None:
    from lrfind.analysis.suggest import METHODS
    from lrfind.assembly.losses import LOSSES
    from lrfind.assembly.models import MODELS
    from lrfind.assembly.optim import OPTIMIZERS
    from lrfind.data.registry import DATASETS

    assert tuple(MODELS) == BUILTIN_MODELS
    assert tuple(DATASETS) == BUILTIN_DATASETS
    assert tuple(OPTIMIZERS) == BUILTIN_OPTIMIZERS
    assert tuple(LOSSES) == LOSS_CLASSES and set(LOSS_CLASSES) < set(BUILTIN_LOSSES)
    assert METHODS == SUGGEST_METHODS


def test_the_schema_accepts_exactly_the_suggestion_methods() -> None:
    from typing import get_args

    from lrfind.config.schema import SuggestSpec

    assert get_args(SuggestSpec.model_fields["method"].annotation) == SUGGEST_METHODS
