"""Datasets read from files: CSV, NumPy .npz and torch .pt."""

from __future__ import annotations

import csv
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrfind.data.split import tensor_split
from lrfind.data.types import MAX_AUTO_CLASSES, TASKS, DataSplit, Task
from lrfind.errors import DataError
from lrfind.format import did_you_mean, error_summary

#: Fewest rows (samples) a file dataset may hold: one for training, one for validation.
MIN_ROWS = 2


def resolve_data_path(path: str | Path, base_dir: Path, key: str = "data.args.path") -> Path:
    """Return ``path`` resolved against ``base_dir`` (``~`` expanded).

    Raises:
        DataError: the file does not exist or is a directory.
    """
    if not isinstance(path, (str, Path)) or not str(path):
        raise DataError(f"{key}: give the path of the data file")
    resolved = (base_dir / Path(path).expanduser()).resolve()
    if not resolved.exists():
        raise DataError(f"{key}: no such file: {resolved}")
    if resolved.is_dir():
        raise DataError(f"{key}: {resolved} is a directory, not a file")
    return resolved


def _close(name: str, options: Iterable[str], noun: str = "columns") -> str:
    """' (did you mean ...?)' with close matches, else the (short) list of every option."""
    choices = list(options)
    hint = did_you_mean(name, choices, n=3)
    if hint:
        return hint
    return f" ({noun}: {', '.join(choices)})" if len(choices) <= 30 else ""


def _refuse_repeated_columns(header: Sequence[str], file: Path) -> None:
    """Columns are looked up by name, so a repeated name would silently read the first copy."""
    first_seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in first_seen:
            raise DataError(
                f"data.args.path: {file.name} has the column name {name!r} twice (columns "
                f"{first_seen[name]} and {position} of the header); rename one of them"
            )
        first_seen[name] = position


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _class_labels(values: Sequence[str]) -> np.ndarray:
    """Map label strings to ids 0..k-1 (numeric labels in numeric order, others sorted as text)."""
    numbers = [_parse_float(value) for value in values]
    if all(number is not None for number in numbers):
        order = sorted({float(number) for number in numbers if number is not None})
        ids = {value: index for index, value in enumerate(order)}
        return np.array([ids[float(number or 0.0)] for number in numbers], dtype=np.int64)
    names = {value: index for index, value in enumerate(sorted(set(values)))}
    return np.array([names[value] for value in values], dtype=np.int64)


def _auto_task(values: Sequence[str]) -> Task:
    """Text or few distinct integers -> classification; other numbers -> regression."""
    numbers = [_parse_float(v) for v in values]
    if any(n is None for n in numbers):
        return "classification"
    distinct = {n for n in numbers}
    if all(float(n).is_integer() for n in distinct if n is not None) and len(distinct) <= min(
        MAX_AUTO_CLASSES, max(2, len(values) // 2)
    ):
        return "classification"
    return "regression"


def load_csv(
    *,
    seed: int,
    val_fraction: float,
    base_dir: Path,
    path: str = "",
    target: str = "",
    features: list[str] | None = None,
    task: str = "auto",
    delimiter: str = ",",
    standardize: bool = True,
    standardize_target: bool = False,
) -> DataSplit:
    """A table from a CSV file with a header row: numeric ``features`` columns and a ``target``.

    ``path`` is relative to the config file's folder. ``features`` defaults to every column but
    the target; each must be numeric (encode categories yourself). ``task: auto`` picks
    classification when the target holds text or at most 20 distinct integers (and no more than
    half as many as there are rows), regression otherwise. Class labels (text or numbers) map to
    ids 0..k-1 in sorted order. Inputs float32 ``(N, features)``, standardized with the training
    statistics unless ``standardize: false``; targets int64 ``(N,)`` or float32 ``(N,)`` (raw
    unless ``standardize_target: true``: keep the scale your real training uses, since the loss
    scale moves the LR an SGD sweep finds).

    Raises:
        DataError: missing/unreadable/empty file, fewer than two data rows, unknown column (with
            close matches), ragged rows, empty cells, a non-numeric feature, a NaN/inf cell
            (naming its line and column), or an invalid ``task``. Numeric labels that are not
            already 0..K-1 are renumbered with a warning.
    """
    if not target:
        raise DataError("data.args.target: name the target column of the CSV file")
    if task not in ("auto", "classification", "regression"):
        raise DataError(f"data.args.task must be auto, classification or regression, got {task!r}")
    file = resolve_data_path(path, base_dir)
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle, delimiter=delimiter) if row]
    except UnicodeDecodeError:
        raise DataError(f"data.args.path: {file} is not UTF-8 text") from None
    except (OSError, csv.Error) as error:
        raise DataError(f"data.args.path: cannot read {file}: {error}") from None
    if not rows:
        raise DataError(f"data.args.path: {file} is empty")
    header = [name.strip() for name in rows[0]]
    _refuse_repeated_columns(header, file)
    body = [[cell.strip() for cell in row] for row in rows[1:]]
    if not body:
        raise DataError(f"data.args.path: {file} has a header but no data rows")
    if len(body) < MIN_ROWS:
        raise DataError(
            f"data.args.path: {file.name} has only {len(body)} data row; a range test needs at "
            f"least {MIN_ROWS} (and in practice many batches of them)"
        )
    if target not in header:
        raise DataError(
            f"data.args.target: no column {target!r} in {file.name}{_close(target, header)}"
        )
    if features is None:
        features = [name for name in header if name != target]
    if isinstance(features, str) or not isinstance(features, list):
        raise DataError("data.args.features must be a list of column names")
    missing = [name for name in features if name not in header]
    if missing:
        hint = _close(missing[0], header)
        raise DataError(f"data.args.features: no column {missing[0]!r} in {file.name}{hint}")
    if target in features:
        raise DataError(f"data.args.features: the target column {target!r} cannot be a feature")
    if not features:
        raise DataError(
            f"data.args.features: {file.name} has no feature columns besides the target"
        )
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(
                f"data.args.path: {file.name} line {line} has {len(row)} fields, "
                f"the header has {len(header)}"
            )
    columns = {name: header.index(name) for name in (*features, target)}
    x = np.empty((len(body), len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        column = columns[name]
        for i, row in enumerate(body):
            value = _parse_float(row[column]) if row[column] else None
            if value is None:
                what = "an empty value" if not row[column] else f"the text {row[column]!r}"
                raise DataError(
                    f"data.args.features: column {name!r} is not numeric ({file.name} line {i + 2} "
                    f"has {what}); drop it from data.args.features or encode it as numbers"
                )
            if not math.isfinite(value):
                raise DataError(
                    f"data.args.path: {file.name} line {i + 2}, column {name!r}: {row[column]!r} "
                    "is not a finite number; clean or drop that row"
                )
            x[i, j] = value
    labels = [row[columns[target]] for row in body]
    empty = next((i for i, value in enumerate(labels) if not value), None)
    if empty is not None:
        raise DataError(
            f"data.args.target: column {target!r} has an empty value ({file.name} line {empty + 2})"
        )
    numbers = [_parse_float(v) for v in labels]
    infinite = next(
        (i for i, n in enumerate(numbers) if n is not None and not math.isfinite(n)), None
    )
    if infinite is not None:
        raise DataError(
            f"data.args.path: {file.name} line {infinite + 2}, column {target!r}: "
            f"{labels[infinite]!r} is not a finite number; clean or drop that row"
        )
    chosen: Task = _auto_task(labels) if task == "auto" else task  # type: ignore[assignment]
    warnings: list[str] = []
    if chosen == "classification":
        y = _class_labels(labels)
        warnings = _renumbered(labels, y, target)
    else:
        bad = next((i for i, n in enumerate(numbers) if n is None), None)
        if bad is not None:
            raise DataError(
                f"data.args.target: column {target!r} is not numeric ({file.name} line {bad + 2} "
                f"has {labels[bad]!r}) but data.args.task is regression"
            )
        y = np.array(numbers, dtype=np.float64)
    split = tensor_split(
        x,
        y,
        chosen,
        seed=seed,
        val_fraction=val_fraction,
        standardize_x=standardize,
        standardize_y=standardize_target and chosen == "regression",
        description=f"csv({file.name})",
    )
    split.warnings.extend(warnings)
    return split


def _renumbered(labels: Sequence[str], ids: np.ndarray, target: str) -> list[str]:
    """A warning when numeric class labels are not already the ids 0..K-1 they become."""
    numbers = [_parse_float(label) for label in labels]
    if any(number is None for number in numbers):
        return []  # text labels: numbering them is the documented behaviour
    if all(
        float(number or 0.0) == float(index) for number, index in zip(numbers, ids, strict=True)
    ):
        return []
    mapping = dict(zip(labels, ids.tolist(), strict=True))
    ordered = sorted(mapping.items(), key=lambda item: item[1])
    shown = ", ".join(f"{label}->{index}" for label, index in ordered[:10])
    more = ", ..." if len(ordered) > 10 else ""
    rare = [label for label, index in ordered if int(np.sum(ids == index)) == 1]
    note = f"; label {', '.join(rare[:3])} occurs in one row only (a typo?)" if rare else ""
    return [
        f"data.args.target: the labels of column {target!r} are not 0..{len(ordered) - 1}; "
        f"they become class ids in sorted order ({shown}{more}){note}"
    ]


def _arrays_split(
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    *,
    seed: int,
    val_fraction: float,
    standardize: bool,
    description: str,
    classes: int | None = None,
) -> DataSplit:
    """Shared by npz and pt: check shapes and values, infer the task, split."""
    if len(x) == 0:
        raise DataError(f"data.args.path: {description} holds no samples")
    if len(x) < MIN_ROWS:
        raise DataError(
            f"data.args.path: {description} holds only {len(x)} sample; a range test needs "
            f"at least {MIN_ROWS} (and in practice many batches of them)"
        )
    if len(x) != len(y):
        raise DataError(
            f"data.args: inputs have {len(x)} samples but targets {len(y)} ({description})"
        )
    if task not in ("auto", *TASKS):
        raise DataError(
            f"data.args.task must be auto, classification, regression or sequence, got {task!r}"
        )
    chosen = _array_task(x, y) if task == "auto" else task
    vocab_size: int | None = None
    for name, array in (("inputs", x), ("targets", y)):
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad = np.argwhere(~np.isfinite(array))[0]
            raise DataError(
                f"data.args.path: {description}: the {name} hold "
                f"{int(np.sum(~np.isfinite(array)))} NaN/inf value(s), the first at sample "
                f"{int(bad[0])}; clean the data"
            )
    if chosen in ("classification", "sequence"):
        if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
            raise DataError(f"data.args.task: {chosen} needs integer targets, got {y.dtype}")
        if y.min() < 0:
            raise DataError(f"data.args: class ids must be >= 0, found {int(y.min())}")
    num_outputs: int | None = None
    if chosen == "classification":
        num_outputs = _class_count(y, classes, description)
    if chosen == "sequence":
        if not np.issubdtype(x.dtype, np.integer):
            raise DataError(f"data.args.task: sequence needs integer token inputs, got {x.dtype}")
        vocab_size = int(max(x.max(), y.max())) + 1
    if not np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"data.args: inputs must be numbers, got dtype {x.dtype}")
    if chosen == "regression":
        y = y.astype(np.float64)
    return tensor_split(
        x,
        y,
        chosen,  # type: ignore[arg-type]
        seed=seed,
        val_fraction=val_fraction,
        standardize_x=standardize and np.issubdtype(x.dtype, np.floating),
        num_outputs=vocab_size or num_outputs,
        vocab_size=vocab_size,
        description=description,
    )


def _class_count(y: np.ndarray, classes: int | None, description: str) -> int:
    """The classifier's output count: ``classes`` when given, else the ids must be 0..K-1.

    Ids with gaps ({0, 1, 7}) would silently build a head of largest id + 1 outputs: refused,
    unless ``classes`` says how many there are (some classes may be absent from this file).
    """
    ids = np.unique(y).astype(np.int64)
    if classes is not None:
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise DataError(f"data.args.classes must be an integer >= 2, got {classes!r}")
        if int(ids.max()) >= classes:
            raise DataError(
                f"data.args.classes is {classes} but {description} has class id "
                f"{int(ids.max())}; ids must be 0..{classes - 1}"
            )
        return classes
    if int(ids.max()) + 1 != len(ids):
        missing = sorted(set(range(int(ids.max()) + 1)) - set(ids.tolist()))
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise DataError(
            f"data.args: {description} has {len(ids)} distinct class ids but the largest is "
            f"{int(ids.max())} (ids {shown} never occur); class ids must be 0..K-1: renumber "
            f"them, or set data.args.classes to the true number of classes"
        )
    return len(ids)


def _array_task(x: np.ndarray, y: np.ndarray) -> Task:
    """Float targets -> regression; integer targets shaped like integer inputs -> sequence; else
    classification."""
    if np.issubdtype(y.dtype, np.floating):
        return "regression"
    if np.issubdtype(x.dtype, np.integer) and x.ndim == 2 and x.shape == y.shape:
        return "sequence"
    return "classification"


def _pick(store: Mapping[str, Any], key: str, arg: str, file: Path) -> Any:
    if key not in store:
        keys = list(store)
        hint = _close(key, keys, "keys")
        raise DataError(f"data.args.{arg}: {file.name} has no key {key!r}{hint}")
    return store[key]


def load_npz(
    *,
    seed: int,
    val_fraction: float,
    base_dir: Path,
    path: str = "",
    x_key: str = "x",
    y_key: str = "y",
    task: str = "auto",
    standardize: bool = False,
    classes: int | None = None,
) -> DataSplit:
    """Arrays from a NumPy ``.npz`` file (``np.savez``): inputs under ``x_key``, targets ``y_key``.

    Loaded without pickle. Float inputs become float32 (standardized with the training statistics
    when ``standardize: true``), integer inputs int64 (tokens). ``task: auto`` reads float targets
    as regression, integer targets shaped like integer ``(N, T)`` inputs as a sequence, other
    integer targets as class ids, which must be 0..K-1 unless ``classes`` gives the class count
    (for a file in which some classes never occur).

    Raises:
        DataError: missing/unreadable file, missing key (with the keys present), mismatched
            lengths, fewer than two samples, NaN/inf values, class ids with gaps.
    """
    file = resolve_data_path(path, base_dir)
    try:
        with np.load(file, allow_pickle=False) as store:
            x = np.asarray(_pick(store, x_key, "x_key", file))
            y = np.asarray(_pick(store, y_key, "y_key", file))
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"data.args.path: cannot read {file} as .npz: {error}") from None
    return _arrays_split(
        x,
        y,
        task,
        seed=seed,
        val_fraction=val_fraction,
        standardize=standardize,
        classes=classes,
        description=f"npz({file.name})",
    )


def load_pt(
    *,
    seed: int,
    val_fraction: float,
    base_dir: Path,
    path: str = "",
    x_key: str = "x",
    y_key: str = "y",
    task: str = "auto",
    standardize: bool = False,
    classes: int | None = None,
) -> DataSplit:
    """Tensors from a ``torch.save``'d ``(inputs, targets)`` tuple/list or a dict with x_key/y_key.

    Loaded with ``weights_only=True`` (no arbitrary code runs) onto the CPU; the same dtype and
    task rules as ``npz``.

    Raises:
        DataError: missing/unreadable file, another structure, a missing key, or any of npz's
            value checks.
    """
    file = resolve_data_path(path, base_dir)
    try:
        content = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError)
        raise DataError(
            f"data.args.path: cannot load {file} with torch.load(weights_only=True): "
            f"{error_summary(error)}"
        ) from None
    if isinstance(content, Mapping):
        x, y = _pick(content, x_key, "x_key", file), _pick(content, y_key, "y_key", file)
    elif isinstance(content, (tuple, list)) and len(content) == 2:
        x, y = content
    else:
        raise DataError(
            f"data.args.path: {file.name} holds a {type(content).__name__}; save an "
            f"(inputs, targets) tuple or a dict with keys {x_key!r} and {y_key!r}"
        )
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise DataError(f"data.args.path: {file.name} must hold tensors for inputs and targets")
    return _arrays_split(
        x.numpy(),
        y.numpy(),
        task,
        seed=seed,
        val_fraction=val_fraction,
        standardize=standardize,
        classes=classes,
        description=f"pt({file.name})",
    )
