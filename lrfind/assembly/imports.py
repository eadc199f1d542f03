"""Resolving ``pkg.module:attr`` import paths next to the config, and calling user code safely."""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import inspect
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from lrfind.errors import ComponentError, LrfindError
from lrfind.format import did_you_mean, first_line, raised_at, unknown_arguments

#: Top-level module name -> the config/current folder it was imported from by resolve_import.
_LOADED_FROM: dict[str, Path] = {}


def exit_error(error: SystemExit, doing: str) -> ComponentError:
    """A ``sys.exit()`` in user code is a broken component, not lrfind's exit status.

    Left alone it would end lrfind with the user's code (0 looks like success, 1 like a failed
    check) and no run; KeyboardInterrupt is not caught: it stays an interruption.
    """
    code = "" if error.code is None else repr(error.code)
    return ComponentError(f"{doing} called sys.exit({code}){raised_at(error)}")


@contextlib.contextmanager
def user_code(
    doing: str,
    *,
    error_type: type[LrfindError] = ComponentError,
    passing: tuple[type[Exception], ...] = (),
) -> Iterator[None]:
    """Run the ``with`` body as user code, worded as ``doing`` ("model.target: 'pkg.mod:f'").

    LrfindError and the exception types in ``passing`` leave unchanged (the caller words
    those); ``sys.exit()`` becomes a ComponentError (see ``exit_error``), and any other
    exception ``error_type`` with its type, first line and where it was raised.
    KeyboardInterrupt is not caught: it stays an interruption.
    """
    try:
        yield
    except LrfindError:
        raise
    except passing:
        raise
    except SystemExit as error:
        raise exit_error(error, doing) from error
    except Exception as error:
        raise error_type(
            f"{doing} raised {type(error).__name__}: {first_line(error)}{raised_at(error)}"
        ) from error


def _search_dirs(base_dir: Path) -> list[Path]:
    dirs: list[Path] = []
    for folder in (Path(base_dir).resolve(), Path.cwd().resolve()):
        if folder not in dirs:
            dirs.append(folder)
    return dirs


@contextlib.contextmanager
def _on_sys_path(dirs: Sequence[Path]) -> Iterator[None]:
    added = [str(folder) for folder in dirs if str(folder) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


@contextlib.contextmanager
def config_folder_on_path(base_dir: Path) -> Iterator[None]:
    """Keep the config's folder (then the current directory) on ``sys.path`` while the ``with``
    body runs user code, as running a script keeps the script's folder there: a factory or a
    forward that imports a sibling module when it is called, not at import, finds it.
    ``sys.path`` is given back as it was (the folders it already held stay)."""
    with _on_sys_path(_search_dirs(base_dir)):
        yield


def _candidates(path: str, key: str) -> list[tuple[str, list[str]]]:
    """The (module, attribute chain) readings of ``path``, most specific module first."""
    bad = ComponentError(
        f"{key}: {path!r} is not an import path; write 'package.module:name' "
        "(or 'package.module.Name')"
    )
    if path.count(":") > 1:
        raise bad
    if ":" in path:
        module, _, attributes = path.partition(":")
        parts = [*module.split("."), *attributes.split(".")]
        if not all(part.isidentifier() for part in parts):
            raise bad
        return [(module, attributes.split("."))]
    parts = path.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise bad
    return [(".".join(parts[:cut]), parts[cut:]) for cut in range(len(parts) - 1, 0, -1)]


def _module_root(module: ModuleType) -> Path | None:
    """The folder on sys.path that ``module`` (a top-level module or package) was found in."""
    spec = getattr(module, "__spec__", None)
    locations = list(getattr(spec, "submodule_search_locations", None) or [])
    origin = getattr(spec, "origin", None)
    if locations:
        return Path(locations[0]).resolve().parent
    if origin and Path(origin).is_file():
        return Path(origin).resolve().parent
    return None


def _drop_stale(top: str, search: Sequence[Path]) -> None:
    """Forget a top-level module resolve_import loaded from another config folder.

    Two configs in different folders may each ship a ``models.py``; without this the second would
    silently get the first one's module from ``sys.modules``.
    """
    loaded_from = _LOADED_FROM.get(top)
    if loaded_from is None or top == "lrfind" or top not in sys.modules:
        return
    found_in = next(
        (
            folder
            for folder in search
            if importlib.machinery.PathFinder.find_spec(top, [str(folder)]) is not None
        ),
        None,
    )
    if found_in == loaded_from:
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]
    del _LOADED_FROM[top]


def _import_module(name: str, search: Sequence[Path], key: str) -> ModuleType:
    top = name.partition(".")[0]
    _drop_stale(top, search)
    importlib.invalidate_caches()
    try:
        with user_code(
            f"{key}: importing module '{name}'", passing=(ModuleNotFoundError, SyntaxError)
        ):
            module = importlib.import_module(name)
    except SyntaxError as error:
        raise ComponentError(
            f"{key}: syntax error in {error.filename}:{error.lineno}: {error.msg}"
        ) from None
    root = _module_root(sys.modules[top])
    if root is not None and root in search and top != "lrfind":
        _LOADED_FROM[top] = root
    return module


def _attribute(module: ModuleType, chain: Sequence[str], module_name: str, key: str) -> Any:
    value: Any = module
    for depth, name in enumerate(chain):
        try:
            value = getattr(value, name)
        except AttributeError:
            owner = (
                f"module '{module_name}'"
                if depth == 0
                else f"'{module_name}:{'.'.join(chain[:depth])}'"
            )
            if depth == 0 and getattr(module, "__file__", None):
                owner += f" ({module.__file__})"
            public = [n for n in dir(value) if not n.startswith("_")]
            hint = did_you_mean(name, public, n=3)
            raise ComponentError(f"{key}: {owner} has no attribute '{name}'{hint}") from None
    return value


def resolve_import(path: str, base_dir: Path, key: str) -> Any:
    """Return the object ``path`` names: "pkg.module:attr" (or "pkg.module.attr").

    Modules are looked up in ``base_dir`` (the config's folder), then the current directory, then
    the installed packages; both folders are on ``sys.path`` only during the import. A top-level
    module that an earlier call loaded from a *different* folder (two configs each with a
    ``models.py``) is re-imported rather than served stale from ``sys.modules``.

    Raises:
        ComponentError: naming ``key`` and the module: a malformed path, a missing module (which
            one, and where it was looked for), a missing attribute (with close matches), a
            syntax error (file:line) or any exception while importing the module.
    """
    candidates = _candidates(path, key)
    search = _search_dirs(base_dir)
    missing: str | None = None
    with _on_sys_path(search):
        for module_name, chain in candidates:
            try:
                module = _import_module(module_name, search, key)
            except ModuleNotFoundError as error:
                absent = error.name or module_name
                if module_name == absent or module_name.startswith(absent + "."):
                    missing = missing or absent
                    continue
                raise ComponentError(
                    f"{key}: importing module '{module_name}' failed: no module named "
                    f"'{absent}'{raised_at(error)}"
                ) from None
            return _attribute(module, chain, module_name, key)
    folders = " and ".join(str(folder) for folder in search)
    raise ComponentError(
        f"{key}: cannot import {path!r}: no module named '{missing}' "
        f"(looked in {folders} and the installed packages)"
    )


def short_name(path: str) -> str:
    return re.split(r"[.:]", path)[-1]


def _accepted(parameters: Mapping[str, inspect.Parameter], skip: Sequence[str] = ()) -> list[str]:
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [n for n, p in parameters.items() if p.kind not in kinds and n not in skip]


def signature_of(target: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


def check_arguments(
    target: Any, args: Mapping[str, Any], key: str, label: str, skip: Sequence[str] = ()
) -> None:
    """Raise ComponentError naming ``key`` for an argument ``target`` cannot take."""
    signature = signature_of(target)
    if signature is None:
        return
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    problems = unknown_arguments(args, _accepted(parameters, skip), key, label, known=parameters)
    if problems:
        raise ComponentError(problems[0])


def _type_text(hint: Any) -> str:
    import typing

    text = str(hint) if typing.get_args(hint) else str(getattr(hint, "__name__", hint))
    return text.replace("typing.", "").replace("collections.abc.", "")


def _type_problem(target: Any, name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the annotated parameter ``name`` of ``target``, if any."""
    import typing

    import pydantic

    function = target.__init__ if inspect.isclass(target) else target
    try:
        hint = typing.get_type_hints(function).get(name)
        if hint is None:
            return None
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(hint)
    except Exception:  # an annotation pydantic cannot check (a tensor type...): not ours to judge
        return None
    try:
        adapter.validate_python(value)
    except pydantic.ValidationError:
        return f"takes {_type_text(hint)}, got {value!r}"
    return None


def argument_problems(
    target: Any,
    args: Mapping[str, Any],
    key: str,
    label: str,
    *,
    skip: Sequence[str] = (),
    partial: bool = False,
    typed: bool = False,
) -> list[str]:
    """Every problem binding ``args`` to ``target``'s signature, one line each (none: []).

    Unknown names (with close matches), then what ``inspect.Signature.bind`` refuses (missing
    required arguments unless ``partial``); with ``typed``, values that do not match the
    parameter's annotation. ``skip`` names parameters lrfind fills itself.
    """
    signature = signature_of(target)
    if signature is None:
        return []
    parameters = [p for name, p in signature.parameters.items() if name not in skip]
    by_name = {p.name: p for p in parameters}
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    accepted = _accepted(by_name)
    known = {name: value for name, value in args.items() if name in by_name or open_ended}
    problems = unknown_arguments(args, accepted, key, label, known=known)
    bound = signature.replace(parameters=parameters)
    try:
        (bound.bind_partial if partial else bound.bind)(**known)
    except TypeError as error:
        problems.append(f"{key}: {label}: {error}")
    if typed:
        for name, value in known.items():
            problem = _type_problem(target, name, value) if name in by_name else None
            if problem is not None:
                problems.append(f"{key}.{name}: {label} {problem}")
    return problems


def call_user(
    target: Any,
    args: Mapping[str, Any],
    *,
    section: str,
    path: str,
    error_type: type[LrfindError] = ComponentError,
) -> Any:
    """Call user factory ``target(**args)``; turn every failure into an error naming the keys."""
    if not callable(target):
        raise ComponentError(
            f"{section}.target: {path!r} is a {type(target).__name__}, not something to call"
        )
    problems = argument_problems(target, args, f"{section}.args", f"'{short_name(path)}'")
    if problems:
        raise ComponentError(problems[0])
    with user_code(f"{section}.target: {path!r}", error_type=error_type):
        return target(**args)
