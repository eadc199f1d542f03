"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import typer

from lrfind.names import DEFAULT_METHOD, SUGGEST_METHODS

T = TypeVar("T")

ConfigArg = Annotated[
    Path, typer.Argument(help="YAML config file.", show_default=False, metavar="CONFIG")
]

SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a config key: KEY.PATH=VALUE (value parsed as YAML). Repeatable.",
        show_default=False,
    ),
]

OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        metavar="DIR",
        help="Write the run to this directory (must not exist or be empty) "
        "instead of <output.dir>/<name>/<timestamp>.",
        show_default=False,
    ),
]

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print result.json to stdout (and nothing else there).")
]

QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Hide progress output.")]

DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]

MethodOpt = Annotated[
    str | None,
    typer.Option(
        "--method",
        metavar="NAME",
        help=f"Suggestion rule: {', '.join(SUGGEST_METHODS[:-1])} or {SUGGEST_METHODS[-1]}.",
        show_default=f"the config's suggest.method, else {DEFAULT_METHOD}",
    ),
]

NprocOpt = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        metavar="N",
        min=1,
        help="Launch N local processes (DDP, or FSDP2 with distributed.strategy: fsdp).",
        show_default=False,
    ),
]

ForceOpt = Annotated[
    bool, typer.Option("--force", help="Overwrite output files that already exist.")
]

FolderOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        metavar="DIR",
        help="Write everything to this directory (must not exist or be empty).",
        show_default=False,
    ),
]
