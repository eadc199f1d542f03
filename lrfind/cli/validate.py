"""`lrfind validate`."""

from __future__ import annotations

from typing import Annotated

import typer

from lrfind.cli.common import (
    JsonReply,
    guarded,
    make_cli_console,
)
from lrfind.cli.options import (
    ConfigArg,
    DebugOpt,
    SetOpt,
)
from lrfind.errors import (
    ConfigError,
)


def validate_command(
    config: ConfigArg,
    set_: SetOpt = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the findings (valid, imports, files, problems) as JSON to stdout.",
        ),
    ] = False,
    no_import: Annotated[
        bool,
        typer.Option(
            "--no-import",
            help="List the modules the config names without importing them (no user code runs).",
        ),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Check CONFIG without training: schema, import paths, files.

    To check an import path, validate IMPORTS its module, which runs the module's top-level
    code like running a Python file; --no-import lists the modules without importing them.
    Exit 0 valid, 2 invalid.
    """
    reply = JsonReply(json_output)

    def body() -> int:
        from lrfind.workflows.validate import invalid_document, raise_if_invalid, validate

        try:
            report = validate(config, set_ or [], resolve=not no_import)
        except ConfigError as error:
            reply.set(invalid_document(error))  # a CI step parsing stdout still gets its fields
            raise
        reply.set(report.to_dict())
        raise_if_invalid(report)
        if not json_output:
            console = make_cli_console()
            console.print(f"{config}: valid (run name '{report.config.name}')", markup=False)
            if report.imports and no_import:
                console.print("imports (not imported, --no-import; this code runs when used):")
            elif report.imports:
                console.print("imports (imported to check them: their top-level code ran):")
            if report.imports:
                for item in report.imports:
                    console.print(
                        f"  {item.key}: {item.path}  (module {item.module})", markup=False
                    )
            else:
                console.print("imports: none (built-in components only)")
            for key, file in report.files:
                console.print(f"  {key}: {file}", markup=False)
        return 0

    code = guarded(debug, body, reply)
    raise typer.Exit(code)
