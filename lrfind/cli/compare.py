"""`lrfind compare`."""

from __future__ import annotations

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
from lrfind.cli.options import ConfigArg, DebugOpt, FolderOutOpt, QuietOpt, SetOpt
from lrfind.errors import (
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_USAGE,
    Interrupted,
)

if TYPE_CHECKING:
    from lrfind.outputs.comparison import Comparison


def compare_command(
    config: ConfigArg,
    vary: Annotated[
        list[str] | None,
        typer.Option(
            "--vary",
            metavar="KEY=V1,V2,...",
            help="A config key and the values to try (each parsed as YAML; brackets and quotes "
            "may hold commas: args.hidden=[64],[128,64]). Repeat for a grid.",
            show_default=False,
        ),
    ] = None,
    set_: SetOpt = None,
    out: FolderOutOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print compare.json to stdout (and nothing else there).")
    ] = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run one sweep per variant of CONFIG and compare them in a table and an overlay plot.

    Writes <output.dir>/<name>-compare/<timestamp>/ (or --out): one run directory per
    variant, overlay.png, compare.json and compare.csv. A variant that fails is recorded and
    the others still run. Every variant's config is checked before any training.

    Exit codes: 0 every variant ran and at least one gave a suggestion, 2 bad usage/config or
    any variant failed, 3 no variant gave a reliable suggestion, 130 interrupted.
    """
    reply = JsonReply(json_output)

    def body() -> int:
        from lrfind.cli.console import SweepProgress
        from lrfind.workflows.compare import compare

        console = make_cli_console()
        with stop_on_signals() as stop:
            comparison = compare(
                config,
                vary or [],
                set_ or [],
                out=out,
                reporter_factory=lambda label: SweepProgress(
                    console, enabled=not quiet, label=label
                ),
                stop=stop,
            )
        document = comparison.to_dict()
        document["compare_dir"] = str(comparison.compare_dir)
        reply.set(document)
        _print_comparison(console, comparison, quiet)
        return _compare_exit_code(console, comparison, reply)

    raise typer.Exit(guarded(debug, body, reply))


def _print_comparison(console: Any, comparison: Comparison, quiet: bool) -> None:
    """The table and file list (hidden by --quiet); failures and warnings always."""
    from lrfind.outputs.comparison import TABLE_HEADERS, format_text_table, table_rows

    if not quiet:
        say_table(console, format_text_table(TABLE_HEADERS, table_rows(comparison)))
    for outcome in comparison.outcomes:
        if outcome.status == "failed":
            say(console, f"{outcome.variant.name} failed: {outcome.error}")
    for warning in comparison.warnings:
        say(console, f"warning: {warning}")
    say(console, f"results in {comparison.compare_dir}")
    if quiet:
        return
    for label in ("overlay", "json", "csv"):
        path = comparison.files.get(label)
        if path is not None:
            say(console, f"  {path.name}")


def _compare_exit_code(console: Any, comparison: Comparison, reply: JsonReply) -> int:
    """0 ok, 2 any variant failed, 3 no variant answered; raise Interrupted after a stop."""
    status = comparison.status
    if status == "interrupted":
        raise Interrupted(f"interrupted; partial results in {comparison.compare_dir}")
    failed = [o.variant.name for o in comparison.outcomes if o.status == "failed"]
    if failed:
        message = f"{len(failed)} of {len(comparison.outcomes)} variants failed: " + ", ".join(
            failed
        )
        say(console, f"error: {message}")
        reply.fail(EXIT_USAGE, message)
        return EXIT_USAGE
    if status == "no_answer":
        say(console, "no variant gave a reliable suggestion")
        reply.fail(EXIT_NO_ANSWER, "no variant gave a reliable suggestion")
        return EXIT_NO_ANSWER
    return EXIT_OK
