"""The verdict of ``lrfind check``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckOutcome:
    """The verdict of ``lrfind check``: is the suggestion inside [expected_min, expected_max]?

    ``no_answer``: the check could not be made, because the run gave no suggestion or less
    confidence than required (``passed`` is then False, and the CLI exits 3, not 1).
    """

    passed: bool
    message: str
    expected_min: float | None = None
    expected_max: float | None = None
    no_answer: bool = False
