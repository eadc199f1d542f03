"""``lrfind validate``: check a config without training, fast enough for a pre-commit hook.

Validates the schema, lists every module the config will import (import paths in a config run
code, like any Python file), resolves each one, binds every component's arguments to its
signature (the same check ``sweep`` makes before any work), checks that referenced files
exist and that ``sweep.snapshot_dir`` can hold disk snapshots (``sweep``'s check too). torch is
only imported when there are arguments to check, an import path to resolve or a snapshot folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrfind.config.load import as_config
from lrfind.config.schema import Config
from lrfind.errors import ConfigError, LrfindError

#: Built-in datasets that read a file named by ``data.args.path``.
FILE_DATASETS = ("csv", "npz", "pt")


@dataclass(frozen=True)
class ImportCheck:
    """One import path the config names, and whether it resolved."""

    key: str
    path: str
    module: str
    error: str | None = None


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one config; ``problems`` is empty when it is valid."""

    config: Config
    imports: tuple[ImportCheck, ...] = ()
    files: tuple[tuple[str, Path], ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when the config is valid and everything it names exists."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Return the findings as the JSON document ``lrfind validate --json`` prints."""
        return {
            "valid": self.ok,
            "name": self.config.name,
            "imports": [
                {"key": i.key, "path": i.path, "module": i.module, "error": i.error}
                for i in self.imports
            ],
            "files": [{"key": key, "path": str(path)} for key, path in self.files],
            "problems": list(self.problems),
        }


def invalid_document(error: ConfigError) -> dict[str, Any]:
    """Return the ``validate --json`` document for a config that does not even load."""
    return {
        "valid": False,
        "name": None,
        "imports": [],
        "files": [],
        "problems": list(error.problems),
    }


def module_of(import_path: str) -> str:
    """Return the module part of "pkg.module:callable" or "pkg.module.Callable"."""
    if ":" in import_path:
        return import_path.split(":", 1)[0]
    return import_path.rsplit(".", 1)[0]


def referenced_files(config: Config) -> list[tuple[str, Path]]:
    """Return (key, absolute path) for every file the config reads."""
    files: list[tuple[str, Path]] = []
    raw = config.data.args.get("path")
    if config.data.target in FILE_DATASETS and isinstance(raw, str):
        files.append(("data.args.path", (config.base_dir / raw).resolve()))
    if config.expect is not None and config.expect.baseline:
        files.append(("expect.baseline", (config.base_dir / config.expect.baseline).resolve()))
    return files


def validate(
    config: Config | str | os.PathLike[str],
    overrides: list[str] | tuple[str, ...] = (),
    resolve: bool = True,
) -> ValidationReport:
    """Validate a config (a loaded Config or the path of a config file, ``overrides`` applied);
    return a report of imports, files and problems.

    With ``resolve`` False nothing the config names is imported: import paths are listed, and
    only built-in components have their arguments checked.

    Raises:
        ConfigError: the YAML or schema is invalid (every problem listed at once).
    """
    config = as_config(config, overrides)
    problems: list[str] = []
    imports: list[ImportCheck] = []
    for key, import_path in config.import_paths():
        error = _resolve(import_path, config, key) if resolve else None
        imports.append(ImportCheck(key, import_path, module_of(import_path), error))
        if error:
            problems.append(error)
    if _has_arguments(config) or (resolve and imports):
        from lrfind.assembly.task import component_problems

        problems.extend(component_problems(config, user=resolve))
    files = referenced_files(config)
    for key, file in files:
        if key == "expect.baseline":
            if not (file / "result.json" if file.is_dir() else file).exists():
                problems.append(f"{key}: {file} does not exist (create it with --update-baseline)")
        elif not file.is_file():
            problems.append(f"{key}: no such file {file}")
    problems.extend(setting_problems(config))
    return ValidationReport(config, tuple(imports), tuple(files), tuple(problems))


def setting_problems(config: Config) -> list[str]:
    """Problems with settings that depend on this machine, found before anything is built (by
    ``sweep`` too): a ``sweep.snapshot_dir`` that cannot hold disk snapshots.

    A relative ``snapshot_dir`` is read against the current directory, as ``output.dir`` is.
    """
    if config.sweep.snapshot != "disk" or config.sweep.snapshot_dir is None:
        return []
    from lrfind.engine.checkpoint import snapshot_folder_problem

    problem = snapshot_folder_problem(Path(config.sweep.snapshot_dir).expanduser().absolute())
    return [] if problem is None else [f"sweep.snapshot_dir: {problem}"]


def setting_warnings(config: Config) -> list[str]:
    """Settings a sweep ignores, said in its result's warnings."""
    if config.sweep.snapshot_dir is not None and config.sweep.snapshot == "memory":
        return ["sweep.snapshot_dir is ignored: sweep.snapshot is memory (set it to disk)"]
    return []


def _has_arguments(config: Config) -> bool:
    loss_args = not isinstance(config.loss, str) and bool(config.loss.args)
    return bool(config.model.args or config.data.args or config.optimizer.args or loss_args)


def _resolve(import_path: str, config: Config, key: str) -> str | None:
    from lrfind.assembly.imports import resolve_import

    try:
        target: Any = resolve_import(import_path, config.base_dir, key)
    except LrfindError as error:
        return str(error)
    except Exception as error:  # user code failing at import time
        return f"{key}: importing {import_path} failed: {type(error).__name__}: {error}"
    if not callable(target):
        return f"{key}: {import_path} is not callable"
    return None


def raise_if_invalid(report: ValidationReport) -> None:
    """Raise ConfigError listing the report's problems, if any."""
    if report.problems:
        raise ConfigError(list(report.problems), source=str(report.config.source or "config"))
