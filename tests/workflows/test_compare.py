"""``lrfind.compare``: the bracket-aware --vary splitter, the grid, the tables, real sweeps."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from lrfind.config.variants import Variant, parse_vary, split_values, variant_grid, variant_labels
from lrfind.errors import ConfigError
from lrfind.outputs.comparison import (
    CSV_COLUMNS,
    TABLE_HEADERS,
    Comparison,
    VariantOutcome,
    comparison_csv,
    format_text_table,
    table_rows,
)
from lrfind.workflows.compare import compare
from tests.fixtures.results import make_result

# --- the splitter ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("sgd,adam,rmsprop", ["sgd", "adam", "rmsprop"]),
        (" sgd , adam ", ["sgd", "adam"]),
        ("adam", ["adam"]),
        ("[64],[128,64]", ["[64]", "[128,64]"]),
        ("[64], [128, 64]", ["[64]", "[128, 64]"]),
        ("[[1, 2], [3]],[4]", ["[[1, 2], [3]]", "[4]"]),
        ("{momentum: 0.9, nesterov: true},{}", ["{momentum: 0.9, nesterov: true}", "{}"]),
        ("'a,b',c", ["'a,b'", "c"]),
        ('"a,\\"b",c', ['"a,\\"b"', "c"]),
        ("'it''s, ok',x", ["'it''s, ok'", "x"]),
        ("it's,fine", ["it's", "fine"]),  # a quote inside a plain value is just a character
        ("['a,b', c],d", ["['a,b', c]", "d"]),
        ("1e-3,0.9,null", ["1e-3", "0.9", "null"]),
    ],
)
def test_split_values_respects_brackets_and_quotes(text: str, items: list[str]) -> None:
    assert split_values(text) == items


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=8)
_scalar = st.one_of(
    _word.filter(lambda w: w[0] not in "-_"),
    st.integers(-1000, 1000).map(str),
    st.floats(1e-8, 1e3).map(repr),
    st.text(alphabet="ab, []{}:", max_size=8).map(lambda t: "'" + t.replace("'", "''") + "'"),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
    max_leaves=6,
)


@given(st.lists(_value, min_size=1, max_size=5))
def test_split_values_inverts_joining_yaml_flow_values(values: list[str]) -> None:
    assert split_values(",".join(values)) == values
    assert [yaml.safe_load(item) for item in split_values(", ".join(values))] == [
        yaml.safe_load(value) for value in values
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[64,[128", "unbalanced '[' in '[64,[128' (no closing ']')"),
        ("64],[1]", "unbalanced ']' in '64],[1]'"),
        ("[64}", "unbalanced '}' in '[64}'"),
        ("'a,b", "unterminated ' quote in \"'a,b\""),
        ("sgd,,adam", "empty value in 'sgd,,adam'"),
        ("sgd,", "empty value in 'sgd,'"),
    ],
)
def test_split_values_rejects_malformed_lists(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        split_values(text)
    assert str(caught.value) == message


def test_parse_vary_parses_each_value_as_yaml() -> None:
    vary = parse_vary("model.args.hidden=[64],[128, 64]")
    assert vary.key == "model.args.hidden"
    assert vary.raw == ("[64]", "[128, 64]")
    assert vary.values == ([64], [128, 64])
    assert parse_vary("optimizer.args.momentum=0.9,0").values == (0.9, 0)
    assert parse_vary("optimizer.name='adam,w'").values == ("adam,w",)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("optimizer.name", "--vary expects KEY=VALUE1,VALUE2,..., got 'optimizer.name'"),
        ("=sgd,adam", "--vary expects KEY=VALUE1,VALUE2,..., got '=sgd,adam'"),
        ("optimizer..name=sgd", "--vary expects KEY=VALUE1,VALUE2,..., got 'optimizer..name=sgd'"),
        ("optimizer.name=", "--vary expects KEY=VALUE1,VALUE2,..., got 'optimizer.name='"),
        (
            "model.args.hidden=[64",
            "--vary model.args.hidden: unbalanced '[' in '[64' (no closing ']')",
        ),
        ("optimizer.name=sgd,adam,sgd", "--vary optimizer.name: value 'sgd' is given twice"),
        ("optimizer.name='sgd',sgd", "--vary optimizer.name: value 'sgd' is given twice"),
        ("name=a,b", "--vary name: the run name cannot vary (each variant is named for you)"),
        (
            "model.args.hidden=a: b: c,3",
            "--vary model.args.hidden: value 'a: b: c': the value is not valid YAML (mapping "
            "values are not allowed here); quote it to pass a string: "
            "--vary 'model.args.hidden=\"...\"'",
        ),
    ],
)
def test_parse_vary_errors_quote_the_offending_option(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_vary(spec)
    assert str(caught.value) == message


# --- the grid and its labels -----------------------------------------------------------------


def test_variant_grid_is_the_product_named_by_value_slugs() -> None:
    grid = variant_grid(
        "quick", [parse_vary("optimizer.name=sgd,adam"), parse_vary("data.batch_size=32,128")]
    )
    assert [v.name for v in grid] == [
        "quick-sgd-32",
        "quick-sgd-128",
        "quick-adam-32",
        "quick-adam-128",
    ]
    assert grid[3].overrides == [
        "name='quick-adam-128'",
        "optimizer.name=adam",
        "data.batch_size=128",
    ]
    assert grid[3].values == {"optimizer.name": "adam", "data.batch_size": 128}
    assert variant_labels(grid)[1] == "name=sgd, batch_size=128"


def test_variant_names_are_slugs_made_unique_and_valid() -> None:
    grid = variant_grid("m", [parse_vary("model.args.hidden=[64, 32],'64-32',[]")])
    assert [v.name for v in grid] == ["m-64-32", "m-64-32-2", "m-empty"]
    long = variant_grid("m", [parse_vary("optimizer.name=" + "x" * 200)])
    assert long[0].name == "m-" + "x" * 24


def test_variant_labels_use_the_value_alone_for_one_key_and_full_keys_when_leaves_clash() -> None:
    one = variant_grid("m", [parse_vary("model.args.hidden=[64],[128, 64]")])
    assert variant_labels(one) == ["[64]", "[128, 64]"]
    clash = variant_grid("m", [parse_vary("model.args.size=1"), parse_vary("data.args.size=2")])
    assert variant_labels(clash) == ["model.args.size=1, data.args.size=2"]


def test_variant_grid_refuses_a_key_varied_twice_and_no_vary() -> None:
    with pytest.raises(ConfigError, match=r"--vary optimizer\.name: the key is varied twice"):
        variant_grid("m", [parse_vary("optimizer.name=sgd"), parse_vary("optimizer.name=adam")])
    with pytest.raises(ConfigError, match="compare needs at least one --vary"):
        variant_grid("m", [])


# --- tables ----------------------------------------------------------------------------------


def _comparison(tmp_path: Path) -> Comparison:
    grid = variant_grid("m", [parse_vary("optimizer.name=sgd,adam,rmsprop")])
    return Comparison(
        name="m",
        compare_dir=tmp_path,
        keys=("optimizer.name",),
        outcomes=(
            VariantOutcome(grid[0], "ok", tmp_path / "m-sgd", make_result()),
            VariantOutcome(grid[1], "no_answer", tmp_path / "m-adam", make_result("flat")),
            VariantOutcome(
                grid[2], "failed", None, error="the loss returned a tensor of shape (4,)"
            ),
        ),
    )


def test_table_rows_and_text_table(tmp_path: Path) -> None:
    comparison = _comparison(tmp_path)
    assert comparison.status == "failed"
    assert format_text_table(TABLE_HEADERS, table_rows(comparison)) == [
        "variant  suggested LR  min LR    max LR    best loss  confidence  note",
        "-------  ------------  --------  --------  ---------  ----------  " + "-" * 40,
        "sgd      3.16e-04      2.00e-05  3.16e-02  1.002      high",
        "adam     —             —         —         2.278      none        no descent in the curve",
        "rmsprop  FAILED        —         —         —          —           "
        "the loss returned a tensor of shape (4,)",
    ]
    assert format_text_table(("a",), [("x" * 100,)], max_width=10)[2] == "x" * 9 + "…"


def test_comparison_csv_and_json(tmp_path: Path) -> None:
    comparison = _comparison(tmp_path)
    rows = list(csv.DictReader(io.StringIO(comparison_csv(comparison))))
    assert list(rows[0]) == ["name", "optimizer.name", *CSV_COLUMNS[1:]]
    assert [row["optimizer.name"] for row in rows] == ["sgd", "adam", "rmsprop"]
    assert rows[0]["suggested_lr"] == repr(10**-3.5)
    assert rows[1]["suggested_lr"] == ""
    assert rows[2]["error"] == "the loss returned a tensor of shape (4,)"
    document = comparison.to_dict()
    assert document["vary"] == {"optimizer.name": ["sgd", "adam", "rmsprop"]}
    assert document["status"] == "failed"
    assert [v["status"] for v in document["variants"]] == ["ok", "no_answer", "failed"]
    json.dumps(document, allow_nan=False)


def test_status_order() -> None:
    variant = Variant("m-a", (("k", "a", "a"),))
    statuses = {
        ("ok", "no_answer"): "ok",
        ("no_answer", "no_answer"): "no_answer",
        ("ok", "failed"): "failed",
        ("failed", "skipped"): "interrupted",
    }
    for pair, expected in statuses.items():
        outcomes = tuple(VariantOutcome(variant, status) for status in pair)  # type: ignore[arg-type]
        assert Comparison("m", Path(), ("k",), outcomes).status == expected


# --- real sweeps -----------------------------------------------------------------------------


def test_unknown_keys_and_bad_values_fail_before_anything_is_written(tiny_config: Path) -> None:
    output = tiny_config.parent / "runs"
    with pytest.raises(ConfigError) as caught:
        compare(tiny_config, ["optimizer.nme=sgd,adam"])
    assert str(caught.value) == (
        f"{tiny_config}: --vary: unknown key 'optimizer.nme' (did you mean 'name'?)"
    )
    with pytest.raises(ConfigError) as caught:
        compare(tiny_config, ["optimizer.name=sgd,adamm"])
    assert str(caught.value).startswith(
        f"{tiny_config}: --vary: optimizer.name: unknown built-in optimizer 'adamm'"
    )
    assert not output.exists()


def test_compare_runs_every_variant_and_keeps_going_after_a_failure(tiny_config: Path) -> None:
    comparison = compare(
        tiny_config,
        ["model.args.hidden=[16],[0]"],
        ["sweep.steps=20"],
        out=tiny_config.parent / "cmp",
    )
    folder = tiny_config.parent / "cmp"
    assert comparison.compare_dir == folder
    good, bad = comparison.outcomes
    assert good.status in ("ok", "no_answer")
    assert good.result is not None and good.result.history.steps == 20
    assert good.run_dir == folder / "tiny-16"
    assert (folder / "tiny-16" / "result.json").is_file()
    assert bad.status == "failed"
    assert bad.error is not None and "hidden" in bad.error
    assert comparison.status == "failed"
    assert sorted(p.name for p in folder.iterdir()) == [
        "compare.csv",
        "compare.json",
        "overlay.png",
        "tiny-16",
    ]  # a variant that cannot even build its model leaves no run directory
    assert bad.run_dir is None
    document = json.loads((folder / "compare.json").read_text())
    assert [v["name"] for v in document["variants"]] == ["tiny-16", "tiny-0"]
    assert document["variants"][1]["error"] == bad.error


def test_compare_default_folder_is_name_compare_stamp(tiny_config: Path) -> None:
    comparison = compare(
        tiny_config, ["optimizer.name=sgd,adam"], ["sweep.steps=10", "optimizer.args={}"]
    )
    stamp_dir = comparison.compare_dir
    assert stamp_dir.parent == tiny_config.parent / "runs" / "tiny-compare"
    assert [o.variant.name for o in comparison.outcomes] == ["tiny-sgd", "tiny-adam"]
    assert all(o.result is not None for o in comparison.outcomes)
    assert json.loads((stamp_dir / "tiny-adam" / "result.json").read_text())["name"] == "tiny-adam"


def test_a_stop_request_skips_the_remaining_variants_and_still_writes_tables(
    tiny_config: Path,
) -> None:
    from contextlib import nullcontext

    from lrfind.engine.options import StopFlag

    stop = StopFlag()

    class StopAtOnce:
        def phase(self, message: str) -> None:
            stop.request("SIGINT")

        def step(self, *args: object) -> None: ...

        def trial(self, *args: object) -> None: ...

    comparison = compare(
        tiny_config,
        ["optimizer.name=sgd,adam"],
        ["optimizer.args={}"],
        out=tiny_config.parent / "cmp",
        reporter_factory=lambda name: nullcontext(StopAtOnce()),
        stop=stop,
    )
    assert [o.status for o in comparison.outcomes] == ["interrupted", "skipped"]
    assert comparison.status == "interrupted"
    document = json.loads((tiny_config.parent / "cmp" / "compare.json").read_text())
    assert document["variants"][1]["error"] == "not run: interrupted"


def test_fit_optimizer_args_leaves_out_what_the_optimizer_does_not_take(tiny_config: Path) -> None:
    from lrfind.config.load import load_config
    from lrfind.workflows.compare import fit_optimizer_args

    sgd = load_config(tiny_config)
    assert fit_optimizer_args(sgd) == (sgd, [])
    adam = load_config(
        tiny_config, ["optimizer.name=adam", "optimizer.args={momentum: 0.9, eps: 1.0e-6}"]
    )
    fitted, dropped = fit_optimizer_args(adam)
    assert dropped == ["momentum"]
    assert fitted.optimizer.args == {"eps": 1.0e-6}
    assert adam.optimizer.args == {"momentum": 0.9, "eps": 1.0e-6}  # the original is untouched


def test_varying_the_optimizer_keeps_its_own_args_and_warns(tiny_config: Path) -> None:
    from lrfind.workflows.compare import compare

    comparison = compare(
        tiny_config, ["optimizer.name=sgd,adam"], ["sweep.steps=10"], out=tiny_config.parent / "c"
    )
    assert [outcome.status for outcome in comparison.outcomes] != ["ok", "failed"]
    assert all(outcome.status in ("ok", "no_answer") for outcome in comparison.outcomes)
    assert comparison.warnings == (
        "tiny-adam: left out optimizer.args.momentum (adam does not take it)",
    )
