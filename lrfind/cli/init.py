"""`lrfind init`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lrfind.cli.common import (
    guarded,
    make_cli_console,
    print_json,
)
from lrfind.cli.options import (
    DebugOpt,
)
from lrfind.errors import (
    OutputError,
)


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the starter config.")] = Path(
        "lrfind.yaml"
    ),
    model: Annotated[
        str, typer.Option(help="Built-in model name, or an import path 'pkg.module:callable'.")
    ] = "mlp",
    dataset: Annotated[
        str, typer.Option(help="Built-in dataset name, or an import path to a data factory.")
    ] = "sklearn",
    optimizer: Annotated[
        str, typer.Option(help="sgd, adam, adamw, rmsprop, adagrad, or an import path.")
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

    def body() -> int:
        from lrfind.config.load import parse_yaml, validate_config
        from lrfind.config.starter import render_starter
        from lrfind.outputs import runs

        if path.exists() and not force:
            raise OutputError(f"{path} already exists (use --force to overwrite it)")
        text = render_starter(model=model, dataset=dataset, optimizer=optimizer, name=None)
        data, lines = parse_yaml(text, str(path))
        validate_config(data, source=str(path), lines=lines)
        if path.parent and not path.parent.exists():
            raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
        runs.atomic_write_text(path, text)
        if json_output:
            print_json(json.dumps({"path": str(path)}))
        make_cli_console().print(f"wrote {path}; run it with: lrfind sweep {path}", markup=False)
        return 0

    code = guarded(debug, body)
    raise typer.Exit(code)
