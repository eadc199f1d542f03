"""mkdocs hook: the reference pages are generated from the code when the site is built.

``<!-- lrfind:cli-help -->`` becomes every command's ``--help`` (from the Typer app), and
``<!-- lrfind:config-table -->`` one row per key of the config schema (``lrfind.config.schema``):
its type, default and bounds. A page cannot drift from the code it documents.
"""

from __future__ import annotations

import os
import types
import typing
from typing import Any

CLI_MARKER = "<!-- lrfind:cli-help -->"
CONFIG_MARKER = "<!-- lrfind:config-table -->"

#: pydantic's constraint metadata -> how the table writes it.
_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def command_names() -> list[str]:
    """The commands of ``lrfind``, in the order ``lrfind --help`` lists them."""
    from lrfind.cli.app import app

    return [command.name or "" for command in app.registered_commands]


def help_text(*argv: str) -> str:
    """What ``lrfind ARGV --help`` prints, at a fixed width of 100 columns."""
    from typer.testing import CliRunner

    from lrfind.cli.app import app

    env = {**os.environ, "COLUMNS": "100", "TERMINAL_WIDTH": "100", "NO_COLOR": "1"}
    result = CliRunner().invoke(app, [*argv, "--help"], env=env, prog_name="lrfind")
    if result.exit_code != 0:
        raise RuntimeError(f"lrfind {' '.join(argv)} --help exited {result.exit_code}")
    return result.stdout.rstrip()


def cli_reference() -> str:
    """Markdown: ``lrfind --help``, then a section per command with its ``--help``."""
    parts = ["### `lrfind`", "", "```text", help_text(), "```", ""]
    for name in command_names():
        parts += [f"### `lrfind {name}`", "", "```text", help_text(name), "```", ""]
    return "\n".join(parts)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(arg) for arg in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(metadata: list[Any]) -> str:
    found = []
    for item in metadata:
        for attribute, sign in _BOUNDS.items():
            value = getattr(item, attribute, None)
            if value is not None:
                found.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value}")
    return ", ".join(found)


def _default(field: Any) -> str:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        value = field.default_factory()
        return "" if isinstance(value, BaseModel) else f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{field.default!r}`" if field.default is not None else "`null`"


def config_rows(model: Any = None, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key path, type, default, bounds) of every key of the config schema, sections included."""
    from pydantic import BaseModel

    from lrfind.config.schema import Config

    rows: list[tuple[str, str, str, str]] = []
    for name, field in (model or Config).model_fields.items():
        key = f"{prefix}{name}"
        rows.append((key, _type_name(field.annotation), _default(field), _bounds(field.metadata)))
        for candidate in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                rows += config_rows(candidate, f"{key}.")
    return rows


def config_reference() -> str:
    """Markdown: the table of every config key."""
    lines = ["| key | type | default | bounds |", "|---|---|---|---|"]
    for key, kind, default, bounds in config_rows():
        kind, default = (cell.replace("|", "\\|") for cell in (kind, default))
        lines.append(f"| `{key}` | {kind} | {default} | {bounds} |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """mkdocs hook: fill the markers of a page."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_reference())
    return markdown
