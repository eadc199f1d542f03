"""``lrfind report / compare / verify / schedule``: exact output, exit codes, one real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrfind.cli.app import app
from tests.fixtures.configs import tiny_config_dict
from tests.fixtures.results import make_result
from tests.fixtures.runs import save_run

TINY_CONFIG = tiny_config_dict()

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str, str]:
    """Run ``lrfind ARGS`` in-process; return (exit code, stdout, stderr)."""
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A saved run (no training needed) with a clear suggestion and range."""
    return save_run(tmp_path / "run", make_result(name="tiny"), TINY_CONFIG)


# --- report ----------------------------------------------------------------------------------


def test_report_missing_run_dir_is_a_one_line_error(tmp_path: Path) -> None:
    code, out, err = invoke("report", tmp_path / "nope")
    assert (code, out) == (2, "")
    assert err == f"error: {tmp_path / 'nope'}: no such run directory\n"


def test_report_writes_next_to_the_run_and_refuses_to_overwrite(run_dir: Path) -> None:
    code, out, err = invoke("report", run_dir)
    assert (code, out, err) == (0, "", f"wrote {run_dir / 'report.png'}\n")
    code, _, err = invoke("report", run_dir)
    assert code == 2
    assert err == f"error: {run_dir / 'report.png'} already exists (use --force to overwrite it)\n"
    assert invoke("report", run_dir, "--force")[0] == 0


def test_report_overlay_and_html(run_dir: Path, tmp_path: Path) -> None:
    other = save_run(tmp_path / "other", make_result(name="other", shift=1.0), TINY_CONFIG)
    png, page = tmp_path / "both.png", tmp_path / "both.html"
    code, out, err = invoke("report", run_dir, other, "--png", png, "--html", page)
    assert (code, out) == (0, "")
    assert err == f"runs: tiny; other\nwrote {png}\nwrote {page}\n"
    assert png.read_bytes().startswith(b"\x89PNG")
    assert page.read_text(encoding="utf-8").count("data:image/png;base64,") == 2


def test_report_json_names_what_was_written(run_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    code, out, _ = invoke("report", run_dir, "--html", page, "--json")
    assert code == 0
    assert json.loads(out) == {"png": None, "html": str(page), "runs": ["tiny"]}


def test_schedule_json_is_the_json_format(run_dir: Path) -> None:
    code, out, err = invoke(
        "schedule", run_dir, "--kind", "onecycle", "--total-steps", "100", "--json"
    )
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["lr_scheduler"]["class_path"] == "torch.optim.lr_scheduler.OneCycleLR"
    assert document["lr_scheduler"]["init_args"]["total_steps"] == 100


# --- compare ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--vary", "optimizer.name"],
            "--vary expects KEY=VALUE1,VALUE2,..., got 'optimizer.name'",
        ),
        (
            ["--vary", "model.args.hidden=[64],[128"],
            "--vary model.args.hidden: unbalanced '[' in '[64],[128' (no closing ']')",
        ),
        ([], "compare needs at least one --vary KEY=VALUE1,VALUE2,..."),
    ],
)
def test_compare_bad_vary_syntax(tiny_config: Path, args: list[str], message: str) -> None:
    code, out, err = invoke("compare", tiny_config, *args)
    assert (code, out, err) == (2, "", f"error: {message}\n")
    assert not (tiny_config.parent / "runs").exists()


def test_compare_unknown_key_is_a_config_error_naming_the_key(tiny_config: Path) -> None:
    code, out, err = invoke("compare", tiny_config, "--vary", "optimizer.nme=sgd,adam")
    assert (code, out) == (2, "")
    assert (
        err == f"error: {tiny_config}: --vary: unknown key 'optimizer.nme' (did you mean 'name'?)\n"
    )


def test_compare_prints_the_table_and_json(tiny_config: Path) -> None:
    folder = tiny_config.parent / "cmp"
    code, out, err = invoke(
        "compare",
        tiny_config,
        "--vary",
        "optimizer.name=sgd,adam",
        "--set",
        "sweep.steps=20",
        "--set",
        "optimizer.args={}",
        "--out",
        folder,
        "--json",
    )
    document = json.loads(out)
    assert [v["name"] for v in document["variants"]] == ["tiny-sgd", "tiny-adam"]
    assert document["compare_dir"] == str(folder)
    assert code == {"ok": 0, "no_answer": 3}[document["status"]]
    assert "variant  suggested LR  min LR" in err
    assert f"results in {folder}\n  overlay.png\n  compare.json\n  compare.csv\n" in err
    assert (folder / "compare.csv").read_text().startswith("name,optimizer.name,status,")


def test_compare_exit_2_when_a_variant_fails(tiny_config: Path) -> None:
    folder = tiny_config.parent / "cmp"
    code, out, err = invoke(
        "compare",
        tiny_config,
        "--vary",
        "model.args.hidden=[16],[0]",
        "--set",
        "sweep.steps=10",
        "--out",
        folder,
        "--quiet",
    )
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[0].startswith("tiny-0 failed: ")  # the reason is shown even with --quiet
    assert lines[1:] == [f"results in {folder}", "error: 1 of 2 variants failed: tiny-0"]
    assert json.loads((folder / "compare.json").read_text())["status"] == "failed"


# --- verify ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--lrs", "1e-3,fast"],
            "--lrs: 'fast' is not a number (use auto or a list like 1e-3,3e-3,1e-2)",
        ),
        (["--steps", "-3"], "--steps must be at least 1, got -3"),
        (["--steps", "0"], "--steps must be at least 1, got 0"),
    ],
)
def test_verify_bad_options(run_dir: Path, args: list[str], message: str) -> None:
    code, out, err = invoke("verify", run_dir, *args)
    assert (code, out, err) == (2, "", f"error: {message}\n")
    assert not (run_dir / "verify").exists()


def test_verify_missing_target(tmp_path: Path) -> None:
    code, _, err = invoke("verify", tmp_path / "nope")
    assert (code, err) == (2, f"error: {tmp_path / 'nope'}: no such run directory or config file\n")


def test_verify_exit_3_without_a_suggestion(tmp_path: Path) -> None:
    flat = save_run(tmp_path / "flat", make_result("flat"), TINY_CONFIG)
    code, out, err = invoke("verify", flat)
    assert (code, out) == (3, "")
    assert err == (
        f"error: {flat}: no reliable suggestion to verify (no descent in the curve); "
        "pass --lrs to try LRs anyway\n"
    )


def test_verify_exit_1_names_the_lr_that_did_better(tmp_path: Path) -> None:
    # A suggestion far too low for 10 steps of SGD: 0.3 trains, 1e-5 does not move.
    run_dir = save_run(tmp_path / "run", make_result(suggestion_lr=1e-5), TINY_CONFIG)
    code, out, err = invoke("verify", run_dir, "--lrs", "0.3", "--steps", "10", "--json")
    document = json.loads(out)
    assert code == 1
    assert document["status"] == "not_confirmed"
    assert document["best_lr"] == 0.3
    assert [t["lr"] for t in document["trials"]] == [1e-5, 0.3]
    last = err.strip().splitlines()[-1]
    assert last.startswith("NOT CONFIRMED: 3.00e-01 did better: val loss ")
    assert last.endswith("at the suggested 1.00e-05 (" + last.rsplit("(", 1)[1])
    assert (run_dir / "verify" / "verify.png").is_file()


def test_verify_exit_0_when_confirmed(tmp_path: Path) -> None:
    run_dir = save_run(tmp_path / "run", make_result(suggestion_lr=0.3), TINY_CONFIG)
    out_dir = tmp_path / "elsewhere"
    code, out, err = invoke("verify", run_dir, "--lrs", "1e-5", "--steps", "10", "-o", out_dir)
    assert (code, out) == (0, "")
    assert "\nCONFIRMED: the suggested 3.00e-01 reached val loss " in err
    assert ", the best trial\n" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["verify.json", "verify.png"]


def test_verify_a_config_sweeps_first_and_writes_into_the_new_run(tiny_config: Path) -> None:
    code, out, err = invoke("verify", tiny_config, "--steps", "10", "--quiet", "--json")
    document = json.loads(out)
    assert code == (0 if document["confirmed"] else 1)
    assert document["steps_per_trial"] == 10
    (run_dir,) = (tiny_config.parent / "runs" / "tiny").iterdir()
    assert document["run_dir"] == str(run_dir)
    assert {"result.json", "verify.json", "verify.png"} <= {p.name for p in run_dir.iterdir()}
    suggested = json.loads((run_dir / "result.json").read_text())["suggestion"]["lr"]
    assert document["suggested_lr"] == suggested
    assert err.startswith(("CONFIRMED: ", "NOT CONFIRMED: "))


# --- schedule --------------------------------------------------------------------------------


def test_schedule_prints_only_the_snippet_to_stdout(run_dir: Path) -> None:
    code, out, err = invoke("schedule", run_dir, "--kind", "onecycle", "--total-steps", "1000")
    assert (code, err) == (0, "")
    assert out.startswith("# lrfind onecycle schedule from run 'tiny'\n")
    assert "OneCycleLR(" in out and "total_steps=1000" in out
    code, out, _ = invoke(
        "schedule", run_dir, "--kind", "cosine", "--format", "yaml", "--epochs", "10",
        "--steps-per-epoch", "100",
    )  # fmt: skip
    assert code == 0
    assert "class_path: torch.optim.lr_scheduler.SequentialLR" in out


def test_schedule_errors(run_dir: Path, tmp_path: Path) -> None:
    code, out, err = invoke("schedule", tmp_path / "nope", "--kind", "cyclic")
    assert (code, out, err) == (2, "", f"error: {tmp_path / 'nope'}: no such run directory\n")
    code, out, err = invoke("schedule", run_dir, "--kind", "onecycle")
    assert (code, out) == (2, "")
    assert err == (
        "error: onecycle needs the schedule's length: give total_steps (--total-steps), or "
        "epochs and steps_per_epoch (--epochs, --steps-per-epoch)\n"
    )
    flat = save_run(tmp_path / "flat", make_result("flat", name="flat"), TINY_CONFIG)
    code, out, err = invoke("schedule", flat, "--kind", "plateau")
    assert (code, out) == (3, "")
    assert err == "error: run 'flat' has no recommended range: cannot build a plateau schedule\n"
    code, _, err = invoke("schedule", run_dir, "--kind", "step")
    assert code == 2
    assert "Invalid value for '--kind'" in err


# --- start-up and a real process -------------------------------------------------------------


def test_command_modules_import_neither_torch_nor_matplotlib() -> None:
    code = (
        "import sys, lrfind.cli.app, lrfind.workflows.compare, lrfind.workflows.verify, "
        "lrfind.workflows.report; "
        "heavy = [m for m in ('torch', 'matplotlib') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_installed_command_runs_schedule(run_dir: Path) -> None:
    command = Path(sys.executable).parent / "lrfind"
    done = subprocess.run(
        [str(command), "schedule", str(run_dir), "--kind", "cyclic", "--format", "yaml"],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert "class_path: torch.optim.lr_scheduler.CyclicLR" in done.stdout
