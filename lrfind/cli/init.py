"""`lrfind init`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lrfind.cli.common import (
    JsonReply,
    guarded,
    make_cli_console,
)
from lrfind.cli.options import (
    DebugOpt,
)
from lrfind.workflows.init import DEFAULT_STARTER_PATH


def init_command(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="Where to write the starter config.")
    ] = DEFAULT_STARTER_PATH,
    model: Annotated[
        str,
        typer.Option(
            metavar="NAME", help="Built-in model name, or an import path 'pkg.module:callable'."
        ),
    ] = "mlp",
    dataset: Annotated[
        str,
        typer.Option(
            metavar="NAME", help="Built-in dataset name, or an import path to a data factory."
        ),
    ] = "sklearn",
    optimizer: Annotated[
        str,
        typer.Option(metavar="NAME", help="sgd, adam, adamw, rmsprop, adagrad, or an import path."),
    ] = "sgd",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help='Print {"path": ...} to stdout (and nothing else there).'),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Write a commented starter config (validated before it is written).

    Exit codes: 0 written, 2 bad option or the file exists (without --force).
    """
    reply = JsonReply(json_output)

    def body() -> int:
        from lrfind.workflows.init import init

        written = init(path, model=model, dataset=dataset, optimizer=optimizer, force=force)
        reply.set({"path": str(written)})
        make_cli_console().print(
            f"wrote {written}; run it with: lrfind sweep {written} "
            "(each run goes to runs/<name>/<UTC timestamp>/)",
            markup=False,
        )
        return 0

    code = guarded(debug, body, reply)
    raise typer.Exit(code)
