"""The ``lrfind`` command line: parse, make one library call, print, map errors to exit codes.

torch and matplotlib are never imported at module level here (``lrfind --help`` stays instant);
every command's work is a function in ``lrfind.workflows`` (or a module it names) that Python
callers can use directly. Human output goes to stderr; ``--json`` output alone goes to stdout.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lrfind import __version__, cli_reports
from lrfind.cli_common import (
    ConfigArg,
    DebugOpt,
    JsonOpt,
    MethodOpt,
    NprocOpt,
    OutOpt,
    QuietOpt,
    SetOpt,
    guarded,
    launch_if_requested,
    load,
    make_cli_console,
    print_json,
    stop_on_signals,
)
from lrfind.errors import (
    EXIT_CHECK_FAILED,
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
    Interrupted,
    OutputError,
)

app = typer.Typer(
    name="lrfind",
    help="Learning-rate range test for PyTorch: sweep, recommend, check in CI, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"lrfind {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Learning-rate range test for PyTorch."""


@app.command()
def sweep(
    config: ConfigArg,
    set_: SetOpt = None,
    out: OutOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    method: MethodOpt = None,
    nproc: NprocOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run the LR range test described by CONFIG; write the plot, history and result.json.

    Exit codes: 0 done, 2 bad config/data/usage, 3 no reliable suggestion, 130 interrupted.
    """

    def body() -> int:
        launch_if_requested(nproc)
        from lrfind import distributed, workflows
        from lrfind.console import SweepProgress, summary_table
        from lrfind.report import one_line_summary

        loaded = load(config, set_, method)
        console = make_cli_console()
        try:
            with stop_on_signals() as stop:
                main_rank = distributed.current().is_main
                progress = SweepProgress(console, enabled=not quiet and main_rank)
                with progress:
                    run = workflows.run_sweep(loaded, out=out, reporter=progress, stop=stop)
        finally:
            distributed.shutdown()
        if run.run_dir is None:
            return 0
        result = run.result
        if json_output:
            print_json(workflows.result_json(result))
        if quiet:
            console.print(one_line_summary(result, str(run.run_dir)), markup=False)
        else:
            files = {label: str(path) for label, path in run.files.items()}
            console.print(summary_table(result, files))
        if not result.complete:
            raise Interrupted(f"interrupted; partial results in {run.run_dir}")
        if result.suggestion.lr is None:
            return EXIT_NO_ANSWER
        return 0

    code = guarded(debug, body)
    raise typer.Exit(code)


def _write_ci_reports(
    result: Any,
    plot: Path | None,
    outcome: Any,
    name: str,
    summary_md: Path | None,
    junit: Path | None,
) -> list[str]:
    """Write --summary-md / $GITHUB_STEP_SUMMARY / --junit; return the paths written."""
    from lrfind import report, runs

    written: list[str] = []
    markdown = report.render_markdown(result, str(plot) if plot else None, outcome)
    if summary_md is not None:
        runs.atomic_write_text(summary_md, markdown)
        written.append(str(summary_md))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with Path(step_summary).open("a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")
        except OSError as error:
            raise OutputError(f"cannot append to GITHUB_STEP_SUMMARY: {error.strerror}") from None
        written.append(step_summary)
    if junit is not None:
        runs.atomic_write_text(junit, report.render_junit([(name, result, outcome)]))
        written.append(str(junit))
    return written


@app.command()
def check(
    config: ConfigArg,
    expect_min: Annotated[
        float | None,
        typer.Option(
            "--expect-min", help="Fail if the suggested LR is below this.", show_default=False
        ),
    ] = None,
    expect_max: Annotated[
        float | None,
        typer.Option(
            "--expect-max", help="Fail if the suggested LR is above this.", show_default=False
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="A baseline result.json (or run dir) to stay within --tolerance of.",
            show_default=False,
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            help="Allowed factor between the suggestion and the baseline (default 2.0).",
            show_default=False,
        ),
    ] = None,
    min_confidence: Annotated[
        str | None,
        typer.Option(
            "--min-confidence",
            help="Exit 3 below this confidence: low (default), medium, high.",
            show_default=False,
        ),
    ] = None,
    update_baseline: Annotated[
        bool,
        typer.Option("--update-baseline", help="Write the new result as the baseline and exit 0."),
    ] = False,
    summary_md: Annotated[
        Path | None,
        typer.Option("--summary-md", help="Write a Markdown summary here.", show_default=False),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Write a JUnit XML report here.", show_default=False),
    ] = None,
    set_: SetOpt = None,
    out: OutOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    method: MethodOpt = None,
    nproc: NprocOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run the sweep and fail when the suggested LR drifts from expectations (the CI gate).

    Exit codes: 0 within expectations, 1 outside (by how much, which way), 2 bad
    usage/config/data, 3 no reliable answer (confidence too low), 130 interrupted.
    """

    def body() -> int:
        launch_if_requested(nproc)
        from lrfind import distributed, workflows
        from lrfind.console import SweepProgress, summary_table

        if min_confidence is not None and min_confidence not in ("low", "medium", "high"):
            raise ConfigError(
                f"--min-confidence must be low, medium or high, got {min_confidence!r}"
            )
        loaded = load(config, set_, method)
        expectations = workflows.expectations_for(
            loaded,
            lr_min=expect_min,
            lr_max=expect_max,
            baseline=baseline,
            tolerance=tolerance,
            min_confidence=min_confidence,
            read_baseline=not update_baseline,
        )
        console = make_cli_console()
        try:
            with stop_on_signals() as stop:
                progress = SweepProgress(
                    console, enabled=not quiet and distributed.current().is_main
                )
                with progress:
                    outcome_run = workflows.run_check(
                        loaded,
                        expectations,
                        out=out,
                        reporter=progress,
                        stop=stop,
                        update_baseline=update_baseline,
                    )
        finally:
            distributed.shutdown()
        run = outcome_run.sweep
        if run.run_dir is None:
            return 0
        result, outcome = run.result, outcome_run.outcome
        if json_output:
            document = json.loads(workflows.result_json(result))
            document["check"] = (
                None
                if outcome is None
                else {
                    "passed": outcome.passed,
                    "message": outcome.message,
                    "expected_min": outcome.expected_min,
                    "expected_max": outcome.expected_max,
                }
            )
            print_json(json.dumps(document, indent=2, allow_nan=False))
        written = _write_ci_reports(
            result, run.files.get("plot"), outcome, loaded.name, summary_md, junit
        )
        if not quiet:
            files = {label: str(path) for label, path in run.files.items()}
            files.update({f"report {index + 1}": path for index, path in enumerate(written)})
            console.print(summary_table(result, files))
        if outcome_run.baseline_written is not None:
            console.print(f"baseline written to {outcome_run.baseline_written}; commit it")
            return 0
        assert outcome is not None
        console.print(("PASS: " if outcome.passed else "FAIL: ") + outcome.message, markup=False)
        return EXIT_OK if outcome.passed else EXIT_CHECK_FAILED

    code = guarded(debug, body)
    raise typer.Exit(code)


@app.command()
def validate(
    config: ConfigArg,
    set_: SetOpt = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the findings (valid, imports, files, problems) as JSON to stdout.",
        ),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Check CONFIG without training: schema, import paths, files. Lists the modules it imports.

    Import paths in a config run code, like any Python file. Exit 0 valid, 2 invalid.
    """

    def body() -> int:
        from lrfind.validation import raise_if_invalid, validate

        try:
            report = validate(config, set_ or [])
        except ConfigError as error:
            if json_output:  # a CI step parsing stdout still gets a document
                invalid: dict[str, Any] = {"valid": False, "name": None, "imports": [], "files": []}
                print_json(json.dumps({**invalid, "problems": list(error.problems)}, indent=2))
            raise
        if json_output:
            print_json(
                json.dumps(
                    {
                        "valid": report.ok,
                        "name": report.config.name,
                        "imports": [
                            {"key": i.key, "path": i.path, "module": i.module, "error": i.error}
                            for i in report.imports
                        ],
                        "files": [{"key": k, "path": str(p)} for k, p in report.files],
                        "problems": list(report.problems),
                    },
                    indent=2,
                )
            )
        raise_if_invalid(report)
        if not json_output:
            console = make_cli_console()
            console.print(f"{config}: valid (run name '{report.config.name}')", markup=False)
            if report.imports:
                console.print("imports (this code runs when the config is used):")
                for item in report.imports:
                    console.print(
                        f"  {item.key}: {item.path}  (module {item.module})", markup=False
                    )
            else:
                console.print("imports: none (built-in components only)")
            for key, file in report.files:
                console.print(f"  {key}: {file}", markup=False)
        return 0

    code = guarded(debug, body)
    raise typer.Exit(code)


@app.command()
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
        from lrfind import runs
        from lrfind.config import parse_yaml, validate_config
        from lrfind.starter import render_starter

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


cli_reports.register(app)


# Click's base error class, found through a public Typer class: Typer ships its own copy of
# Click in recent versions and uses the click package in older ones.
_CLICK_ERROR: type[Exception] = next(
    cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"
)


def main() -> None:
    """Console-script entry point: usage errors become one ``error:`` line and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except _CLICK_ERROR as error:
        if type(error).__name__ == "NoArgsIsHelpError":
            error.show()  # type: ignore[attr-defined]
            sys.exit(EXIT_USAGE)
        message = " ".join(error.format_message().split())  # type: ignore[attr-defined]
        context = getattr(error, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        sys.stderr.write(f"error: {message}{hint}\n")
        sys.exit(EXIT_USAGE)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
