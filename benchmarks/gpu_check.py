"""GPU check: the CUDA tests, lrfind's per-step overhead on the GPU, and the default's cost.

One run, one summary (issue 12, "Measured on a GPU when one is available"):

(a) ``pytest -q tests/test_cuda.py`` in a subprocess: passed / failed / skipped counts.
(b) Overhead on the device. The same model, SGD optimizer, exponential LR ladder and batches
    (pre-built on the device, so the data pipeline costs nothing) run by four contenders,
    interleaved after a warm-up (the order rotates every round), timed by wall clock with
    ``torch.cuda.synchronize()`` before the start and before the stop:

    * ``bare``         a hand-written loop: set the LR, forward, backward, step, ``loss.item()``
    * ``bare-nosync``  the same loop keeping the losses on the device, read once at the end: the
                       floor for any loop that reads its losses
    * ``engine``       ``lrfind.engine.loop.sweep_loop`` (the sweep loop alone)
    * ``range_test``   ``lrfind.range_test(..., refine="off")``: snapshot, sweep, analysis, restore

    Reported: the bare loop's median ms per step, and each contender's median paired ratio to
    the bare loop (its run time / the bare loop's in the same round) with the interquartile range.
    Two tasks: a small MLP whose steps are launch-bound (it exposes fixed per-step costs) and
    the mid-size CNN of (c).
(c) The cost multiple of the default recommendation on a mid-size CNN (about 4.6M parameters,
    synthetic 3x32x32 images, 10 classes, batch 128, 100 sweep steps): wall time of
    ``range_test(..., val_loader=...)`` with every option at its default (refine on, because
    validation data is given) divided by the same call with ``refine="off"``, plus the
    refine/search stage's trials, steps and its own step-count estimate of the multiple.

    python benchmarks/gpu_check.py                        # on a CUDA GPU (estimated 1-2 min, H200)
    python benchmarks/gpu_check.py --device cpu --quick   # tiny sizes: checks the script itself

The models, data and timed loops are in ``gpu_workloads.py``. ``benchmarks/gpu_check.sh`` sets up
the environment and runs this with its log kept.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from gpu_workloads import CONTENDERS, FULL, QUICK, Sizes, Task, mid_cnn, small_mlp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout's lrfind, installed or not

TEST_TIMEOUT_S = 240


# --- (a) the CUDA tests ------------------------------------------------------------------------


@dataclass
class TestRun:
    """Counts from pytest's closing line, its exit code and how long it took."""

    counts: dict[str, int]
    returncode: int
    seconds: float

    @property
    def ok(self) -> bool:
        """No failure or error, and pytest exited 0."""
        return self.returncode == 0 and not (self.counts["failed"] or self.counts["errors"])

    @property
    def verdict(self) -> str:
        """FAIL, PASS, or SKIPPED when nothing ran (no CUDA device)."""
        if not self.ok:
            return "FAIL"
        return "PASS" if self.counts["passed"] else "SKIPPED (no CUDA device: nothing ran)"

    def describe(self) -> str:
        """``N passed, N failed, N skipped, N errors (S s)``."""
        shown = ", ".join(f"{n} {word}" for word, n in self.counts.items())
        return f"{shown} in {self.seconds:.1f} s (pytest exit {self.returncode})"


def run_cuda_tests() -> TestRun:
    """Run tests/test_cuda.py in a fresh interpreter; print its output; return the counts."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py"]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TEST_TIMEOUT_S
        )
        output, returncode = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        partial = expired.stdout.decode() if isinstance(expired.stdout, bytes) else expired.stdout
        output, returncode = f"{partial or ''}\npytest timed out after {TEST_TIMEOUT_S} s", 124
    seconds = time.perf_counter() - started
    print(output.rstrip())
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skip)", line)]
    closing = summary[-1] if summary else ""
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", closing):
        counts["errors" if word.startswith("error") else word] += int(number)
    return TestRun(counts, returncode, seconds)


# --- (b) overhead ------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, run: Callable[[], Any]) -> tuple[float, Any]:
    """Wall-clock seconds of ``run()``, the device synchronised before the start and the stop."""
    synchronize(device)
    started = time.perf_counter()
    value = run()
    synchronize(device)
    return time.perf_counter() - started, value


@dataclass
class Overhead:
    """Per-contender run times (seconds) of one task, paired by round."""

    task: str
    steps: int
    seconds: dict[str, list[float]]
    loss_difference: float

    def ratio(self, name: str) -> tuple[float, float, float]:
        """(lower quartile, median, upper quartile) of the contender's paired ratio to bare."""
        ratios = [t / b for t, b in zip(self.seconds[name], self.seconds["bare"], strict=True)]
        if len(ratios) < 2:
            return ratios[0], ratios[0], ratios[0]
        low, median, high = statistics.quantiles(ratios, n=4, method="inclusive")
        return low, median, high

    def ms_per_step(self, name: str) -> float:
        """Median milliseconds per optimizer step."""
        return statistics.median(self.seconds[name]) / self.steps * 1e3


def measure_overhead(task: Task, sizes: Sizes, device: torch.device) -> Overhead:
    """Time every contender on the task, warmed up and interleaved; check the losses agree."""
    names = list(CONTENDERS)

    def once(name: str) -> tuple[float, list[float]]:
        task.reset()
        torch.manual_seed(0)
        seconds, losses = timed(device, lambda: CONTENDERS[name](task, sizes.steps, device))
        if len(losses) != sizes.steps:
            raise RuntimeError(f"{name} ran {len(losses)} of {sizes.steps} steps on {task.name}")
        return seconds, losses

    for _ in range(sizes.warmup):
        for name in names:
            once(name)
    bare, engine = once("bare")[1], once("engine")[1]
    difference = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(bare, engine, strict=True))
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(sizes.repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(once(name)[0])
    task.reset()
    return Overhead(task.name, sizes.steps, seconds, difference)


def print_overhead(result: Overhead) -> None:
    """One table row per contender."""
    print(f"\n{result.task}: {result.steps} steps per run, {len(result.seconds['bare'])} rounds")
    print(f"bare vs engine losses differ by at most {result.loss_difference:.1e} (relative)")
    print("| contender | ms/step | x bare (median) | IQR of x |\n|---|---|---|---|")
    for name in result.seconds:
        low, median, high = result.ratio(name)
        print(f"| {name} | {result.ms_per_step(name):.3f} | {median:.3f} | {low:.3f}-{high:.3f} |")


# --- (c) the default recommendation's cost -----------------------------------------------------


@dataclass
class Cost:
    """Wall time of the default recommendation and of a plain sweep on the same task."""

    task: str
    default_seconds: list[float]
    sweep_seconds: list[float]
    sweep_steps: int
    suggestion: str
    refinement: dict[str, Any] | None
    plan: str | None

    @property
    def multiple(self) -> float:
        """Median default time / median plain-sweep time."""
        return statistics.median(self.default_seconds) / statistics.median(self.sweep_seconds)


def _refinement_facts(refinement: Any) -> dict[str, Any] | None:
    """What the refine/search stage ran; fields read defensively (the stage is being reworked)."""
    if refinement is None:
        return None
    trials = getattr(refinement, "trials", ())
    return {
        "stage": getattr(refinement, "stage", "refine"),
        "trials": len(trials),
        "steps_per_trial": getattr(refinement, "steps_per_trial", None),
        "trial_steps_total": sum(getattr(trial, "steps", 0) for trial in trials),
        "val_batches": getattr(refinement, "val_batches", None),
        "estimated_multiple": getattr(refinement, "cost_multiple", None),
        "budget": getattr(refinement, "budget", None),
        "chosen_lr": getattr(refinement, "chosen_lr", None),
    }


def measure_cost(task: Task, sizes: Sizes, device: torch.device) -> Cost:
    """Interleave default and refine-off range tests (after one untimed warm-up of each)."""
    from lrfind import range_test

    plans: list[str] = []

    def progress(event: Any) -> None:
        if hasattr(event, "describe"):  # the stage's TrialPlan, announced before its trials
            plans.append(event.describe())

    def run(refine: str | None) -> Any:
        task.reset()
        torch.manual_seed(0)
        extra: dict[str, Any] = {} if refine is None else {"refine": refine}
        return range_test(
            task.model, task.optimizer, task.loss_fn, task.batches,
            val_loader=task.val_batches, steps=sizes.steps, device=device, progress=progress,
            **extra,
        )  # fmt: skip

    run("off")
    run(None)
    default_seconds, sweep_seconds = [], []
    result = None
    for _ in range(sizes.cost_repeats):
        plans.clear()
        seconds, result = timed(device, lambda: run(None))
        default_seconds.append(seconds)
        sweep_seconds.append(timed(device, lambda: run("off"))[0])
    assert result is not None
    lr = result.suggestion.lr
    suggestion = (
        f"lr {lr:.3g} ({result.suggestion.method}, confidence {result.confidence.level})"
        if lr is not None
        else "no suggestion"
    )
    return Cost(
        task=task.name,
        default_seconds=default_seconds,
        sweep_seconds=sweep_seconds,
        sweep_steps=result.history.steps,
        suggestion=suggestion,
        refinement=_refinement_facts(getattr(result, "refinement", None)),
        plan=plans[0] if plans else None,
    )


# --- report ------------------------------------------------------------------------------------


def header(device: torch.device) -> str:
    """Machine, versions and the numerics switches that change GPU timings."""
    from lrfind import __version__

    where = f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"
    if device.type == "cuda":
        where = (
            f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), {where}, "
            f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, "
            f"cudnn TF32 {torch.backends.cudnn.allow_tf32}, "
            f"cudnn.benchmark {torch.backends.cudnn.benchmark}"
        )
    return (
        f"device {device}: {where}; torch {torch.__version__}, lrfind {__version__}, "
        f"Python {platform.python_version()}"
    )


def summary(
    head: str, tests: TestRun | None, overheads: list[Overhead], cost: Cost, seconds: float
) -> str:
    """The closing block: every number the check measured."""
    lines = ["", "=" * 20 + " GPU CHECK SUMMARY " + "=" * 20, head]
    if tests is None:
        lines.append("(a) CUDA tests: not run (--no-tests)")
    else:
        lines.append(f"(a) CUDA tests (tests/test_cuda.py): {tests.verdict}: {tests.describe()}")
    lines.append("(b) overhead, median paired wall-time ratio to the bare loop (IQR):")
    for result in overheads:
        parts = [f"bare {result.ms_per_step('bare'):.3f} ms/step"]
        for name in list(result.seconds)[1:]:
            low, median, high = result.ratio(name)
            parts.append(f"{name} x{median:.3f} ({low:.3f}-{high:.3f})")
        lines.append(f"    {result.task}: " + "; ".join(parts))
    lines.append(
        f"(c) cost multiple of the default on {cost.task}: {cost.multiple:.2f}x a plain sweep "
        f"(default {statistics.median(cost.default_seconds):.2f} s, refine off "
        f"{statistics.median(cost.sweep_seconds):.2f} s, sweep {cost.sweep_steps} steps, "
        f"median of {len(cost.default_seconds)}); suggestion: {cost.suggestion}"
    )
    facts = cost.refinement
    if facts is None:
        lines.append("    no refine/search stage ran")
    else:
        estimate = facts["estimated_multiple"]
        lines.append(
            f"    {facts['stage']}: {facts['trials']} trials x {facts['steps_per_trial']} steps "
            f"({facts['trial_steps_total']} trial steps), val batches {facts['val_batches']}, "
            f"budget {facts['budget']}, library's step-count estimate "
            + (f"{estimate:.2f}x" if estimate is not None else "n/a")
        )
    if cost.plan:
        lines.append(f"    plan: {cost.plan}")
    lines.append(f"total {seconds:.0f} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run (a), (b) and (c); print the summary; exit 1 when a CUDA test failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="torch device (default: cuda)")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and few repeats (runs on a CPU)"
    )
    parser.add_argument("--no-tests", action="store_true", help="skip (a), the CUDA tests")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device}, but torch sees no CUDA device", file=sys.stderr)
        return 2
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    head = header(device)
    print(head + ("; quick sizes" if args.quick else ""), flush=True)

    tests = None
    if not args.no_tests:
        print("\n(a) pytest -q tests/test_cuda.py", flush=True)
        tests = run_cuda_tests()

    print("\n(b) overhead", flush=True)
    overheads = []
    for build in (small_mlp, mid_cnn):
        overheads.append(measure_overhead(build(sizes, device), sizes, device))
        print_overhead(overheads[-1])

    print("\n(c) cost of the default recommendation", flush=True)
    cost = measure_cost(mid_cnn(sizes, device), sizes, device)
    print(f"{cost.task}: default {cost.default_seconds}, refine off {cost.sweep_seconds}")

    print(summary(head, tests, overheads, cost, time.perf_counter() - started))
    return 0 if tests is None or tests.ok else 1


if __name__ == "__main__":
    sys.exit(main())
