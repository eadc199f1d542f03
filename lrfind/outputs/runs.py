"""Run directories: exclusive creation, atomic writes, and loading a saved run.

A run directory is ``<output dir>/<name>/<UTC timestamp>[-N]/`` and is created with ``mkdir``
(never ``exist_ok``), so two runs started in the same second get different directories and no
run is ever overwritten. Every file is written to a temporary sibling, flushed, fsynced and
renamed into place, so a reader sees either the whole previous file or the whole new one.

Each document of a run directory has one writer here: ``write_config`` (config.yaml),
``write_history`` (history.csv), ``write_status`` (result.json while the run has no result:
running, failed, interrupted) and ``write_result`` (result.json of a finished run, written last).
The plot is drawn by ``outputs.plot``; ``workflows.sweep`` decides when each is written.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lrfind.errors import OutputError
from lrfind.results import SCHEMA_VERSION, History, RangeTestResult

if TYPE_CHECKING:
    from lrfind.config.schema import Config

RESULT_FILE = "result.json"
HISTORY_FILE = "history.csv"
CONFIG_FILE = "config.yaml"
PLOT_FILE = "lr_finder.png"

#: The formats a plot is written in, chosen by the file's suffix.
PLOT_FORMATS = ("png", "svg", "pdf")
HISTORY_COLUMNS = ("step", "lr", "loss", "smoothed_loss", "val_loss")

#: result.json's ``status`` while a run has no result to record.
RunStatus = Literal["running", "failed", "interrupted"]


def _describe_os_error(path: Path, error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return f"cannot write {path}: no space left on device"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied"
    return f"cannot write {path}: {error.strerror or error}"


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode(path: Path) -> int:
    """The mode a file written at ``path`` gets: the existing file's, else 0666 less the umask.

    ``mkstemp`` creates 0600 files; renamed into place as they are, teammates and CI artifact
    servers could not read them. Every other tool's files follow the umask (0644 under 022).
    """
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    Returns the path. The file gets the mode any tool would give it (0666 less the umask, or
    the mode of the file it replaces). On failure the temporary file is removed and any earlier
    file at ``path`` is left untouched.

    Raises:
        OutputError: the folder is missing or not writable, or the disk is full.
    """
    path = Path(path)
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        Path(tmp_name).chmod(_file_mode(path))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp_name).replace(path)
        tmp_name = None
    except OSError as error:
        raise OutputError(_describe_os_error(path, error)) from error
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                Path(tmp_name).unlink()
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically; see ``atomic_write_bytes``. Raises OutputError."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def in_the_way(folder: Path) -> str:
    """Say which file stands where ``folder`` (or one of its parents) should be a folder."""
    for candidate in (folder, *folder.parents):
        if candidate.is_symlink() and not candidate.exists():
            return (
                f"cannot create {folder}: {candidate} is a symbolic link that leads nowhere "
                "(a loop, or its target is missing)"
            )
        if candidate.exists() and not candidate.is_dir():
            return (
                f"cannot create {folder}: {candidate} is a file, not a folder; move it, or "
                "choose another output.dir or name"
            )
    return f"cannot create {folder}: something is in the way"


def create_run_dir(output_dir: Path, name: str | None = None, now: datetime | None = None) -> Path:
    """Create and return a new, empty run directory ``output_dir/name/<timestamp>[-N]``.

    Without ``name`` the run directory goes straight under ``output_dir``.

    Raises:
        OutputError: the output folder cannot be created or written.
    """
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    parent = Path(output_dir) if name is None else Path(output_dir) / name
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise OutputError(in_the_way(parent)) from error
    except OSError as error:
        raise OutputError(_describe_os_error(parent, error)) from error
    for attempt in range(1000):
        candidate = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as error:
            raise OutputError(_describe_os_error(candidate, error)) from error
        return candidate
    raise OutputError(f"cannot create a run directory under {parent}: too many runs this second")


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(float(value))


def history_to_csv(history: History) -> str:
    """Return ``history.csv`` text: step, lr, loss, smoothed_loss, val_loss (blank: unmeasured)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for index in range(history.steps):
        val = ""
        if history.val_losses and not math.isnan(history.val_losses[index]):
            val = _format_float(history.val_losses[index])
        writer.writerow(
            (
                index,
                _format_float(history.lrs[index]),
                _format_float(history.losses[index]),
                _format_float(history.smoothed_losses[index]),
                val,
            )
        )
    return buffer.getvalue()


def history_from_csv(text: str, stop_reason: str = "completed") -> History:
    """Parse ``history.csv`` text back into a History.

    Raises:
        ValueError: a header or value is malformed.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = {"lr", "loss", "smoothed_loss"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"history.csv lacks column(s): {', '.join(sorted(missing))}")
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    vals: list[float] = []
    for row in reader:
        lrs.append(float(row["lr"]))
        losses.append(float(row["loss"]))
        smoothed.append(float(row["smoothed_loss"]))
        raw_val = (row.get("val_loss") or "").strip()
        vals.append(float(raw_val) if raw_val else float("nan"))
    has_val = any(not math.isnan(v) for v in vals)
    return History(
        lrs=tuple(lrs),
        losses=tuple(losses),
        smoothed_losses=tuple(smoothed),
        stop_reason=stop_reason,  # type: ignore[arg-type]
        val_losses=tuple(vals) if has_val else (),
    )


def write_json(path: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` as indented JSON atomically; returns the path. Raises OutputError."""
    return atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def write_config(run_dir: Path, config: Config) -> Path:
    """Write config.yaml: the resolved config, every default filled in. Raises OutputError."""
    return atomic_write_text(run_dir / CONFIG_FILE, config.to_yaml())


def write_history(run_dir: Path, history: History) -> Path:
    """Write history.csv (see ``history_to_csv``); returns its path. Raises OutputError."""
    return atomic_write_text(run_dir / HISTORY_FILE, history_to_csv(history))


def write_status(
    run_dir: Path, name: str, status: RunStatus, error: str | None = None, **details: Any
) -> Path:
    """Write result.json as a status record of a run without a result (``complete`` false).

    ``details`` (e.g. ``component``, ``failed_at_step``) follow the error, in the order given.
    ``load_run`` reads such a record as "nothing to report", with its error. Raises OutputError.
    """
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "complete": False,
        "status": status,
        "name": name,
    }
    if error is not None:
        document["error"] = error
    document.update(details)
    return write_json(run_dir / RESULT_FILE, document)


def result_document(result: RangeTestResult, status: str | None = None) -> dict[str, Any]:
    """Return a result's result.json document; ``status`` defaults to "complete" or, for a
    partial result, "interrupted"."""
    document = result.to_dict()
    document["status"] = status or ("complete" if result.complete else "interrupted")
    return document


def write_result(run_dir: Path, result: RangeTestResult, config_dir: Path | None = None) -> Path:
    """Write the result.json of a finished (or interrupted) run; returns its path.

    ``config_dir`` is the folder the run's config resolved paths against (recorded so that a
    saved run's config.yaml resolves them the same way). Raises OutputError.
    """
    document = result_document(result)
    if config_dir is not None:
        document["config_dir"] = str(config_dir)
    return write_json(run_dir / RESULT_FILE, document)


_NUMBER = (int, float)
_OPTIONAL_NUMBER = (int, float, type(None))
_OPTIONAL_INT = (int, type(None))
_OPTIONAL_MAP = (dict, type(None))

#: The types result.json's fields must have (a dotted key: inside a section), as written.
RESULT_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "suggestion": (dict,),
    "suggestion.lr": _OPTIONAL_NUMBER,
    "suggestion.method": (str,),
    "suggestion.index": _OPTIONAL_INT,
    "range": _OPTIONAL_MAP,
    "range.min_lr": _OPTIONAL_NUMBER,
    "range.max_lr": _OPTIONAL_NUMBER,
    "confidence": (dict,),
    "confidence.level": (str,),
    "confidence.reasons": (list,),
    "confidence.try_range": _OPTIONAL_MAP,
    "confidence.try_range.start_lr": _NUMBER,
    "confidence.try_range.end_lr": _NUMBER,
    "methods": (dict,),
    "refine": _OPTIONAL_MAP,
    "repeats": _OPTIONAL_MAP,
    "stop_reason": (str,),
    "steps": (int,),
    "best_loss": _OPTIONAL_NUMBER,
    "best_loss_lr": _OPTIONAL_NUMBER,
    "seconds": _NUMBER,
    "world_size": (int,),
    "batch_size": _OPTIONAL_INT,
    "accumulation_steps": (int,),
    "sweep": (dict,),
    "sweep.start_lr": _OPTIONAL_NUMBER,
    "sweep.end_lr": _OPTIONAL_NUMBER,
    "sweep.steps": _OPTIONAL_INT,
    "sweep.smoothing": _OPTIONAL_NUMBER,
    "sweep.diverge_factor": _OPTIONAL_NUMBER,
    "warnings": (list,),
    "lr_scales": (list,),
    "batches_per_epoch": _OPTIONAL_INT,
}

_TYPE_NAMES = {int: "a whole number", float: "a number", str: "text", dict: "a mapping",
               list: "a list", type(None): "null"}  # fmt: skip


def malformed_field(document: Mapping[str, Any]) -> str | None:
    """What is wrong with the first field of a result.json document of the wrong type, if any."""
    for key, types in RESULT_FIELD_TYPES.items():
        *parents, name = key.split(".")
        section: Any = document
        for parent in parents:
            section = section.get(parent) if isinstance(section, Mapping) else None
        if not isinstance(section, Mapping) or name not in section:
            continue
        value = section[name]
        if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
            continue
        # int in a number's types is implied by "a number"
        shown = [kind for kind in types if kind is not int or float not in types]
        wanted = " or ".join(_TYPE_NAMES[kind] for kind in shown)
        return f"field '{key}' must be {wanted}, got {json.dumps(value)}"
    methods = document.get("methods")
    for name, method in methods.items() if isinstance(methods, Mapping) else ():
        lr = method.get("lr") if isinstance(method, Mapping) else "?"
        if not isinstance(lr, _OPTIONAL_NUMBER) or isinstance(lr, bool):
            return f"field 'methods.{name}.lr' must be a number or null, got {json.dumps(lr)}"
    return None


def load_run(run_dir: str | os.PathLike[str]) -> RangeTestResult:
    """Load a saved run (result.json + history.csv) from ``run_dir``.

    Raises:
        OutputError: the folder is not a run directory, or its files are unreadable or malformed.
    """
    run_dir = Path(run_dir)
    result_path = run_dir / RESULT_FILE
    history_path = run_dir / HISTORY_FILE
    if not run_dir.is_dir():
        raise OutputError(f"{run_dir}: no such run directory")
    if not result_path.is_file():
        raise OutputError(
            f"{run_dir}: not a run directory (needs {RESULT_FILE} and {HISTORY_FILE})"
        )
    try:
        document = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise OutputError(f"{result_path}: unreadable result ({error})") from error
    if not isinstance(document, dict):
        raise OutputError(f"{result_path}: not a result document")
    status = document.get("status")
    if status in ("running", "failed", "interrupted") and "suggestion" not in document:
        # A status record, not a result: say what happened rather than draw an empty run.
        why = document.get("error") or "it was killed, or failed while writing its files"
        what = {
            "failed": "the run failed",
            "interrupted": "the run was interrupted before it had a result",
            "running": "the run never finished (result.json still says running)",
        }[str(status)]
        raise OutputError(f"{run_dir}: {what}: {why}; there is nothing to report")
    if not history_path.is_file():
        raise OutputError(
            f"{run_dir}: not a run directory (needs {RESULT_FILE} and {HISTORY_FILE})"
        )
    problem = malformed_field(document)
    if problem is not None:
        raise OutputError(f"{result_path}: {problem} (was the file edited by hand?)")
    try:
        history = history_from_csv(
            history_path.read_text(encoding="utf-8"),
            stop_reason=str(document.get("stop_reason", "completed")),
        )
        return RangeTestResult.from_dict(document, history)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise OutputError(f"{run_dir}: malformed run files ({error})") from error
