"""The README stays true: its commands, config reference, CLI reference and Python example."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from lrfind.cli.app import app
from lrfind.config.load import load_config
from lrfind.config.schema import Config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of the README section headed ``## title`` (up to the next ``## ``)."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_opening_commands_are_the_make_targets_ci_runs() -> None:
    first_block = code_blocks(README, "bash")[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["make sweep", "make test"]
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci_script.strip().splitlines()[-1] == "make test"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "lrfind sweep configs/quickstart.yaml" in makefile


def test_the_plot_shown_is_committed() -> None:
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README):
        data = (ROOT / image).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000, image


def _fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key path of the schema (``sweep.steps``...), nested sections included."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.add(path)
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                keys |= _fields(candidate, f"{path}.")
    return keys


def _documented_keys(document: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in document.items():
        keys.add(f"{prefix}{name}")
        if isinstance(value, dict) and name not in ("args",):
            keys |= _documented_keys(value, f"{prefix}{name}.")
    return keys


def test_config_reference_is_valid_and_names_every_key(tmp_path: Path) -> None:
    (reference,) = code_blocks(section("Config reference"), "yaml")
    path = tmp_path / "reference.yaml"
    path.write_text(reference, encoding="utf-8")
    config = load_config(path)
    assert config.name == "digits-mlp"
    documented = _documented_keys(yaml.safe_load(reference))
    schema = _fields(Config) - {"expect.lr_min", "expect.lr_max", "expect.baseline"}
    schema -= {"expect.tolerance", "expect.min_confidence", "loss.target", "loss.args"}
    schema -= {"optimizer.param_groups.match"}
    missing = sorted(schema - documented)
    assert not missing, f"keys missing from the README's config reference: {missing}"
    for key in ("lr_min", "lr_max", "baseline", "tolerance", "min_confidence"):
        assert key in section("Config reference")


def test_cli_reference_lists_exactly_the_commands() -> None:
    commands = {command.name or command.callback.__name__ for command in app.registered_commands}  # type: ignore[union-attr]
    reference = section("CLI reference")
    listed = set(re.findall(r"`lrfind ([a-z]+)[ `]", reference))
    assert listed == commands


def test_every_exit_code_of_the_cli_is_documented() -> None:
    from lrfind import errors

    codes = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    table = section("CLI reference")
    for code in codes:
        assert f"\n| {code} |" in table, code


def test_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example, _gate = code_blocks(section("Python API"), "python")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.suggestion.lr is not None
    assert result.lr_range.min_lr < result.suggestion.lr <= result.lr_range.max_lr
    assert (tmp_path / "lr_finder.png").stat().st_size > 10_000
    assert namespace["optimizer"].param_groups[0]["initial_lr"] == pytest.approx(
        result.lr_range.max_lr / 25
    )  # OneCycleLR built from the range


def test_ci_commands_in_the_readme_exist() -> None:
    text = section("Using it in CI")
    for line in code_blocks(text, "bash")[0].splitlines():
        options = re.findall(r"(--[a-z-]+)", line.split("#")[0])
        help_text = _help("check")
        for option in options:
            assert option in help_text, option


def _help(command: str) -> str:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [command, "--help"], env={**os.environ, "COLUMNS": "200"})
    return result.stdout


def test_python_ci_gate_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, gate = code_blocks(section("Python API"), "python")
    monkeypatch.chdir(tmp_path)
    gate = gate.replace(
        '"configs/quickstart.yaml"', repr(str(ROOT / "configs" / "quickstart.yaml"))
    )
    gate = gate.replace('"sweep.steps=60"', f'"sweep.steps=60", "output.dir={tmp_path}/runs"')
    namespace: dict[str, Any] = {}
    exec(compile(gate, "README.md", "exec"), namespace)
    assert namespace["run"].outcome is not None
    assert (tmp_path / "reports" / "lrfind.xml").exists()


def _config_cells(path: Path) -> tuple[str, str, str, str]:
    """The data, model, optimizer and loss cells the README's configs table shows for ``path``."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    data, model = document["data"], document["model"]
    args = data.get("args") or {}
    data_cell = data["target"]
    if data_cell == "sklearn":
        data_cell += f" {args['name']}" + (" (as images)" if args.get("as_image") else "")
    elif data_cell in ("csv", "npz", "pt"):
        data_cell += f" {Path(args['path']).name}"
    optimizer = document.get("optimizer") or {}
    optimizer_cell = optimizer.get("name", "sgd")
    matches = [rule["match"] for rule in optimizer.get("param_groups") or []]
    if matches:
        optimizer_cell += ", " + ", ".join(f"`{match}`" for match in matches) + " groups"
    loss = document.get("loss", "auto")
    loss_cell = loss if isinstance(loss, str) else loss["target"]
    return data_cell, model["target"], optimizer_cell, loss_cell


def test_configs_table_matches_the_configs() -> None:
    """Bug: the table named AdamW/Adagrad/SGD where the configs used SGD/AdamW/Adagrad."""
    rows = re.findall(r"^\| `([^`]+\.yaml)` \| (.*?) \|$", README, flags=re.MULTILINE)
    table = {name: [cell.strip() for cell in cells.split(" | ")] for name, cells in rows}
    shipped = sorted(
        str(path.relative_to(ROOT / "configs")) for path in (ROOT / "configs").rglob("*.yaml")
    )
    assert sorted(table) == shipped
    for name, cells in table.items():
        expected = _config_cells(ROOT / "configs" / name)
        assert tuple(cells[:4]) == expected, f"README row for {name} should read {expected}"


def test_result_json_example_is_a_real_quickstart_run(tmp_path: Path) -> None:
    """Bug: the example's refine.steps_per_trial was not what a quickstart run records."""
    import json

    import lrfind

    example_text = code_blocks(section("Outputs and result.json"), "json")[0]
    example = json.loads(example_text)
    run = lrfind.sweep(
        ROOT / "configs" / "quickstart.yaml", overrides=["device=cpu"], out=tmp_path / "r"
    )
    assert run.run_dir is not None
    real = json.loads((run.run_dir / "result.json").read_text(encoding="utf-8"))
    assert set(example) == set(real)
    assert set(example["refine"]) == set(real["refine"])
    assert set(example["refine"]["trials"][0]) == set(real["refine"]["trials"][0])
    for key in ("steps", "stop_reason", "model", "optimizer", "loss", "batch_size", "sweep"):
        assert example[key] == real[key], key
    for key in ("steps_per_trial", "val_batches", "sweep_steps", "stage", "metric"):
        assert example["refine"][key] == real["refine"][key], key
    assert example["suggestion"]["lr"] == pytest.approx(real["suggestion"]["lr"], rel=5e-3)
    assert example["batches_per_epoch"] == real["batches_per_epoch"]
