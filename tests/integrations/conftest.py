"""The Hugging Face tests skip where the ``hf`` extra is missing, and the Lightning tests where
the ``lightning`` extra is, except under ``make test`` (``LRFIND_REQUIRE_HF=1``,
``LRFIND_REQUIRE_LIGHTNING=1``), which installs both: there a missing package fails the run
instead of silently skipping what CI is meant to check."""

from __future__ import annotations

import importlib.util
import os

import pytest

HF_PACKAGES = ("transformers", "accelerate", "datasets")
LIGHTNING_PACKAGES = ("pytorch_lightning",)

#: environment variable -> (the packages it requires, the extra that installs them)
REQUIRED = {
    "LRFIND_REQUIRE_HF": (HF_PACKAGES, "hf"),
    "LRFIND_REQUIRE_LIGHTNING": (LIGHTNING_PACKAGES, "lightning"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for variable, (packages, extra) in REQUIRED.items():
        missing = [name for name in packages if importlib.util.find_spec(name) is None]
        if missing and os.environ.get(variable) == "1":
            raise pytest.UsageError(
                f"{variable}=1 but {', '.join(missing)} not installed: "
                f'pip install -e ".[dev,{extra}]" -c constraints.txt'
            )
