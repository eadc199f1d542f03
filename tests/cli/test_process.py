"""The installed ``lrfind`` command as a subprocess: output streams, signals, reproducibility."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LRFIND = str(Path(sys.executable).parent / "lrfind")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LRFIND, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def test_installed_command_keeps_stdout_for_json(tiny_config: Path) -> None:
    completed = run("sweep", str(tiny_config), "--json")
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["complete"] is True
    assert "suggested LR" in completed.stderr
    assert "\x1b[" not in completed.stderr  # no colour codes when stderr is not a terminal


def test_python_dash_m_works(tiny_config: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "lrfind", "validate", str(tiny_config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr


def _history_and_numbers(run_dir: Path) -> tuple[list[list[str]], dict[str, object]]:
    with (run_dir / "history.csv").open() as handle:
        rows = list(csv.reader(handle))
    document = json.loads((run_dir / "result.json").read_text())
    for volatile in ("seconds", "refine"):
        document.pop(volatile, None)
    return rows, document


def test_same_config_and_seed_give_identical_results(tiny_config: Path, tmp_path: Path) -> None:
    for out in ("a", "b"):
        completed = run(
            "sweep", str(tiny_config), "-q", "--out", str(tmp_path / out),
            "--set", "suggest.refine=on", "--set", "suggest.refine_steps=10",
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
    first, second = (_history_and_numbers(tmp_path / out) for out in ("a", "b"))
    assert first == second
    refine_a = json.loads((tmp_path / "a" / "result.json").read_text())["refine"]
    refine_b = json.loads((tmp_path / "b" / "result.json").read_text())["refine"]
    assert refine_a["trials"] == refine_b["trials"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_gracefully_with_partial_results(
    tiny_config: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    out = tmp_path / "interrupted"
    process = subprocess.Popen(
        [LRFIND, "sweep", str(tiny_config), "--out", str(out), "--set", "sweep.steps=100000",
         "--set", "sweep.end_lr=1e-4", "--set", "sweep.start_lr=1e-9"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CI": "true"},
    )  # fmt: skip
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    seen = ""
    while "step" not in seen and time.monotonic() < deadline:
        seen += process.stderr.readline()
    assert "step" in seen, "the sweep never reported progress"
    time.sleep(0.5)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; partial results in" in stderr
    assert "Traceback" not in stderr
    document = json.loads((out / "result.json").read_text())
    assert document["complete"] is False
    assert document["stop_reason"] == "interrupted"
    rows = (out / "history.csv").read_text().splitlines()
    assert 1 < len(rows) - 1 < 100000
    assert document["steps"] == len(rows) - 1
    assert (out / "lr_finder.png").stat().st_size > 0


def test_usage_errors_are_one_line_with_exit_2(tiny_config: Path) -> None:
    for args in (("sweep",), ("sweep", str(tiny_config), "--bogus"), ("nosuch",)):
        completed = run(*args)
        assert completed.returncode == 2, args
        assert completed.stdout == ""
        lines = completed.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), completed.stderr
        assert "--help" in lines[0]
