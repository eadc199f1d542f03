"""The ``lrfind`` Typer app: global options, command registration and the console entry point."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from lrfind._version import __version__
from lrfind.cli.check import check_command
from lrfind.cli.common import JsonReply
from lrfind.cli.compare import compare_command
from lrfind.cli.help import LrfindCommand
from lrfind.cli.init import init_command
from lrfind.cli.report import report_command
from lrfind.cli.schedule import schedule_command
from lrfind.cli.sweep import sweep_command
from lrfind.cli.validate import validate_command
from lrfind.cli.verify import verify_command
from lrfind.errors import (
    EXIT_OK,
    EXIT_USAGE,
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


# Commands in the order `lrfind --help` lists them.
for command in (
    sweep_command,
    check_command,
    validate_command,
    init_command,
    report_command,
    compare_command,
    verify_command,
    schedule_command,
):
    app.command(command.__name__.removesuffix("_command"), cls=LrfindCommand)(command)


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
        # Typer validates choices through pydantic, whose wording leaks into the message.
        message = message.replace(": Value error, ", ": ")
        context = getattr(error, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        if "--json" in sys.argv[1:]:  # a bad option value is an outcome too: one document
            reply = JsonReply(True)
            reply.fail(EXIT_USAGE, message)
            reply.emit()
        sys.stderr.write(f"error: {message}{hint}\n")
        sys.exit(EXIT_USAGE)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
