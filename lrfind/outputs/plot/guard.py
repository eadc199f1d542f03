"""A figure that fails to render becomes a warning: the numbers it illustrates are never lost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lrfind.errors import LrfindError, OutputError
from lrfind.format import error_summary


def plot_or_warning(draw: Callable[[], Path], what: str = "plot") -> tuple[Path | None, str | None]:
    """Run ``draw``; return (its path, None), or (None, "<what> failed: ...") if it raised.

    A figure that cannot be written (OutputError: a full disk) is a warning too, "<what> not
    written: ...": the document it illustrates, written after it and far smaller, may still fit
    (and if it does not, writing it raises).
    """
    try:
        return draw(), None
    except OutputError as error:
        return None, f"{what} not written: {error}"
    except Exception as error:  # a plotting bug must not lose the run, table or verdict
        if isinstance(error, LrfindError):
            text = " ".join(str(error).split())
        else:
            text = error_summary(error)
        return None, f"{what} failed: {text}"
