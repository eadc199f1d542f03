"""`lrfind validate`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from lrfind.cli.common import (
    guarded,
    make_cli_console,
    print_json,
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
    debug: DebugOpt = False,
) -> None:
    """Check CONFIG without training: schema, import paths, files. Lists the modules it imports.

    Import paths in a config run code, like any Python file. Exit 0 valid, 2 invalid.
    """

    def body() -> int:
        from lrfind.workflows.validate import invalid_document, raise_if_invalid, validate

        try:
            report = validate(config, set_ or [])
        except ConfigError as error:
            if json_output:  # a CI step parsing stdout still gets a document
                print_json(json.dumps(invalid_document(error), indent=2))
            raise
        if json_output:
            print_json(json.dumps(report.to_dict(), indent=2))
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
