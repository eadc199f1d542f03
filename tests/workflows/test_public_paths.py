"""Issue 21 item 7: every public function takes ``str | os.PathLike`` where it takes a path."""

from __future__ import annotations

from pathlib import Path

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
