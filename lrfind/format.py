"""How LRs, ranges, missing values and other people's errors are written for people."""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Iterable, Sequence

from lrfind.results import LRRange

#: What a missing or non-finite LR prints as.
NO_VALUE = "—"

NO_SUGGESTION = "no reliable suggestion"


def format_lr(lr: float | None, digits: int = 3) -> str:
    """Return ``lr`` in scientific notation with ``digits`` significant digits ("3.16e-03").

    None and non-finite values print as an em dash.
    """
    if lr is None or not math.isfinite(lr):
        return NO_VALUE
    return f"{lr:.{max(1, digits) - 1}e}"


def format_range(lr_range: LRRange) -> str:
    """Return "1.00e-04 – 1.00e-02", or an em dash when the range is unknown."""
    if lr_range.min_lr is None and lr_range.max_lr is None:
        return NO_VALUE
    return f"{format_lr(lr_range.min_lr)} – {format_lr(lr_range.max_lr)}"


def did_you_mean(name: object, options: Iterable[object], n: int = 1) -> str:
    """Return " (did you mean 'x'?)" naming up to ``n`` close matches of ``name``, or "".

    The one "did you mean" of every error message: keys, built-ins, arguments, columns.
    """
    choices = [str(option) for option in options]
    close = difflib.get_close_matches(str(name), choices, n=n)
    if not close:
        return ""
    return f" (did you mean {', '.join(repr(match) for match in close)}?)"


def unknown_arguments(
    names: Iterable[str],
    accepted: Sequence[str],
    key: str,
    label: str,
    known: Collection[str] | None = None,
) -> list[str]:
    """One line per name in ``names`` that is not ``known`` (default: ``accepted``), or [].

    The one "unknown argument" check of built-ins and user components alike:
    ``"model.args: model 'mlp' has no argument 'hiden' (did you mean 'hidden'?); accepted: ..."``.
    """
    known = accepted if known is None else known
    return [
        f"{key}: {label} has no argument '{name}'{did_you_mean(name, accepted)}; "
        f"accepted: {', '.join(accepted)}"
        for name in names
        if name not in known
    ]


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name when the message is blank.

    The one "first line of a message" of every error that quotes someone else's exception.
    """
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def error_summary(error: BaseException) -> str:
    """``"TypeError: <first line>"``, or the type's name alone when the message is blank."""
    text = str(error).strip()
    name = type(error).__name__
    return f"{name}: {first_line(error)}" if text else name


def raised_at(error: BaseException) -> str:
    """' (file.py:12)' for the innermost frame of ``error``'s traceback, or ''."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    return f" ({frames[-1].filename}:{frames[-1].lineno})"
