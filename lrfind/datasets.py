"""Built-in offline datasets, user data normalisation, and the DataLoaders the sweep reads.

Every built-in is a function ``load_<name>(*, seed, val_fraction, base_dir, **args)`` returning a
``DataSplit``: train and validation ``TensorDataset``s plus a ``DataInfo`` from which the built-in
models infer their sizes. Nothing is downloaded: ``sklearn`` uses the datasets scikit-learn ships,
``synthetic_*`` and ``sequence`` are generated from the seed, ``csv``/``npz``/``pt`` read local
files (relative paths resolve against the config file's folder).

Determinism: data generation uses ``numpy.random.default_rng([seed, 0])``, the train/validation
split ``default_rng([seed, 1])``, so changing one never changes the other. Feature
standardization always uses the *training* statistics only.

    >>> split = load_builtin_dataset("sklearn", {"name": "wine"}, seed=0, val_fraction=0.2,
    ...                              base_dir=Path("."))
    >>> split.info.input_shape, split.info.num_outputs, split.info.task
    ((13,), 3, 'classification')
"""

from __future__ import annotations

import csv
import difflib
import importlib.util
import inspect
import math
import random
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    Subset,
    TensorDataset,
)

from lrfind.batches import split_batch
from lrfind.errors import ComponentError, DataError

Task = Literal["classification", "regression", "sequence"]
TASKS: tuple[str, ...] = ("classification", "regression", "sequence")

#: Numeric columns with at most this many distinct integer values count as class labels (csv auto).
MAX_AUTO_CLASSES = 20


@dataclass(frozen=True)
class DataInfo:
    """What the models need to know about the data.

    ``input_shape`` is one sample's shape (no batch dimension); ``num_outputs`` the number of
    classes (classification), target width (regression) or vocabulary size (sequence), None when
    unknown;
    ``num_train``/``num_val`` are sample counts (0 when unknown, e.g. an iterable dataset).
    """

    input_shape: tuple[int, ...]
    num_outputs: int | None
    task: Task | None
    vocab_size: int | None
    num_train: int
    num_val: int


@dataclass
class DataSplit:
    """Training and validation data (datasets, or loaders from a user factory) and their info."""

    train: Dataset[Any] | DataLoader[Any]
    val: Dataset[Any] | DataLoader[Any] | None
    info: DataInfo
    description: str = ""
    warnings: list[str] = field(default_factory=list)


# --- splitting and scaling -------------------------------------------------------------------


def _rng(seed: int, stream: int) -> np.random.Generator:
    """Stream 0 generates data, stream 1 splits it; any int seed (negative too) works."""
    return np.random.default_rng([seed % 2**64, stream])


def split_indices(
    count: int, val_fraction: float, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return shuffled (train, val) index arrays; stratified by ``labels`` when given.

    ``round(count * val_fraction)`` samples go to validation (at least one when the fraction is
    positive and there are two or more samples, never all of them; with labels, each class gives
    its share, rounded by largest remainder, and keeps at least one sample for training, which
    can leave the validation set a little smaller). The order depends on ``seed`` only.
    """
    rng = _rng(seed, 1)
    if val_fraction <= 0 or count < 2:
        return rng.permutation(count), np.empty(0, dtype=np.int64)
    if labels is None:
        order = rng.permutation(count)
        n_val = min(max(1, round(count * val_fraction)), count - 1)
        return order[n_val:], np.sort(order[:n_val])
    classes = np.unique(labels)
    members = [rng.permutation(np.flatnonzero(labels == label)) for label in classes]
    quotas = np.array([len(m) * val_fraction for m in members])
    room = np.array([len(m) - 1 for m in members])  # keep one of each class for training
    counts = np.minimum(np.floor(quotas).astype(int), room)
    wanted = min(max(1, round(count * val_fraction)), count - 1)
    # Largest remainders first, so the total matches an unstratified split's.
    for index in np.argsort(-(quotas - np.floor(quotas)), kind="stable"):
        if counts.sum() >= wanted:
            break
        if counts[index] < room[index]:
            counts[index] += 1
    val_parts = [m[:n] for m, n in zip(members, counts, strict=True)]
    train_parts = [m[n:] for m, n in zip(members, counts, strict=True)]
    train = np.concatenate(train_parts)
    val = np.sort(np.concatenate(val_parts))
    if len(val) == 0:  # every class is a singleton: fall back to an unstratified split
        return split_indices(count, val_fraction, seed)
    return train[rng.permutation(len(train))], val


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Return ``train`` and ``others`` scaled per feature (axis 0) with the train mean and std.

    Constant features (std 0) are only centred.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [((array - mean) / std).astype(np.float32) for array in (train, *others)]


def _tensor_split(
    x: np.ndarray,
    y: np.ndarray,
    task: Task,
    *,
    seed: int,
    val_fraction: float,
    standardize_x: bool,
    standardize_y: bool = False,
    num_outputs: int | None = None,
    vocab_size: int | None = None,
    description: str = "",
) -> DataSplit:
    """Split arrays into train/val TensorDatasets scaled with the training statistics."""
    labels = y if task == "classification" else None
    train_idx, val_idx = split_indices(len(x), val_fraction, seed, labels)
    x_train, x_val = x[train_idx], x[val_idx]
    y_train, y_val = y[train_idx], y[val_idx]
    if standardize_x:
        flat_train = x_train.reshape(len(x_train), -1)
        flat_val = x_val.reshape(len(x_val), -1)
        flat_train, flat_val = standardize(flat_train, flat_val)
        x_train = flat_train.reshape(x_train.shape)
        x_val = flat_val.reshape(x_val.shape)
    if standardize_y:
        y_train, y_val = standardize(y_train, y_val)
    train = TensorDataset(_to_tensor(x_train), _to_tensor(y_train))
    val = TensorDataset(_to_tensor(x_val), _to_tensor(y_val)) if len(val_idx) else None
    if num_outputs is None:
        num_outputs = _num_outputs(y, task)
    info = DataInfo(
        input_shape=tuple(int(d) for d in x.shape[1:]),
        num_outputs=num_outputs,
        task=task,
        vocab_size=vocab_size,
        num_train=len(train_idx),
        num_val=len(val_idx),
    )
    return DataSplit(train, val, info, description)


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """Floats become float32, integers and booleans int64."""
    if np.issubdtype(array.dtype, np.floating):
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))


def _num_outputs(y: np.ndarray, task: Task) -> int:
    if task == "classification":
        return int(y.max()) + 1 if len(y) else 0
    if task == "regression":
        return 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
    return int(y.max()) + 1 if len(y) else 0


def _check_fraction(value: float, key: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise DataError(f"{key} must be between 0 and 1, got {value!r}")
    return float(value)


def _check_positive(value: int, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


# --- sklearn ---------------------------------------------------------------------------------

SKLEARN_SETS: dict[str, Task] = {
    "digits": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "iris": "classification",
    "diabetes": "regression",
}


#: (samples, features) of each bundled set, to check the files read directly.
_BUNDLED_SHAPES = {
    "digits": (1797, 64),
    "wine": (178, 13),
    "breast_cancer": (569, 30),
    "iris": (150, 4),
    "diabetes": (442, 10),
}


def read_bundled(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Read scikit-learn's bundled data file for ``name`` without importing scikit-learn.

    Importing scikit-learn takes a second or more (it pulls in SciPy) and the quickstart should
    start fast, so the small CSV files it ships are read with numpy. Returns (features, targets),
    or None when scikit-learn is absent or its files differ from the layout expected here (the
    caller then uses scikit-learn's own loaders). Diabetes features are the raw ones (as
    ``load_diabetes(scaled=False)``).
    """
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations or name not in _BUNDLED_SHAPES:
        return None
    folder = Path(locations[0]) / "datasets" / "data"
    files = {"wine": "wine_data.csv", "iris": "iris.csv", "breast_cancer": "breast_cancer.csv"}
    try:
        if name == "diabetes":
            x = np.loadtxt(folder / "diabetes_data_raw.csv.gz")
            y = np.loadtxt(folder / "diabetes_target.csv.gz")
        else:
            skip = 0 if name == "digits" else 1  # the others start with a "count,features,..." row
            table = np.loadtxt(
                folder / files.get(name, "digits.csv.gz"), delimiter=",", skiprows=skip, ndmin=2
            )
            x, y = table[:, :-1], table[:, -1]
    except (OSError, ValueError):
        return None
    samples, features = _BUNDLED_SHAPES[name]
    if x.shape != (samples, features) or y.shape != (samples,):
        return None
    return x, y


def load_sklearn(
    *,
    seed: int,
    val_fraction: float,
    base_dir: Path,
    name: str = "digits",
    as_image: bool = False,
    standardize: bool = True,
    standardize_target: bool = True,
) -> DataSplit:
    """A dataset bundled with scikit-learn (no download), split stratified from the seed.

    ======== ================ ======== =============================
    name     samples          features outputs
    ======== ================ ======== =============================
    digits   1797             64       10 classes (8x8 images, 0-16)
    wine     178              13       3 classes
    breast_cancer 569         30       2 classes
    iris     150              4        3 classes
    diabetes 442              10       regression, 1 target
    ======== ================ ======== =============================

    Inputs are float32 ``(N, features)``, standardized with the training mean/std; ``as_image``
    serves digits as ``(N, 1, 8, 8)``. Targets: int64 ``(N,)`` class ids, or float32 ``(N,)``
    for diabetes, standardized too unless ``standardize_target: false`` (raw targets in 25..346
    make an MSE of several thousand, which shifts the LR an SGD sweep finds).

    Raises:
        DataError: unknown name, or ``as_image`` for a set other than digits.
        ComponentError: scikit-learn is not installed.
    """
    if name not in SKLEARN_SETS:
        close = difflib.get_close_matches(str(name), SKLEARN_SETS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise DataError(
            f"data.args.name: unknown scikit-learn dataset {name!r}{hint}; "
            f"choose one of {', '.join(SKLEARN_SETS)}"
        )
    if as_image and name != "digits":
        raise DataError("data.args.as_image: only 'digits' has an image form (1x8x8)")
    arrays = read_bundled(name)
    if arrays is None:
        try:
            from sklearn import datasets as sklearn_datasets
        except ImportError:
            raise ComponentError(
                "data.target: the 'sklearn' dataset needs scikit-learn: "
                "pip install 'lrfind[datasets]'"
            ) from None
        load = getattr(sklearn_datasets, f"load_{name}")
        arrays = load(return_X_y=True, **({"scaled": False} if name == "diabetes" else {}))
    task = SKLEARN_SETS[name]
    x = np.asarray(arrays[0], dtype=np.float64)
    y = np.asarray(arrays[1], dtype=np.int64 if task == "classification" else np.float64)
    split = _tensor_split(
        x,
        y,
        task,
        seed=seed,
        val_fraction=val_fraction,
        standardize_x=standardize,
        standardize_y=standardize_target and task == "regression",
        description=f"sklearn({name})",
    )
    if as_image:
        split = _reshape_inputs(split, (1, 8, 8))
    return split


def _reshape_inputs(split: DataSplit, shape: tuple[int, ...]) -> DataSplit:
    def reshape(dataset: Dataset[Any] | DataLoader[Any] | None) -> TensorDataset | None:
        if not isinstance(dataset, TensorDataset):
            return None
        x, y = dataset.tensors
        return TensorDataset(x.reshape(len(x), *shape), y)

    train = reshape(split.train)
    assert train is not None
    info = DataInfo(
        shape,
        split.info.num_outputs,
        split.info.task,
        split.info.vocab_size,
        split.info.num_train,
        split.info.num_val,
    )
    return DataSplit(train, reshape(split.val), info, split.description, split.warnings)


# --- synthetic -------------------------------------------------------------------------------


def _teacher(rng: np.random.Generator, x: np.ndarray, outputs: int, hidden: int = 32) -> np.ndarray:
    """A random one-hidden-layer tanh network: a smooth, non-linear target a small MLP can learn."""
    features = x.shape[1]
    w1 = rng.standard_normal((features, hidden)) * (2.0 / math.sqrt(features))
    w2 = rng.standard_normal((hidden, outputs)) / math.sqrt(hidden)
    linear = rng.standard_normal((features, outputs)) / math.sqrt(features)
    result: np.ndarray = np.tanh(x @ w1) @ w2 + 0.5 * (x @ linear)
    return result


def load_synthetic_classification(
    *,
    seed: int,
    val_fraction: float,
    base_dir: Path,
    size: int = 2000,
    features: int = 20,
    classes: int = 4,
    noise: float = 0.05,
) -> DataSplit:
    """Gaussian inputs labelled by a random non-linear teacher network, generated from the seed.

    ``size`` samples of float32 ``(features,)`` drawn from N(0, I); the label is the argmax of a
    random tanh network's ``classes`` outputs (centred so classes are roughly balanced); a
    fraction ``noise`` of the labels is replaced by uniformly random ones. Targets int64 ``(N,)``.

    Raises:
        DataError: a non-positive size/features, fewer than 2 classes, noise outside [0, 1].
    """
    size = _check_positive(size, "data.args.size", 2)
    features = _check_positive(features, "data.args.features")
    classes = _check_positive(classes, "data.args.classes", 2)
    noise = _check_fraction(noise, "data.args.noise")
    rng = _rng(seed, 0)
    x = rng.standard_normal((size, features))
    logits = _teacher(rng, x, classes)
    logits -= np.median(logits, axis=0)
    y = logits.argmax(axis=1)
    flip = rng.random(size) < noise
    y[flip] = rng.integers(0, classes, size=int(flip.sum()))
    return _tensor_split(
        x,
        y.astype(np.int64),
        "classification",
        seed=seed,
        val_fraction=val_fraction,
        standardize_x=False,
        num_outputs=classes,
        description=f"synthetic_classification({size}x{features}, {classes} classes)",
    )


def load_synthetic_regression(
    *,
    seed: int,
    val_fraction: float,
    base_dir: Path,
    size: int = 2000,
    features: int = 20,
    outputs: int = 1,
    noise: float = 0.1,
) -> DataSplit:
    """Gaussian inputs with a random non-linear teacher's outputs as targets, from the seed.

    ``size`` samples of float32 ``(features,)`` from N(0, I); targets are a random tanh network's
    outputs scaled to unit variance plus Gaussian noise of std ``noise``: float32 ``(N,)`` when
    ``outputs`` is 1, else ``(N, outputs)``.

    Raises:
        DataError: non-positive size/features/outputs or a negative noise.
    """
    size = _check_positive(size, "data.args.size", 2)
    features = _check_positive(features, "data.args.features")
    outputs = _check_positive(outputs, "data.args.outputs")
    if not float(noise) >= 0:
        raise DataError(f"data.args.noise must be >= 0, got {noise!r}")
    rng = _rng(seed, 0)
    x = rng.standard_normal((size, features))
    y = _teacher(rng, x, outputs)
    y = y / y.std(axis=0) + float(noise) * rng.standard_normal(y.shape)
    if outputs == 1:
        y = y[:, 0]
    return _tensor_split(
        x,
        y,
        "regression",
        seed=seed,
        val_fraction=val_fraction,
        standardize_x=False,
        num_outputs=outputs,
        description=f"synthetic_regression({size}x{features})",
    )


def load_sequence(
    *,
    seed: int,
    val_fraction: float,
    base_dir: Path,
    size: int = 1000,
    length: int = 32,
    vocab: int = 32,
    branching: int = 3,
    noise: float = 0.05,
) -> DataSplit:
    """Next-token prediction over sequences from a random Markov grammar, generated from the seed.

    The grammar gives each of the ``vocab`` tokens ``branching`` possible successors with random
    probabilities; with probability ``noise`` a token is replaced by a uniformly random one. Each of
    the ``size`` sequences has ``length + 1`` tokens; inputs are int64 ``(N, length)`` (tokens
    0..T-1) and targets int64 ``(N, length)`` (tokens 1..T). The loss starts near ln(vocab) and a
    model that learns the grammar reaches about ln(branching): a clear curve for the sweep.

    Raises:
        DataError: size, length or vocab below 2, branching outside [1, vocab], noise outside
            [0, 1].
    """
    size = _check_positive(size, "data.args.size", 2)
    length = _check_positive(length, "data.args.length", 2)
    vocab = _check_positive(vocab, "data.args.vocab", 2)
    branching = _check_positive(branching, "data.args.branching")
    if branching > vocab:
        raise DataError(
            f"data.args.branching ({branching}) must not exceed data.args.vocab ({vocab})"
        )
    noise = _check_fraction(noise, "data.args.noise")
    rng = _rng(seed, 0)
    successors = np.stack([rng.choice(vocab, size=branching, replace=False) for _ in range(vocab)])
    cumulative = rng.dirichlet(np.ones(branching), size=vocab).cumsum(axis=1)
    tokens = np.empty((size, length + 1), dtype=np.int64)
    tokens[:, 0] = rng.integers(0, vocab, size=size)
    for position in range(length):
        previous = tokens[:, position]
        draw = rng.random(size)
        choice = np.minimum((draw[:, None] > cumulative[previous]).sum(axis=1), branching - 1)
        following = successors[previous, choice]
        replaced = rng.random(size) < noise
        following[replaced] = rng.integers(0, vocab, size=int(replaced.sum()))
        tokens[:, position + 1] = following
    return _tensor_split(
        tokens[:, :-1],
        tokens[:, 1:],
        "sequence",
        seed=seed,
        val_fraction=val_fraction,
        standardize_x=False,
        num_outputs=vocab,
        vocab_size=vocab,
        description=f"sequence({size}x{length}, vocab {vocab})",
    )


# --- files -----------------------------------------------------------------------------------


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
    close = difflib.get_close_matches(name, choices, n=3)
    if close:
        return f" (did you mean {', '.join(repr(c) for c in close)}?)"
    return f" ({noun}: {', '.join(choices)})" if len(choices) <= 30 else ""


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
        DataError: missing/unreadable/empty file, unknown column (with close matches), ragged
            rows, empty cells, a non-numeric feature, or an invalid ``task``.
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
    body = [[cell.strip() for cell in row] for row in rows[1:]]
    if not body:
        raise DataError(f"data.args.path: {file} has a header but no data rows")
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
            x[i, j] = value
    labels = [row[columns[target]] for row in body]
    empty = next((i for i, value in enumerate(labels) if not value), None)
    if empty is not None:
        raise DataError(
            f"data.args.target: column {target!r} has an empty value ({file.name} line {empty + 2})"
        )
    chosen: Task = _auto_task(labels) if task == "auto" else task  # type: ignore[assignment]
    if chosen == "classification":
        y = _class_labels(labels)
    else:
        numbers = [_parse_float(v) for v in labels]
        bad = next((i for i, n in enumerate(numbers) if n is None), None)
        if bad is not None:
            raise DataError(
                f"data.args.target: column {target!r} is not numeric ({file.name} line {bad + 2} "
                f"has {labels[bad]!r}) but data.args.task is regression"
            )
        y = np.array(numbers, dtype=np.float64)
    return _tensor_split(
        x,
        y,
        chosen,
        seed=seed,
        val_fraction=val_fraction,
        standardize_x=standardize,
        standardize_y=standardize_target and chosen == "regression",
        description=f"csv({file.name})",
    )


def _arrays_split(
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    *,
    seed: int,
    val_fraction: float,
    standardize: bool,
    description: str,
) -> DataSplit:
    """Shared by npz and pt: check shapes, infer the task, split."""
    if len(x) == 0:
        raise DataError(f"data.args.path: {description} holds no samples")
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
    if chosen in ("classification", "sequence"):
        if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
            raise DataError(f"data.args.task: {chosen} needs integer targets, got {y.dtype}")
        if y.min() < 0:
            raise DataError(f"data.args: class ids must be >= 0, found {int(y.min())}")
    if chosen == "sequence":
        if not np.issubdtype(x.dtype, np.integer):
            raise DataError(f"data.args.task: sequence needs integer token inputs, got {x.dtype}")
        vocab_size = int(max(x.max(), y.max())) + 1
    if not np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"data.args: inputs must be numbers, got dtype {x.dtype}")
    if chosen == "regression":
        y = y.astype(np.float64)
    return _tensor_split(
        x,
        y,
        chosen,  # type: ignore[arg-type]
        seed=seed,
        val_fraction=val_fraction,
        standardize_x=standardize and np.issubdtype(x.dtype, np.floating),
        num_outputs=vocab_size,
        vocab_size=vocab_size,
        description=description,
    )


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
) -> DataSplit:
    """Arrays from a NumPy ``.npz`` file (``np.savez``): inputs under ``x_key``, targets ``y_key``.

    Loaded without pickle. Float inputs become float32 (standardized with the training statistics
    when ``standardize: true``), integer inputs int64 (tokens). ``task: auto`` reads float targets
    as regression, integer targets shaped like integer ``(N, T)`` inputs as a sequence, other
    integer targets as class ids.

    Raises:
        DataError: missing/unreadable file, missing key (with the keys present), mismatched lengths.
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
) -> DataSplit:
    """Tensors from a ``torch.save``'d ``(inputs, targets)`` tuple/list or a dict with x_key/y_key.

    Loaded with ``weights_only=True`` (no arbitrary code runs) onto the CPU; the same dtype and
    task rules as ``npz``.

    Raises:
        DataError: missing/unreadable file, another structure, or a missing key.
    """
    file = resolve_data_path(path, base_dir)
    try:
        content = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise DataError(
            f"data.args.path: cannot load {file} with torch.load(weights_only=True): "
            f"{type(error).__name__}: {first_line}"
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
        description=f"pt({file.name})",
    )


#: Built-in data sources by the name ``data.target`` uses.
DATASETS: dict[str, Callable[..., DataSplit]] = {
    "sklearn": load_sklearn,
    "synthetic_classification": load_synthetic_classification,
    "synthetic_regression": load_synthetic_regression,
    "sequence": load_sequence,
    "csv": load_csv,
    "npz": load_npz,
    "pt": load_pt,
}

_INJECTED = ("seed", "val_fraction", "base_dir")


def dataset_arguments(name: str) -> list[str]:
    """Return the ``data.args`` names built-in dataset ``name`` accepts."""
    parameters = inspect.signature(DATASETS[name]).parameters
    return [p for p in parameters if p not in _INJECTED]


def load_builtin_dataset(
    name: str, args: Mapping[str, Any], *, seed: int, val_fraction: float, base_dir: Path
) -> DataSplit:
    """Build built-in dataset ``name`` with ``data.args``.

    Raises:
        ComponentError: an unknown dataset or argument name (with close matches).
        DataError: a bad argument value or unusable file (see each loader).
    """
    if name not in DATASETS:
        raise ComponentError(f"data.target: unknown built-in dataset {name!r}")
    accepted = dataset_arguments(name)
    for arg in args:
        if arg not in accepted:
            close = difflib.get_close_matches(str(arg), accepted, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ComponentError(
                f"data.args: dataset '{name}' has no argument '{arg}'{hint}; "
                f"accepted: {', '.join(accepted)}"
            )
    try:
        return DATASETS[name](seed=seed, val_fraction=val_fraction, base_dir=base_dir, **args)
    except (TypeError, ValueError) as error:
        raise DataError(f"data.args: dataset '{name}' rejected its arguments: {error}") from None


# --- user data -------------------------------------------------------------------------------


def _is_data(value: Any) -> bool:
    return isinstance(value, (Dataset, DataLoader))


def from_user_data(
    value: Any,
    *,
    key: str,
    seed: int,
    val_fraction: float,
    inputs_key: str | None = None,
    targets_key: str | None = None,
) -> DataSplit:
    """Normalise what a user data factory returned into a DataSplit.

    Accepts a Dataset, a DataLoader, or a ``(train, val)`` pair of either (val may be None).
    A lone map-style Dataset is split: ``val_fraction`` of it (shuffled from the seed) becomes the
    validation set. A lone DataLoader or iterable dataset cannot be split: there is then no
    validation set, and a warning says so. ``inputs_key``/``targets_key`` locate inputs and
    targets in dict samples (for DataInfo inference).

    Raises:
        ComponentError: any other return value.
        DataError: an empty training set.
    """
    warnings: list[str] = []
    if isinstance(value, (tuple, list)) and len(value) == 2 and _is_data(value[0]):
        train, val = value
        if val is not None and not _is_data(val):
            raise ComponentError(
                f"{key} returned a pair whose second item is a {type(val).__name__}, "
                "not a Dataset, DataLoader or None"
            )
    elif _is_data(value):
        train, val = value, None
        if val_fraction > 0:
            if _splittable(train):
                train, val = _split_dataset(train, val_fraction, seed)
            else:
                kind = "DataLoader" if isinstance(train, DataLoader) else "iterable dataset"
                warnings.append(
                    f"{key} returned a {kind}, which cannot be split: there is no validation "
                    "set (return a (train, val) pair, or a map-style Dataset, to get one)"
                )
    else:
        hint = ""
        if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
            hint = " (for tensors, return torch.utils.data.TensorDataset(inputs, targets))"
        raise ComponentError(
            f"{key} returned a {type(value).__name__}; expected a torch Dataset, a DataLoader, "
            f"or a (train, val) pair of them{hint}"
        )
    info = infer_info(train, val, inputs_key, targets_key)
    if _sized(train) and _length(train) == 0:
        raise DataError(f"{key} returned an empty training set")
    return DataSplit(train, val, info, "", warnings)


def _sized(data: Any) -> bool:
    target: Any = data.dataset if isinstance(data, DataLoader) else data
    if isinstance(target, IterableDataset):
        return False
    try:
        len(target)
    except TypeError:
        return False
    return True


def _length(data: Any) -> int:
    target: Any = data.dataset if isinstance(data, DataLoader) else data
    return len(target) if _sized(data) else 0


def _splittable(data: Any) -> bool:
    return isinstance(data, Dataset) and not isinstance(data, IterableDataset) and _sized(data)


def _split_dataset(
    dataset: Dataset[Any], val_fraction: float, seed: int
) -> tuple[Dataset[Any], Dataset[Any] | None]:
    train_idx, val_idx = split_indices(_length(dataset), val_fraction, seed)
    val = Subset(dataset, val_idx.tolist()) if len(val_idx) else None
    return Subset(dataset, train_idx.tolist()), val


def _base_tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The full input/target tensors behind a TensorDataset (through Subsets and DataLoaders)."""
    while True:
        if isinstance(data, (DataLoader, Subset)):
            data = data.dataset
        else:
            break
    if isinstance(data, TensorDataset) and len(data.tensors) >= 2:
        return data.tensors[0], data.tensors[1]
    return None


def info_from_tensors(
    x: torch.Tensor, y: torch.Tensor, num_train: int, num_val: int, *, batched: bool = True
) -> DataInfo:
    """Infer a DataInfo from inputs/targets (``batched``: their first dimension is the sample).

    Float targets mean regression; integer targets shaped like integer 2-D inputs a sequence
    (vocabulary = largest token + 1); other integer targets class ids (classes = largest id + 1).
    """
    x_shape = tuple(int(d) for d in (x.shape[1:] if batched else x.shape))
    y_sample = y.shape[1:] if batched else y.shape
    if y.is_floating_point():
        width = int(math.prod(y_sample)) if len(y_sample) else 1
        return DataInfo(x_shape, width, "regression", None, num_train, num_val)
    if not x.is_floating_point() and len(x_shape) == 1 and tuple(y_sample) == x_shape:
        vocab = int(max(int(x.max()), int(y.max()))) + 1 if x.numel() and y.numel() else None
        return DataInfo(x_shape, vocab, "sequence", vocab, num_train, num_val)
    classes = int(y.max()) + 1 if batched and y.numel() else None
    return DataInfo(x_shape, classes, "classification", None, num_train, num_val)


def infer_info(
    train: Dataset[Any] | DataLoader[Any],
    val: Dataset[Any] | DataLoader[Any] | None,
    inputs_key: str | None = None,
    targets_key: str | None = None,
) -> DataInfo:
    """Infer what the models need from user data.

    A TensorDataset (directly, in a Subset or behind a DataLoader) gives everything, class count
    included. Otherwise the first sample (map-style dataset) or first batch (loader, iterable)
    gives the input shape and the task; the number of classes then stays unknown (None).
    Data whose samples are not ``(inputs, targets)`` pairs or dicts give an empty DataInfo.
    """
    num_train, num_val = _length(train), (_length(val) if val is not None else 0)
    tensors = _base_tensors(train)
    if tensors is not None:
        x, y = tensors
        info = info_from_tensors(x, y, num_train, num_val)
        val_tensors = _base_tensors(val) if val is not None else None
        if val_tensors is not None and info.num_outputs is not None and info.task != "regression":
            val_x, val_y = val_tensors
            largest = max(int(val_y.max()) if val_y.numel() else 0, info.num_outputs - 1)
            if info.task == "sequence" and val_x.numel():
                largest = max(largest, int(val_x.max()))
                info = replace(info, num_outputs=largest + 1, vocab_size=largest + 1)
            else:
                info = replace(info, num_outputs=largest + 1)
        return info
    unknown = DataInfo((), None, None, None, num_train, num_val)
    try:
        if isinstance(train, DataLoader) or not _sized(train):
            sample, batched = next(iter(train)), isinstance(train, DataLoader)
        else:
            sample, batched = train[0], False
        inputs, targets = split_batch(sample, inputs_key, targets_key)
    except Exception:  # inference is best effort; the probe reports real problems
        return unknown
    if isinstance(inputs, torch.Tensor) and isinstance(targets, (int, float)):
        targets = torch.tensor(targets)
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return unknown
    info = info_from_tensors(inputs, targets, num_train, num_val, batched=batched)
    if info.task == "classification":
        info = DataInfo(info.input_shape, None, "classification", None, num_train, num_val)
    return info


# --- loaders ---------------------------------------------------------------------------------


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy and random from the worker's torch seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


@dataclass
class Loaders:
    """The training loader, the validation loader (or None), and notes for the run's warnings."""

    train: DataLoader[Any]
    val: DataLoader[Any] | None
    batch_size: int
    warnings: list[str] = field(default_factory=list)


def make_loaders(
    split: DataSplit,
    *,
    batch_size: int,
    shuffle: bool = True,
    num_workers: int = 0,
    drop_last: bool = False,
    seed: int = 0,
    device: torch.device | None = None,
    rank: int = 0,
    world_size: int = 1,
    key: str = "data.target",
) -> Loaders:
    """Wrap ``split``'s datasets in DataLoaders (a user's DataLoaders are kept as they are).

    Training: ``shuffle`` from a ``torch.Generator`` seeded with ``seed``, ``drop_last`` as
    configured; validation: in order, every sample. ``worker_init_fn`` seeds numpy/random in each
    worker; ``pin_memory`` is on for CUDA. With ``world_size > 1`` both use a
    ``DistributedSampler(num_replicas=world_size, rank=rank, seed=seed)`` (exposed as the loader's
    ``.sampler``; call ``set_epoch`` per pass), so each process sees its own shard.

    Raises:
        DataError: an empty training set, or fewer samples (per process) than one batch when
            ``drop_last`` is set.
    """
    warnings = list(split.warnings)
    pin_memory = device is not None and device.type == "cuda"
    common: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": pin_memory,
        "worker_init_fn": seed_worker if num_workers > 0 else None,
        "persistent_workers": num_workers > 0,
    }

    def build(dataset: Dataset[Any], train: bool) -> DataLoader[Any]:
        sampler: DistributedSampler[Any] | None = None
        sized = _sized(dataset)
        if world_size > 1 and sized:
            sampler = DistributedSampler(
                dataset,
                num_replicas=world_size,
                rank=rank,
                shuffle=shuffle and train,
                seed=seed,
            )
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=(shuffle and train and sampler is None and sized),
            sampler=sampler,
            drop_last=drop_last and train,
            generator=generator,
            **common,
        )

    if isinstance(split.train, DataLoader):
        train_loader = split.train
        effective_batch = int(split.train.batch_size or batch_size)
        if world_size > 1:
            warnings.append(
                f"{key} returned a DataLoader, which lrfind cannot shard: each of the "
                f"{world_size} processes reads the same batches"
            )
    else:
        count = _length(split.train)
        if _sized(split.train):
            per_process = math.ceil(count / world_size)
            where = f" ({per_process} per process)" if world_size > 1 else ""
            if count == 0:
                raise DataError("data: the training set is empty")
            if drop_last and per_process < batch_size:
                raise DataError(
                    f"data.batch_size: the training set has {count} samples{where}, fewer than "
                    f"one batch of {batch_size} with data.drop_last: true; lower data.batch_size "
                    "or set data.drop_last: false"
                )
            if per_process < batch_size:
                warnings.append(
                    f"data.batch_size ({batch_size}) exceeds the {per_process} training samples"
                    f"{' per process' if world_size > 1 else ''}: every step sees the whole set"
                )
        train_loader = build(split.train, train=True)
        effective_batch = batch_size
    val_loader: DataLoader[Any] | None
    if split.val is None or isinstance(split.val, DataLoader):
        val_loader = split.val
    elif _sized(split.val) and _length(split.val) == 0:
        val_loader = None
    else:
        val_loader = build(split.val, train=False)
    return Loaders(train_loader, val_loader, effective_batch, warnings)
