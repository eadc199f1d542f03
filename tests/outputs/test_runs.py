"""Run directories and files: exclusive creation, atomic writes, round trips, failures."""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from lrfind.errors import OutputError
from lrfind.outputs import runs
from lrfind.results import History
from tests.fixtures.results import make_result

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_run_dirs_started_in_the_same_second_never_collide(tmp_path: Path) -> None:
    created = [runs.create_run_dir(tmp_path, "exp", now=NOW) for _ in range(3)]
    assert [p.name for p in created] == [
        "20260102-030405",
        "20260102-030405-1",
        "20260102-030405-2",
    ]
    assert all(p.is_dir() and not any(p.iterdir()) for p in created)


def test_unwritable_output_dir_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=f"{blocker} is a file, not a folder"):
        runs.create_run_dir(blocker, "exp")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_dir(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            runs.create_run_dir(tmp_path, "exp")
    finally:
        tmp_path.chmod(0o700)


def test_atomic_write_keeps_old_file_and_leaves_no_temp_on_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "result.json"
    runs.atomic_write_text(target, "old")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputError, match="no space left on device"):
        runs.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_history_csv_round_trip_with_nan_and_inf() -> None:
    history = History(
        lrs=(1e-3, 1e-2, 1e-1),
        losses=(2.0, 1.0, float("nan")),
        smoothed_losses=(2.0, 1.5, float("inf")),
        stop_reason="non_finite",
    )
    text = runs.history_to_csv(history)
    assert text.splitlines()[0] == "step,lr,loss,smoothed_loss,val_loss"
    back = runs.history_from_csv(text, "non_finite")
    assert back.lrs == history.lrs and back.stop_reason == "non_finite"
    assert math.isnan(back.losses[2]) and back.smoothed_losses[2] == math.inf


def test_result_json_is_strict_json_and_loads_back(tmp_path: Path) -> None:
    result = make_result()
    runs.atomic_write_text(tmp_path / runs.HISTORY_FILE, runs.history_to_csv(result.history))
    runs.write_json(tmp_path / runs.RESULT_FILE, result.to_dict())
    document = json.loads((tmp_path / runs.RESULT_FILE).read_text())
    assert document["schema_version"] == 1
    for key in ("complete", "suggestion", "range", "stopped_early", "stop_reason", "steps",
                "seconds", "device", "versions", "confidence", "methods"):  # fmt: skip
        assert key in document
    loaded = runs.load_run(tmp_path)
    assert loaded.suggestion.lr == pytest.approx(result.suggestion.lr)
    assert loaded.history.lrs == result.history.lrs


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "not a run directory"),
        ({"result.json": "{", "history.csv": "step,lr,loss,smoothed_loss\n"}, "unreadable result"),
        ({"result.json": "[]", "history.csv": "x"}, "not a result document"),
        ({"result.json": '{"schema_version": 9}', "history.csv": "lr,loss,smoothed_loss\n"},
         "malformed run files"),
        ({"result.json": '{"schema_version": 1}', "history.csv": "a,b\n1,2\n"}, "lacks column"),
    ],
)  # fmt: skip
def test_load_run_rejects_non_runs(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(OutputError, match=message):
        runs.load_run(tmp_path)


def test_load_run_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no such run directory"):
        runs.load_run(tmp_path / "missing")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        written = runs.atomic_write_text(tmp_path / "result.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(written.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "summary.md"
    target.write_text("old")
    target.chmod(0o640)
    runs.atomic_write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640


# --- one writer per run-directory document (issue 22) ------------------------------------------


def test_each_document_has_a_writer_and_load_run_reads_them_back(tmp_path: Path) -> None:
    from lrfind.config.load import validate_config
    from tests.fixtures.configs import tiny_config_dict

    config = validate_config(tiny_config_dict(), base_dir=tmp_path / "configs")
    run_dir = runs.create_run_dir(tmp_path, "exp", now=NOW)
    assert runs.write_config(run_dir, config).read_text("utf-8") == config.to_yaml()
    assert runs.write_status(run_dir, "exp", "running") == run_dir / runs.RESULT_FILE
    with pytest.raises(OutputError, match="never finished"):
        runs.load_run(run_dir)
    runs.write_status(run_dir, "exp", "failed", "model.target (mlp): boom", failed_at_step=3)
    document = json.loads((run_dir / runs.RESULT_FILE).read_text("utf-8"))
    assert document == {
        "schema_version": 1,
        "complete": False,
        "status": "failed",
        "name": "exp",
        "error": "model.target (mlp): boom",
        "failed_at_step": 3,
    }
    with pytest.raises(OutputError, match="the run failed: model"):
        runs.load_run(run_dir)
    result = make_result()
    runs.write_history(run_dir, result.history)
    runs.write_result(run_dir, result, config.base_dir)
    document = json.loads((run_dir / runs.RESULT_FILE).read_text("utf-8"))
    assert document["status"] == "complete" and document["config_dir"] == str(config.base_dir)
    assert runs.load_run(run_dir).suggestion == result.suggestion
