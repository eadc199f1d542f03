"""Built-in datasets, file sources, user data normalisation and the DataLoaders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from lrfind.data.builtin import read_bundled
from lrfind.data.loaders import make_loaders
from lrfind.data.registry import load_builtin_dataset
from lrfind.data.split import split_indices
from lrfind.data.types import DataInfo, DataSplit
from lrfind.data.user import from_user_data, infer_info
from lrfind.errors import ComponentError, DataError
from tests.fixtures import user_components

HERE = Path()


def load(
    dataset: str, /, seed: int = 0, val_fraction: float = 0.2, base_dir: Path = HERE, **args: Any
) -> DataSplit:
    return load_builtin_dataset(
        dataset, args, seed=seed, val_fraction=val_fraction, base_dir=base_dir
    )


def tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    assert isinstance(dataset, TensorDataset)
    return dataset.tensors[0], dataset.tensors[1]


# --- sklearn ---------------------------------------------------------------------------------

SKLEARN_SHAPES = {
    "digits": ((64,), 10, "classification", 1797),
    "wine": ((13,), 3, "classification", 178),
    "breast_cancer": ((30,), 2, "classification", 569),
    "iris": ((4,), 3, "classification", 150),
    "diabetes": ((10,), 1, "regression", 442),
}


@pytest.mark.parametrize("name", sorted(SKLEARN_SHAPES))
def test_sklearn_sets_have_documented_shapes(name: str) -> None:
    shape, outputs, task, count = SKLEARN_SHAPES[name]
    split = load("sklearn", name=name)
    assert split.info.input_shape == shape
    assert split.info.num_outputs == outputs
    assert split.info.task == task
    assert split.info.num_train + split.info.num_val == count
    x, y = tensors(split.train)
    assert x.dtype == torch.float32
    assert y.dtype == (torch.int64 if task == "classification" else torch.float32)
    assert y.shape == (split.info.num_train,)


def test_sklearn_standardizes_with_training_statistics_only() -> None:
    split = load("sklearn", name="wine")
    x_train, _ = tensors(split.train)
    x_val, _ = tensors(split.val)
    assert torch.allclose(x_train.mean(0), torch.zeros(13), atol=1e-5)
    assert torch.allclose(x_train.std(0, unbiased=False), torch.ones(13), atol=1e-4)
    assert not torch.allclose(x_val.mean(0), torch.zeros(13), atol=1e-3)


def test_sklearn_split_is_stratified_and_seeded() -> None:
    split = load("sklearn", name="iris")
    _, y_val = tensors(split.val)
    assert torch.bincount(y_val).tolist() == [10, 10, 10]
    again = load("sklearn", name="iris")
    assert torch.equal(tensors(split.train)[0], tensors(again.train)[0])
    other = load("sklearn", name="iris", seed=1)
    assert not torch.equal(tensors(split.train)[0], tensors(other.train)[0])


def test_digits_as_image() -> None:
    split = load("sklearn", name="digits", as_image=True)
    assert split.info.input_shape == (1, 8, 8)
    assert tensors(split.train)[0].shape[1:] == (1, 8, 8)
    assert tensors(split.val)[0].shape[1:] == (1, 8, 8)


def test_as_image_only_for_digits() -> None:
    with pytest.raises(DataError, match=r"^data\.args\.as_image: only 'digits' has an image form"):
        load("sklearn", name="wine", as_image=True)


def test_unknown_sklearn_name_suggests_the_closest() -> None:
    with pytest.raises(DataError) as caught:
        load("sklearn", name="digit")
    assert str(caught.value) == (
        "data.args.name: unknown scikit-learn dataset 'digit' (did you mean 'digits'?); "
        "choose one of digits, wine, breast_cancer, iris, diabetes"
    )


def test_diabetes_targets_are_standardized_unless_asked_not_to() -> None:
    _, y = tensors(load("sklearn", name="diabetes").train)
    assert abs(float(y.mean())) < 1e-4
    _, raw = tensors(load("sklearn", name="diabetes", standardize_target=False).train)
    assert float(raw.min()) >= 25 and float(raw.max()) <= 346


@pytest.mark.parametrize("name", sorted(SKLEARN_SHAPES))
def test_bundled_files_match_scikit_learns_loaders(name: str) -> None:
    from sklearn import datasets as sklearn_datasets

    fast = read_bundled(name)
    assert fast is not None
    extra = {"scaled": False} if name == "diabetes" else {}
    x, y = getattr(sklearn_datasets, f"load_{name}")(return_X_y=True, **extra)
    assert np.array_equal(fast[0], x)
    assert np.array_equal(fast[1], y)


# --- generated -------------------------------------------------------------------------------


def test_synthetic_classification() -> None:
    split = load("synthetic_classification", size=500, features=6, classes=3)
    assert split.info == DataInfo((6,), 3, "classification", None, 400, 100)
    _, y = tensors(split.train)
    assert set(y.tolist()) == {0, 1, 2}
    assert torch.equal(
        y, tensors(load("synthetic_classification", size=500, features=6, classes=3).train)[1]
    )


def test_synthetic_regression_with_several_outputs() -> None:
    split = load("synthetic_regression", size=100, features=5, outputs=2)
    assert split.info.task == "regression"
    assert split.info.num_outputs == 2
    assert tensors(split.train)[1].shape == (80, 2)
    assert tensors(load("synthetic_regression", size=100).train)[1].shape == (80,)


def test_sequence_targets_are_the_next_tokens() -> None:
    split = load("sequence", size=50, length=12, vocab=10)
    assert split.info == DataInfo((12,), 10, "sequence", 10, 40, 10)
    x, y = tensors(split.train)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert int(x.max()) < 10 and int(x.min()) >= 0


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("synthetic_classification", {"classes": 1}, "data.args.classes must be an integer >= 2"),
        ("synthetic_classification", {"noise": 1.5}, "data.args.noise must be between 0 and 1"),
        ("synthetic_regression", {"size": 0}, "data.args.size must be an integer >= 2"),
        ("sequence", {"branching": 5, "vocab": 4}, "data.args.branching (5) must not exceed"),
        ("sequence", {"length": 1}, "data.args.length must be an integer >= 2"),
    ],
)
def test_generated_data_rejects_bad_values(name: str, args: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        load(name, **args)


def test_unknown_argument_names_the_close_match() -> None:
    with pytest.raises(ComponentError) as caught:
        load("sequence", vocb=3)
    assert str(caught.value) == (
        "data.args: dataset 'sequence' has no argument 'vocb' (did you mean 'vocab'?); "
        "accepted: size, length, vocab, branching, noise"
    )


def test_val_fraction_zero_gives_no_validation_set() -> None:
    split = load("synthetic_classification", val_fraction=0.0, size=40)
    assert split.val is None
    assert split.info.num_val == 0


def test_split_indices_keeps_a_class_member_in_training() -> None:
    labels = np.array([0, 0, 0, 0, 1])
    train, val = split_indices(5, 0.5, 0, labels)
    assert sorted([*train.tolist(), *val.tolist()]) == [0, 1, 2, 3, 4]
    assert 4 in train.tolist()


def test_negative_seed_works() -> None:
    assert load("synthetic_classification", seed=-3, size=20).info.num_train == 16


# --- csv -------------------------------------------------------------------------------------

CSV_TEXT = """\
id,height,weight,color,species
1,1.0,10,red,cat
2,2.0,20,blue,dog
3,3.0,30,red,cat
4,4.0,40,blue,dog
5,5.0,50,red,bird
6,6.0,60,blue,dog
7,7.0,70,red,cat
8,8.0,80,blue,bird
9,9.0,90,red,bird
10,10.0,100,blue,cat
"""


def write(tmp_path: Path, text: str, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_csv(tmp_path: Path, **args: Any) -> DataSplit:
    return load("csv", base_dir=tmp_path, val_fraction=0.2, **args)


def test_csv_round_trip_with_text_labels(tmp_path: Path) -> None:
    write(tmp_path, CSV_TEXT)
    split = load_csv(
        tmp_path,
        path="table.csv",
        target="species",
        features=["height", "weight"],
        standardize=False,
    )
    assert split.info.task == "classification"
    assert split.info.num_outputs == 3
    assert split.info.input_shape == (2,)
    assert (split.info.num_train, split.info.num_val) == (8, 2)
    x = torch.cat([tensors(split.train)[0], tensors(split.val)[0]])
    y = torch.cat([tensors(split.train)[1], tensors(split.val)[1]])
    names = ["bird", "cat", "dog"]  # ids follow the sorted label names
    expected = {float(row.split(",")[1]): row.split(",")[4] for row in CSV_TEXT.splitlines()[1:]}
    assert {float(h): names[int(label)] for (h, _), label in zip(x, y, strict=True)} == expected
    assert torch.equal(x[:, 1], x[:, 0] * 10)


def test_csv_regression_auto_and_unstandardized(tmp_path: Path) -> None:
    write(tmp_path, "a,b,y\n" + "".join(f"{i},{i * 2},{i * 0.37:.3f}\n" for i in range(30)))
    split = load_csv(tmp_path, path="table.csv", target="y", standardize=False)
    assert split.info.task == "regression"
    x, y = tensors(split.train)
    assert torch.allclose(x[:, 1], 2 * x[:, 0])
    assert torch.allclose(y, x[:, 0] * 0.37, atol=1e-3)


def test_csv_auto_reads_few_integers_as_classes(tmp_path: Path) -> None:
    write(tmp_path, "a,label\n" + "".join(f"{i},{(i % 2) + 1}\n" for i in range(20)))
    split = load_csv(tmp_path, path="table.csv", target="label")
    assert split.info.task == "classification"
    assert split.info.num_outputs == 2
    assert set(tensors(split.train)[1].tolist()) == {0, 1}


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_csv(tmp_path, path="nope.csv", target="y")
    assert str(caught.value) == f"data.args.path: no such file: {tmp_path.resolve() / 'nope.csv'}"


def test_csv_empty_file(tmp_path: Path) -> None:
    write(tmp_path, "")
    with pytest.raises(DataError, match=r"^data\.args\.path: .*table\.csv is empty$"):
        load_csv(tmp_path, path="table.csv", target="y")
    write(tmp_path, "a,y\n")
    with pytest.raises(DataError, match="has a header but no data rows"):
        load_csv(tmp_path, path="table.csv", target="y")


def test_csv_missing_column_names_close_matches(tmp_path: Path) -> None:
    write(tmp_path, CSV_TEXT)
    with pytest.raises(DataError) as caught:
        load_csv(tmp_path, path="table.csv", target="specie")
    assert str(caught.value) == (
        "data.args.target: no column 'specie' in table.csv (did you mean 'species'?)"
    )
    with pytest.raises(DataError, match=r"^data\.args\.features: no column 'wieght'.*'weight'"):
        load_csv(tmp_path, path="table.csv", target="species", features=["wieght"])


def test_csv_non_numeric_feature(tmp_path: Path) -> None:
    write(tmp_path, CSV_TEXT)
    with pytest.raises(DataError) as caught:
        load_csv(tmp_path, path="table.csv", target="species")
    assert str(caught.value) == (
        "data.args.features: column 'color' is not numeric (table.csv line 2 has the text 'red'); "
        "drop it from data.args.features or encode it as numbers"
    )


def test_csv_ragged_row_and_empty_target(tmp_path: Path) -> None:
    write(tmp_path, "a,y\n1,2\n3\n")
    with pytest.raises(DataError, match=r"table\.csv line 3 has 1 fields, the header has 2"):
        load_csv(tmp_path, path="table.csv", target="y")
    write(tmp_path, "a,y\n1,2\n3,\n")
    with pytest.raises(DataError, match=r"column 'y' has an empty value \(table.csv line 3\)"):
        load_csv(tmp_path, path="table.csv", target="y")


def test_csv_unreadable_bytes(tmp_path: Path) -> None:
    (tmp_path / "table.csv").write_bytes(b"a,y\n\xff\xfe,1\n")
    with pytest.raises(DataError, match="is not UTF-8 text"):
        load_csv(tmp_path, path="table.csv", target="y")


# --- npz / pt --------------------------------------------------------------------------------


def test_npz_round_trip_classification(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float64)
    y = np.arange(40) % 4
    np.savez(tmp_path / "data.npz", x=x, y=y)
    split = load("npz", base_dir=tmp_path, path="data.npz")
    assert split.info == DataInfo((3,), 4, "classification", None, 32, 8)
    x_train, y_train = tensors(split.train)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    merged = sorted(map(tuple, torch.cat([x_train, tensors(split.val)[0]]).tolist()))
    assert np.allclose(merged, sorted(map(tuple, x.astype(np.float32).tolist())))


def test_npz_custom_keys_regression_and_missing_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "data.npz", features=np.ones((10, 2)), value=np.linspace(0, 1, 10))
    split = load("npz", base_dir=tmp_path, path="data.npz", x_key="features", y_key="value")
    assert split.info.task == "regression"
    with pytest.raises(DataError) as caught:
        load("npz", base_dir=tmp_path, path="data.npz", x_key="features", y_key="values")
    assert (
        str(caught.value) == "data.args.y_key: data.npz has no key 'values' (did you mean 'value'?)"
    )
    with pytest.raises(DataError) as caught:
        load("npz", base_dir=tmp_path, path="data.npz")
    assert str(caught.value) == "data.args.x_key: data.npz has no key 'x' (keys: features, value)"


def test_npz_token_sequences_are_detected(tmp_path: Path) -> None:
    tokens = np.random.default_rng(0).integers(0, 7, size=(20, 9))
    np.savez(tmp_path / "tokens.npz", x=tokens[:, :-1], y=tokens[:, 1:])
    split = load("npz", base_dir=tmp_path, path="tokens.npz")
    assert split.info.task == "sequence"
    assert split.info.vocab_size == int(tokens.max()) + 1


def test_npz_not_an_archive(tmp_path: Path) -> None:
    write(tmp_path, "not a zip", "data.npz")
    with pytest.raises(DataError, match=r"^data\.args\.path: cannot read .*data\.npz as \.npz"):
        load("npz", base_dir=tmp_path, path="data.npz")


def test_pt_tuple_and_dict_round_trips(tmp_path: Path) -> None:
    x, y = torch.randn(30, 2, 3), torch.arange(30) % 2
    torch.save((x, y), tmp_path / "pair.pt")
    torch.save({"inputs": x, "labels": y}, tmp_path / "named.pt")
    split = load("pt", base_dir=tmp_path, path="pair.pt")
    assert split.info == DataInfo((2, 3), 2, "classification", None, 24, 6)
    named = load("pt", base_dir=tmp_path, path="named.pt", x_key="inputs", y_key="labels")
    assert torch.equal(tensors(named.train)[0], tensors(split.train)[0])


class Opaque:
    """Not loadable with weights_only=True."""


def test_pt_refuses_pickled_objects(tmp_path: Path) -> None:
    torch.save({"x": torch.zeros(3, 1), "y": torch.zeros(3), "extra": Opaque()}, tmp_path / "o.pt")
    with pytest.raises(
        DataError, match=r"cannot load .*o\.pt with torch\.load\(weights_only=True\)"
    ):
        load("pt", base_dir=tmp_path, path="o.pt")


def test_pt_wrong_structure(tmp_path: Path) -> None:
    torch.save([torch.zeros(2)], tmp_path / "one.pt")
    with pytest.raises(DataError, match="holds a list; save an"):
        load("pt", base_dir=tmp_path, path="one.pt")


# --- user data -------------------------------------------------------------------------------


def test_user_dataset_is_split_deterministically() -> None:
    dataset = user_components.make_tensor_data(size=100)
    split = from_user_data(dataset, key="data.target", seed=0, val_fraction=0.25)
    assert split.info == DataInfo((4,), 3, "classification", None, 75, 25)
    again = from_user_data(dataset, key="data.target", seed=0, val_fraction=0.25)
    assert split.train.indices == again.train.indices  # type: ignore[union-attr]
    assert not split.warnings


def test_user_pair_is_kept() -> None:
    train, val = user_components.make_pair()
    split = from_user_data((train, val), key="data.target", seed=0, val_fraction=0.2)
    assert split.train is train and split.val is val
    assert split.info.num_train == 120 and split.info.num_val == 30


def test_user_loader_cannot_be_split() -> None:
    loader = user_components.make_loader()
    split = from_user_data(loader, key="data.target", seed=0, val_fraction=0.2)
    assert split.train is loader and split.val is None
    assert split.warnings == [
        "data.target returned a DataLoader, which cannot be split: there is no validation set "
        "(return a (train, val) pair, or a map-style Dataset, to get one)"
    ]
    assert split.info.num_outputs == 3  # read from the TensorDataset behind the loader


def test_user_wrong_types() -> None:
    with pytest.raises(ComponentError) as caught:
        from_user_data([1, 2, 3], key="data.target", seed=0, val_fraction=0.2)
    assert str(caught.value) == (
        "data.target returned a list; expected a torch Dataset, a datasets.Dataset, a "
        "DataLoader, or a (train, val) pair of them"
    )
    with pytest.raises(ComponentError, match=r"return torch\.utils\.data\.TensorDataset"):
        from_user_data(
            user_components.tensors_not_dataset(), key="data.target", seed=0, val_fraction=0.2
        )


def test_user_empty_dataset() -> None:
    with pytest.raises(DataError, match=r"^data\.target returned an empty training set$"):
        from_user_data(user_components.empty_data(), key="data.target", seed=0, val_fraction=0.0)


def test_infer_info_from_dict_samples() -> None:
    info = infer_info(user_components.make_dict_data(), None, "pixels", "digit")
    assert info == DataInfo((4,), None, "classification", None, 64, 0)
    unknown = infer_info(user_components.make_dict_data(), None)
    assert unknown == DataInfo((), None, None, None, 64, 0)


# --- loaders ---------------------------------------------------------------------------------


def split_of(size: int = 100) -> DataSplit:
    return from_user_data(
        user_components.make_tensor_data(size=size), key="data.target", seed=0, val_fraction=0.2
    )


def first_targets(loader: DataLoader[Any]) -> list[int]:
    return next(iter(loader))[1].tolist()


def test_loaders_shuffle_from_the_seed() -> None:
    one = make_loaders(split_of(), batch_size=10, seed=3)
    two = make_loaders(split_of(), batch_size=10, seed=3)
    other = make_loaders(split_of(), batch_size=10, seed=4)
    assert first_targets(one.train) == first_targets(two.train)
    assert [b[0].tolist() for b in one.train] != [b[0].tolist() for b in other.train]
    assert one.val is not None and len(one.val.dataset) == 20  # type: ignore[arg-type]
    assert one.train.pin_memory is False
    assert one.batch_size == 10


def test_drop_last_with_too_few_samples() -> None:
    with pytest.raises(DataError) as caught:
        make_loaders(split_of(40), batch_size=64, drop_last=True)
    assert str(caught.value) == (
        "data.batch_size: the training set has 32 samples, fewer than one batch of 64 with "
        "data.drop_last: true; lower data.batch_size or set data.drop_last: false"
    )


def test_batch_larger_than_the_data_warns() -> None:
    loaders = make_loaders(split_of(40), batch_size=64)
    assert loaders.warnings == [
        "data.batch_size (64) exceeds the 32 training samples: every step sees the whole set"
    ]


def test_pin_memory_on_cuda() -> None:
    loaders = make_loaders(split_of(), batch_size=10, device=torch.device("cuda"))
    assert loaders.train.pin_memory is True


def test_distributed_sampler_shards_the_data() -> None:
    seen = []
    for rank in (0, 1):
        loaders = make_loaders(split_of(), batch_size=8, seed=5, rank=rank, world_size=2)
        sampler = loaders.train.sampler
        assert isinstance(sampler, DistributedSampler)
        assert (sampler.num_replicas, sampler.rank, sampler.seed) == (2, rank, 5)
        seen.append(list(sampler))
        assert isinstance(loaders.val.sampler, DistributedSampler)  # type: ignore[union-attr]
    assert len(seen[0]) == len(seen[1]) == 40
    assert set(seen[0]) | set(seen[1]) == set(range(80))
    assert not set(seen[0]) & set(seen[1])


def test_distributed_too_few_samples_per_process() -> None:
    with pytest.raises(DataError, match=r"has 80 samples \(40 per process\)"):
        make_loaders(split_of(), batch_size=64, drop_last=True, world_size=2)


def test_worker_processes_load_the_data() -> None:
    loaders = make_loaders(split_of(40), batch_size=16, num_workers=1, seed=0)
    assert loaders.train.worker_init_fn is not None
    assert sum(len(batch[1]) for batch in loaders.train) == 32
