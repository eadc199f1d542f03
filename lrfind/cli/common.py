"""What every command does alike: console, error mapping, signals, config loading, JSON."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

from lrfind.cli.options import T
from lrfind.errors import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    LrfindError,
)

if TYPE_CHECKING:
    pass


def make_cli_console() -> Any:
    """Return the stderr console (rich is imported lazily to keep start-up fast)."""
    from lrfind.cli.console import make_console

    return make_console()


def fail(message: str, code: int, debug: bool) -> typer.Exit:
    """Print ``error: message`` to stderr (traceback too with --debug); return the Exit to raise."""
    if debug:
        traceback.print_exc()
    console = make_cli_console()
    console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def guarded(debug: bool, body: Callable[[], T]) -> T:
    """Run ``body``; turn lrfind errors and surprises into one line on stderr and an exit code."""
    try:
        return body()
    except typer.Exit:
        raise
    except LrfindError as error:
        raise fail(str(error), error.exit_code, debug) from None
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_INTERRUPTED, debug) from None
    except MemoryError:
        raise fail("out of memory", EXIT_USAGE, debug) from None
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        text = f"{type(error).__name__}: {first}" if first else type(error).__name__
        hint = "" if debug else " (run with --debug for the traceback)"
        raise fail(f"unexpected error: {text}{hint}", EXIT_USAGE, debug) from None


@contextmanager
def stop_on_signals() -> Iterator[Any]:
    """Turn the first SIGINT/SIGTERM into a graceful stop request; a second one aborts."""
    from lrfind.engine.options import StopFlag

    flag = StopFlag()
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.request(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        # signal.signal raises ValueError off the main thread (e.g. inside some test runners).
        with suppress(ValueError):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def load(config_path: Path, overrides: list[str] | None, method: str | None = None) -> Any:
    """Load and validate the config with --set overrides and --method. Raises ConfigError."""
    from lrfind.config.load import load_config

    extra = [f"suggest.method={method}"] if method else []
    return load_config(config_path, [*(overrides or []), *extra])


def launch_if_requested(nproc: int | None) -> None:
    """Under --nproc N (outside torchrun), re-run this command with torchrun; exit with its code."""
    if nproc is None or os.environ.get("WORLD_SIZE"):
        return
    from lrfind.engine.distributed import launch

    argv = argv_without_nproc(sys.argv[1:])
    raise typer.Exit(launch(nproc, argv))


def argv_without_nproc(argv: list[str]) -> list[str]:
    """Return the command line without its ``--nproc`` option."""
    cleaned: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        cleaned.append(arg)
    return cleaned


def print_json(text: str) -> None:
    """Write ``text`` and a newline to stdout (the only thing commands print there)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _say(console: Any, text: str) -> None:
    """Print one line of plain text to the stderr console (no markup, never re-wrapped)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _say_table(console: Any, lines: list[str]) -> None:
    """Print a text table's lines with a blank line before and after."""
    for line in ["", *lines, ""]:
        _say(console, line)
