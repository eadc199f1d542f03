"""The quarter-decade LR grid that refine trials and ranges sit on: 10**(k/4)."""

from __future__ import annotations

import math

#: The refine stage's candidates sit on this log grid: 10**(k/4), four per decade.
GRID_PER_DECADE = 4

GRID_STEP = 10 ** (1 / GRID_PER_DECADE)


def grid_exponent(lr: float) -> int:
    """Return k such that 10**(k/4) is the quarter-decade grid value nearest ``lr`` (in log)."""
    return round(GRID_PER_DECADE * math.log10(lr))


def grid_lr(exponent: int) -> float:
    """Return the grid value 10**(exponent/4)."""
    return float(10 ** (exponent / GRID_PER_DECADE))
