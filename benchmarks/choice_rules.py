"""Replay recorded trials under variants of the choice rule (scratch evaluation, no training).

Reads a ``recommend_eval.py --json`` file (every case's trials with their per-batch validation
losses) and re-chooses with ``lrfind.analysis.choose`` at several tie widths (standard errors;
0 is "the best trial"), scoring each against quality.py's noise-aware band. The trials stay
those the recorded run chose to run, so this isolates the rule from the trial plan.

    .venv/bin/python benchmarks/choice_rules.py runs/after.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality

from lrfind.analysis import choose as choose_module
from lrfind.results import Trial

WIDTHS = (0.0, 0.5, 1.0, 2.0, 3.0)


def main(argv: list[str] | None = None) -> int:
    """Print, per tie width, the noise-aware hit rate of the re-chosen LRs (answered cases)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    truths = quality.load_ground_truth()
    cases = json.loads(args.path.read_text())["cases"]
    original = choose_module.TIE_STANDARD_ERRORS
    try:
        for width in WIDTHS:
            choose_module.TIE_STANDARD_ERRORS = width
            hits: dict[str, list[bool]] = {}
            for case in cases:
                trials = [Trial.from_dict(t) for t in case["trials"]]
                lr = choose_module.choose(trials).chosen_lr if trials else case["lrs"]["default"]
                hits.setdefault(case["task"], []).append(truths[case["task"]].noise_hit(lr))
            total = [h for values in hits.values() for h in values]
            detail = " ".join(f"{name}:{sum(v)}/{len(v)}" for name, v in hits.items())
            print(f"{width:.1f} SE: {sum(total) / len(total):.0%}  {detail}")
    finally:
        choose_module.TIE_STANDARD_ERRORS = original
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
