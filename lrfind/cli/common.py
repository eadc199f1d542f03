"""What every command does alike: console, error mapping, signals, config loading, JSON."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout, suppress
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import typer

from lrfind.cli.options import T
from lrfind.errors import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    LrfindError,
)
from lrfind.format import error_summary


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


@functools.cache
def _key_pattern() -> re.Pattern[str]:
    """A config key at the start of an error message ("model.args: ...", "--set: data.target:
    ..."): one of the config's own top-level fields, then dotted names. Built on first use, so
    that the schema (pydantic) is not imported at start-up."""
    from lrfind.config.schema import Config

    sections = "|".join(sorted(map(re.escape, Config.model_fields), key=len, reverse=True))
    return re.compile(
        r"^(?:line \d+(?: \([^)]*\))?: |--[a-z-]+: )?"
        rf"((?:{sections})(?:\.[A-Za-z0-9_]+)*)(?=[: ])"
    )


def error_key(error: LrfindError) -> str | None:
    """The config key an error is about, when its message starts with one."""
    from lrfind.errors import ConfigError

    text = error.problems[0] if isinstance(error, ConfigError) and error.problems else str(error)
    found = _key_pattern().match(text)
    return found.group(1) if found else None


class JsonReply:
    """The one JSON document a ``--json`` command prints on stdout, whatever the outcome.

    The command ``set``s its document when it has one; ``guarded`` prints it once at the end,
    adding ``"error": {"code", "message", "key"?}`` when the command failed (a failure before
    any document exists prints the error object alone).
    """

    def __init__(self, enabled: bool) -> None:
        # Under a launcher only rank 0 answers (the others would print copies of the document).
        self.enabled = enabled and _main_process()
        self.document: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.printed = False

    def set(self, document: dict[str, Any]) -> None:
        """Keep ``document`` as the command's answer (printed when the command ends)."""
        self.document = document

    def fail(self, code: int, message: str, key: str | None = None) -> None:
        """Record the failure the document reports (exit ``code``, one-line ``message``)."""
        self.error = {"code": code, "message": message}
        if key:
            self.error["key"] = key

    def answered(self) -> None:
        """The command printed its document itself (``schedule --json``'s snippet)."""
        self.printed = True

    def emit(self) -> None:
        """Print the document (once); nothing when --json was not given."""
        if not self.enabled or self.printed:
            return
        document = dict(self.document or {})
        if self.error is not None:
            document["error"] = self.error
        print_json(json.dumps(document, indent=2, allow_nan=False, default=str))
        self.printed = True


def _main_process() -> bool:
    """Whether this process answers: rank 0, or any process of a launch whose environment is
    broken (its error is then the answer)."""
    from lrfind.engine.distributed import launched

    try:
        return launched().is_main
    except LrfindError:
        return True


def guarded(debug: bool, body: Callable[[], T], reply: JsonReply | None = None) -> T:
    """Run ``body``; turn lrfind errors and surprises into one line on stderr and an exit code.

    With a ``reply`` (``--json``), stdout gets exactly one JSON document in every outcome.
    """
    reply = reply or JsonReply(False)
    try:
        with user_stdout_to_stderr(reply.enabled):
            code = body()
    except typer.Exit:
        raise  # --nproc: the launched processes printed their own answer
    except LrfindError as error:
        reply.fail(error.exit_code, str(error), error_key(error))
        reply.emit()
        raise fail(str(error), error.exit_code, debug) from None
    except KeyboardInterrupt:
        reply.fail(EXIT_INTERRUPTED, "interrupted")
        reply.emit()
        raise fail("interrupted", EXIT_INTERRUPTED, debug) from None
    except MemoryError:
        reply.fail(EXIT_USAGE, "out of memory")
        reply.emit()
        raise fail("out of memory", EXIT_USAGE, debug) from None
    except Exception as error:
        text = error_summary(error)
        reply.fail(EXIT_USAGE, f"unexpected error: {text}")
        reply.emit()
        hint = "" if debug else " (run with --debug for the traceback)"
        raise fail(f"unexpected error: {text}{hint}", EXIT_USAGE, debug) from None
    reply.emit()
    return code


#: What the first Ctrl-C (or SIGTERM) prints, at once.
STOPPING = (
    "stopping: after the current step, or once the data/model set-up returns "
    "(partial results are kept); press Ctrl-C again to abort now\n"
)


@contextmanager
def stop_on_signals() -> Iterator[Any]:
    """Turn the first SIGINT/SIGTERM/SIGHUP into a graceful stop request.

    A second one aborts the step under way, still keeping what was recorded; once the results
    are being written, further signals are ignored until they are.
    """
    from lrfind.engine.options import StopFlag

    flag = StopFlag()
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag.raised and flag.finishing:
            return  # the results are being written: aborting now would lose them
        if flag.raised:
            raise KeyboardInterrupt
        flag.request(signal.Signals(signum).name)
        # Said at once, even while a slow data factory runs: os.write is safe in a handler,
        # where the console (mid-print) might not be.
        with suppress(OSError):
            os.write(2, STOPPING.encode())

    # SIGHUP: the terminal or ssh session that ran lrfind was closed.
    hangup = [signal.SIGHUP] if hasattr(signal, "SIGHUP") else []
    for sig in (signal.SIGINT, signal.SIGTERM, *hangup):
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
    labels = {override: "--method" for override in extra}
    return load_config(config_path, [*(overrides or []), *extra], labels=labels)


def launch_if_requested(nproc: int | None) -> None:
    """Under --nproc N (outside a launcher), run this command as N local processes and exit
    with rank 0's code (``engine.distributed.launch``, not torchrun, which reports 1 for any
    failure)."""
    from lrfind.engine.distributed import launch, launched

    if nproc is None or launched().by_launcher:
        return

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


#: The real stdout while user output is redirected (``print_json`` still writes there).
_MACHINE_STDOUT: list[TextIO] = []


@contextmanager
def user_stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """While ``enabled`` (``--json``), what Python code prints to stdout goes to stderr.

    User code (a ``print`` at import or in a factory) must not break the one JSON document
    that stdout carries; ``print_json`` alone still writes to the real stdout.
    """
    if not enabled:
        yield
        return
    _MACHINE_STDOUT.append(sys.stdout)
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        _MACHINE_STDOUT.pop()


def print_json(text: str) -> None:
    """Write ``text`` and a newline to stdout (the only thing commands print there).

    A reader that has gone away (``| head``, ``| true``) does not change the command's exit
    code: the rest of the output is dropped.
    """
    stdout = _MACHINE_STDOUT[-1] if _MACHINE_STDOUT else sys.stdout
    try:
        stdout.write(text + "\n")
        stdout.flush()
    except BrokenPipeError:
        drop_output(stdout)


def drop_output(stream: TextIO) -> None:
    """Send the rest of ``stream`` to /dev/null, so the interpreter's last flush cannot fail."""
    with suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)


def say(console: Any, text: str) -> None:
    """Print one line of plain text to the stderr console (no markup, never re-wrapped)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def say_table(console: Any, lines: list[str]) -> None:
    """Print a text table's lines with a blank line before and after."""
    for line in ["", *lines, ""]:
        say(console, line)
