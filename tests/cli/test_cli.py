"""The CLI through typer's CliRunner: outputs, exit codes and exact error lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrfind.cli.app import app
from lrfind.format import format_lr

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), catch_exceptions=False, env=env)


def run_dirs(config: Path) -> list[Path]:
    root = config.parent / "runs" / "tiny"
    return sorted(p for p in root.iterdir()) if root.exists() else []


def test_sweep_writes_a_complete_run_directory(tiny_config: Path) -> None:
    result = invoke("sweep", str(tiny_config), "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    (run_dir,) = run_dirs(tiny_config)
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ["config.yaml", "history.csv", "lr_finder.png", "result.json"]
    document = json.loads((run_dir / "result.json").read_text())
    assert document["schema_version"] == 1 and document["complete"] is True
    assert document["status"] == "complete"
    assert document["steps"] == len((run_dir / "history.csv").read_text().splitlines()) - 1
    assert document["device"] == "cpu" and document["world_size"] == 1
    assert document["batch_size"] == 32 and document["global_batch_size"] == 32
    lr = document["suggestion"]["lr"]
    assert document["range"]["min_lr"] < lr <= document["range"]["max_lr"]
    assert "torch" in document["versions"]
    quiet_line = f"suggested LR {format_lr(lr)} (range "
    assert result.stderr.startswith(quiet_line) and result.stderr.count("\n") == 1
    assert result.stderr.rstrip().endswith(f"results in {run_dir}")
    assert "sweep" in (run_dir / "config.yaml").read_text()


def test_json_flag_prints_only_the_result_on_stdout(tiny_config: Path) -> None:
    result = invoke("sweep", str(tiny_config), "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["name"] == "tiny"
    assert "suggested LR" in result.stderr


def test_runs_are_never_overwritten(tiny_config: Path) -> None:
    for _ in range(2):
        assert invoke("sweep", str(tiny_config), "-q").exit_code == 0
    assert len(run_dirs(tiny_config)) == 2


def test_out_directory_and_refusal_to_overwrite(tiny_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    assert invoke("sweep", str(tiny_config), "-q", "--out", str(out)).exit_code == 0
    assert (out / "result.json").exists()
    again = invoke("sweep", str(tiny_config), "-q", "--out", str(out))
    assert again.exit_code == 2
    assert again.stderr == (
        f"error: --out {out}: directory is not empty (runs are never overwritten)\n"
    )


def test_set_overrides_and_method_flag(tiny_config: Path) -> None:
    result = invoke(
        "sweep", str(tiny_config), "-q", "--json", "--set", "sweep.steps=25", "--method", "steepest"
    )
    document = json.loads(result.stdout)
    assert document["sweep"]["steps"] == 25
    assert document["suggestion"]["method"].startswith("steepest")


def test_bad_config_is_one_line_and_exit_2(tiny_config: Path) -> None:
    result = invoke("sweep", str(tiny_config), "--set", "sweep.setps=3")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {tiny_config}: --set: unknown key 'sweep.setps' (did you mean 'steps'?)\n"
    )
    assert "Traceback" not in result.stderr


def test_missing_config(tmp_path: Path) -> None:
    result = invoke("sweep", str(tmp_path / "nope.yaml"))
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: no such config file: {tmp_path / 'nope.yaml'}\n",
    )


def test_nan_from_first_step_is_a_data_error_and_leaves_no_run(
    tiny_config: Path, tmp_path: Path
) -> None:
    # At the initial weights no LR can cause a NaN: a data or model problem (exit 2).
    (tmp_path / "nanloss.py").write_text(
        "def make(outputs, targets):\n    return outputs.sum() * float('nan')\n"
    )
    result = invoke("sweep", str(tiny_config), "-q", "--set", "loss={target: 'nanloss:make'}")
    assert result.exit_code == 2, result.stderr
    assert "NaN/inf on the first training batch at the initial weights" in result.stderr
    assert run_dirs(tiny_config) == []


def test_a_config_that_cannot_build_leaves_no_run_dir(tiny_config: Path) -> None:
    assert invoke("sweep", str(tiny_config), "-q").exit_code == 0
    (first,) = run_dirs(tiny_config)
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    result = invoke("sweep", str(tiny_config), "-q", "--set", "model.args.hidden=[-3]")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert run_dirs(tiny_config) == [first]
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before


FLAKY_STEP = """\
import torch.nn.functional as F

calls = 0


def step(model, batch):
    global calls
    calls += 1
    if calls > 6:
        raise RuntimeError("the GPU fell off the bus")
    inputs, targets = batch
    return F.cross_entropy(model(inputs), targets)
"""


def test_a_failure_mid_sweep_is_marked_failed_and_earlier_runs_untouched(
    tiny_config: Path,
) -> None:
    assert invoke("sweep", str(tiny_config), "-q").exit_code == 0
    (first,) = run_dirs(tiny_config)
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    (tiny_config.parent / "flaky.py").write_text(FLAKY_STEP, encoding="utf-8")
    result = invoke("sweep", str(tiny_config), "-q", "--set", "step=flaky:step")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "the GPU fell off the bus" in result.stderr
    (failed,) = [p for p in run_dirs(tiny_config) if p != first]
    status = json.loads((failed / "result.json").read_text())
    assert status["complete"] is False and status["status"] == "failed"
    assert "the GPU fell off the bus" in status["error"]
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before


def test_non_finite_numbers_in_the_config_are_rejected(tiny_config: Path) -> None:
    for override in ("sweep.end_lr=.inf", "sweep.diverge_factor=.inf", "sweep.grad_clip=.nan"):
        result = invoke("sweep", str(tiny_config), "-q", "--set", override)
        assert result.exit_code == 2
        assert "finite number" in result.stderr
    assert run_dirs(tiny_config) == []


def test_check_within_and_outside_bounds(tiny_config: Path) -> None:
    inside = invoke("check", str(tiny_config), "-q", "--expect-min", "1e-6", "--expect-max", "100")
    assert inside.exit_code == 0, inside.stderr
    assert "PASS: suggested lr" in inside.stderr
    below = invoke("check", str(tiny_config), "-q", "--expect-min", "50")
    assert below.exit_code == 1
    assert (
        "FAIL: suggested lr" in below.stderr
        and "below the expected minimum 5.00e+01" in below.stderr
    )


def test_check_needs_expectations(tiny_config: Path) -> None:
    result = invoke("check", str(tiny_config), "-q")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: nothing to check against")


def test_baseline_update_then_check(tiny_config: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline" / "result.json"
    update = invoke(
        "check", str(tiny_config), "-q", "--baseline", str(baseline), "--update-baseline"
    )
    assert update.exit_code == 0, update.stderr
    assert f"baseline written to {baseline}" in update.stderr
    check = invoke("check", str(tiny_config), "-q", "--baseline", str(baseline), "--json")
    assert check.exit_code == 0, check.stderr
    document = json.loads(check.stdout)
    assert document["check"]["passed"] is True
    assert document["suggestion"]["lr"] == json.loads(baseline.read_text())["suggestion"]["lr"]


def test_check_without_an_answer_still_reports_and_prints_the_run(
    tiny_config: Path, tmp_path: Path
) -> None:
    # A CI job needs its JUnit error and the run's document when there is nothing to check.
    junit, summary = tmp_path / "reports" / "lrfind.xml", tmp_path / "reports" / "summary.md"
    result = invoke(
        "check", str(tiny_config), "-q", "--json", "--expect-max", "100",
        "--set", "sweep.start_lr=1e-3", "--set", "sweep.end_lr=1.0000001e-3",
        "--junit", str(junit), "--summary-md", str(summary),
    )  # fmt: skip
    assert result.exit_code == 3, result.stderr
    document = json.loads(result.stdout)
    assert document["suggestion"]["lr"] is None and document["confidence"]["try_range"]
    assert document["check"]["no_answer"] is True and document["check"]["passed"] is False
    assert document["error"]["code"] == 3
    assert result.stderr.startswith("error: the sweep gave no reliable learning rate")
    assert 'errors="1"' in junit.read_text() and 'type="NoReliableSuggestion"' in junit.read_text()
    assert "no reliable answer" in summary.read_text()


def test_check_below_the_required_confidence_is_exit_3_with_reports(
    tiny_config: Path, tmp_path: Path
) -> None:
    junit = tmp_path / "lrfind.xml"
    result = invoke(
        "check",
        str(tiny_config),
        "-q",
        "--json",
        "--expect-max",
        "100",
        "--set",
        "suggest.refine=off",
        "--set",
        "sweep.start_lr=1e-3",
        "--set",
        "sweep.end_lr=0.1",
        "--min-confidence",
        "medium",
        "--junit",
        str(junit),
    )  # fmt: skip  (the loss still falls at end_lr: a suggestion with confidence low)
    document = json.loads(result.stdout)
    assert result.exit_code == 3, result.stderr
    assert document["suggestion"]["lr"] is not None and document["confidence"]["level"] == "low"
    assert document["check"]["no_answer"] is True
    assert "'low' is below the required 'medium'" in document["error"]["message"]
    assert 'type="NoReliableSuggestion"' in junit.read_text()


def test_check_writes_ci_reports(tiny_config: Path, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier\n")
    result = invoke(
        "check", str(tiny_config), "-q", "--expect-max", "100",
        "--summary-md", str(tmp_path / "summary.md"), "--junit", str(tmp_path / "junit.xml"),
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "lr_finder.png" in (tmp_path / "summary.md").read_text()
    assert summary.read_text().startswith("earlier\n") and "lr_finder.png" in summary.read_text()
    assert "<testsuite" in (tmp_path / "junit.xml").read_text()


def test_validate_lists_imports(tmp_path: Path, tiny_config: Path) -> None:
    (tmp_path / "mymodel.py").write_text(
        "import torch\n\ndef build(**kwargs):\n    return torch.nn.Linear(8, 3)\n"
    )
    ok = invoke("validate", str(tiny_config), "--set", "model.target=mymodel:build")
    assert ok.exit_code == 0, ok.stderr
    assert "model.target: mymodel:build  (module mymodel)" in ok.stderr
    bad = invoke("validate", str(tiny_config), "--set", "model.target=nomodule:build")
    assert bad.exit_code == 2
    assert "nomodule" in bad.stderr and bad.stderr.startswith("error: ")


def test_validate_json(tiny_config: Path) -> None:
    result = invoke("validate", str(tiny_config), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "valid": True, "name": "tiny", "imports": [], "files": [], "problems": [],
    }  # fmt: skip


def test_init_writes_a_valid_starter_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "starter.yaml"
    assert invoke("init", str(target)).exit_code == 0
    assert invoke("validate", str(target)).exit_code == 0
    again = invoke("init", str(target))
    assert again.exit_code == 2
    assert again.stderr == f"error: {target} already exists (use --force to overwrite it)\n"


def test_init_json_prints_the_path(tmp_path: Path) -> None:
    target = tmp_path / "starter.yaml"
    result = invoke("init", str(target), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"path": str(target)}


@pytest.mark.parametrize(
    "command", ["sweep", "check", "validate", "init", "report", "compare", "verify", "schedule"]
)
def test_every_command_takes_json(command: str) -> None:
    assert "--json" in invoke(command, "--help").stdout


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("lrfind ")


@pytest.mark.parametrize("command", ["sweep", "check", "validate", "init"])
def test_every_command_has_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_validate_json_reports_an_invalid_config_on_stdout(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: {target: mlpp}\n", encoding="utf-8")
    result = invoke("validate", str(bad), "--json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["valid"] is False
    assert any("did you mean 'mlp'" in problem for problem in document["problems"])
    assert result.stderr.startswith("error: ")
