"""CLI commands that answer the questions after a sweep: report, compare, verify, schedule.

Each command parses, makes one library call (``lrfind.run_report``, ``lrfind.compare``,
``lrfind.verify``, ``lrfind.schedules_export``), prints, and maps errors to exit codes through
``guarded``. Human output goes to stderr; ``--json`` output (and ``schedule``'s snippet) alone
goes to stdout. No torch or matplotlib at module level: ``lrfind --help`` stays instant.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lrfind.cli_common import (
    ConfigArg,
    DebugOpt,
    QuietOpt,
    SetOpt,
    guarded,
    make_cli_console,
    print_json,
    stop_on_signals,
)
from lrfind.errors import (
    EXIT_CHECK_FAILED,
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_USAGE,
    Interrupted,
)

if TYPE_CHECKING:
    from lrfind.compare import Comparison
    from lrfind.verify import VerifyRun

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


def _say(console: Any, text: str) -> None:
    """Print one line of plain text to the stderr console (no markup, never re-wrapped)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _say_table(console: Any, lines: list[str]) -> None:
    """Print a text table's lines with a blank line before and after."""
    for line in ["", *lines, ""]:
        _say(console, line)


def report(
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
        from lrfind.run_report import make_report

        written = make_report(run_dirs, out=out, html=html, title=title, force=force)
        console = make_cli_console()
        if json_output:
            document = {
                "png": None if written.png is None else str(written.png),
                "html": None if written.html is None else str(written.html),
                "runs": list(written.labels),
            }
            print_json(json.dumps(document, indent=2))
        if len(written.labels) > 1:
            _say(console, "runs: " + "; ".join(written.labels))
        for path in (written.png, written.html):
            if path is not None:
                _say(console, f"wrote {path}")
        return EXIT_OK

    raise typer.Exit(guarded(debug, body))


def compare(
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

    def body() -> int:
        from lrfind.compare import run_compare
        from lrfind.console import SweepProgress

        console = make_cli_console()
        with stop_on_signals() as stop:
            comparison = run_compare(
                config,
                vary or [],
                set_ or [],
                out=out,
                reporter_factory=lambda label: SweepProgress(
                    console, enabled=not quiet, label=label
                ),
                stop=stop,
            )
        if json_output:
            document = comparison.to_dict()
            document["compare_dir"] = str(comparison.compare_dir)
            print_json(json.dumps(document, indent=2, allow_nan=False))
        _print_comparison(console, comparison, quiet)
        return _compare_exit_code(console, comparison)

    raise typer.Exit(guarded(debug, body))


def _print_comparison(console: Any, comparison: Comparison, quiet: bool) -> None:
    """The table and file list (hidden by --quiet); failures and warnings always."""
    from lrfind.compare import TABLE_HEADERS, format_text_table, table_rows

    if not quiet:
        _say_table(console, format_text_table(TABLE_HEADERS, table_rows(comparison)))
    for outcome in comparison.outcomes:
        if outcome.status == "failed":
            _say(console, f"{outcome.variant.name} failed: {outcome.error}")
    for warning in comparison.warnings:
        _say(console, f"warning: {warning}")
    _say(console, f"results in {comparison.compare_dir}")
    if quiet:
        return
    for label in ("overlay", "json", "csv"):
        path = comparison.files.get(label)
        if path is not None:
            _say(console, f"  {path.name}")


def _compare_exit_code(console: Any, comparison: Comparison) -> int:
    """0 ok, 2 any variant failed, 3 no variant answered; raise Interrupted after a stop."""
    status = comparison.status
    if status == "interrupted":
        raise Interrupted(f"interrupted; partial results in {comparison.compare_dir}")
    failed = [o.variant.name for o in comparison.outcomes if o.status == "failed"]
    if failed:
        _say(
            console,
            f"error: {len(failed)} of {len(comparison.outcomes)} variants failed: "
            + ", ".join(failed),
        )
        return EXIT_USAGE
    if status == "no_answer":
        _say(console, "no variant gave a reliable suggestion")
        return EXIT_NO_ANSWER
    return EXIT_OK


def verify(
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
            help="Training steps per trial (default: suggest.refine_steps, else 2 x sweep.steps).",
            show_default=False,
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
    suggestion is confirmed when its score is within 2% of the best trial's; otherwise the LR
    that did better is named, with by how much. Writes verify.json and verify.png.

    Exit codes: 0 confirmed, 1 not confirmed (another LR did better by more than 2%, or the
    suggestion diverged), 2 bad usage/config/data or output exists, 3 no suggestion to verify,
    130 interrupted.
    """

    def body() -> int:
        from lrfind.console import SweepProgress
        from lrfind.verify import parse_lrs
        from lrfind.verify import verify as run_verify

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
        if json_output:
            print_json(json.dumps(run.to_dict(), indent=2, allow_nan=False))
        _print_verify(console, run, quiet)
        return {True: EXIT_OK, False: EXIT_CHECK_FAILED, None: EXIT_NO_ANSWER}[
            run.verdict.confirmed
        ]

    raise typer.Exit(guarded(debug, body))


def _print_verify(console: Any, run: VerifyRun, quiet: bool) -> None:
    from lrfind.compare import format_text_table
    from lrfind.verify import TRIAL_HEADERS, trial_rows

    if not quiet:
        _say_table(console, format_text_table(TRIAL_HEADERS, trial_rows(run)))
        for path in run.files.values():
            _say(console, f"wrote {path}")
    verdict = run.verdict
    prefix = {True: "CONFIRMED", False: "NOT CONFIRMED", None: "NO VERDICT"}[verdict.confirmed]
    _say(console, f"{prefix}: {verdict.message}")
    if verdict.note:
        _say(console, f"note: {verdict.note}")


def schedule(
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
            "--epochs with --steps-per-epoch).",
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", metavar="E", min=1, help="Training epochs.", show_default=False),
    ] = None,
    steps_per_epoch: Annotated[
        int | None,
        typer.Option(
            "--steps-per-epoch",
            metavar="S",
            min=1,
            help="Optimizer steps per epoch.",
            show_default=False,
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Print a ready-to-paste LR scheduler built from a run's suggestion and range (stdout).

    Exit codes: 0 printed, 2 bad options or run directory, 3 the run has no suggestion or
    range to build it from.
    """

    def body() -> int:
        from lrfind.runs import load_run
        from lrfind.schedules_export import build_schedule

        result = load_run(run_dir)
        snippet = build_schedule(
            result,
            kind.value,
            "json" if json_output else fmt.value,
            total_steps=total_steps,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
        )
        print_json(snippet.rstrip("\n"))  # the snippet is this command's machine output
        return EXIT_OK

    raise typer.Exit(guarded(debug, body))


def register(app: typer.Typer) -> None:
    """Add the report, compare, verify and schedule commands to ``app``."""
    app.command()(report)
    app.command()(compare)
    app.command()(verify)
    app.command()(schedule)
