"""`lrfind report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lrfind.cli.common import JsonReply, guarded, make_cli_console, say
from lrfind.cli.options import DebugOpt, ForceOpt
from lrfind.errors import (
    EXIT_OK,
)


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
            metavar="DIR",
            help="Write report.png and report.html into this folder (created if missing).",
            show_default=False,
        ),
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option(
            "--png",
            metavar="FILE.png",
            help="Write the PNG here.",
            show_default="RUN_DIR/report.png; ./lrfind-report.png for several runs",
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE.html",
            help="Write one self-contained HTML page: plot, decision, trials, verify verdict, "
            "config.",
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
    reply = JsonReply(json_output)

    def body() -> int:
        from lrfind.workflows.report import report

        written = report(run_dirs, out=out, png=png, html=html, title=title, force=force)
        console = make_cli_console()
        reply.set(written.to_dict())
        if len(written.labels) > 1:
            say(console, "runs: " + "; ".join(written.labels))
        for path in (written.png, written.html):
            if path is not None:
                say(console, f"wrote {path}")
        return EXIT_OK

    raise typer.Exit(guarded(debug, body, reply))
