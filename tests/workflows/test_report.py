"""``lrfind.run_report``: the config-diff labeller (pure) and redrawing saved runs (no training)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from lrfind.errors import ConfigError, OutputError
from lrfind.outputs.labels import config_differences, diff_label, flatten, format_value, run_labels
from lrfind.workflows.report import OVERLAY_REPORT, report
from tests.fixtures.configs import tiny_config_dict
from tests.fixtures.results import make_result
from tests.fixtures.runs import save_run

TINY_CONFIG = tiny_config_dict()


def with_changes(base: dict[str, object], **sections: dict[str, object]) -> dict[str, object]:
    """Return a copy of ``base`` with some top-level sections merged (one level deep)."""
    changed = json.loads(json.dumps(base))
    for key, values in sections.items():
        changed[key] = {**changed.get(key, {}), **values}
    return changed


# --- pure: flattening and labels -------------------------------------------------------------


def test_flatten_makes_dotted_keys_and_keeps_lists_whole() -> None:
    nested = {"a": {"b": 1, "c": {"d": [64, 32]}}, "e": {}, "f": None}
    assert flatten(nested) == {"a.b": 1, "a.c.d": [64, 32], "e": {}, "f": None}


@pytest.mark.parametrize(
    ("value", "text"),
    [("adam", "adam"), (128, "128"), (0.9, "0.9"), ([64, 32], "[64, 32]"), (None, "null")],
)
def test_format_value_reads_like_yaml(value: object, text: str) -> None:
    assert format_value(value) == text
    assert format_value(True) == "true"


def test_config_differences_lists_only_what_differs_in_first_seen_order() -> None:
    first = with_changes(TINY_CONFIG, optimizer={"name": "sgd"})
    second = with_changes(TINY_CONFIG, optimizer={"name": "adam"}, data={"batch_size": 128})
    differences = config_differences([first, second])
    assert differences == [
        {"data.batch_size": "32", "optimizer.name": "sgd"},
        {"data.batch_size": "128", "optimizer.name": "adam"},
    ]
    assert diff_label(differences[1]) == "data.batch_size=128, optimizer.name=adam"


def test_config_differences_marks_a_missing_key_unset_and_ignores_the_name() -> None:
    first = {"name": "a", "model": {"args": {"hidden": [16], "dropout": 0.1}}}
    second = {"name": "b", "model": {"args": {"hidden": [16]}}}
    assert config_differences([first, second, None]) == [
        {"model.args.dropout": "0.1"},
        {"model.args.dropout": "unset"},
        {},
    ]


def test_run_labels_use_names_when_they_are_unique() -> None:
    assert run_labels(["sgd", "adam"], [None, None], ["1", "2"]) == ["sgd", "adam"]


def test_run_labels_tell_colliding_names_apart_by_config_differences() -> None:
    sgd = with_changes(TINY_CONFIG, optimizer={"name": "sgd"})
    adam = with_changes(TINY_CONFIG, optimizer={"name": "adam"})
    assert run_labels(["tiny", "tiny"], [sgd, adam], ["t1", "t2"]) == [
        "optimizer.name=sgd",
        "optimizer.name=adam",
    ]
    # Another name present: the colliding runs keep their name in front.
    assert run_labels(["tiny", "tiny", "other"], [sgd, adam, None], ["t1", "t2", "o"]) == [
        "tiny (optimizer.name=sgd)",
        "tiny (optimizer.name=adam)",
        "other",
    ]


def test_run_labels_fall_back_to_folder_names_then_numbers() -> None:
    same = dict(TINY_CONFIG)
    assert run_labels(["tiny", "tiny"], [same, same], ["20250101-1", "20250101-2"]) == [
        "20250101-1",
        "20250101-2",
    ]
    assert run_labels(["tiny", "tiny"], [None, None], ["x", "x"]) == ["x", "x #2"]


# --- report -----------------------------------------------------------------------------


def test_single_run_defaults_to_report_png_in_the_run_dir_and_never_overwrites(
    tmp_path: Path,
) -> None:
    run_dir = save_run(tmp_path / "run", make_result(name="tiny"), TINY_CONFIG)
    written = report([run_dir])
    assert written.png == run_dir / "report.png"
    assert written.png.read_bytes().startswith(b"\x89PNG")
    assert written.html is None
    with pytest.raises(OutputError) as caught:
        report([run_dir])
    assert (
        str(caught.value)
        == f"{run_dir / 'report.png'} already exists (use --force to overwrite it)"
    )
    assert report([run_dir], force=True).png == run_dir / "report.png"


def test_several_runs_overlay_to_the_working_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = save_run(
        tmp_path / "a",
        make_result(name="tiny"),
        with_changes(TINY_CONFIG, optimizer={"name": "sgd"}),
    )
    second = save_run(
        tmp_path / "b",
        make_result(name="tiny", shift=0.8, optimizer="Adam"),
        with_changes(TINY_CONFIG, optimizer={"name": "adam"}),
    )
    written = report([first, second])
    assert written.png == OVERLAY_REPORT
    assert (tmp_path / OVERLAY_REPORT).read_bytes().startswith(b"\x89PNG")
    assert written.labels == ("optimizer.name=sgd", "optimizer.name=adam")


def test_html_only_writes_one_self_contained_page(tmp_path: Path) -> None:
    first = save_run(tmp_path / "a", make_result(name="first"), TINY_CONFIG)
    second = save_run(tmp_path / "b", make_result("flat", name="second"), TINY_CONFIG)
    page = tmp_path / "report.html"
    written = report([first, second], html=page, title="Two <runs>")
    assert written.png is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "report.html"]
    text = page.read_text(encoding="utf-8")
    assert "<title>Two &lt;runs&gt;</title>" in text
    images = text.split('src="data:image/png;base64,')[1:]
    assert len(images) == 2
    assert base64.b64decode(images[0].split('"', 1)[0]).startswith(b"\x89PNG")
    assert "http" not in text.split("<body>", 1)[1]  # nothing fetched from elsewhere


def test_missing_or_invalid_run_dirs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as caught:
        report([tmp_path / "missing"])
    assert str(caught.value) == f"{tmp_path / 'missing'}: no such run directory"
    (tmp_path / "empty").mkdir()
    with pytest.raises(OutputError, match=r"not a run directory \(needs result.json"):
        report([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="at least one run directory"):
        report([])


def test_output_problems_are_refused_before_drawing(tmp_path: Path) -> None:
    run_dir = save_run(tmp_path / "run", make_result(), TINY_CONFIG)
    with pytest.raises(OutputError, match=r"folder .*nowhere does not exist"):
        report([run_dir], png=tmp_path / "nowhere" / "x.png")
    with pytest.raises(OutputError, match="is a directory"):
        report([run_dir], png=tmp_path)
    with pytest.raises(OutputError, match="name the same file"):
        report([run_dir], png=tmp_path / "x", html=tmp_path / "x")
    with pytest.raises(ConfigError, match=r"--out is the folder for report\.png and report\.html"):
        report([run_dir], out=tmp_path / "x.png")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        report([run_dir], out=tmp_path / "a-file")
    assert not (run_dir / "report.png").exists()


def test_out_is_a_folder_for_both_files(tmp_path: Path) -> None:
    """Bug: -o was a folder for sweep and a file for report."""
    run_dir = save_run(tmp_path / "run", make_result(), TINY_CONFIG)
    written = report([run_dir], out=tmp_path / "review" / "nested")
    folder = tmp_path / "review" / "nested"
    assert (written.png, written.html) == (folder / "report.png", folder / "report.html")
    assert written.png.read_bytes().startswith(b"\x89PNG")
    assert "<!DOCTYPE html>" in written.html.read_text(encoding="utf-8")
