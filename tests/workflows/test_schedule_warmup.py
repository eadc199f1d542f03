"""``--kind linear``, ``--warmup`` for every kind, and ``--format transformers``: each snippet runs
as pasted and follows ``lr_at``, the one description of a training schedule's LRs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from lrfind.analysis.schedule_plan import plan_schedule
from lrfind.analysis.schedule_shape import lr_at
from lrfind.cli.app import app
from lrfind.errors import ConfigError
from lrfind.workflows.schedule import schedule
from tests.fixtures.configs import tiny_config_dict
from tests.fixtures.results import make_result
from tests.fixtures.runs import save_run
from tests.fixtures.schedules import lr_trajectory
from tests.workflows.test_schedule import (
    MAX_LR,
    MIN_LR,
    SUGGESTED,
    fresh_optimizer,
    result_with,
    run_python,
)

runner = CliRunner()


def test_linear_warms_up_then_falls_to_zero_like_hugging_face() -> None:
    code = schedule(result_with(), "linear", "python", total_steps=100, warmup_fraction=0.1)
    optimizer = fresh_optimizer()
    lrs = lr_trajectory(run_python(code, optimizer), optimizer, 101)
    assert lrs[0] == pytest.approx(MIN_LR)  # warm-up starts at min_lr (0.1 of the peak)
    assert lrs[10] == pytest.approx(SUGGESTED)
    assert lrs[10:] == pytest.approx(
        [lr_at(s, 100, "linear", 10, peak=SUGGESTED) for s in range(10, 101)]
    )
    assert lrs[100] == 0.0


def test_warmup_is_a_fraction_or_steps_for_cosine_and_linear() -> None:
    by_fraction = plan_schedule(result_with(), "cosine", total_steps=200, warmup_fraction=0.06)
    by_steps = plan_schedule(result_with(), "cosine", total_steps=200, warmup_steps=12)
    assert by_fraction == by_steps
    assert by_steps.warmup_steps == 12
    assert plan_schedule(result_with(), "linear", total_steps=200).warmup_steps == 10  # 5%
    none = plan_schedule(result_with(), "linear", total_steps=200, warmup_steps=0)
    assert none.scheduler.class_name == "LinearLR"


def test_onecycle_warmup_sets_its_rising_phase() -> None:
    plan = plan_schedule(result_with(), "onecycle", total_steps=100, warmup_steps=20)
    assert plan.scheduler.kwargs()["pct_start"] == 0.2
    optimizer = fresh_optimizer()
    code = schedule(result_with(), "onecycle", "python", total_steps=100, warmup_fraction=0.2)
    lrs = lr_trajectory(run_python(code, optimizer), optimizer, 100)
    assert lrs.index(max(lrs)) == 19
    with pytest.raises(ConfigError, match="give a warm-up or pct_start, not both"):
        plan_schedule(result_with(), "onecycle", total_steps=100, warmup_steps=5, pct_start=0.3)


@pytest.mark.parametrize("kind", ["cyclic", "plateau"])
def test_kinds_without_a_warmup_say_why(kind: str) -> None:
    with pytest.raises(ConfigError, match=f"^{kind} takes no warm-up: "):
        plan_schedule(result_with(), kind, total_steps=100, warmup_steps=5)  # type: ignore[arg-type]


def test_cyclic_on_a_very_short_run_says_what_it_did() -> None:
    plan = plan_schedule(result_with(), "cyclic", total_steps=1)
    assert plan.scheduler.kwargs()["step_size_up"] == 1
    assert plan.scheduler.notes["step_size_up"] == (
        "1 step per half-cycle: 1 step is too few for 4 full cycles"
    )
    longer = plan_schedule(result_with(), "cyclic", total_steps=80).scheduler
    assert longer.notes["step_size_up"] == "4 full cycles over 80 steps"


def _transformers_namespace(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"optimizer": fresh_optimizer()}
    exec(compile(code, "<transformers snippet>", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_transformers_format_runs_as_pasted(kind: str, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    code = schedule(result_with(), kind, "transformers", total_steps=100, warmup_fraction=0.06)  # type: ignore[arg-type]
    namespace = _transformers_namespace(code)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), **namespace["training_args"])
    assert args.learning_rate == SUGGESTED
    assert args.max_steps == 100
    assert args.get_warmup_steps(100) == 6
    optimizer = namespace["optimizer"]
    lrs = lr_trajectory(namespace["scheduler"], optimizer, 100)
    if kind == "linear":
        assert lrs == pytest.approx(
            [lr_at(s, 100, "linear", 6, peak=SUGGESTED) for s in range(100)]
        )
    else:
        assert max(lrs) == pytest.approx(SUGGESTED)
        assert min(lrs[6:]) >= MIN_LR * (1 - 1e-9)  # the floor is the range's min_lr


def test_transformers_format_with_epochs_and_groups() -> None:
    pytest.importorskip("transformers")
    result = make_result("clean", suggestion_lr=SUGGESTED, lr_range=(MIN_LR, MAX_LR), name="g")
    plan_args: dict[str, Any] = {"epochs": 3, "steps_per_epoch": 10, "lr_scales": (1.0, 0.1)}
    from lrfind.outputs.schedule_snippets import render_transformers

    code = render_transformers(plan_schedule(result, "linear", **plan_args))
    assert "num_train_epochs=3,  # 30 optimizer steps" in code
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.SGD([{"params": [params[0]]}, {"params": [params[1]]}], lr=0.5)
    namespace: dict[str, Any] = {"optimizer": optimizer}
    exec(compile(code, "<snippet>", "exec"), namespace)
    for _ in range(2):
        optimizer.step()
        namespace["scheduler"].step()
    first, second = (group["lr"] for group in optimizer.param_groups)
    assert second == pytest.approx(first * 0.1)


@pytest.mark.parametrize("kind", ["onecycle", "cyclic", "plateau"])
def test_transformers_format_refuses_kinds_it_has_not(kind: str) -> None:
    with pytest.raises(ConfigError, match=f"{kind} has none there: use --format python"):
        schedule(result_with(), kind, "transformers", total_steps=100)  # type: ignore[arg-type]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return save_run(tmp_path / "run", make_result(name="tiny"), tiny_config_dict())


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_linear_warmup_transformers(run_dir: Path) -> None:
    code, out, err = invoke(
        "schedule", run_dir, "--kind", "linear", "--warmup", "0.06", "--total-steps", "1000",
        "--format", "transformers",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert 'lr_scheduler_type="linear",' in out and "warmup_steps=60,  # 6% of 1000 steps" in out
    code, out, _ = invoke(
        "schedule", run_dir, "--kind", "cosine", "--warmup", "7", "--total-steps", "100"
    )
    assert code == 0 and "total_iters=7," in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "cosine", "--warmup", "2.5", "--total-steps", "10"],
         "error: --warmup 2.5: give a fraction of the run below 1 (0.06) or a whole number of "
         "steps (500)\n"),
        (["--kind", "cyclic", "--warmup", "0.1"],
         "error: cyclic takes no warm-up: each cycle already rises from base_lr to max_lr "
         "(step_size_up sets how fast); use onecycle, cosine or linear for a warm-up\n"),
        (["--kind", "onecycle", "--total-steps", "10", "--format", "transformers"],
         "error: --format transformers covers linear and cosine (the schedules transformers' "
         "get_scheduler has); onecycle has none there: use --format python\n"),
    ],
)  # fmt: skip
def test_cli_schedule_option_errors(run_dir: Path, args: list[str], message: str) -> None:
    code, out, err = invoke("schedule", run_dir, *args)
    assert (code, out, err) == (2, "", message)


def test_an_unknown_kind_reads_without_pydantic_wording(run_dir: Path) -> None:
    """Through the real entry point: the message names the choices, not "Value error,"."""
    import subprocess
    import sys

    command = str(Path(sys.executable).parent / "lrfind")
    done = subprocess.run(
        [command, "schedule", str(run_dir), "--kind", "step"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        "error: Invalid value for '--kind': 'step' is not one of 'onecycle', 'cyclic', "
        "'plateau', 'cosine', 'linear'. (see 'lrfind schedule --help')\n"
    )
