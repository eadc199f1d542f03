"""The README and the documentation site stay true: the README's commands and examples, the
config reference, the CLI reference, the Python examples, the example configs' table and the
``result.json`` example, wherever in ``docs/`` they live."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from pydantic import BaseModel

from lrfind.cli.app import app
from lrfind.config.load import load_config
from lrfind.config.schema import Config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAX_README_LINES = 250


def _headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every Markdown heading outside fenced code."""
    found, fenced = [], False
    for index, line in enumerate(text.splitlines()):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#{1,6}) (.+)$", line)):
            found.append((index, len(match.group(1)), match.group(2).strip()))
    return found


def section(title: str) -> str:
    """The text under the docs heading ``title`` (a page's ``#`` title: the whole page), up to
    the next heading of the same or a higher level.

    Raises:
        LookupError: no page of docs/ has that heading, or several do.
    """
    matches = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        headings = _headings(text)
        for position, (index, level, heading) in enumerate(headings):
            if heading == title:
                ends = [i for i, lvl, _ in headings[position + 1 :] if lvl <= level]
                lines = text.splitlines(keepends=True)
                matches.append("".join(lines[index : ends[0] if ends else len(lines)]))
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} sections of docs/ are headed {title!r}")
    return matches[0]


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
    assert "mkdocs build --strict" in makefile.split("\ntest:")[1].split("\n\n")[0]


def test_the_readme_is_short_and_its_links_reach_pages_of_the_site() -> None:
    assert len(README.splitlines()) < MAX_README_LINES
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    links = re.findall(r"\]\(docs/([^)#]+\.md)[^)]*\)", README)
    assert "lightning.md" in links and "coming-from.md" in links
    for page in links:
        assert (DOCS / page).is_file(), page
        assert f" {page}\n" in nav, f"{page} is not in mkdocs.yml's nav"


def test_every_page_of_the_site_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {path.name for path in DOCS.glob("*.md")}
    listed = set(re.findall(r": ([a-z0-9-]+\.md)\n", nav))
    assert pages == listed


def test_the_plots_shown_are_committed() -> None:
    shown = [ROOT / image for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)]
    for page in DOCS.glob("*.md"):
        images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text(encoding="utf-8"))
        shown += [DOCS / image for image in images]
    assert len(shown) >= 3
    for image in shown:
        data = image.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000, image


def _help(command: str) -> str:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [command, "--help"], env={**os.environ, "COLUMNS": "200"})
    return result.stdout


def test_the_readmes_commands_exist_with_their_options() -> None:
    commands = {command.name for command in app.registered_commands}
    lines = [
        line.split("#")[0]
        for block in code_blocks(README, "bash")[1:]
        for line in block.splitlines()
        if line.startswith("lrfind ")
    ]
    assert len(lines) >= 8
    for line in lines:
        argv = shlex.split(line.replace("<stamp>", "stamp"))
        assert argv[1] in commands, line
        help_text = _help(argv[1])
        for option in (arg.split("=")[0] for arg in argv if arg.startswith("--")):
            assert option in help_text, (line, option)


def test_the_readmes_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    library = code_blocks(README, "python")[0]
    namespace: dict[str, Any] = {}
    exec(compile(library, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.suggestion.lr is not None and result.refinement is not None
    assert str(result.suggestion.lr) in capsys.readouterr().out


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
    assert not missing, f"keys missing from docs/config.md's reference: {missing}"
    for key in ("lr_min", "lr_max", "baseline", "tolerance", "min_confidence"):
        assert key in section("Config reference")


def _reference_hook() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("reference", DOCS / "hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_references_cover_every_key_and_command() -> None:
    hook = _reference_hook()
    table = hook.config_reference()
    for key in _fields(Config):
        assert f"| `{key}` |" in table, key
    assert "| `sweep.steps` | int | `100` | >= " in table
    cli = hook.cli_reference()
    for command in app.registered_commands:
        assert f"### `lrfind {command.name}`\n\n```text\nUsage: lrfind {command.name} " in cli
    page = hook.on_page_markdown(hook.CLI_MARKER + "\n" + hook.CONFIG_MARKER)
    assert hook.CLI_MARKER not in page and hook.CONFIG_MARKER not in page
    assert hook.CLI_MARKER in section("CLI reference")
    assert hook.CONFIG_MARKER in section("Config reference")


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
    exec(compile(example, "python-api.md", "exec"), namespace)
    result = namespace["result"]
    assert result.suggestion.lr is not None
    assert result.lr_range.min_lr < result.suggestion.lr <= result.lr_range.max_lr
    assert (tmp_path / "lr_finder.png").stat().st_size > 10_000
    assert namespace["optimizer"].param_groups[0]["initial_lr"] == pytest.approx(
        result.lr_range.max_lr / 25
    )  # OneCycleLR built from the range


def test_ci_commands_in_the_docs_exist() -> None:
    text = section("In three commands")
    for line in code_blocks(text, "bash")[0].splitlines():
        options = re.findall(r"(--[a-z-]+)", line.split("#")[0])
        help_text = _help("check")
        for option in options:
            assert option in help_text, option


def test_python_ci_gate_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, gate = code_blocks(section("Python API"), "python")
    monkeypatch.chdir(tmp_path)
    gate = gate.replace(
        '"configs/quickstart.yaml"', repr(str(ROOT / "configs" / "quickstart.yaml"))
    )
    gate = gate.replace('"sweep.steps=60"', f'"sweep.steps=60", "output.dir={tmp_path}/runs"')
    namespace: dict[str, Any] = {}
    exec(compile(gate, "python-api.md", "exec"), namespace)
    assert namespace["run"].outcome is not None
    assert (tmp_path / "reports" / "lrfind.xml").exists()


def _loaders() -> dict[str, Any]:
    """A small classification task under the names the "coming from" examples use."""
    from types import SimpleNamespace

    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(512, 8, generator=generator)
    targets = (inputs[:, 0] + inputs[:, 1] > 0).long()
    train = DataLoader(TensorDataset(inputs[:384], targets[:384]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(inputs[384:], targets[384:]), batch_size=64)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    dls = SimpleNamespace(train=train, valid=val)
    return {
        "model": model,
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        "criterion": nn.CrossEntropyLoss(),
        "train_loader": train,
        "val_loader": val,
        "learn": SimpleNamespace(model=model, loss_func=nn.CrossEntropyLoss(), dls=dls),
    }


@pytest.mark.parametrize("finder", ["torch-lr-finder", "fastai"])
def test_coming_from_examples_run(
    finder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ```py blocks are the other finder's code as written for it; ```python ones are lrfind's.
    (example,) = code_blocks(section(finder), "python")
    assert code_blocks(section(finder), "py")
    monkeypatch.chdir(tmp_path)
    namespace = _loaders()
    exec(compile(example, "coming-from.md", "exec"), namespace)
    assert namespace["result"].suggestion.lr is not None


def _config_cells(path: Path) -> tuple[str, str, str, str]:
    """The data, model, optimizer and loss cells the configs table shows for ``path``."""
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
    text = section("Getting started")
    rows = re.findall(r"^\| `([^`]+\.yaml)` \| (.*?) \|$", text, flags=re.MULTILINE)
    table = {name: [cell.strip() for cell in cells.split(" | ")] for name, cells in rows}
    shipped = sorted(
        str(path.relative_to(ROOT / "configs")) for path in (ROOT / "configs").rglob("*.yaml")
    )
    assert sorted(table) == shipped
    for name, cells in table.items():
        expected = _config_cells(ROOT / "configs" / name)
        assert tuple(cells[:4]) == expected, f"the row for {name} should read {expected}"


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


def test_the_readmes_hugging_face_example_runs(tmp_path: Path) -> None:
    hf_tasks = pytest.importorskip("tests.integrations.hf_tasks")
    trainer = hf_tasks.transformers.Trainer(
        model=hf_tasks.tiny_gpt2(),
        args=hf_tasks.training_args(tmp_path, max_steps=2),
        train_dataset=hf_tasks.token_dataset(),
    )
    (example,) = code_blocks(README.split("\n## Hugging Face\n")[1].split("\n## ")[0], "python")
    namespace: dict[str, Any] = {"trainer": trainer}
    exec(compile(example, "README.md", "exec"), namespace)
    assert trainer.args.learning_rate == namespace["result"].suggestion.lr
    assert trainer.state.global_step == 2
