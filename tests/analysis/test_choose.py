"""The one choice rule (lrfind.analysis.choose), the search stage and the trial budget.

Pure tests on synthetic trials with known answers: no torch, no training.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrfind.analysis import budget
from lrfind.analysis.budget import plan_trials
from lrfind.analysis.choose import (
    beats_start,
    choose,
    difference_standard_error,
    judge,
)
from lrfind.analysis.curve import ema_smooth
from lrfind.analysis.grid import GRID_PER_DECADE, grid_exponent, grid_lr
from lrfind.analysis.refine import choose_refined, choose_searched
from lrfind.analysis.search import (
    next_bracket_lr,
    next_search_lr,
    search_candidates,
    stable_window,
)
from lrfind.analysis.suggest import analyze
from lrfind.results import History, Trial

# Every trial sees the same validation batches: a batch's difficulty is shared by all trials,
# so paired differences are precise even where the batches differ a lot.
DIFFICULTY = np.random.default_rng(0).normal(0.0, 0.3, 20)


def trial(lr: float, val: float, noise: float = 0.01, seed: int = 0, steps: int = 50) -> Trial:
    """A trial whose 20 validation batches average exactly ``val``, each off by ``noise``."""
    jitter = np.random.default_rng(seed).normal(0.0, noise, DIFFICULTY.size)
    batches = val + DIFFICULTY + jitter
    batches += val - batches.mean()
    return Trial(
        lr=lr,
        train_loss=val,
        val_loss=float(batches.mean()),
        diverged=False,
        steps=steps,
        val_batch_losses=tuple(float(b) for b in batches),
        val_batch_sizes=(32,) * DIFFICULTY.size,
    )


def diverged(lr: float) -> Trial:
    return Trial(lr=lr, train_loss=math.inf, val_loss=None, diverged=True, steps=7)


def grid(*exponents: int) -> list[float]:
    return [grid_lr(k) for k in exponents]


# --------------------------------------------------------------------------- the rule


def test_a_tied_plateau_chooses_its_lowest_lr() -> None:
    lrs = grid(-12, -11, -10, -9)
    scores = [0.50, 0.402, 0.401, 0.400]
    trials = [trial(lr, s, seed=i) for i, (lr, s) in enumerate(zip(lrs, scores, strict=True))]
    choice = choose(trials)
    assert choice.best_lr == lrs[3]
    assert choice.tied == (False, True, True, True)
    assert choice.chosen_lr == lrs[1]


def test_a_clearly_better_higher_lr_is_chosen() -> None:
    lrs = grid(-12, -11, -10)
    trials = [trial(lrs[0], 0.42, seed=1), trial(lrs[1], 0.41, seed=2), trial(lrs[2], 0.30)]
    choice = choose(trials)
    assert choice.chosen_lr == lrs[2]
    assert choice.tied == (False, False, True)


def test_the_gpt2_case_never_chooses_the_lr_its_trials_show_worse() -> None:
    """Issue 12: refine chose 5.62e-4 (val 2.698) over 1.78e-3 (2.617) with confidence high."""
    trials = [
        trial(5.62e-4, 2.698, noise=0.02, seed=1),
        trial(1e-3, 2.633, noise=0.02, seed=2),
        trial(1.78e-3, 2.617, noise=0.02, seed=3),
    ]
    choice = choose(trials)
    assert choice.chosen_lr in (1e-3, 1.78e-3)
    verdict = judge(trials, 5.62e-4)
    assert verdict.confirmed is False
    assert verdict.best_lr == 1.78e-3
    assert judge(trials, choice.chosen_lr).confirmed is True


def test_ties_stop_at_an_untied_or_diverged_trial() -> None:
    lrs = grid(-12, -11, -10, -9)
    noisy = trial(lrs[0], 0.41, noise=0.3, seed=4)  # tied by its noise alone
    trials = [noisy, trial(lrs[1], 0.60, seed=5), trial(lrs[2], 0.401, seed=6), trial(lrs[3], 0.4)]
    choice = choose(trials)
    assert choice.tied[0] and not choice.tied[1]
    assert choice.chosen_lr == lrs[2]
    trials[1] = diverged(lrs[1])
    assert choose(trials).chosen_lr == lrs[2]


def test_without_per_batch_records_only_equal_scores_tie() -> None:
    plain = [
        Trial(lr, 0.5, v, False, 20) for lr, v in zip(grid(-8, -7), (0.5001, 0.5), strict=True)
    ]
    assert choose(plain).chosen_lr == grid_lr(-7)
    equal = [Trial(lr, 0.5, 0.5, False, 20) for lr in grid(-8, -7)]
    assert choose(equal).chosen_lr == grid_lr(-8)


def test_the_standard_error_is_the_paired_one() -> None:
    first = Trial(1e-3, 1.0, 1.0, False, 10, (1.0, 2.0, 3.0, 4.0), (8, 8, 8, 8))
    second = Trial(2e-3, 1.0, 1.0, False, 10, (1.1, 1.9, 3.2, 4.0), (8, 8, 8, 8))
    differences = np.array([-0.1, 0.1, -0.2, 0.0])
    expected = differences.std(ddof=1) / 2
    assert difference_standard_error(first, second, "val_loss") == pytest.approx(expected)
    # The batches' own spread (1..4) does not enter: only how the differences vary.
    unequal = Trial(2e-3, 1.0, 1.0, False, 10, (1.1, 1.9, 3.2, 4.0), (8, 8, 8, 4))
    assert difference_standard_error(first, unequal, "val_loss") == 0.0
    short = Trial(2e-3, 1.0, 1.0, False, 10, (1.1,), (8,))
    assert difference_standard_error(first, short, "val_loss") == 0.0


def test_weighted_batches_give_the_weighted_standard_error() -> None:
    sizes = (30, 30, 10)
    first = Trial(1e-3, 1.0, 1.0, False, 10, (1.0, 1.0, 1.0), sizes)
    second = Trial(2e-3, 1.0, 1.0, False, 10, (0.9, 1.1, 1.3), sizes)
    shares = np.array(sizes) / sum(sizes)
    d = np.array([0.1, -0.1, -0.3])
    mean = (shares * d).sum()
    expected = math.sqrt(3 / 2 * (shares**2 * (d - mean) ** 2).sum())
    assert difference_standard_error(first, second, "val_loss") == pytest.approx(expected)


def test_training_loss_pairs_the_tail_steps_without_validation() -> None:
    a = Trial(1e-3, 1.0, None, False, 40, train_tail=(1.00, 1.05, 0.95, 1.00))
    b = Trial(2e-3, 0.99, None, False, 40, train_tail=(0.98, 1.04, 0.95, 0.99))
    choice = choose([a, b])
    assert choice.metric == "train_loss"
    assert choice.best_lr == 2e-3
    # Paired by step: differences 0.02, 0.01, 0, 0.01 -> standard error 0.0041 < 0.01.
    assert difference_standard_error(a, b, "train_loss") == pytest.approx(0.00408, abs=1e-5)
    assert choice.tied == (False, True)


def test_beats_start_needs_a_drop_beyond_the_noise() -> None:
    start = trial(0.0, 1.00, seed=9)
    close = [trial(1e-3, 0.999, seed=10), trial(1e-2, 0.9995, seed=11)]
    assert beats_start(choose(close), start) is False
    assert beats_start(choose([trial(1e-3, 0.8)]), start) is True
    assert beats_start(choose(close), 1.5) is True
    assert beats_start(choose(close), None) is None
    assert beats_start(choose([diverged(1e-3)]), start) is False


def test_verify_notes_trials_that_never_left_the_start() -> None:
    start = trial(0.0, 1.00, seed=9)
    close = [trial(1e-3, 0.999, seed=10), trial(1e-2, 0.9995, seed=11)]
    verdict = judge(close, 1e-3, start=start)
    assert verdict.note == (
        "no trial lowered the val loss below its start (1) by more than the noise in 50 steps: "
        "give them more --steps"
    )
    assert judge(close, 1e-3, start=1.5).note is None


scored_trials = st.lists(
    st.tuples(
        st.integers(min_value=-28, max_value=4),
        st.one_of(st.none(), st.floats(min_value=-2.0, max_value=5.0)),
        st.floats(min_value=0.0, max_value=0.5),
        st.integers(min_value=0, max_value=10_000),
    ),
    min_size=1,
    max_size=7,
    unique_by=lambda item: item[0],
)


@settings(max_examples=150, deadline=None)
@given(scored_trials)
def test_refine_and_verify_agree_on_any_trials(raw: list[tuple]) -> None:
    trials = [
        diverged(grid_lr(k)) if value is None else trial(grid_lr(k), value, noise, seed)
        for k, value, noise, seed in raw
    ]
    choice = choose(trials)
    for index, one in enumerate(choice.trials):
        assert judge(trials, one.lr).confirmed is choice.tied[index]
    if choice.chosen is None:
        assert all(t.diverged for t in trials)
        return
    assert choice.tied[choice.chosen] and choice.tied[choice.best]
    assert choice.chosen <= choice.best
    best_score = choice.scores[choice.best]
    assert all(s >= best_score for s in choice.scores)
    assert judge(trials, choice.chosen_lr).confirmed is True
    refined = choose_refined(clean_history(), analyze(clean_history()), trials)
    assert refined.suggestion.lr == choice.chosen_lr


# --------------------------------------------------------------------------- bracketing


def test_next_bracket_extends_past_an_edge_then_bisects_the_larger_gap() -> None:
    trials = [
        trial(lr, s, seed=i)
        for i, (lr, s) in enumerate(zip(grid(-8, -4, 0), (1, 0.5, 0.9), strict=True))
    ]
    # Best in the middle, both gaps 4: halve the gap towards the better neighbour (k=0).
    assert next_bracket_lr(trials, 4, -12, 0) == grid_lr(-2)
    assert next_bracket_lr(trials[1:], 4, -12, 0) == grid_lr(-8)  # lowest is best: go lower
    assert next_bracket_lr(trials[1:], 4, -4, 0) == grid_lr(-2)  # ...unless at the floor
    tight = [
        trial(lr, s, seed=i)
        for i, (lr, s) in enumerate(zip(grid(-5, -4, -3), (1, 0.5, 1), strict=True))
    ]
    assert next_bracket_lr(tight, 4, None, None) is None
    assert next_bracket_lr([diverged(grid_lr(-3))], 1, None, None) == grid_lr(-4)
    assert next_bracket_lr([], 1, None, None) is None


# --------------------------------------------------------------------------- search


def flat_history(*, blow_up: bool = True, seed: int = 0) -> History:
    """A sweep 1e-7..10 whose loss stays at 2.3 (noise 0.02), then blows up above 0.1."""
    rng = np.random.default_rng(seed)
    lrs = np.logspace(-7, 1, 100)
    losses = 2.3 + rng.normal(0.0, 0.02, 100)
    stop = "completed"
    if blow_up:
        rising = np.log10(lrs) > -1
        losses[rising] += 3.0 * (np.log10(lrs[rising]) + 1)
        keep = int(np.argmax(losses > 9.0)) or 100
        lrs, losses, stop = lrs[:keep], losses[:keep], "diverged"
    return History(tuple(lrs), tuple(losses), tuple(ema_smooth(losses, 0.98)), stop)  # type: ignore[arg-type]


def clean_history() -> History:
    lrs = np.logspace(-7, 1, 100)
    x = np.log10(lrs)
    losses = 2.3 - 2.0 / (1 + np.exp(-(x + 3) / 0.25)) + 0.3 * np.exp(3 * (x + 1.5))
    keep = int(np.argmax(losses > 4.0)) or 100
    smoothed = ema_smooth(losses[:keep], 0.98)
    return History(tuple(lrs[:keep]), tuple(losses[:keep]), tuple(smoothed), "diverged")


def test_a_flat_sweep_has_a_stable_window_below_its_rise() -> None:
    history = flat_history()
    assert analyze(history).suggestion.lr is None
    window = stable_window(history)
    assert window is not None and window.rose
    assert window.low == -28
    assert 0.05 <= grid_lr(window.high) <= 0.1
    assert stable_window(clean_history()) is None
    completed = stable_window(flat_history(blow_up=False))
    assert completed is not None and not completed.rose and completed.high == 4


def test_search_starts_a_decade_apart_from_the_top_of_the_window() -> None:
    history = flat_history()
    window = stable_window(history)
    assert window is not None
    candidates = search_candidates(history, 3)
    assert [grid_exponent(lr) for lr in candidates] == [
        window.high - 2 * GRID_PER_DECADE,
        window.high - GRID_PER_DECADE,
        window.high,
    ]
    assert search_candidates(clean_history(), 3) == []
    assert search_candidates(history, 0) == []


def test_search_on_a_flat_sweep_answers_with_method_search_and_at_most_medium() -> None:
    history = flat_history()
    base = analyze(history)
    high = stable_window(history).high  # type: ignore[union-attr]
    trials = [
        trial(grid_lr(high - 8), 2.25, seed=1),
        trial(grid_lr(high - 4), 1.60, seed=2),
        trial(grid_lr(high), 1.90, seed=3),
    ]
    assert next_search_lr(history, trials) == grid_lr(high - 2)  # towards the better side
    trials.append(trial(grid_lr(high - 2), 1.55, seed=4))
    start = trial(0.0, 2.30, seed=5)
    result = choose_searched(history, base, trials, start)
    assert result.suggestion.method == "search"
    assert result.suggestion.lr == grid_lr(high - 2)
    assert result.confidence.level == "medium"
    assert result.confidence.reasons[0].startswith(
        "the sweep showed no clear descent: 4 constant-LR trials searched"
    )
    assert result.lr_range.min_lr is not None and result.lr_range.max_lr is not None
    assert result.lr_range.min_lr < grid_lr(high - 2) <= result.lr_range.max_lr


def test_search_reasons_are_true_of_the_trials() -> None:
    history = flat_history(blow_up=False)
    base = analyze(history)
    trials = [
        trial(lr, s, seed=i)
        for i, (lr, s) in enumerate(zip(grid(-4, 0, 4), (2, 1.5, 1), strict=True))
    ]
    result = choose_searched(history, base, trials, 2.3)
    assert result.suggestion.lr == grid_lr(4)
    assert result.confidence.level == "low"
    assert "the highest trial (1.00e+01) had the best val loss: try higher LRs too" in (
        result.confidence.reasons
    )


def test_search_finds_nothing_when_no_trial_trains() -> None:
    history = flat_history()
    base = analyze(history)
    lrs = search_candidates(history, 3)
    gone = choose_searched(history, base, [diverged(lr) for lr in lrs], 2.3)
    assert gone.suggestion.lr is None and gone.confidence.level == "none"
    assert gone.suggestion.reason == "every search trial diverged"
    start = trial(0.0, 2.30, seed=5)
    still = [trial(lr, 2.2999, seed=6 + i) for i, lr in enumerate(lrs)]
    flat = choose_searched(history, base, still, start)
    assert flat.suggestion.lr is None
    assert (
        flat.suggestion.reason
        == "no search trial lowered the val loss below its start beyond the noise"
    )


# --------------------------------------------------------------------------- budget


@pytest.mark.parametrize("sweep_steps", [20, 73, 100, 1000])
@pytest.mark.parametrize("val_batches", [None, 3, 9, 400])
@pytest.mark.parametrize("stage", ["refine", "search"])
def test_the_default_plan_fits_the_budget(
    sweep_steps: int, val_batches: int | None, stage: budget.Stage
) -> None:
    plan = plan_trials(stage, sweep_steps=sweep_steps, budget=4.0, val_batches=val_batches)
    assert plan is not None
    assert plan.multiple <= 4.0 + 1e-9
    assert plan.cost_steps <= 3 * sweep_steps + 1e-9
    assert plan.steps <= budget.REFINE_STEPS_PER_SWEEP_STEP * sweep_steps
    assert plan.steps >= budget.MIN_TRIAL_FRACTION * sweep_steps
    if val_batches is None:
        assert plan.val_batches is None
    else:
        assert plan.val_batches is not None
        assert plan.val_batches <= min(val_batches, budget.MAX_VAL_BATCHES)
        assert plan.val_batches * plan.val_batch_cost <= plan.trial_cost * 0.2 + 5


def test_plans_shrink_with_the_budget_and_stop_at_one() -> None:
    wide = plan_trials("refine", sweep_steps=100, budget=4.0, val_batches=10)
    assert wide is not None and (wide.first, wide.trials) == (3, 4)
    tight = plan_trials("refine", sweep_steps=100, budget=1.8, val_batches=10)
    assert tight is not None and tight.trials < wide.trials
    assert tight.cost_steps <= 80 + 1e-9
    assert plan_trials("refine", sweep_steps=100, budget=1.0, val_batches=10) is None
    big = plan_trials("refine", sweep_steps=100, budget=50.0, val_batches=10)
    assert big is not None and big.steps == 200  # capped at twice the sweep


def test_explicit_sizes_are_honoured_and_the_plan_says_what_they_cost() -> None:
    plan = plan_trials(
        "refine", sweep_steps=100, budget=4.0, val_batches=10, candidates=5, steps=200
    )
    assert plan is not None and (plan.first, plan.trials, plan.steps) == (5, 5, 200)
    assert plan.multiple > 4.0
    assert plan.describe().startswith("refine planned: 5 trials x 200 steps + 10 val batches")
    with pytest.raises(ValueError, match="budget must be"):
        plan_trials("refine", sweep_steps=100, budget=0.5, val_batches=None)


def test_the_plan_line_names_the_trials_and_the_multiple() -> None:
    plan = plan_trials("refine", sweep_steps=100, budget=4.0, val_batches=9)
    assert plan is not None
    assert plan.describe() == (
        f"refine planned: 3 trials (+1 if needed) x {plan.steps} steps + 9 val batches, "
        f"at most ~{math.ceil(plan.cost_steps)} steps "
        f"({plan.multiple:.1f}x the sweep's compute with it; budget 4x)"
    )
