"""The registry of built-in data sources and how a config's ``data:`` section is loaded."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lrfind.data.builtin import (
    load_sequence,
    load_sklearn,
    load_synthetic_classification,
    load_synthetic_regression,
)
from lrfind.data.files import load_csv, load_npz, load_pt
from lrfind.data.types import DataSplit
from lrfind.errors import ComponentError, DataError
from lrfind.format import unknown_arguments
from lrfind.names import BUILTIN_DATASETS, registry

#: Built-in data sources by the name ``data.target`` uses (``lrfind.names`` holds the names).
DATASETS: dict[str, Callable[..., DataSplit]] = registry(
    BUILTIN_DATASETS,
    {
        "sklearn": load_sklearn,
        "synthetic_classification": load_synthetic_classification,
        "synthetic_regression": load_synthetic_regression,
        "sequence": load_sequence,
        "csv": load_csv,
        "npz": load_npz,
        "pt": load_pt,
    },
)

#: What lrfind passes every built-in dataset itself (never set in ``data.args``).
INJECTED_ARGUMENTS = ("seed", "val_fraction", "base_dir")


def dataset_arguments(name: str) -> list[str]:
    """Return the ``data.args`` names built-in dataset ``name`` accepts."""
    parameters = inspect.signature(DATASETS[name]).parameters
    return [p for p in parameters if p not in INJECTED_ARGUMENTS]


def load_builtin_dataset(
    name: str, args: Mapping[str, Any], *, seed: int, val_fraction: float, base_dir: Path
) -> DataSplit:
    """Build built-in dataset ``name`` with ``data.args``.

    Raises:
        ComponentError: an unknown dataset or argument name (with close matches).
        DataError: a bad argument value or unusable file (see each loader).
    """
    if name not in DATASETS:
        raise ComponentError(f"data.target: unknown built-in dataset {name!r}")
    problems = unknown_arguments(args, dataset_arguments(name), "data.args", f"dataset '{name}'")
    if problems:
        raise ComponentError(problems[0])
    try:
        return DATASETS[name](seed=seed, val_fraction=val_fraction, base_dir=base_dir, **args)
    except (TypeError, ValueError) as error:
        raise DataError(f"data.args: dataset '{name}' rejected its arguments: {error}") from None
