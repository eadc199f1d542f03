"""engine/steps.py: how a failing first step is reported."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from lrfind.engine.steps import take_step
from lrfind.errors import SweepError
from lrfind.format import error_summary, first_line


class _Raises:
    """A stepper whose step raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def step(self, stream: Iterator[Any], lr: float) -> torch.Tensor:
        raise self.error


@pytest.mark.parametrize("message", ["", "   ", "\n\n"])
def test_a_first_step_error_with_a_blank_message_is_a_sweep_error(message: str) -> None:
    """Bug: a RuntimeError whose message was blank raised IndexError instead."""
    with pytest.raises(SweepError, match=r"^the first training step failed: RuntimeError$"):
        take_step(_Raises(RuntimeError(message)), iter(()), 0.1, step=0)  # type: ignore[arg-type]


def test_a_first_step_error_quotes_the_first_line_of_its_message() -> None:
    error = RuntimeError("\n  mat1 and mat2 shapes cannot be multiplied\nmore detail")
    with pytest.raises(SweepError) as raised:
        take_step(_Raises(error), iter(()), 0.1, step=0)  # type: ignore[arg-type]
    assert str(raised.value) == (
        "the first training step failed: mat1 and mat2 shapes cannot be multiplied"
    )


def test_first_line_and_error_summary() -> None:
    assert first_line(ValueError(" a\nb ")) == "a"
    assert first_line(ValueError("  ")) == "ValueError"
    assert error_summary(ValueError(" a\nb ")) == "ValueError: a"
    assert error_summary(KeyError()) == "KeyError"
