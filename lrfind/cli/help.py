"""How every command's --help reads: plain usage, argument names without type tags."""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperCommand


class LrfindCommand(TyperCommand):
    """A Typer command whose help shows ``lrfind sweep [OPTIONS] CONFIG``, not ``{CONFIG}``.

    Arguments are listed by name (``RUN_DIR...``) without Typer's type tags (``<list[Path]>``):
    each argument's help says what it is.
    """

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """The usage line's pieces, required arguments without braces."""
        pieces = super().collect_usage_pieces(ctx)
        return [_unbraced(piece) for piece in pieces]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """Arguments (name and help) then options, as Typer lists them."""
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                name = param.metavar or str(param.name).upper()
                if param.nargs != 1:
                    name += "..."
                arguments.append((name, _plain_default(record[1])))
            elif param.param_type_name == "option":
                options.append((record[0], _plain_default(record[1])))
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


def _plain_default(help_text: str) -> str:
    """``[default: (the config's x)]`` -> ``[default: the config's x]``: Typer's parentheses go."""
    return re.sub(r"\[default: \((.*?)\)(;|\])", r"[default: \1\2", help_text)


def _unbraced(piece: str) -> str:
    if piece.startswith("{") and "}" in piece:
        closing = piece.index("}")
        return piece[1:closing] + piece[closing + 1 :]
    return piece
