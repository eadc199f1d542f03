"""Built-in datasets: bundled sklearn sets, synthetic classification/regression, sequences."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import (
    DataLoader,
    Dataset,
    TensorDataset,
)

from lrfind.data.split import (
    check_fraction,
    check_positive,
    check_volume,
    seeded_rng,
    tensor_split,
)
from lrfind.data.types import DataInfo, DataSplit, Task
from lrfind.errors import ComponentError, DataError
from lrfind.format import did_you_mean

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
        hint = did_you_mean(name, SKLEARN_SETS)
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
    split = tensor_split(
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
    size = check_positive(size, "data.args.size", 2)
    features = check_positive(features, "data.args.features")
    classes = check_positive(classes, "data.args.classes", 2)
    check_volume(size * max(features, classes), "size x max(features, classes)")
    noise = check_fraction(noise, "data.args.noise")
    rng = seeded_rng(seed, 0)
    x = rng.standard_normal((size, features))
    logits = _teacher(rng, x, classes)
    logits -= np.median(logits, axis=0)
    y = logits.argmax(axis=1)
    flip = rng.random(size) < noise
    y[flip] = rng.integers(0, classes, size=int(flip.sum()))
    return tensor_split(
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
    size = check_positive(size, "data.args.size", 2)
    features = check_positive(features, "data.args.features")
    outputs = check_positive(outputs, "data.args.outputs")
    check_volume(size * max(features, outputs), "size x max(features, outputs)")
    if not float(noise) >= 0:
        raise DataError(f"data.args.noise must be >= 0, got {noise!r}")
    rng = seeded_rng(seed, 0)
    x = rng.standard_normal((size, features))
    y = _teacher(rng, x, outputs)
    y = y / y.std(axis=0) + float(noise) * rng.standard_normal(y.shape)
    if outputs == 1:
        y = y[:, 0]
    return tensor_split(
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
    size = check_positive(size, "data.args.size", 2)
    length = check_positive(length, "data.args.length", 2)
    vocab = check_positive(vocab, "data.args.vocab", 2)
    branching = check_positive(branching, "data.args.branching")
    check_volume(
        max(size * (length + 1), vocab * branching), "size x length (or vocab x branching)"
    )
    if branching > vocab:
        raise DataError(
            f"data.args.branching ({branching}) must not exceed data.args.vocab ({vocab})"
        )
    noise = check_fraction(noise, "data.args.noise")
    rng = seeded_rng(seed, 0)
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
    return tensor_split(
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
