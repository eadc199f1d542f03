"""`lrfind check`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from lrfind.cli.common import (
    JsonReply,
    guarded,
    launch_if_requested,
    load,
    make_cli_console,
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
from lrfind.config.schema import EXPECT_DEFAULTS
from lrfind.errors import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
)


@contextmanager
def keep_partial_run(reply: JsonReply) -> Iterator[None]:
    """On "no reliable answer", let ``--json`` print the run's document with the error."""
    from lrfind.errors import NoReliableSuggestion
    from lrfind.workflows.check import CheckRun

    try:
        yield
    except NoReliableSuggestion as error:
        if isinstance(error.run, CheckRun):
            reply.set(error.run.to_dict())
        raise


def check_command(
    config: ConfigArg,
    expect_min: Annotated[
        float | None,
        typer.Option(
            "--expect-min",
            metavar="LR",
            help="Fail if the suggested LR is below this.",
            show_default="the config's expect.lr_min",
        ),
    ] = None,
    expect_max: Annotated[
        float | None,
        typer.Option(
            "--expect-max",
            metavar="LR",
            help="Fail if the suggested LR is above this.",
            show_default="the config's expect.lr_max",
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            metavar="RUN_DIR|FILE",
            help="A baseline result.json (or run dir) to stay within --tolerance of.",
            show_default="the config's expect.baseline",
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            metavar="FACTOR",
            help="Allowed factor between the suggestion and the baseline.",
            show_default=f"the config's expect.tolerance, else {EXPECT_DEFAULTS.tolerance:g}",
        ),
    ] = None,
    min_confidence: Annotated[
        str | None,
        typer.Option(
            "--min-confidence",
            metavar="LEVEL",
            help="Exit 3 below this confidence: low, medium or high.",
            show_default=(
                f"the config's expect.min_confidence, else {EXPECT_DEFAULTS.min_confidence}"
            ),
        ),
    ] = None,
    update_baseline: Annotated[
        bool,
        typer.Option("--update-baseline", help="Write the new result as the baseline and exit 0."),
    ] = False,
    summary_md: Annotated[
        Path | None,
        typer.Option(
            "--summary-md",
            metavar="FILE.md",
            help="Write a Markdown summary here.",
            show_default=False,
        ),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit", metavar="FILE.xml", help="Write a JUnit XML report here.", show_default=False
        ),
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
    reply = JsonReply(json_output)

    def body() -> int:
        launch_if_requested(nproc)
        from lrfind.cli.console import SweepProgress, summary_table
        from lrfind.engine import distributed
        from lrfind.workflows.check import check

        loaded = load(config, set_, method)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        console = make_cli_console()
        with stop_on_signals() as stop:
            # Asking who prints joins nothing: check joins the process group and leaves it.
            progress = SweepProgress(console, enabled=not quiet and distributed.launched().is_main)
            with progress, keep_partial_run(reply):
                run = check(
                    loaded,
                    lr_min=expect_min,
                    lr_max=expect_max,
                    baseline=baseline,
                    tolerance=tolerance,
                    min_confidence=min_confidence,
                    update_baseline=update_baseline,
                    summary_md=summary_md,
                    junit=junit,
                    step_summary=Path(step_summary) if step_summary else None,
                    out=out,
                    reporter=progress,
                    stop=stop,
                )
        if run.sweep.run_dir is None:
            return 0
        reply.set(run.to_dict())
        if not quiet:
            files = {label: str(path) for label, path in run.sweep.files.items()}
            files.update({f"report {n + 1}": str(path) for n, path in enumerate(run.reports)})
            console.print(summary_table(run.sweep.result, files))
        if run.baseline_written is not None:
            console.print(f"baseline written to {run.baseline_written}; commit it")
            return 0
        assert run.outcome is not None
        outcome = run.outcome
        console.print(("PASS: " if outcome.passed else "FAIL: ") + outcome.message, markup=False)
        if not outcome.passed:
            reply.fail(EXIT_CHECK_FAILED, outcome.message)
        return EXIT_OK if outcome.passed else EXIT_CHECK_FAILED

    code = guarded(debug, body, reply)
    raise typer.Exit(code)
