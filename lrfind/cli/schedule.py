"""`lrfind schedule`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lrfind.cli.common import JsonReply, guarded, print_json
from lrfind.cli.options import DebugOpt
from lrfind.errors import (
    EXIT_OK,
)

if TYPE_CHECKING:
    pass


class KindChoice(str, Enum):
    """The schedules ``lrfind schedule`` can write."""

    onecycle = "onecycle"
    cyclic = "cyclic"
    plateau = "plateau"
    cosine = "cosine"


class FormatChoice(str, Enum):
    """How ``lrfind schedule`` writes the snippet."""

    python = "python"
    yaml = "yaml"
    json = "json"


def schedule_command(
    run_dir: Annotated[
        Path,
        typer.Argument(help="A run directory.", metavar="RUN_DIR", show_default=False),
    ],
    kind: Annotated[
        KindChoice,
        typer.Option("--kind", help="The scheduler to configure.", show_default=False),
    ],
    fmt: Annotated[
        FormatChoice,
        typer.Option(
            "--format",
            help="python (a snippet using `optimizer`), yaml, or json (the same layout as yaml).",
        ),
    ] = FormatChoice.python,
    json_output: Annotated[
        bool, typer.Option("--json", help="Same as --format json.", show_default=False)
    ] = False,
    total_steps: Annotated[
        int | None,
        typer.Option(
            "--total-steps",
            metavar="N",
            min=1,
            help="Length of training in optimizer steps (onecycle and cosine need it, or "
            "--epochs).",
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            metavar="E",
            min=1,
            help="Training epochs; each is as many optimizer steps as the run's training loader "
            "gives (its batches / accumulation), unless --steps-per-epoch says otherwise.",
            show_default=False,
        ),
    ] = None,
    steps_per_epoch: Annotated[
        int | None,
        typer.Option(
            "--steps-per-epoch",
            metavar="S",
            min=1,
            help="Optimizer steps per epoch.",
            show_default="the run's batches per epoch / accumulation steps",
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Print a ready-to-paste LR scheduler built from a run's suggestion and range (stdout).

    Exit codes: 0 printed, 2 bad options or run directory, 3 the run has no suggestion or
    range to build it from.
    """
    reply = JsonReply(json_output or fmt is FormatChoice.json)

    def body() -> int:
        from lrfind.outputs.runs import load_run
        from lrfind.workflows.schedule import schedule

        result = load_run(run_dir)
        snippet = schedule(
            result,
            kind.value,
            "json" if json_output else fmt.value,
            total_steps=total_steps,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
        )
        print_json(snippet.rstrip("\n"))  # the snippet is this command's machine output
        reply.answered()
        return EXIT_OK

    raise typer.Exit(guarded(debug, body, reply))
