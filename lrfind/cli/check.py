"""`lrfind check`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from lrfind.cli.common import (
    guarded,
    launch_if_requested,
    load,
    make_cli_console,
    print_json,
    stop_on_signals,
)
from lrfind.cli.options import (
    ConfigArg,
    DebugOpt,
    JsonOpt,
    MethodOpt,
    NprocOpt,
    OutOpt,
    QuietOpt,
    SetOpt,
)
from lrfind.errors import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    ConfigError,
    OutputError,
)


def _write_ci_reports(
    result: Any,
    plot: Path | None,
    outcome: Any,
    name: str,
    summary_md: Path | None,
    junit: Path | None,
) -> list[str]:
    """Write --summary-md / $GITHUB_STEP_SUMMARY / --junit; return the paths written."""
    from lrfind.outputs import runs
    from lrfind.outputs.report.junit import render_junit
    from lrfind.outputs.report.markdown import render_markdown

    written: list[str] = []
    markdown = render_markdown(result, str(plot) if plot else None, outcome)
    if summary_md is not None:
        runs.atomic_write_text(summary_md, markdown)
        written.append(str(summary_md))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with Path(step_summary).open("a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")
        except OSError as error:
            raise OutputError(f"cannot append to GITHUB_STEP_SUMMARY: {error.strerror}") from None
        written.append(step_summary)
    if junit is not None:
        runs.atomic_write_text(junit, render_junit([(name, result, outcome)]))
        written.append(str(junit))
    return written


def check(
    config: ConfigArg,
    expect_min: Annotated[
        float | None,
        typer.Option(
            "--expect-min", help="Fail if the suggested LR is below this.", show_default=False
        ),
    ] = None,
    expect_max: Annotated[
        float | None,
        typer.Option(
            "--expect-max", help="Fail if the suggested LR is above this.", show_default=False
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="A baseline result.json (or run dir) to stay within --tolerance of.",
            show_default=False,
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            help="Allowed factor between the suggestion and the baseline (default 2.0).",
            show_default=False,
        ),
    ] = None,
    min_confidence: Annotated[
        str | None,
        typer.Option(
            "--min-confidence",
            help="Exit 3 below this confidence: low (default), medium, high.",
            show_default=False,
        ),
    ] = None,
    update_baseline: Annotated[
        bool,
        typer.Option("--update-baseline", help="Write the new result as the baseline and exit 0."),
    ] = False,
    summary_md: Annotated[
        Path | None,
        typer.Option("--summary-md", help="Write a Markdown summary here.", show_default=False),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Write a JUnit XML report here.", show_default=False),
    ] = None,
    set_: SetOpt = None,
    out: OutOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    method: MethodOpt = None,
    nproc: NprocOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run the sweep and fail when the suggested LR drifts from expectations (the CI gate).

    Exit codes: 0 within expectations, 1 outside (by how much, which way), 2 bad
    usage/config/data, 3 no reliable answer (confidence too low), 130 interrupted.
    """

    def body() -> int:
        launch_if_requested(nproc)
        from lrfind.cli.console import SweepProgress, summary_table
        from lrfind.engine import distributed
        from lrfind.workflows.check import expectations_for, run_check
        from lrfind.workflows.sweep import result_json

        if min_confidence is not None and min_confidence not in ("low", "medium", "high"):
            raise ConfigError(
                f"--min-confidence must be low, medium or high, got {min_confidence!r}"
            )
        loaded = load(config, set_, method)
        expectations = expectations_for(
            loaded,
            lr_min=expect_min,
            lr_max=expect_max,
            baseline=baseline,
            tolerance=tolerance,
            min_confidence=min_confidence,
            read_baseline=not update_baseline,
        )
        console = make_cli_console()
        try:
            with stop_on_signals() as stop:
                progress = SweepProgress(
                    console, enabled=not quiet and distributed.current().is_main
                )
                with progress:
                    outcome_run = run_check(
                        loaded,
                        expectations,
                        out=out,
                        reporter=progress,
                        stop=stop,
                        update_baseline=update_baseline,
                    )
        finally:
            distributed.shutdown()
        run = outcome_run.sweep
        if run.run_dir is None:
            return 0
        result, outcome = run.result, outcome_run.outcome
        if json_output:
            document = json.loads(result_json(result))
            document["check"] = (
                None
                if outcome is None
                else {
                    "passed": outcome.passed,
                    "message": outcome.message,
                    "expected_min": outcome.expected_min,
                    "expected_max": outcome.expected_max,
                }
            )
            print_json(json.dumps(document, indent=2, allow_nan=False))
        written = _write_ci_reports(
            result, run.files.get("plot"), outcome, loaded.name, summary_md, junit
        )
        if not quiet:
            files = {label: str(path) for label, path in run.files.items()}
            files.update({f"report {index + 1}": path for index, path in enumerate(written)})
            console.print(summary_table(result, files))
        if outcome_run.baseline_written is not None:
            console.print(f"baseline written to {outcome_run.baseline_written}; commit it")
            return 0
        assert outcome is not None
        console.print(("PASS: " if outcome.passed else "FAIL: ") + outcome.message, markup=False)
        return EXIT_OK if outcome.passed else EXIT_CHECK_FAILED

    code = guarded(debug, body)
    raise typer.Exit(code)
