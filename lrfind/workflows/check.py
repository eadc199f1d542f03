"""`lrfind check`: expectations (YAML, CLI, baseline), one sweep, and the CI verdict."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrfind.config.schema import EXPECT_DEFAULTS, Config
from lrfind.errors import ConfigError, NoReliableSuggestion, OutputError
from lrfind.format import format_lr
from lrfind.outputs import runs
from lrfind.results import CheckOutcome, RangeTestResult
from lrfind.workflows.sweep import Reporter, SweepRun, absolute, result_json, sweep

if TYPE_CHECKING:
    from lrfind.engine.options import StopFlag

CONFIDENCE_ORDER = {"none": 0, "low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True)
class Expectations:
    """What ``lrfind check`` compares the suggested LR with."""

    lr_min: float | None = None
    lr_max: float | None = None
    baseline_lr: float | None = None
    baseline_path: Path | None = None
    tolerance: float = 2.0
    min_confidence: str = "low"

    @property
    def empty(self) -> bool:
        """True when nothing would be checked."""
        return self.lr_min is None and self.lr_max is None and self.baseline_lr is None

    def bounds(self) -> tuple[float | None, float | None]:
        """Return the accepted (low, high) interval: the tightest of bounds and baseline window."""
        low, high = self.lr_min, self.lr_max
        if self.baseline_lr is not None:
            base_low = self.baseline_lr / self.tolerance
            base_high = self.baseline_lr * self.tolerance
            low = base_low if low is None else max(low, base_low)
            high = base_high if high is None else min(high, base_high)
        return low, high


def baseline_file(path: Path) -> Path:
    """Return the result.json a baseline path means (a run directory or the file itself)."""
    return path / "result.json" if path.is_dir() else path


def read_baseline_lr(path: Path) -> float:
    """Return the suggested LR recorded in the baseline at ``path``.

    Raises:
        ConfigError: the baseline is missing, unreadable, or has no suggested LR.
    """
    file = baseline_file(path)
    if not file.exists():
        raise ConfigError(
            f"baseline {file} does not exist; create it with 'lrfind check --update-baseline'"
        )
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
        lr = document["suggestion"]["lr"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"baseline {file} is not an lrfind result.json ({error})") from None
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0:
        raise ConfigError(f"baseline {file} records no suggested learning rate")
    return float(lr)


def _ratio_text(value: float, bound: float) -> str:
    ratio = value / bound if value > bound else bound / value
    return f"{ratio:.2f}x"


def evaluate_check(result: RangeTestResult, expectations: Expectations) -> CheckOutcome:
    """Return whether the suggestion lies within the expectations, and a one-line message.

    No suggested LR, or confidence below ``min_confidence``, is an outcome with ``no_answer``
    set (``check`` raises NoReliableSuggestion for it once the reports are written).

    Raises:
        ConfigError: there are no expectations to check against.
    """
    if expectations.empty:
        raise ConfigError(
            "nothing to check against: set expect.lr_min/lr_max or expect.baseline in the "
            "config, or pass --expect-min/--expect-max/--baseline"
        )
    lr = result.suggestion.lr
    confidence = result.confidence
    low, high = expectations.bounds()
    if lr is None:
        reason = "; ".join(confidence.reasons) or result.suggestion.reason or "no clear descent"
        message = f"the sweep gave no reliable learning rate: {reason}"
        return CheckOutcome(False, message, low, high, no_answer=True)
    if CONFIDENCE_ORDER[confidence.level] < CONFIDENCE_ORDER[expectations.min_confidence]:
        reason = "; ".join(confidence.reasons)
        message = (
            f"confidence '{confidence.level}' is below the required "
            f"'{expectations.min_confidence}'" + (f": {reason}" if reason else "")
        )
        return CheckOutcome(False, message, low, high, no_answer=True)
    where = (
        f" (baseline {format_lr(expectations.baseline_lr)} within {expectations.tolerance:g}x)"
        if expectations.baseline_lr is not None
        else ""
    )
    if low is not None and lr < low:
        message = (
            f"suggested lr {format_lr(lr)} is {_ratio_text(lr, low)} below the expected "
            f"minimum {format_lr(low)}{where}"
        )
        return CheckOutcome(False, message, low, high)
    if high is not None and lr > high:
        message = (
            f"suggested lr {format_lr(lr)} is {_ratio_text(lr, high)} above the expected "
            f"maximum {format_lr(high)}{where}"
        )
        return CheckOutcome(False, message, low, high)
    message = f"suggested lr {format_lr(lr)} is within [{format_lr(low)}, {format_lr(high)}]{where}"
    return CheckOutcome(True, message, low, high)


@dataclass(frozen=True)
class CheckRun:
    """``lrfind check``: the sweep, its verdict and the CI reports written.

    ``outcome`` is None when a baseline was updated instead of checked.
    """

    sweep: SweepRun
    outcome: CheckOutcome | None
    baseline_written: Path | None = None
    reports: tuple[Path, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the result.json document with a ``check`` entry (what ``--json`` prints)."""
        document: dict[str, Any] = json.loads(result_json(self.sweep.result))
        outcome = self.outcome
        document["check"] = (
            None
            if outcome is None
            else {
                "passed": outcome.passed,
                "no_answer": outcome.no_answer,
                "message": outcome.message,
                "expected_min": outcome.expected_min,
                "expected_max": outcome.expected_max,
            }
        )
        if self.baseline_written is not None:
            document["baseline_written"] = str(self.baseline_written)
        return document


def write_ci_reports(
    run: CheckRun,
    *,
    summary_md: str | os.PathLike[str] | None = None,
    junit: str | os.PathLike[str] | None = None,
    step_summary: str | os.PathLike[str] | None = None,
) -> tuple[Path, ...]:
    """Write a check's Markdown summary, JUnit XML and GitHub step summary; return the paths.

    ``step_summary`` (the file GitHub names in $GITHUB_STEP_SUMMARY) is appended to, the others
    are written atomically, creating their folders when needed.

    Raises:
        OutputError: a report cannot be written.
    """
    from lrfind.outputs.report.junit import render_junit
    from lrfind.outputs.report.markdown import render_markdown, render_step_summary

    summary_md, junit, step_summary = (
        None if path is None else Path(path) for path in (summary_md, junit, step_summary)
    )
    result, outcome = run.sweep.result, run.outcome
    plot = run.sweep.files.get("plot")
    markdown = render_markdown(result, str(plot) if plot else None, outcome)
    written: list[Path] = []
    for path in (summary_md, junit):
        if path is not None:  # CI jobs name report folders that do not exist yet
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise OutputError(f"cannot create {Path(path).parent}: {error.strerror}") from None
    if summary_md is not None:
        written.append(runs.atomic_write_text(summary_md, markdown))
    if step_summary is not None:
        try:
            with step_summary.open("a", encoding="utf-8") as handle:
                handle.write(render_step_summary(result, str(plot) if plot else None, outcome))
                handle.write("\n")
        except OSError as error:
            raise OutputError(f"cannot append to {step_summary}: {error.strerror}") from None
        written.append(step_summary)
    if junit is not None:
        written.append(
            runs.atomic_write_text(junit, render_junit([(result.info.name, result, outcome)]))
        )
    return tuple(written)


def expectations_for(
    config: Config,
    *,
    lr_min: float | None = None,
    lr_max: float | None = None,
    baseline: str | os.PathLike[str] | None = None,
    tolerance: float | None = None,
    min_confidence: str | None = None,
    read_baseline: bool = True,
) -> Expectations:
    """Merge ``expect:`` from the config with command-line values (which win).

    A config baseline path is relative to the config's folder; a command-line one to the cwd.

    Raises:
        ConfigError: a tolerance <= 1, or a baseline that is missing or unreadable.
    """

    expect = config.expect
    baseline_path = absolute(baseline)
    if baseline_path is None and expect is not None and expect.baseline:
        baseline_path = config.base_dir / expect.baseline
    chosen_tolerance = (
        tolerance
        if tolerance is not None
        else (expect.tolerance if expect else EXPECT_DEFAULTS.tolerance)
    )
    if not (math.isfinite(chosen_tolerance) and chosen_tolerance > 1):
        raise ConfigError(f"--tolerance must be a finite factor above 1, got {chosen_tolerance:g}")
    for label, value in (("--expect-min", lr_min), ("--expect-max", lr_max)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{label} must be a positive finite number, got {value:g}")
    low = lr_min if lr_min is not None else (expect.lr_min if expect else None)
    high = lr_max if lr_max is not None else (expect.lr_max if expect else None)
    if low is not None and high is not None and low > high:
        raise ConfigError(f"expected minimum {low:g} exceeds expected maximum {high:g}")
    baseline_lr = None
    if baseline_path is not None and read_baseline:
        baseline_lr = read_baseline_lr(baseline_path)
    return Expectations(
        lr_min=low,
        lr_max=high,
        baseline_lr=baseline_lr,
        baseline_path=baseline_path,
        tolerance=chosen_tolerance,
        min_confidence=min_confidence
        or (expect.min_confidence if expect else EXPECT_DEFAULTS.min_confidence),
    )


def check(
    config: Config | str | os.PathLike[str],
    *,
    overrides: Sequence[str] = (),
    lr_min: float | None = None,
    lr_max: float | None = None,
    baseline: str | os.PathLike[str] | None = None,
    tolerance: float | None = None,
    min_confidence: str | None = None,
    update_baseline: bool = False,
    summary_md: str | os.PathLike[str] | None = None,
    junit: str | os.PathLike[str] | None = None,
    step_summary: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    reporter: Reporter | None = None,
    stop: StopFlag | None = None,
) -> CheckRun:
    """Run the sweep and compare its suggestion with the expectations (the CI gate).

    ``config`` is a loaded Config or the path of a config file (``overrides`` are ``--set``
    strings applied to it). Expectations come from the config's ``expect:``
    section, overridden by the arguments (see ``expectations_for``). With ``update_baseline``
    the new result.json is written to the baseline path instead of comparing (the run still
    needs a reliable suggestion). The Markdown summary, JUnit XML and step summary are written
    when their paths are given.

    Raises:
        NoReliableSuggestion: the sweep gave no answer or too little confidence (exit 3); its
            ``run`` is the CheckRun, whose run directory and reports are written by then.
        ConfigError: nothing to check against, bad expectations, or no baseline path to update.
        Interrupted: the sweep was stopped; partial results are written.
        LrfindError: every error ``sweep`` raises.
    """
    from lrfind.config.load import as_config
    from lrfind.engine import distributed
    from lrfind.errors import Interrupted

    config = as_config(config, overrides)
    # One session around the sweep and the verdict: the process group is left after both.
    with distributed.session():
        # Fixed before the sweep: user code may change the working directory.
        summary_md, junit, step_summary, out = (
            absolute(path) for path in (summary_md, junit, step_summary, out)
        )
        if min_confidence is not None and min_confidence not in CONFIDENCE_ORDER:
            raise ConfigError(
                f"--min-confidence must be low, medium or high, got {min_confidence!r}"
            )
        expectations = expectations_for(
            config,
            lr_min=lr_min,
            lr_max=lr_max,
            baseline=baseline,
            tolerance=tolerance,
            min_confidence=min_confidence,
            read_baseline=not update_baseline,
        )
        for path, option, example in (
            (summary_md, "--summary-md", "summary.md"),
            (junit, "--junit", "junit.xml"),
        ):
            if path is not None and Path(path).is_dir():
                # Found now, not after the sweep: a report that cannot be written fails the job.
                raise OutputError(
                    f"{option} {path}: is a directory; give a file name, "
                    f"e.g. {Path(path) / example}"
                )
        if update_baseline and expectations.baseline_path is None:
            raise ConfigError(
                "--update-baseline needs a baseline path: --baseline FILE or expect.baseline"
            )
        if not update_baseline and expectations.empty:
            raise ConfigError(
                "nothing to check against: set expect.lr_min/lr_max or expect.baseline in the "
                "config, or pass --expect-min/--expect-max/--baseline"
            )
        sweep_run = sweep(config, out=out, reporter=reporter, stop=stop)
        result = sweep_run.result
        if not result.complete:
            raise Interrupted(f"interrupted; partial results in {sweep_run.run_dir}")
        if sweep_run.run_dir is None:  # a rank other than 0 under torch.distributed writes nothing
            return CheckRun(sweep_run, None)
        if update_baseline:
            if result.suggestion.lr is None:
                raise NoReliableSuggestion(
                    "refusing to write a baseline without a reliable suggestion: "
                    + ("; ".join(result.confidence.reasons) or "no clear descent")
                )
            assert expectations.baseline_path is not None
            target = baseline_file(expectations.baseline_path)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise OutputError(f"cannot create {target.parent}: {error.strerror}") from error
            runs.atomic_write_text(target, result_json(result) + "\n")
            run = CheckRun(sweep_run, None, target)
        else:
            run = CheckRun(sweep_run, evaluate_check(result, expectations))
        reports = write_ci_reports(
            run, summary_md=summary_md, junit=junit, step_summary=step_summary
        )
        run = replace(run, reports=reports)
        if run.outcome is not None and run.outcome.no_answer:
            no_answer = NoReliableSuggestion(run.outcome.message)
            no_answer.run = run
            raise no_answer
        return run
