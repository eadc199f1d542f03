"""`lrfind verify`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lrfind.cli.common import (
    JsonReply,
    guarded,
    make_cli_console,
    say,
    say_table,
    stop_on_signals,
)
from lrfind.cli.options import DebugOpt, QuietOpt, SetOpt
from lrfind.errors import (
    EXIT_CHECK_FAILED,
    EXIT_NO_ANSWER,
    EXIT_OK,
)

if TYPE_CHECKING:
    from lrfind.workflows.verify import VerifyRun


def verify_command(
    target: Annotated[
        Path,
        typer.Argument(
            help="A run directory to check, or a config to sweep first.",
            metavar="RUN_DIR|CONFIG",
            show_default=False,
        ),
    ],
    lrs: Annotated[
        str,
        typer.Option(
            "--lrs",
            metavar="auto|LR,LR,...",
            help="LRs to try. auto: the suggestion /10, /3, x1, x3 and the range's max_lr. "
            "An explicit list always gets the suggestion added.",
        ),
    ] = "auto",
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            metavar="N",
            help="Training steps per trial.",
            show_default="the config's suggest.refine_steps, else 2 × sweep.steps",
        ),
    ] = None,
    set_: SetOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Output directory (must not exist or be empty). Default: <RUN_DIR>/verify/ "
            "for a run; the new run directory for a config.",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print verify.json to stdout (and nothing else there).")
    ] = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train briefly at constant LRs around the suggestion, from the same initial weights.

    Scores each trial on validation loss (training loss without a validation set). The
    suggestion is confirmed when its score is within one standard error of the best trial's
    (the error of their paired, batch-by-batch difference); otherwise the LR that did better is
    named, with by how much. Writes verify.json and verify.png.

    Exit codes: 0 confirmed, 1 not confirmed (another LR did better by more than one standard
    error, or the suggestion diverged), 2 bad usage/config/data or output exists, 3 no
    suggestion to verify, 130 interrupted.
    """
    reply = JsonReply(json_output)

    def body() -> int:
        from lrfind.cli.console import SweepProgress
        from lrfind.workflows.verify import parse_lrs
        from lrfind.workflows.verify import verify as run_verify

        chosen = parse_lrs(lrs)
        console = make_cli_console()
        with stop_on_signals() as stop, SweepProgress(console, enabled=not quiet) as progress:
            run = run_verify(
                target,
                lrs=chosen,
                steps=steps,
                out=out,
                overrides=set_ or [],
                reporter=progress,
                stop=stop,
            )
        reply.set(run.to_dict())
        _print_verify(console, run, quiet)
        code = {True: EXIT_OK, False: EXIT_CHECK_FAILED, None: EXIT_NO_ANSWER}[
            run.verdict.confirmed
        ]
        if code != EXIT_OK:
            reply.fail(code, run.verdict.message)
        return code

    raise typer.Exit(guarded(debug, body, reply))


def _print_verify(console: Any, run: VerifyRun, quiet: bool) -> None:
    from lrfind.outputs.comparison import format_text_table
    from lrfind.workflows.verify import TRIAL_HEADERS, trial_rows

    if not quiet:
        say_table(console, format_text_table(TRIAL_HEADERS, trial_rows(run)))
        for path in run.files.values():
            say(console, f"wrote {path}")
    verdict = run.verdict
    prefix = {True: "CONFIRMED", False: "NOT CONFIRMED", None: "NO VERDICT"}[verdict.confirmed]
    say(console, f"{prefix}: {verdict.message}")
    if verdict.note:
        say(console, f"note: {verdict.note}")
