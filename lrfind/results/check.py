"""The verdict of ``lrfind check``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckOutcome:
    """The verdict of ``lrfind check``: is the suggestion inside [expected_min, expected_max]?"""

    passed: bool
    message: str
    expected_min: float | None = None
    expected_max: float | None = None
