"""The config contract: defaults, every-problem-at-once errors with lines, overrides, fuzzing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrfind.config.load import (
    apply_overrides,
    load_config,
    parse_override,
    parse_yaml,
    validate_config,
)
from lrfind.config.schema import Config
from lrfind.errors import ConfigError

MINIMAL = """\
model:
  target: mlp
data:
  target: sklearn
  args: {name: digits}
"""


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), overrides)
    return caught.value.problems


def test_minimal_config_fills_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL, "digits mlp.yaml"))
    assert config.name == "digits-mlp"
    assert config.seed == 0 and config.device == "auto"
    assert config.loss == "auto"
    assert config.optimizer.name == "sgd"
    sweep = config.sweep
    assert (sweep.start_lr, sweep.end_lr, sweep.steps, sweep.mode) == (1e-7, 10.0, 100, "exp")
    assert (sweep.smoothing, sweep.diverge_factor, sweep.precision) == (0.98, 4.0, "fp32")
    assert config.data.batch_size == 64 and config.data.val_fraction == 0.2
    assert config.output.dir == "runs"
    assert config.base_dir == tmp_path.resolve()


def test_resolved_yaml_round_trips(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    again = validate_config(yaml.safe_load(config.to_yaml()))
    assert again.model_dump() == config.model_dump()


def test_unknown_key_names_line_and_closest_key(tmp_path: Path) -> None:
    text = MINIMAL + "sweep:\n  setps: 10\n"
    assert problems(tmp_path, text) == (
        "line 7: unknown key 'sweep.setps' (did you mean 'steps'?)",
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
model:
  target: mpl
data:
  target: sklearn
  batch_size: 0
sweep:
  steps: 3
  smoothing: 1.0
  mode: cubic
"""
    found = problems(tmp_path, text)
    assert len(found) == 5
    joined = "\n".join(found)
    assert "line 2: model.target: unknown built-in model 'mpl' (did you mean 'mlp'?)" in joined
    assert "line 5: data.batch_size: Input should be greater than or equal to 1" in joined
    assert "line 7: sweep.steps" in joined
    assert "line 8: sweep.smoothing" in joined
    assert "line 9: sweep.mode" in joined


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ("{start_lr: 1.0, end_lr: 0.1}", "start_lr (1) must be below end_lr (0.1)"),
        ("{start_lr: 0}", "sweep.start_lr: Input should be greater than 0"),
        ("{end_lr: -1}", "sweep.end_lr: Input should be greater than 0"),
        ("{steps: 9}", "sweep.steps: Input should be greater than or equal to 10"),
        ("{smoothing: -0.1}", "sweep.smoothing: Input should be greater than or equal to 0"),
        ("{diverge_factor: 1}", "sweep.diverge_factor: Input should be greater than 1"),
        ("{precision: fp8}", "sweep.precision: Input should be 'fp32', 'bf16' or 'fp16'"),
        ("{steps: ten}", "sweep.steps: Input should be a valid integer"),
    ],
)
def test_out_of_range_sweep_values(tmp_path: Path, sweep: str, expected: str) -> None:
    found = problems(tmp_path, MINIMAL + f"sweep: {sweep}\n")
    assert len(found) == 1
    assert expected in found[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: [1\n", "invalid YAML"),
        ("", "the config is empty"),
        ("- a\n- b\n", "must be a mapping of keys, not a list"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("model: !!python/object:os.system {}\n", "invalid YAML"),
    ],
)
def test_malformed_documents(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text))


def test_yaml_error_has_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "model:\n  target: [mlp\n  x: 1\n"))
    assert str(caught.value).startswith(f"{tmp_path / 'cfg.yaml'}:3:")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_missing_required_sections(tmp_path: Path) -> None:
    assert set(problems(tmp_path, "seed: 1\n")) == {
        "missing required key 'model'",
        "missing required key 'data'",
    }


def test_overrides_set_nested_keys_parsed_as_yaml(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, MINIMAL),
        ["sweep.steps=20", "optimizer.args={momentum: 0.8}", "model.args.hidden=[8, 4]", "name=x"],
    )
    assert config.sweep.steps == 20
    assert config.optimizer.args == {"momentum": 0.8}
    assert config.model.args == {"hidden": [8, 4]}
    assert config.name == "x"


def test_override_errors_are_attributed_to_set(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL, ("sweep.stepz=3",))
    assert found == ("--set: unknown key 'sweep.stepz' (did you mean 'steps'?)",)


@pytest.mark.parametrize("bad", ["noequals", "=1", "a..b=1", ".a=1"])
def test_malformed_override(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"--set expects KEY\.PATH=VALUE"):
        parse_override(bad)


def test_override_changes_one_place_not_every_alias_of_it(tmp_path: Path) -> None:
    text = MINIMAL + (
        "optimizer:\n  name: sgd\n  param_groups:\n"
        "    - &g {match: bias, weight_decay: 0.0}\n    - *g\n"
    )
    config = load_config(write(tmp_path, text), ("optimizer.param_groups.0.weight_decay=0.5",))
    first, second = config.optimizer.param_groups
    assert first.model_extra == {"weight_decay": 0.5}
    assert second.model_extra == {"weight_decay": 0.0}


def test_override_through_a_scalar_is_refused() -> None:
    with pytest.raises(ConfigError, match="'loss' is str 'mse', not a mapping"):
        apply_overrides({"loss": "mse"}, ["loss.target=x"])


def test_lr_in_optimizer_args_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + "optimizer: {name: sgd, args: {lr: 0.1}}\n")
    assert found == (
        "line 6: optimizer.args: do not set 'lr' here: the sweep sets the learning rate",
    )


def test_yaml_booleans_for_refine(tmp_path: Path) -> None:
    assert (
        load_config(write(tmp_path, MINIMAL + "suggest: {refine: off}\n")).suggest.refine == "off"
    )
    assert load_config(write(tmp_path, MINIMAL + "suggest: {refine: on}\n")).suggest.refine == "on"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.batch_size=yes", "data.batch_size"),
        ("sweep.steps=true", "sweep.steps"),
        ("sweep.start_lr=true", "sweep.start_lr"),
        ("sweep.smoothing=false", "sweep.smoothing"),
        ("seed=on", "seed"),
        ("suggest.budget=true", "suggest.budget"),
    ],
)
def test_a_boolean_is_not_a_number(tmp_path: Path, override: str, key: str) -> None:
    # pydantic alone reads true as 1: "batch_size: yes" would run with batch size 1.
    (found,) = problems(tmp_path, MINIMAL, (override,))
    assert found.startswith(f"--set: {key}: expected a number, got the boolean ")


def test_booleans_still_fill_boolean_fields(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), ("data.shuffle=no", "data.drop_last=yes"))
    assert config.data.shuffle is False and config.data.drop_last is True


def test_import_paths_are_listed(tmp_path: Path) -> None:
    text = """\
model: {target: "mymodels:Net"}
data: {target: mydata.make}
loss: {target: "losses:focal"}
optimizer: {name: "torch.optim.SGD"}
step: "steps:custom"
"""
    config = load_config(write(tmp_path, text))
    assert config.import_paths() == [
        ("model.target", "mymodels:Net"),
        ("data.target", "mydata.make"),
        ("loss.target", "losses:focal"),
        ("optimizer.name", "torch.optim.SGD"),
        ("step", "steps:custom"),
    ]


def test_invalid_name_and_device(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + "name: ../evil\ndevice: gpu\n")
    assert any("invalid run name '../evil'" in p for p in found)
    assert any("invalid device 'gpu'" in p for p in found)


def test_param_group_rule_needs_valid_regex(tmp_path: Path) -> None:
    text = MINIMAL + "optimizer:\n  param_groups:\n    - {match: '(', weight_decay: 0}\n"
    (problem,) = problems(tmp_path, text)
    assert "optimizer.param_groups.0.match" in problem and "invalid regular expression" in problem


def test_parse_yaml_records_lines() -> None:
    _, lines = parse_yaml(MINIMAL)
    assert lines[("data", "args", "name")] == 5


# --- property tests: the loader returns a Config or raises ConfigError, nothing else ------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_keys = st.sampled_from(
    [
        "model", "data", "sweep", "target", "args", "steps", "start_lr", "end_lr", "name",
        "seed", "device", "loss", "optimizer", "suggest", "expect", "output", "batch_size",
        "smoothing", "mode", "refine", "param_groups", "match", "x", "",
    ]
)  # fmt: skip
_documents = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=_documents)
def test_random_documents_give_config_or_config_error(document: object) -> None:
    text = yaml.safe_dump(document)
    try:
        data, lines = parse_yaml(text)
        result = validate_config(data, lines=lines)
    except ConfigError:
        return
    assert isinstance(result, Config)


@settings(max_examples=150, deadline=None)
@given(
    overrides=st.lists(
        st.tuples(st.lists(_keys, min_size=1, max_size=3), st.text(max_size=15)).map(
            lambda kv: ".".join(kv[0]) + "=" + kv[1]
        ),
        max_size=4,
    )
)
def test_random_overrides_give_config_or_config_error(overrides: list[str]) -> None:
    data, lines = parse_yaml(MINIMAL)
    try:
        result = validate_config(apply_overrides(data, overrides), lines=lines)
    except ConfigError:
        return
    assert isinstance(result, Config)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=80))
def test_random_text_gives_config_or_config_error(text: str) -> None:
    try:
        data, lines = parse_yaml(text)
        validate_config(data, lines=lines)
    except ConfigError:
        return


# --- aliases, bombs and recursion: a config never costs more than its size -------------------


def _laughs(levels: int, fanout: int = 9) -> str:
    rows = [f"l0: &l0 [{', '.join(['lol'] * fanout)}]"]
    for level in range(1, levels):
        rows.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * fanout)}]")
    return "\n".join(rows) + "\n"


def test_billion_laughs_is_refused_at_once() -> None:
    import time

    started = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases expand this config to more than 100,000"):
        parse_yaml(_laughs(9), "bomb.yaml")
    assert time.perf_counter() - started < 1.0


def test_a_few_aliases_are_fine_and_walked_once() -> None:
    data, lines = parse_yaml("base: &b {hidden: [8, 8]}\nmodel: {target: mlp, args: *b}\n")
    assert data["model"]["args"] == {"hidden": [8, 8]}
    assert lines[("base", "hidden")] == 1
    assert lines[("model", "args")] == 2 and ("model", "args", "hidden") not in lines


def test_recursive_alias_names_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml("name: x\nmodel: &m {args: {self: *m}}\n", "rec.yaml")
    assert "recursive alias at line 2" in str(caught.value)


def test_merge_keys_keep_working() -> None:
    data, lines = parse_yaml("a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  y: 3\n")
    assert data["b"] == {"x": 1, "y": 3}
    assert lines[("b", "y")] == 4


def test_runaway_nesting_is_refused() -> None:
    with pytest.raises(ConfigError, match="nests more than 100 levels"):
        parse_yaml("a: " + "[" * 500 + "]" * 500)


@pytest.mark.parametrize(
    ("override", "phrase"),
    [
        ("model.args.hidden=[1,2", "--set model.args.hidden=[1,2: the value is not valid YAML"),
        ("name=@x", "quote it to pass a string"),
        ("model.args=&x [*x]", "recursive alias"),
    ],
)
def test_broken_override_values_are_refused(override: str, phrase: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(phrase)):
        parse_override(override)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ("optimizer.args.lr=0.1",),
            "line 7 (with --set optimizer.args.lr): optimizer.args: do not set 'lr' here",
        ),
        (("seed=99999999999999999999999",), "--set: seed: Input should be less than or equal"),
        (("data.batch_size=99999999999999999999",), "--set: data.batch_size: Input should be"),
        (("model.args.hidden=[.inf]",), "--set: model.args.hidden.0 must be a finite number"),
        (("data.args.size=1.0e+400",), "--set: data.args.size must be a finite number"),
        (("sweep.end_lr=1e300",), "--set: sweep.end_lr: must be between 1e-12 and 1e+06"),
        (("sweep.steps=5",), "--set: sweep.steps: Input should be greater than or equal to 10"),
    ],
)
def test_override_problems_name_the_override(
    tmp_path: Path, overrides: tuple[str, ...], expected: str
) -> None:
    text = MINIMAL + "optimizer:\n  args: {momentum: 0.9}\n"
    (problem,) = problems(tmp_path, text, overrides)
    assert problem.startswith(expected), problem


def test_a_label_names_the_option_that_set_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            write(tmp_path, MINIMAL),
            ["suggest.method=nope"],
            labels={"suggest.method=nope": "--method"},
        )
    assert caught.value.problems[0].startswith("--method: suggest.method: Input should be")


def test_file_problems_keep_their_line_beside_overrides(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, MINIMAL + "seed: 1.0e+400\n", ("sweep.steps=50",))
    assert problem.startswith("line 6: seed")


_anchor_names = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def _aliased_yaml(draw: st.DrawFn, depth: int = 0, state: dict | None = None) -> str:  # type: ignore[type-arg]
    """Flow-style YAML with anchors, aliases (recursive ones too) and merge keys."""
    state = state if state is not None else {"defined": [], "open": []}
    usable = state["defined"] + state["open"]
    kinds = ["scalar", "seq", "map"] if depth < 4 else ["scalar"]
    if usable:
        kinds.append("alias")
    kind = draw(st.sampled_from(kinds))
    if kind == "scalar":
        return draw(st.sampled_from(["1", "-2", "0.5", ".inf", ".nan", "x", "''", "null", "1e400"]))
    if kind == "alias":
        return "*" + draw(st.sampled_from(usable))
    anchor = draw(st.one_of(st.none(), _anchor_names))
    if anchor in state["defined"] or anchor in state["open"]:
        anchor = None
    if anchor:
        state["open"].append(anchor)
    count = draw(st.integers(0, 6))
    if kind == "seq":
        items = [draw(_aliased_yaml(depth + 1, state)) for _ in range(count)]
        body = "[" + ", ".join(items) + "]"
    else:
        keys = draw(st.lists(_keys, min_size=count, max_size=count, unique=True))
        pairs = [f"{key or 'k'}: {draw(_aliased_yaml(depth + 1, state))}" for key in keys]
        if state["defined"] and draw(st.booleans()):
            pairs.append("<<: *" + draw(st.sampled_from(state["defined"])))
        body = "{" + ", ".join(pairs) + "}"
    if anchor:
        state["open"].remove(anchor)
        state["defined"].append(anchor)
        return f"&{anchor} {body}"
    return body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=_aliased_yaml(),
    bomb=st.one_of(st.none(), st.tuples(st.integers(1, 12), st.integers(2, 12))),
)
def test_random_aliased_yaml_is_bounded_in_time_and_memory(
    body: str, bomb: tuple[int, int] | None
) -> None:
    import time
    import tracemalloc

    text = f"doc: {body}\n" + (_laughs(*bomb) if bomb else "")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        data, lines = parse_yaml(text)
        validate_config(apply_overrides(data, ["seed=1"]), lines=lines)
    except ConfigError:
        pass
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 5.0, text
    assert peak < 64 * 2**20, (peak, text)
