"""Scheduler snippets: every Python snippet runs against torch and hits the intended LRs; every
YAML block parses and builds the same schedule."""

from __future__ import annotations

import importlib
import itertools
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from lrfind.analysis.schedule_plan import SCHEDULE_KINDS, plan_schedule
from lrfind.errors import EXIT_NO_ANSWER, ConfigError, NoReliableSuggestion
from lrfind.results import LRRange, RangeTestResult
from lrfind.workflows.schedule import schedule
from tests.fixtures.results import make_result
from tests.fixtures.schedules import lr_trajectory

MIN_LR, SUGGESTED, MAX_LR = 1e-4, 1e-3, 1e-2


def result_with(
    suggestion: float | None = SUGGESTED, lr_range: tuple[float, float] | None = (MIN_LR, MAX_LR)
) -> RangeTestResult:
    return make_result("clean", suggestion_lr=suggestion, lr_range=lr_range, name="unit")


def fresh_optimizer(kind: str = "sgd") -> torch.optim.Optimizer:
    torch.manual_seed(0)
    params = torch.nn.Linear(3, 1).parameters()
    if kind == "adam":
        return torch.optim.Adam(params, lr=0.123)
    return torch.optim.SGD(params, lr=0.123, momentum=0.9)


def run_python(code: str, optimizer: torch.optim.Optimizer) -> Any:
    namespace: dict[str, Any] = {"optimizer": optimizer}
    exec(compile(code, "<schedule snippet>", "exec"), namespace)
    return namespace["scheduler"]


def build_from_yaml(document: dict[str, Any], optimizer: torch.optim.Optimizer) -> Any:
    """What a dotted-path config loader does with the YAML block."""
    if "optimizer" in document:
        for group in optimizer.param_groups:
            group["lr"] = document["optimizer"]["lr"]

    def instantiate(node: dict[str, Any]) -> Any:
        module, _, name = node["class_path"].rpartition(".")
        args = dict(node["init_args"])
        if "schedulers" in args:
            args["schedulers"] = [instantiate(child) for child in args["schedulers"]]
        return getattr(importlib.import_module(module), name)(optimizer, **args)

    return instantiate(document["lr_scheduler"])


def test_onecycle_starts_at_min_lr_and_peaks_at_max_lr() -> None:
    code = schedule(result_with(), "onecycle", "python", total_steps=100)
    assert code.startswith("# lrfind onecycle schedule from run 'unit'\n")
    assert "# Expects an `optimizer` variable in scope" in code
    optimizer = fresh_optimizer()
    lrs = lr_trajectory(run_python(code, optimizer), optimizer, 100)
    assert lrs[0] == pytest.approx(MIN_LR)  # div_factor = max_lr / min_lr = 100
    assert max(lrs) == pytest.approx(MAX_LR)
    assert lrs.index(max(lrs)) == 29  # pct_start 0.3 of 100 steps
    assert lrs[-1] < MIN_LR / 1000


def test_onecycle_div_factor_is_clipped_for_very_wide_ranges() -> None:
    plan = plan_schedule(result_with(lr_range=(1e-7, 1e-1)), "onecycle", total_steps=10)
    assert plan.scheduler.kwargs()["div_factor"] == 100.0
    narrow = plan_schedule(
        result_with(lr_range=(5e-3, 1e-2)), "onecycle", epochs=2, steps_per_epoch=5
    )
    assert narrow.scheduler.kwargs()["div_factor"] == 4.0
    assert narrow.scheduler.kwargs()["total_steps"] == 10


def test_cyclic_goes_from_base_to_max_and_halves_the_amplitude() -> None:
    code = schedule(result_with(), "cyclic", "python", steps_per_epoch=5)
    assert "step_size_up=20,  # 4 epochs of 5 steps" in code
    optimizer = fresh_optimizer("adam")
    lrs = lr_trajectory(run_python(code, optimizer), optimizer, 61)
    assert lrs[0] == pytest.approx(MIN_LR)
    assert lrs[20] == pytest.approx(MAX_LR)
    assert lrs[40] == pytest.approx(MIN_LR)
    assert lrs[60] == pytest.approx(MIN_LR + (MAX_LR - MIN_LR) / 2)  # triangular2


@pytest.mark.parametrize(
    ("options", "expected"),
    [({"step_size_up": 7}, 7), ({"total_steps": 800}, 100), ({}, 2000)],
)
def test_cyclic_half_cycle_defaults(options: dict[str, int], expected: int) -> None:
    plan = plan_schedule(result_with(), "cyclic", **options)  # type: ignore[arg-type]
    assert plan.scheduler.kwargs()["step_size_up"] == expected


def test_plateau_starts_at_the_suggestion_and_is_floored() -> None:
    code = schedule(result_with(), "plateau", "python")
    assert "scheduler.step(val_loss) once per epoch" in code
    optimizer = fresh_optimizer()
    scheduler = run_python(code, optimizer)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(SUGGESTED)
    for _ in range(7):
        scheduler.step(1.0)  # no improvement: patience 5, then halve
    assert optimizer.param_groups[0]["lr"] == pytest.approx(SUGGESTED / 2)
    for _ in range(200):
        scheduler.step(1.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(MIN_LR / 10)


def test_cosine_warms_up_to_the_suggestion_then_decays_to_min_lr() -> None:
    code = schedule(result_with(), "cosine", "python", total_steps=200, warmup_steps=20)
    optimizer = fresh_optimizer()
    lrs = lr_trajectory(run_python(code, optimizer), optimizer, 201)
    assert lrs[0] == pytest.approx(SUGGESTED * 0.1)  # warm-up starts at min_lr
    assert lrs[10] == pytest.approx(SUGGESTED * 0.55)
    assert lrs[20] == pytest.approx(SUGGESTED)
    assert max(lrs) == pytest.approx(SUGGESTED)
    assert lrs[200] == pytest.approx(MIN_LR)
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(lrs[20:]))


def test_cosine_peak_can_be_overridden_and_warm_up_switched_off() -> None:
    code = schedule(result_with(), "cosine", "python", total_steps=50, warmup_fraction=0.0, lr=3e-3)
    assert "LinearLR" not in code and "SequentialLR" not in code
    optimizer = fresh_optimizer()
    lrs = lr_trajectory(run_python(code, optimizer), optimizer, 51)
    assert lrs[0] == pytest.approx(3e-3)
    assert lrs[50] == pytest.approx(MIN_LR)


@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_yaml_parses_and_builds_the_same_schedule_as_python(kind: str) -> None:
    options: dict[str, Any] = {"total_steps": 120, "steps_per_epoch": 12, "epochs": 10}
    text = schedule(result_with(), kind, "yaml", **options)  # type: ignore[arg-type]
    document = yaml.safe_load(text)
    assert set(document) <= {"optimizer", "lr_scheduler"}
    scheduler = document["lr_scheduler"]
    assert scheduler["class_path"].startswith("torch.optim.lr_scheduler.")
    assert scheduler["interval"] == ("epoch" if kind == "plateau" else "step")
    for value in scheduler["init_args"].values():
        assert not isinstance(value, str) or value in {"cos", "triangular2", "min"}
    code = schedule(result_with(), kind, "python", **options)  # type: ignore[arg-type]
    from_python, from_yaml = fresh_optimizer(), fresh_optimizer()
    python_scheduler = run_python(code, from_python)
    yaml_scheduler = build_from_yaml(document, from_yaml)
    if kind == "plateau":
        assert scheduler["monitor"] == "val_loss"
        for _ in range(30):
            python_scheduler.step(1.0)
            yaml_scheduler.step(1.0)
        assert from_python.param_groups[0]["lr"] == from_yaml.param_groups[0]["lr"]
        return
    assert lr_trajectory(python_scheduler, from_python, 120) == lr_trajectory(
        yaml_scheduler, from_yaml, 120
    )


def test_yaml_numbers_stay_numbers() -> None:
    text = schedule(result_with(lr_range=(1e-5, 1e-4), suggestion=3e-5), "cosine", "yaml", 10)
    document = yaml.safe_load(text)
    assert document["optimizer"]["lr"] == pytest.approx(3e-5)
    children = document["lr_scheduler"]["init_args"]["schedulers"]
    assert children[1]["init_args"]["eta_min"] == pytest.approx(1e-5)
    assert isinstance(children[1]["init_args"]["eta_min"], float)


def test_bare_range_builds_cyclic_and_needs_lr_for_plateau() -> None:
    lr_range = LRRange(MIN_LR, MAX_LR)
    assert "base_lr=0.0001" in schedule(lr_range, "cyclic", "python")
    with pytest.raises(ConfigError, match="pass lr= when building from an LRRange"):
        schedule(lr_range, "plateau", "python")
    assert 'group["lr"] = 0.002' in schedule(lr_range, "plateau", "python", lr=2e-3)


@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_no_range_means_no_reliable_suggestion(kind: str) -> None:
    with pytest.raises(NoReliableSuggestion) as caught:
        schedule(make_result("flat", name="flat"), kind, "yaml", total_steps=100)
    message = str(caught.value)
    assert "\n" not in message
    assert message == f"run 'flat' has no recommended range: cannot build a {kind} schedule"
    assert caught.value.exit_code == EXIT_NO_ANSWER


def test_a_range_without_a_suggestion_serves_onecycle_but_not_plateau() -> None:
    result = result_with(suggestion=None)
    assert "OneCycleLR" in schedule(result, "onecycle", "python", total_steps=10)
    with pytest.raises(NoReliableSuggestion, match=r"^no reliable suggestion for run 'unit': "):
        schedule(result, "plateau", "python")


def test_empty_range_is_no_reliable_suggestion() -> None:
    with pytest.raises(NoReliableSuggestion, match="recommended range is empty"):
        schedule(result_with(lr_range=(1e-2, 1e-3)), "cyclic", "python")


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        (
            "onecycle",
            {},
            "onecycle needs the schedule's length: give total_steps (--total-steps), "
            "or epochs and steps_per_epoch (--epochs, --steps-per-epoch)",
        ),
        (
            "cosine",
            {"epochs": 3},
            "cosine: epochs needs steps_per_epoch (--steps-per-epoch; the run did not record "
            "its batches per epoch), or give total_steps",
        ),
        (
            "onecycle",
            {"total_steps": 100, "epochs": 3, "steps_per_epoch": 10},
            "total_steps (100) disagrees with epochs × steps_per_epoch (3 × 10 = 30)",
        ),
        ("cyclic", {"total_steps": 0}, "total_steps must be a positive integer, got 0"),
        (
            "bogus",
            {},
            "unknown schedule kind 'bogus' "
            "(expected one of onecycle, cyclic, plateau, cosine, linear)",
        ),
        (
            "cosine",
            {"total_steps": 10, "warmup_steps": 10},
            "warmup_steps (10) must be below the total steps (10)",
        ),
        (
            "onecycle",
            {"total_steps": 10, "pct_start": 1.5},
            "pct_start must be between 0 and 1, got 1.5",
        ),
        ("plateau", {"lr": -1.0}, "lr must be a positive number, got -1.0"),
    ],
)
def test_bad_options_raise_config_error(kind: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        schedule(result_with(), kind, "python", **options)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_every_bad_option_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        schedule(result_with(), "onecycle", "python", total_steps=-5, pct_start=0.0)
    assert caught.value.problems == (
        "total_steps must be a positive integer, got -5",
        "pct_start must be between 0 and 1, got 0.0",
    )


def test_unknown_format() -> None:
    with pytest.raises(
        ConfigError,
        match="unknown format 'toml' \\(expected one of yaml, python, json, transformers\\)",
    ):
        schedule(result_with(), "cyclic", "toml")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_json_has_the_yaml_layout_and_builds_the_same_schedule(kind: str) -> None:
    options: dict[str, Any] = {"total_steps": 120, "steps_per_epoch": 12, "epochs": 10}
    from_yaml = yaml.safe_load(schedule(result_with(), kind, "yaml", **options))  # type: ignore[arg-type]
    from_json = json.loads(schedule(result_with(), kind, "json", **options))  # type: ignore[arg-type]
    assert from_json["kind"] == kind
    assert from_json["optimizer"] == from_yaml.get("optimizer", {"lr": None})
    assert from_json["lr_scheduler"]["monitor"] == from_yaml["lr_scheduler"].get("monitor")
    for key in ("class_path", "init_args", "interval"):
        assert from_json["lr_scheduler"][key] == from_yaml["lr_scheduler"][key]


def test_hostile_run_name_cannot_inject_code_or_yaml() -> None:
    name = "evil\nimport os\nos.system('x')\r\u2028: [oops"
    result = make_result("clean", name=name, suggestion_lr=SUGGESTED, lr_range=(MIN_LR, MAX_LR))
    code = schedule(result, "cosine", "python", total_steps=20)
    namespace: dict[str, Any] = {"optimizer": fresh_optimizer()}
    exec(compile(code, "<snippet>", "exec"), namespace)
    assert "os" not in namespace
    assert all(line.startswith("#") for line in code.splitlines()[:4])
    document = yaml.safe_load(schedule(result, "cosine", "yaml", total_steps=20))
    assert set(document) == {"optimizer", "lr_scheduler"}


# --- param groups with lr_scale ----------------------------------------------------------------

SCALES = (0.1, 1.0)


def grouped_result(**info: Any) -> RangeTestResult:
    result = result_with()
    return result.with_updates(info=replace(result.info, lr_scales=SCALES, **info))


def two_group_optimizer() -> torch.optim.Optimizer:
    torch.manual_seed(0)
    backbone, head = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
    return torch.optim.SGD(
        [{"params": backbone.parameters()}, {"params": head.parameters()}], lr=0.123
    )


def group_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    return [group["lr"] for group in optimizer.param_groups]


@pytest.mark.parametrize("fmt", ["python", "yaml", "json"])
@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_each_group_keeps_its_lr_scale(kind: str, fmt: str) -> None:
    text = schedule(grouped_result(), kind, fmt, total_steps=100)  # type: ignore[arg-type]
    optimizer = two_group_optimizer()
    if fmt == "python":
        assert "lr_scale 0.1, 1" in text
        scheduler = run_python(text, optimizer)
    else:
        document = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
        if document.get("optimizer", {}).get("lr") is not None:
            lrs = document["optimizer"]["lr"]
            for group, lr in zip(optimizer.param_groups, lrs, strict=True):
                group["lr"] = lr
            document = {"lr_scheduler": document["lr_scheduler"]}
        scheduler = build_from_yaml(document, optimizer)
    seen = []
    for step in range(60):
        backbone, head = group_lrs(optimizer)
        if kind != "cosine" or step <= 5:  # cosine's one eta_min bends the ratio as it decays
            assert backbone == pytest.approx(0.1 * head, rel=1e-6)
        assert backbone < head
        seen.append(head)
        optimizer.step()
        scheduler.step(1.0) if kind == "plateau" else scheduler.step()
    if kind in ("onecycle", "cyclic"):
        assert max(seen) == pytest.approx(MAX_LR, rel=0.02)  # the unscaled group reaches max_lr
    else:
        assert seen[0] <= SUGGESTED * 1.0001


def test_cosine_floor_is_the_lowest_groups_floor() -> None:
    plan = plan_schedule(grouped_result(), "cosine", total_steps=100)
    decay = plan.scheduler.children[1]
    assert decay.kwargs()["eta_min"] == pytest.approx(MIN_LR * 0.1)
    assert plan.optimizer_lr == pytest.approx((SUGGESTED * 0.1, SUGGESTED))


def test_groups_all_at_scale_one_keep_scalar_values() -> None:
    result = result_with()
    result = result.with_updates(info=replace(result.info, lr_scales=(1.0, 1.0, 1.0)))
    plan = plan_schedule(result, "onecycle", total_steps=100)
    assert plan.scheduler.kwargs()["max_lr"] == MAX_LR


def test_a_mismatched_optimizer_fails_loudly() -> None:
    code = schedule(grouped_result(), "onecycle", "python", total_steps=100)
    with pytest.raises(ValueError, match="max_lr"):
        run_python(code, fresh_optimizer())  # one group, two values


# --- --epochs: steps per epoch from the run ------------------------------------------------------


def test_epochs_use_the_runs_batches_per_epoch() -> None:
    result = result_with()
    info = replace(result.info, batches_per_epoch=23, accumulation_steps=2, batch_size=64)
    plan = plan_schedule(result.with_updates(info=info), "onecycle", epochs=3)
    assert plan.scheduler.kwargs()["total_steps"] == 36  # ceil(23 / 2) = 12 per epoch
    assert (
        "12 optimizer steps per epoch, as in the run (23 batches of 64 / 2 accumulation steps)"
        in (plan.header)
    )


def test_given_steps_per_epoch_win_over_the_run() -> None:
    result = result_with()
    info = replace(result.info, batches_per_epoch=23)
    plan = plan_schedule(result.with_updates(info=info), "onecycle", epochs=2, steps_per_epoch=5)
    assert plan.scheduler.kwargs()["total_steps"] == 10
    assert not any("as in the run" in line for line in plan.header)


def test_epochs_from_a_real_run_directory(tiny_config: Path, tmp_path: Path) -> None:
    """`lrfind schedule RUN --epochs N` needs no --steps-per-epoch: the run knows its loader."""
    import lrfind

    run = lrfind.sweep(tiny_config, out=tmp_path / "run")
    assert run.run_dir is not None
    batches = run.result.info.batches_per_epoch
    assert batches == math.ceil(round(512 * 0.8) / 32)  # 410 training samples, batch 32
    code = schedule(run.run_dir, "onecycle", "python", epochs=3)
    assert f"total_steps={3 * batches}," in code
    assert f"{batches} optimizer steps per epoch, as in the run ({batches} batches of 32)" in code


def test_a_run_with_lr_scale_groups_exports_one_lr_per_group(
    tiny_config: Path, tmp_path: Path
) -> None:
    """Bug: a group swept at 0.1x got the same max_lr / lr as the others, so it trained at 1x."""
    import lrfind

    groups = "optimizer.param_groups=[{match: 'layers\\.0\\.', lr_scale: 0.1}]"
    run = lrfind.sweep(tiny_config, overrides=[groups], out=tmp_path / "run")
    assert run.run_dir is not None
    assert run.result.info.lr_scales == (0.1, 1.0)
    code = schedule(run.run_dir, "onecycle", "python", total_steps=50)
    assert "max_lr=[" in code
    torch.manual_seed(0)
    first, rest = torch.nn.Linear(8, 16), torch.nn.Linear(16, 3)
    optimizer = torch.optim.SGD([{"params": first.parameters()}, {"params": rest.parameters()}])
    scheduler = run_python(code, optimizer)
    for _ in range(20):
        low, high = group_lrs(optimizer)
        assert low == pytest.approx(0.1 * high, rel=0.02)  # 3-digit rounding of each value
        optimizer.step()
        scheduler.step()


def test_a_stated_run_supplies_the_schedule_its_length_and_warmup() -> None:
    from lrfind.results import TrainRun

    base = make_result("clean")
    stated = replace(base, info=replace(base.info, train=TrainRun(1200, "linear", 0.05)))
    document = json.loads(schedule(stated, None, "json"))
    explicit = json.loads(schedule(stated, "linear", "json", total_steps=1200, warmup_steps=60))
    assert document == explicit
    # Explicit options still win over the stated run's.
    shorter = json.loads(schedule(stated, "linear", "json", total_steps=600))
    assert shorter != document
    with pytest.raises(ConfigError, match="give --kind: the run names no schedule"):
        schedule(base, None, "json")
    constant = replace(base, info=replace(base.info, train=TrainRun(500)))
    with pytest.raises(ConfigError, match="constant-LR"):
        schedule(constant, None, "json")


def test_a_stated_warmup_fraction_stays_a_fraction_of_another_length() -> None:
    from lrfind.results import TrainRun

    base = make_result("clean")
    stated = replace(base, info=replace(base.info, train=TrainRun(2000, "cosine", 0.06)))
    for total in (1000, 100):
        carried = json.loads(schedule(stated, None, "json", total_steps=total))
        explicit = schedule(
            stated, None, "json", total_steps=total, warmup_steps=round(0.06 * total)
        )
        assert carried == json.loads(explicit)
    by_epochs = schedule(stated, None, "json", epochs=3, steps_per_epoch=10)
    assert json.loads(by_epochs) == json.loads(
        schedule(stated, None, "json", epochs=3, steps_per_epoch=10, warmup_steps=2)
    )
    in_steps = replace(base, info=replace(base.info, train=TrainRun(2000, "cosine", 120)))
    assert json.loads(schedule(in_steps, None, "json", total_steps=1000)) == json.loads(
        schedule(stated, None, "json", total_steps=1000, warmup_steps=120)
    )


def test_a_stated_cosine_runs_pasted_schedule_decays_to_zero_as_the_trials_did() -> None:
    from lrfind.results import TrainRun

    base = result_with()
    stated = replace(base, info=replace(base.info, train=TrainRun(200, "cosine", 20)))
    code = schedule(stated, "cosine", "python", total_steps=200, warmup_steps=20)
    optimizer = fresh_optimizer()
    lrs = lr_trajectory(run_python(code, optimizer), optimizer, 201)
    assert max(lrs) == pytest.approx(SUGGESTED)
    assert lrs[200] == pytest.approx(0.0, abs=1e-12)
    assert "eta_min=0.0,  # 0: the stated cosine run" in code
    # A peak given by hand is not the measured run's: the range's floor as before.
    manual = schedule(stated, "cosine", "python", total_steps=200, warmup_steps=20, lr=SUGGESTED)
    assert f"eta_min={MIN_LR}," in manual
