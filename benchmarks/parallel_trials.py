"""Under ``--nproc N``: are the trials faster data-parallel (today) or one trial per rank?

lrfind runs each refine/search trial on all N processes together (DistributedDataParallel:
every rank trains the same model on its share of each batch, gradients all-reduced). The
alternative is one trial per rank: each rank trains a different candidate alone, and the
results are gathered. This script measures both sides of that trade on this machine, through
the installed entry point, for each workload:

* ``dp``: ``lrfind sweep CONFIG --nproc N --json``: the trial stage's wall time, data-parallel
  (``refine.seconds`` in result.json);
* ``alone``: N copies of ``lrfind sweep CONFIG --nproc 1 --json`` started together, so they
  compete for the machine the way N ranks each running its own trial would, each with the
  data-parallel run's *global* batch (``data.batch_size`` x N: a trial must train at the batch
  size the sweep measured, or its LR means something else); the per-trial wall time is
  ``refine.seconds / trials`` (the mean over the copies);
* ``per-rank (est.)``: ``rounds x alone``, where ``rounds = ceil(first / N) + extra``: the
  stage's first trials are independent and could share the ranks, but each extra trial depends
  on the results before it, so it is a round of its own (with the other ranks idle).

A ratio ``per-rank / dp`` below 1 says one trial per rank would be faster. The single-process
trial stage (``--nproc 1`` alone on the machine) is printed for scale.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/parallel_trials.py            # N = 2
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/parallel_trials.py --nproc 4 --repeats 3

Run it with nothing else busy: the comparison is between wall times.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LRFIND = Path(sys.executable).with_name("lrfind")

#: (name, config, --set overrides): a small CNN as shipped, and a transformer scaled up until
#: a trial is compute-bound rather than start-up-bound.
WORKLOADS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("digits-cnn", "configs/digits-cnn.yaml", ()),
    ("sequence-transformer", "configs/sequence-transformer.yaml", ()),
    (
        "transformer d256 x4",
        "configs/sequence-transformer.yaml",
        ("model.args.d_model=256", "model.args.num_layers=4", "data.args.size=2000"),
    ),
)

#: The refine stage's first trials (lrfind.analysis.budget.REFINE_CANDIDATES); the others are
#: extras, decided one at a time.
FIRST_TRIALS = 3


@dataclass
class StageTime:
    """One run's trial stage: wall seconds, how many trials it ran, the per-process batch."""

    seconds: float
    trials: int
    batch_size: int


def _command(config: str, overrides: tuple[str, ...], out: Path, nproc: int) -> list[str]:
    command = [str(LRFIND), "sweep", str(ROOT / config), "--json", "-q", "-o", str(out)]
    command += [f"--set={item}" for item in overrides]
    return [*command, "--nproc", str(nproc)]


def _stage(document: str) -> StageTime:
    result: dict[str, Any] = json.loads(document)
    refine: dict[str, Any] = result.get("refine") or {}
    return StageTime(
        float(refine.get("seconds", math.nan)),
        len(refine.get("trials", ())),
        int(result.get("batch_size", 0)),
    )


def run_together(commands: list[list[str]]) -> list[StageTime]:
    """Start every command at once; return each one's trial stage."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    processes = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for c in commands
    ]
    stages = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode not in (0, 3):
            raise SystemExit(f"{' '.join(process.args)} failed ({process.returncode}): {err}")
        stages.append(_stage(out))
    return stages


def rounds(trials: int, nproc: int) -> int:
    """Rounds of one-trial-per-rank scheduling: the first trials share ranks, extras do not."""
    first = min(trials, FIRST_TRIALS)
    return math.ceil(first / nproc) + (trials - first)


def measure(config: str, overrides: tuple[str, ...], nproc: int) -> dict[str, float]:
    """One repeat of every measurement for one workload."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (single,) = run_together([_command(config, overrides, base / "single", 1)])
        (dp,) = run_together([_command(config, overrides, base / "dp", nproc)])
        global_batch = (*overrides, f"data.batch_size={single.batch_size * nproc}")
        alone = run_together(
            [_command(config, global_batch, base / f"alone{i}", 1) for i in range(nproc)]
        )
    per_trial = statistics.mean(s.seconds / max(s.trials, 1) for s in alone)
    estimate = rounds(dp.trials, nproc) * per_trial
    return {
        "single": single.seconds,
        "dp": dp.seconds,
        "trials": dp.trials,
        "per_trial_alone": per_trial,
        "per_rank": estimate,
        "ratio": estimate / dp.seconds if dp.seconds > 0 else math.nan,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    if not LRFIND.exists():
        raise SystemExit(f"no lrfind entry point next to {sys.executable}; install the package")
    print(f"N = {args.nproc} processes, {args.repeats} repeat(s), median shown")
    print(
        "| workload | trials | 1 process (s) | data-parallel (s) | one trial alone (s) "
        "| per-rank est. (s) | per-rank / dp |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, config, overrides in WORKLOADS:
        runs = [measure(config, overrides, args.nproc) for _ in range(args.repeats)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"| {name} | {med['trials']:.0f} | {med['single']:.2f} | {med['dp']:.2f} "
            f"| {med['per_trial_alone']:.2f} | {med['per_rank']:.2f} | {med['ratio']:.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
