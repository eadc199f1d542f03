"""The horizon stage's pure parts: schedules, the rung plan, keeping the best, the drift."""

from __future__ import annotations

import itertools
import math

import pytest

from lrfind.analysis.horizon import (
    FINALISTS,
    MAX_DRIFT_DECADES,
    best_lr_at,
    estimate_drift,
    keep_for_longer,
    plan_rungs,
    schedule_factor,
    survivors_per_rung,
)
from lrfind.results import Budget, TrainRun, Trial, parse_budget


def trial(lr: float, val: float | None, steps: int = 10, diverged: bool = False) -> Trial:
    return Trial(lr=lr, train_loss=1.0, val_loss=val, diverged=diverged, steps=steps)


def test_linear_schedule_warms_up_then_decays_to_zero() -> None:
    # Hugging Face's shape: the warmup rises from 0, the decay reaches 0 at the run's end.
    run = TrainRun(steps=100, schedule="linear", warmup=0.1)
    factors = [schedule_factor(s, 100, run) for s in range(100)]
    assert factors[0] == 0.0
    assert factors[5] == pytest.approx(0.5)
    assert factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.5)
    assert factors[-1] == pytest.approx(1 / 90)
    assert max(factors) == pytest.approx(1.0)


def test_constant_cosine_and_onecycle_shapes() -> None:
    constant = TrainRun(steps=50)
    assert {schedule_factor(s, 50, constant) for s in range(50)} == {1.0}
    cosine = TrainRun(steps=100, schedule="cosine")
    assert schedule_factor(0, 100, cosine) == 1.0
    assert schedule_factor(50, 100, cosine) == pytest.approx(0.5)
    onecycle = TrainRun(steps=100, schedule="onecycle")
    assert schedule_factor(0, 100, onecycle) == pytest.approx(1 / 25)
    assert max(schedule_factor(s, 100, onecycle) for s in range(100)) == pytest.approx(1.0, 1e-3)
    assert schedule_factor(99, 100, onecycle) == pytest.approx(1 / 25e4)


def test_warmup_in_steps_scales_with_a_compressed_run() -> None:
    run = TrainRun(steps=1000, schedule="linear", warmup=100)
    # Compressed to 100 steps, 100 warmup steps of 1000 become 10.
    assert schedule_factor(5, 100, run) == pytest.approx(0.5)
    assert schedule_factor(10, 100, run) == pytest.approx(1.0)


def test_train_run_refuses_what_cannot_be_a_run() -> None:
    with pytest.raises(ValueError, match="whole number >= 1"):
        TrainRun(steps=0)
    with pytest.raises(ValueError, match="unknown train schedule"):
        TrainRun(steps=10, schedule="step")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="below the run's 10 steps"):
        TrainRun(steps=10, warmup=20)
    assert TrainRun(steps=200, warmup=0.05).warmup_steps == 10
    assert TrainRun(steps=200, warmup=30).warmup_steps == 30
    assert TrainRun.from_dict(TrainRun(5, "cosine", 0.2).to_dict()) == TrainRun(5, "cosine", 0.2)


def test_budget_reads_sweeps_and_shares() -> None:
    assert parse_budget(4) == Budget(sweeps=4.0)
    assert parse_budget("6x") == Budget(sweeps=6.0)
    assert parse_budget("5%") == Budget(share=0.05)
    assert parse_budget("5%").allowance(sweep_steps=100, horizon=100_000) == 4900
    assert parse_budget(4).allowance(sweep_steps=100, horizon=None) == 300
    # A share smaller than the sweep leaves nothing for trials, never a negative allowance.
    assert parse_budget("5%").allowance(sweep_steps=100, horizon=400) == 0
    with pytest.raises(ValueError, match="needs the run's length"):
        parse_budget("5%").allowance(100, None)
    for bad in ("abc", "0%", "150%", 0.5, True):
        with pytest.raises(ValueError):
            parse_budget(bad)


def test_survivors_halve_down_to_the_finalists() -> None:
    assert survivors_per_rung(6, 4) == (6, 3, FINALISTS, FINALISTS)
    assert survivors_per_rung(8, 3) == (8, 4, 2)
    assert survivors_per_rung(2, 3) == (2, 2, 2)


def test_rung_plan_fits_the_allowance_and_doubles() -> None:
    plan = plan_rungs(
        sweep_steps=100, horizon=100_000, allowance=300, budget_text="4x", val_batches=None
    )
    assert plan is not None
    assert plan.cost_steps <= 300
    assert all(b == 2 * a for a, b in itertools.pairwise(plan.rungs))
    assert plan.rungs[0] >= 10  # MIN_FIRST_RUNG_FRACTION of the sweep
    # Longer than independent trials of the same total cost could be (300 / 7 candidates).
    assert plan.final_steps > 300 / 7


def test_rung_plan_stops_at_the_horizon_and_counts_validation() -> None:
    plan = plan_rungs(
        sweep_steps=100, horizon=200, allowance=5000, budget_text="50x", val_batches=8
    )
    assert plan is not None and plan.final_steps == 200
    assert plan.val_batches == 8  # all the data holds
    assert plan.cost_steps == plan.train_steps + plan.evaluations * 8
    assert "reaching 100% of the 200-step run" in plan.describe()
    assert (
        plan_rungs(sweep_steps=100, horizon=400, allowance=20, budget_text="x", val_batches=5)
        is None
    )


def test_keep_for_longer_keeps_the_best_and_the_lrs_below_it_first() -> None:
    # Short rungs favour high LRs, and the best LR falls with training: after the best, the
    # LRs below it continue (nearest first), then those above; diverged trials never do.
    trials = [
        trial(0.05, 1.2),
        trial(0.1, 1.0),
        trial(0.2, 0.5),
        trial(0.4, 0.6),
        trial(0.8, None, diverged=True),
    ]
    assert [t.lr for t in keep_for_longer(trials, 2)] == [0.2, 0.1]
    assert [t.lr for t in keep_for_longer(trials, 3)] == [0.2, 0.1, 0.05]
    assert [t.lr for t in keep_for_longer(trials, 9)] == [0.2, 0.1, 0.05, 0.4]
    # Equal scores: the lower LR is the best.
    tied = [trial(0.1, 0.5), trial(0.2, 0.5), trial(0.4, 0.9)]
    assert [t.lr for t in keep_for_longer(tied, 1)] == [0.1]


def test_best_lr_at_reads_the_parabola_vertex() -> None:
    # Loss = (log10 lr + 2.1)**2: the minimum sits at 10**-2.1, between grid points.
    lrs = [10 ** (k / 4) for k in range(-12, -5)]
    rung = [trial(lr, (math.log10(lr) + 2.1) ** 2 + 1) for lr in lrs]
    assert best_lr_at(rung) == pytest.approx(10**-2.1)
    # On an edge it is the edge trial's LR.
    assert best_lr_at(rung[:2]) == rung[1].lr


def test_drift_carries_the_answer_down_as_the_best_lr_falls() -> None:
    lrs = [10 ** (k / 4) for k in range(-12, -3)]

    def rung(steps: int, best: float) -> list[Trial]:
        return [trial(lr, (math.log10(lr) - best) ** 2 + 1, steps) for lr in lrs]

    # The best falls 0.15 decades per doubling: exponent 0.5.
    rungs = [rung(10, -1.5), rung(20, -1.5 - 0.15), rung(40, -1.5 - 0.30)]
    drift = estimate_drift(rungs, horizon=640, prior=0.5)
    assert drift is not None
    assert drift.exponent == pytest.approx(0.5, abs=0.01)
    assert drift.factor == pytest.approx(16**-0.5, rel=0.02)
    assert drift.observed[0][0] == 10 and drift.to_steps == 640


def test_drift_shrinks_toward_the_prior_and_is_bounded() -> None:
    lrs = [10 ** (k / 4) for k in range(-12, -3)]
    flat = [[trial(lr, (math.log10(lr) + 2) ** 2, s) for lr in lrs] for s in (10, 20)]
    drift = estimate_drift(flat, horizon=1000, prior=0.3, prior_weight=2.0)
    assert drift is not None
    # One doubling observed with no drift, the prior weighted as two: (2 * 0.3 + 0) / 3.
    assert drift.exponent == pytest.approx(0.2)
    huge = estimate_drift(flat, horizon=10**9, prior=1.0, prior_weight=1e9)
    assert huge is not None and huge.factor == pytest.approx(10**-MAX_DRIFT_DECADES)
    reached = estimate_drift(flat, horizon=20, prior=1.0)
    assert reached is not None and reached.factor == 1.0
    assert estimate_drift([[trial(0.1, None, diverged=True)]], horizon=100) is None


def test_rungs_whose_finalists_would_barely_train_are_not_planned() -> None:
    # 110 steps after a 90-step sweep: finalists of about a dozen steps, under half the sweep.
    assert (
        plan_rungs(sweep_steps=90, horizon=400, allowance=110, budget_text="50%", val_batches=5)
        is None
    )
    # ... unless the run itself is that short: the finalists then train all of it.
    short = plan_rungs(sweep_steps=90, horizon=30, allowance=400, budget_text="x", val_batches=5)
    assert short is not None and short.final_steps == 30


def test_carry_to_run_moves_the_answer_down_by_the_prior_and_says_so() -> None:
    from lrfind.analysis.horizon import carry_to_run, drift_factor
    from lrfind.results import Analysis, Confidence, LRRange, Suggestion, TrainRun

    answer = Analysis(
        Suggestion("lrfind+refine", 1e-2),
        LRRange(1e-3, 3e-2),
        Confidence("high", ("the highest trial (0.01) had the best val loss: try higher LRs too",)),
        (),
    )
    carried, drift = carry_to_run(answer, 100, TrainRun(10_000), 0.3, "refine's trials trained")
    assert drift is not None and drift.factor == pytest.approx(100**-0.3)
    assert carried.suggestion.lr == pytest.approx(10 ** (-2 - 0.5))  # 0.25x, on the grid
    assert carried.confidence.level == "medium"
    assert carried.confidence.reasons[0].startswith(
        "for a 10000-step constant-LR run: refine's trials trained 100 steps"
    )
    assert not any("try higher" in r for r in carried.confidence.reasons)
    assert carried.lr_range.min_lr < carried.suggestion.lr <= carried.lr_range.max_lr
    # A scheduled run's peak drifts less; a run no longer than the trials is not carried.
    _, linear = carry_to_run(answer, 100, TrainRun(10_000, "linear"), 0.3, "x")
    assert linear is not None and linear.factor > drift.factor
    assert carry_to_run(answer, 500, TrainRun(400), 0.3, "x") == (answer, None)
    assert drift_factor(10, 10**9, 1.0) == pytest.approx(10**-MAX_DRIFT_DECADES)


def test_the_horizon_window_reaches_where_the_prior_puts_the_long_runs_answer() -> None:
    from lrfind.analysis.horizon import horizon_candidates
    from lrfind.analysis.suggest import analyze
    from lrfind.results import TrainRun
    from tests.fixtures.results import make_history

    history = make_history("clean")
    analysis = analyze(history, "lrfind")
    assert analysis.suggestion.lr is not None
    short = horizon_candidates(history, analysis, 6, TrainRun(history.steps), 0.3)
    long = horizon_candidates(history, analysis, 6, TrainRun(1000 * history.steps), 0.3)
    assert len(short) == len(long) == 6
    assert long[-1] == short[-1]  # the same top (the sweep's max_lr)
    predicted = analysis.suggestion.lr * 1000**-0.3
    assert long[0] < predicted < long[-1]  # the long run's answer is inside the window
    assert long[0] < short[0]
