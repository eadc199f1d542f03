"""--help reads cleanly and the same way in every command; `-o` is always a folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrfind.cli.app import app

COMMANDS = ("sweep", "check", "validate", "init", "report", "compare", "verify", "schedule")

runner = CliRunner()


def help_text(command: str) -> str:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_usage_and_arguments_have_no_type_tags(command: str) -> None:
    """Bug: usage read {CONFIG} / {RUN_DIR}... and report listed RUN_DIR <list[Path]>."""
    text = help_text(command)
    usage = text.splitlines()[0]
    assert "{" not in usage and "}" not in usage
    assert re.match(rf"Usage: (lrfind|root) {command} \[OPTIONS\]( [A-Z_|.\[\]]+)*$", usage)
    arguments = text.split("Arguments:")[1].split("Options:")[0] if "Arguments:" in text else ""
    assert "<" not in arguments, arguments


@pytest.mark.parametrize("command", COMMANDS)
def test_out_is_always_a_directory(command: str) -> None:
    """Bug: -o was a directory for sweep and a file (FILE.png) for report."""
    text = help_text(command)
    if "-o, --out" in text:
        assert "-o, --out DIR" in text


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("check", "[default: the config's expect.tolerance, else 2]"),
        ("check", "[default: the config's expect.min_confidence, else low]"),
        ("sweep", "[default: the config's suggest.method, else lrfind]"),
        ("verify", "[default: the config's suggest.refine_steps, else 2 × sweep.steps]"),
        ("report", "[default: RUN_DIR/report.png; ./lrfind-report.png for several runs]"),
        ("init", "[default: mlp]"),
        ("schedule", "[default: python]"),
    ],
)
def test_defaults_are_shown_as_defaults(command: str, shown: str) -> None:
    """Bug: several defaults appeared only in prose ("low (default)", "(default 2.0)")."""
    text = help_text(command)
    assert "".join(shown.split()) in "".join(text.split())  # wherever the lines wrap
    assert "(default" not in " ".join(text.split())


def test_init_names_the_real_run_directory_layout(tmp_path: Path) -> None:
    """Bug: init said runs/<name>-<timestamp>/ while runs go to runs/<name>/<stamp>/."""
    target = tmp_path / "starter.yaml"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0
    assert "runs/<name>/<UTC timestamp>/" in result.stderr
    text = target.read_text(encoding="utf-8")
    assert "<name>-<timestamp>" not in text
    assert "runs/<name>/<UTC timestamp>/" in text


def test_verify_states_the_one_standard_error_rule() -> None:
    """Bug: verify's help said "within 2%" while analysis/choose.py ties within one paired
    standard error."""
    text = " ".join(help_text("verify").split())
    assert "within one standard error of the best trial's" in text
    assert "by more than one standard error" in text
    assert "2%" not in text
