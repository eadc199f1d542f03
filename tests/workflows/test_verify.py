"""``lrfind.verify``: trial LRs, the verdict (pure, on synthetic trials), real short trainings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lrfind.analysis.choose import judge, metric_for
from lrfind.errors import ConfigError, NoReliableSuggestion, OutputError
from lrfind.results import Trial
from lrfind.workflows.verify import auto_lrs, parse_lrs, verify, with_suggestion
from tests.fixtures.configs import tiny_config_dict
from tests.fixtures.results import make_result
from tests.fixtures.runs import save_run

TINY_CONFIG = tiny_config_dict()


def trial(lr: float, train: float, val: float | None = None, diverged: bool = False) -> Trial:
    return Trial(lr=lr, train_loss=train, val_loss=val, diverged=diverged, steps=20)


# --- which LRs -------------------------------------------------------------------------------


def test_auto_lrs_are_the_suggestion_ladder_plus_max_lr_sorted() -> None:
    assert auto_lrs(1e-3, 1e-1) == pytest.approx([1e-4, 1e-3 / 3, 1e-3, 3e-3, 1e-1], rel=1e-12)
    assert auto_lrs(1e-3) == pytest.approx([1e-4, 1e-3 / 3, 1e-3, 3e-3], rel=1e-12)


def test_auto_lrs_drop_near_duplicates_but_keep_the_suggestion_exactly() -> None:
    lrs = auto_lrs(1e-3, 3.5e-3)  # max_lr within 20% of 3x the suggestion
    assert len(lrs) == 4
    assert 1e-3 in lrs
    assert auto_lrs(1e-3, 1e-3) == pytest.approx([1e-4, 1e-3 / 3, 1e-3, 3e-3], rel=1e-12)
    with pytest.raises(ValueError, match="must be positive"):
        auto_lrs(0.0)


def test_parse_lrs_accepts_auto_and_lists() -> None:
    assert parse_lrs("auto") is None
    assert parse_lrs(None) is None
    assert parse_lrs(" 3e-3, 1e-3 ,1e-3") == [1e-3, 3e-3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1e-3,abc", "--lrs: 'abc' is not a number (use auto or a list like 1e-3,3e-3,1e-2)"),
        ("1e-3,", "--lrs: '' is not a number (use auto or a list like 1e-3,3e-3,1e-2)"),
        ("-1e-3", "--lrs: learning rates must be positive, got -1e-3"),
        ("0", "--lrs: learning rates must be positive, got 0"),
        ("nan", "--lrs: learning rates must be positive, got nan"),
    ],
)
def test_parse_lrs_rejects_what_is_not_a_positive_number(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_lrs(text)
    assert str(caught.value) == message


def test_with_suggestion_adds_the_suggestion_once() -> None:
    assert with_suggestion([3e-3, 1e-2], 1e-3) == [1e-3, 3e-3, 1e-2]
    assert with_suggestion([1e-3, 1e-2], 1e-3) == [1e-3, 1e-2]
    assert with_suggestion([1e-2], None) == [1e-2]


# --- the verdict -----------------------------------------------------------------------------


def test_confirmed_when_the_suggestion_is_the_best_trial() -> None:
    trials = [trial(1e-4, 1.0, 1.1), trial(1e-3, 0.5, 0.6), trial(1e-2, 0.7, 0.8)]
    verdict = judge(trials, 1e-3)
    assert verdict.confirmed is True
    assert verdict.metric == "val_loss"
    assert verdict.best_lr == 1e-3
    assert verdict.message == ("the suggested 1.00e-03 reached val loss 0.6, the best trial")
    assert verdict.note is None


def batched(lr: float, batches: tuple[float, ...]) -> Trial:
    val = sum(batches) / len(batches)
    return Trial(lr, val, val, False, 20, batches, (16,) * len(batches))


def test_confirmed_within_one_standard_error_of_a_slightly_better_trial() -> None:
    best = batched(3e-3, (0.5, 0.7, 0.6, 0.6))
    # Per-batch differences 0.03, -0.01, 0.02, -0.02: mean 0.005, standard error 0.0119.
    close = batched(1e-3, (0.53, 0.69, 0.62, 0.58))
    verdict = judge([close, best], 1e-3)
    assert verdict.confirmed is True
    assert verdict.best_lr == 3e-3
    assert verdict.standard_error == pytest.approx(0.0119, abs=1e-4)
    assert verdict.message == (
        "the suggested 1.00e-03 reached val loss 0.605, tied with the best trial 3.00e-03 "
        "(val loss 0.6): 0.005 worse, within one standard error (0.012) of the paired difference"
    )
    # The same 0.005, on every batch alike: a real difference, not noise.
    consistent = batched(1e-3, (0.505, 0.705, 0.605, 0.605))
    verdict = judge([consistent, best], 1e-3)
    assert verdict.confirmed is False
    assert verdict.message.startswith("3.00e-03 did better: val loss 0.6 vs 0.605")


def test_not_confirmed_names_the_better_lr_and_by_how_much() -> None:
    trials = [trial(1e-3, 0.9, 1.0), trial(3e-3, 0.7, 0.8)]
    verdict = judge(trials, 1e-3)
    assert verdict.confirmed is False
    assert verdict.best_lr == 3e-3
    assert verdict.improvement == pytest.approx(0.2)
    assert verdict.message == (
        "3.00e-03 did better: val loss 0.8 vs 1 at the suggested 1.00e-03 (20.0% lower)"
    )


def test_training_loss_is_the_score_without_validation_data() -> None:
    trials = [trial(1e-3, 0.9), trial(3e-3, 0.7), trial(1e-1, math.inf, diverged=True)]
    assert metric_for(trials) == "train_loss"
    verdict = judge(trials, 1e-3)
    assert verdict.metric == "train_loss"
    assert verdict.best_lr == 3e-3
    assert "train loss 0.7 vs 0.9" in verdict.message


def test_a_diverged_suggestion_is_not_confirmed() -> None:
    trials = [trial(1e-4, 0.9, 1.0), trial(1e-3, math.inf, None, diverged=True)]
    verdict = judge(trials, 1e-3)
    assert verdict.confirmed is False
    assert verdict.message == (
        "the suggested 1.00e-03 diverged within 20 steps; best trial 1.00e-04 (val loss 1)"
    )


def test_every_trial_diverged() -> None:
    trials = [trial(1e-3, math.inf, diverged=True), trial(1e-2, math.inf, diverged=True)]
    verdict = judge(trials, 1e-3)
    assert verdict.confirmed is False
    assert verdict.best_lr is None
    assert verdict.message.startswith("every trial diverged, the suggested 1.00e-03 included")


def test_no_suggestion_gives_no_verdict_but_names_the_best() -> None:
    verdict = judge([trial(1e-3, 0.9, 1.0), trial(3e-3, 0.7, 0.8)], None)
    assert verdict.confirmed is None
    assert verdict.message == "no suggestion to verify; best trial 3.00e-03 (val loss 0.8)"


def test_trials_too_short_to_train_get_a_note() -> None:
    trials = [trial(1e-5, 1.1, 1.1), trial(1e-4, 1.1, 1.095)]
    verdict = judge(trials, 1e-5, start=1.095)
    assert verdict.confirmed is False
    assert verdict.note == (
        "no trial lowered the val loss below its start (1.095) by more than the noise in 20 "
        "steps: give them more --steps"
    )
    assert judge(trials, 1e-5, start=1.5).note is None


def test_negative_losses_compare_by_their_difference() -> None:
    tied = [batched(1e-3, (-0.98, -1.0, -1.0)), batched(3e-3, (-1.0, -0.99, -1.0))]
    assert judge(tied, 1e-3).confirmed is True
    trials = [trial(1e-3, -0.9, -0.9), trial(3e-3, -1.0, -1.0)]
    assert judge(trials, 1e-3).confirmed is False


# --- real trials from a saved run ------------------------------------------------------------


def test_verify_a_saved_run_trains_from_one_start_and_writes_its_folder(tmp_path: Path) -> None:
    result = make_result(suggestion_lr=0.05, lr_range=(0.005, 0.5))
    run_dir = save_run(tmp_path / "run", result, TINY_CONFIG)
    run = verify(run_dir, steps=8)
    assert run.out_dir == run_dir / "verify"
    assert [t.lr for t in run.trials] == pytest.approx([0.005, 0.05 / 3, 0.05, 0.15, 0.5])
    assert all(t.steps == 8 or t.diverged for t in run.trials)
    assert run.verdict.metric == "val_loss"
    assert run.verdict.confirmed is not None
    document = json.loads((run_dir / "verify" / "verify.json").read_text())
    assert document["suggested_lr"] == 0.05
    assert document["confirmed"] is run.verdict.confirmed
    assert len(document["trials"]) == 5
    assert (run_dir / "verify" / "verify.png").read_bytes().startswith(b"\x89PNG")
    # Same weights and data order every time: a trial repeated gives the same numbers.
    again = verify(run_dir, lrs=[0.05], steps=8, out=tmp_path / "again")
    assert again.trials[0] == next(t for t in run.trials if t.lr == 0.05)
    with pytest.raises(OutputError) as caught:
        verify(run_dir, steps=8)
    assert str(caught.value) == (
        f"{run_dir / 'verify'} already exists (verify ran before): pass --out DIR to write "
        "elsewhere"
    )


def test_verify_refuses_runs_without_a_suggestion_unless_lrs_are_given(tmp_path: Path) -> None:
    run_dir = save_run(tmp_path / "run", make_result("flat"), TINY_CONFIG)
    with pytest.raises(NoReliableSuggestion) as caught:
        verify(run_dir)
    assert str(caught.value) == (
        f"{run_dir}: no reliable suggestion to verify (no descent in the curve); "
        "pass --lrs to try LRs anyway"
    )
    assert not (run_dir / "verify").exists()
    run = verify(run_dir, lrs=[0.01, 0.1], steps=5)
    assert run.verdict.confirmed is None


def test_verify_rejects_bad_steps_and_missing_targets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--steps must be at least 1, got -3"):
        verify(tmp_path, steps=-3)
    with pytest.raises(OutputError, match="no such run directory or config file"):
        verify(tmp_path / "missing")


def test_verify_a_stated_run_trains_its_schedule_at_its_length_or_the_share_it_affords(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from lrfind.results import TrainRun
    from lrfind.workflows.verify import VERIFY_MAX_SWEEPS

    base = make_result(suggestion_lr=0.05, lr_range=(0.005, 0.5))
    sweep_steps = TINY_CONFIG["sweep"]["steps"]  # type: ignore[index]
    short = TrainRun(steps=12, schedule="linear", warmup=0.25)
    result = replace(base, info=replace(base.info, train=short))
    run = verify(save_run(tmp_path / "short", result, TINY_CONFIG), lrs=[0.05])
    assert all(t.steps == 12 or t.diverged for t in run.trials)
    assert run.trained == (
        "the stated run (a 12-step linear run with 3 warmup steps), its linear schedule"
    )
    # The linear schedule really ran: a constant-LR trial of the same length differs.
    flat = verify(save_run(tmp_path / "flat", base, TINY_CONFIG), lrs=[0.05], steps=12)
    assert flat.trained == "constant LR"
    assert run.trials[0].train_loss != flat.trials[0].train_loss
    # A run longer than verify affords: its first VERIFY_MAX_SWEEPS sweeps' worth, said so.
    long = replace(base, info=replace(base.info, train=TrainRun(steps=10**6)))
    run = verify(save_run(tmp_path / "long", long, TINY_CONFIG), lrs=[0.05])
    assert run.steps == VERIFY_MAX_SWEEPS * sweep_steps
    assert run.trained == (
        f"{run.steps / 10**6:.2g} of the stated run (a 1000000-step constant-LR run), constant LR"
    )
    document = json.loads((run.out_dir / "verify.json").read_text())
    assert document["trained"] == run.trained


def test_verify_snapshots_as_the_sweep_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lrfind.engine.rangetest as rangetest

    taken: list[tuple[str, object]] = []
    real = rangetest.snapshot_state

    def recording(*args: object, **kwargs: object) -> object:
        taken.append((str(kwargs["store"]), kwargs["folder"]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rangetest, "snapshot_state", recording)
    sweep_section = {**TINY_CONFIG["sweep"], "snapshot": "disk"}  # type: ignore[dict-item]
    sweep_section["snapshot_dir"] = str(tmp_path / "snapshots")
    config = {**TINY_CONFIG, "sweep": sweep_section}
    result = make_result(suggestion_lr=0.05, lr_range=(0.005, 0.5))
    run = verify(save_run(tmp_path / "run", result, config), lrs=[0.05], steps=6)
    assert run.trials and run.trials[0].steps == 6
    assert taken == [("disk", tmp_path / "snapshots")]
    assert not (tmp_path / "snapshots").exists()  # the folder it created, removed afterwards
