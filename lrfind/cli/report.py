"""`lrfind report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lrfind.cli.common import _say, guarded, make_cli_console, print_json
from lrfind.cli.options import DebugOpt, ForceOpt
from lrfind.errors import (
    EXIT_OK,
)

if TYPE_CHECKING:
    pass


def report_command(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="One or more run directories (from lrfind sweep/check/compare).",
            metavar="RUN_DIR",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE.png",
            help="Write the PNG here. Default: <RUN_DIR>/report.png for one run, "
            "./lrfind-report.png for several; no PNG when only --html is given.",
            show_default=False,
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE.html",
            help="Also write one self-contained HTML page (plots embedded).",
            show_default=False,
        ),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option(
            "--title", metavar="TEXT", help="Title of the plot and page.", show_default=False
        ),
    ] = None,
    force: ForceOpt = False,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print {"png": ..., "html": ..., "runs": [...]} to stdout (nothing else there).',
        ),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Redraw saved runs without training: one run's plot, or several overlaid.

    Legends name runs by their run name, or by what differs in their saved config.yaml when
    names collide. Existing files are never overwritten without --force.

    Exit codes: 0 written, 2 missing/invalid run directory or output problem.
    """

    def body() -> int:
        from lrfind.workflows.report import report

        written = report(run_dirs, out=out, html=html, title=title, force=force)
        console = make_cli_console()
        if json_output:
            print_json(json.dumps(written.to_dict(), indent=2))
        if len(written.labels) > 1:
            _say(console, "runs: " + "; ".join(written.labels))
        for path in (written.png, written.html):
            if path is not None:
                _say(console, f"wrote {path}")
        return EXIT_OK

    raise typer.Exit(guarded(debug, body))
