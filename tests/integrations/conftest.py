"""The Hugging Face tests skip where the ``hf`` extra is missing, except under ``make test``
(``LRFIND_REQUIRE_HF=1``), which installs it: there a missing package fails the run instead of
silently skipping what CI is meant to check."""

from __future__ import annotations

import importlib.util
import os

import pytest

HF_PACKAGES = ("transformers", "accelerate", "datasets")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [name for name in HF_PACKAGES if importlib.util.find_spec(name) is None]
    if missing and os.environ.get("LRFIND_REQUIRE_HF") == "1":
        raise pytest.UsageError(
            f"LRFIND_REQUIRE_HF=1 but {', '.join(missing)} not installed: "
            'pip install -e ".[dev,hf]" -c constraints.txt'
        )
