"""End to end: the quickstart's recommendation lands where real training says good LRs are.

How the band was established (2026-11-23, torch 2.13.0, CPU): short constant-LR trainings of the
quickstart model (digits MLP 128-64, SGD momentum 0.9, batch 64) on a quarter-decade grid from
3.2e-4 to 1.0, 300 steps each (about 13 epochs), from the same initial weights, scored on the
held-out validation loss, for seeds 0, 1 and 2::

    LRS=$(python -c "print(','.join(f'{10**(k/4):.4g}' for k in range(-14, 1)))")
    lrfind verify configs/quickstart.yaml --lrs $LRS --steps 300 --set seed=S \\
        --set suggest.refine=off --json -q

Validation loss after 300 steps (— = diverged)::

    lr        seed 0   seed 1   seed 2
    3.2e-3    0.485    0.409    0.438
    5.6e-3    0.200    0.158    0.174
    1.0e-2    0.108    0.077    0.108
    1.8e-2    0.078    0.052    0.097
    3.2e-2    0.070    0.046    0.117
    5.6e-2    0.064    0.050    0.113
    1.0e-1    0.074    0.061    0.096
    1.8e-1    1.737    0.053    0.169
    3.2e-1    —        —        —

Every LR from 1.8e-2 to 1.0e-1 is within 50% of the best validation loss on every seed; widened
by one grid step (the grid cannot resolve finer) the band is [1.0e-2, 1.8e-1]. 3.2e-1 diverges on
every seed, so the peak of a schedule (max_lr) must stay below it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LRFIND = str(Path(sys.executable).parent / "lrfind")

GOOD_BAND = (1.0e-2, 1.78e-1)
FIRST_DIVERGING_LR = 3.16e-1


def test_quickstart_suggestion_lands_in_the_band_found_by_constant_lr_training(
    tmp_path: Path,
) -> None:
    completed = subprocess.run(
        [LRFIND, "sweep", str(ROOT / "configs" / "quickstart.yaml"), "--json", "-q",
         "--out", str(tmp_path / "run"), "--set", "device=cpu"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    suggested = result["suggestion"]["lr"]
    low, high = result["range"]["min_lr"], result["range"]["max_lr"]

    assert GOOD_BAND[0] <= suggested <= GOOD_BAND[1], (suggested, GOOD_BAND)
    assert low < suggested <= high
    assert high < FIRST_DIVERGING_LR
    assert result["confidence"]["level"] in ("medium", "high")
    for name in ("config.yaml", "history.csv", "lr_finder.png", "result.json"):
        assert (tmp_path / "run" / name).stat().st_size > 0
