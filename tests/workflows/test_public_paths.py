"""Issue 21 item 7: every public function takes ``str | os.PathLike`` where it takes a path."""

from __future__ import annotations

from pathlib import Path

import pytest

import lrfind


class FancyPath:
    """A PathLike that is neither ``str`` nor ``pathlib.Path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


def test_documented_calls_take_plain_strings(tiny_config: Path, tmp_path: Path) -> None:
    checked = lrfind.check(str(tiny_config), lr_max=100.0, junit=str(tmp_path / "j" / "junit.xml"))
    assert checked.outcome is not None and checked.outcome.passed
    assert (tmp_path / "j" / "junit.xml").is_file()
    run = lrfind.sweep(lrfind.load_config(str(tiny_config)), out=str(tmp_path / "dir"))
    assert run.run_dir == tmp_path / "dir" and (tmp_path / "dir" / "result.json").is_file()
    one = lrfind.report(str(tmp_path / "dir"))
    assert one.png == tmp_path / "dir" / "report.png" and len(one.results) == 1
    listed = lrfind.report([str(tmp_path / "dir")], png=str(tmp_path / "x.png"))
    assert (tmp_path / "x.png").is_file() and listed.png == tmp_path / "x.png"
    assert lrfind.load_run(str(tmp_path / "dir")).suggestion == run.result.suggestion


def test_any_path_like_is_accepted(tiny_config: Path, tmp_path: Path) -> None:
    run = lrfind.sweep(FancyPath(tiny_config), out=FancyPath(tmp_path / "fancy"))
    assert run.run_dir == tmp_path / "fancy"
    assert lrfind.report(FancyPath(tmp_path / "fancy"), html=FancyPath(tmp_path / "r.html")).html
    assert lrfind.validate(FancyPath(tiny_config)).ok
    assert lrfind.load_run(FancyPath(tmp_path / "fancy")).info.name == "tiny"
    text = lrfind.schedule(FancyPath(tmp_path / "fancy"), "onecycle", "json", total_steps=100)
    assert "OneCycleLR" in text
    assert lrfind.init(FancyPath(tmp_path / "starter.yaml")).is_file()


# --- issue 22: every command twin whose first argument is a config takes a Config too ----------


def test_config_twins_take_a_loaded_config(tiny_config: Path, tmp_path: Path) -> None:
    config = lrfind.load_config(tiny_config)
    report = lrfind.validate(config, ["sweep.steps=30"])
    assert report.ok and report.config.sweep.steps == 30
    assert report.config.source == tiny_config and report.config.base_dir == config.base_dir
    run = lrfind.sweep(config, overrides=["sweep.steps=30"], out=tmp_path / "sweep")
    assert run.result.history.steps <= 30 and run.config is not None
    assert run.config.sweep.steps == 30 and config.sweep.steps == 40  # the given one unchanged
    checked = lrfind.check(config, lr_max=100.0, out=tmp_path / "check")
    assert checked.outcome is not None and checked.outcome.passed
    comparison = lrfind.compare(
        config, ["seed=1,2"], ["sweep.smoothing=0.1"], out=tmp_path / "compare"
    )
    results = [outcome.result for outcome in comparison.outcomes if outcome.result]
    assert [result.info.seed for result in results] == [1, 2]
    assert [result.to_dict()["sweep"]["smoothing"] for result in results] == [0.1, 0.1]
    verified = lrfind.verify(config, lrs=[0.01, 0.1], steps=4, out=tmp_path / "verify")
    assert verified.target == tiny_config and verified.out_dir == tmp_path / "verify"
    assert {0.01, 0.1} <= {trial.lr for trial in verified.trials}


def test_a_bad_override_of_a_loaded_config_names_the_option(tiny_config: Path) -> None:
    config = lrfind.load_config(tiny_config)
    with pytest.raises(lrfind.LrfindError, match="--set") as raised:
        lrfind.validate(config, ["sweep.steps=-3"])
    assert "sweep.steps" in str(raised.value)
