"""`lrfind schedule`."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from lrfind.cli.common import JsonReply, guarded, print_json
from lrfind.cli.options import DebugOpt
from lrfind.errors import EXIT_OK, ConfigError


class KindChoice(str, Enum):
    """The schedules ``lrfind schedule`` can write."""

    onecycle = "onecycle"
    cyclic = "cyclic"
    plateau = "plateau"
    cosine = "cosine"
    linear = "linear"


class FormatChoice(str, Enum):
    """How ``lrfind schedule`` writes the snippet."""

    python = "python"
    yaml = "yaml"
    json = "json"
    transformers = "transformers"


def schedule_command(
    run_dir: Annotated[
        Path,
        typer.Argument(help="A run directory.", metavar="RUN_DIR", show_default=False),
    ],
    kind: Annotated[
        KindChoice | None,
        typer.Option(
            "--kind",
            help="The scheduler to configure.",
            show_default="the run's train.schedule",
        ),
    ] = None,
    fmt: Annotated[
        FormatChoice,
        typer.Option(
            "--format",
            help="python (a snippet using `optimizer`), yaml, json (the same layout as yaml), or "
            "transformers (TrainingArguments keyword arguments and a get_scheduler call; linear "
            "and cosine).",
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
    warmup: Annotated[
        float | None,
        typer.Option(
            "--warmup",
            metavar="W",
            help="Warm-up: a fraction of the run below 1 (0.06) or a whole number of steps (500). "
            "cosine and linear rise to the peak over it; onecycle rises over it instead of 30%.",
            show_default="5% for cosine and linear",
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

        warmup_steps, warmup_fraction = warmup_option(warmup)
        result = load_run(run_dir)
        snippet = schedule(
            result,
            kind.value if kind is not None else None,
            "json" if json_output else fmt.value,
            total_steps=total_steps,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            warmup_steps=warmup_steps,
            warmup_fraction=warmup_fraction,
        )
        print_json(snippet.rstrip("\n"))  # the snippet is this command's machine output
        reply.answered()
        return EXIT_OK

    raise typer.Exit(guarded(debug, body, reply))


def warmup_option(value: float | None) -> tuple[int | None, float | None]:
    """``--warmup`` as (steps, fraction): below 1 a fraction of the run, else whole steps.

    Raises:
        ConfigError: not a finite number (nan, inf), below 0, or 1 or more and not whole.
    """
    if value is None:
        return None, None
    # Checked here rather than by the option's min=0, which calls nan "not >= 0".
    if not math.isfinite(value):
        raise ConfigError(
            f"--warmup {value:g}: not a finite number; give a fraction of the run below 1 (0.06) "
            "or a whole number of steps (500)"
        )
    if value < 0:
        raise ConfigError(f"--warmup {value:g}: must be 0 or more")
    if value < 1:
        return None, value
    if not float(value).is_integer():
        raise ConfigError(
            f"--warmup {value:g}: give a fraction of the run below 1 (0.06) or a whole number "
            "of steps (500)"
        )
    return int(value), None
