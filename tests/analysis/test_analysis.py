"""Tests for lrfind.analysis: synthetic curves with known answers, refine, and property tests."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrfind.analysis import curve
from lrfind.analysis import suggest as suggest_module
from lrfind.analysis.curve import describe_curve, ema_smooth, slopes
from lrfind.analysis.grid import GRID_STEP, grid_exponent, grid_lr
from lrfind.analysis.refine import choose_refined, next_refine_candidate, refine_candidates
from lrfind.analysis.suggest import DEFAULT_METHOD, METHODS, analyze, suggest
from lrfind.engine.ladder import lr_ladder
from lrfind.format import format_lr
from lrfind.results import RAW_DIVERGE_STEPS, Analysis, History, Trial

# The clean curve: plateau at 2.3, sigmoid descent (in log10 lr) centred on 1e-3 with a quarter
# decade scale down to 0.3, then a blow-up that starts around 1e-1.
CENTRE, WIDTH = -3.0, 0.25
# Where 80% of the sigmoid's descent is done (max_lr) and lrfind's answer (max_lr / 10**0.5).
MAX_LR_LOG10 = CENTRE + WIDTH * math.log(4)
LRFIND_LOG10 = MAX_LR_LOG10 - 0.5


def clean_loss(x: np.ndarray) -> np.ndarray:
    descent = 2.0 / (1 + np.exp(-(x - CENTRE) / WIDTH))
    blow_up = 0.3 * np.exp(3 * (x + 1.5))
    return 2.3 - descent + blow_up


def make_history(
    loss_of_log_lr,
    *,
    steps: int = 100,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    noise: float = 0.0,
    seed: int = 0,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
    mode: str = "exp",
) -> History:
    """Emulate the engine: the ladder, noisy losses, the EMA, the stop on divergence or NaN."""
    rng = np.random.default_rng(seed)
    lrs = lr_ladder(steps, start_lr, end_lr, mode)  # type: ignore[arg-type]
    raw = loss_of_log_lr(np.log10(lrs)) + noise * rng.standard_normal(steps)
    smoothed = ema_smooth(raw, beta)
    kept, best, streak = 0, math.inf, 0
    stop = "completed"
    for index in range(steps):
        kept = index + 1
        if not math.isfinite(raw[index]):
            stop = "non_finite"
            break
        best = min(best, smoothed[index])
        scale = max(abs(best), abs(smoothed[0] - best))
        threshold = diverge_factor * best if best > 0 else best + (diverge_factor - 1) * scale
        streak = streak + 1 if scale > 0 and raw[index] > threshold else 0
        if scale > 0 and (smoothed[index] > threshold or streak >= RAW_DIVERGE_STEPS):
            stop = "diverged"
            break
    return History(
        lrs=tuple(lrs[:kept]),
        losses=tuple(float(v) for v in raw[:kept]),
        smoothed_losses=tuple(float(v) for v in smoothed[:kept]),
        stop_reason=stop,  # type: ignore[arg-type]
    )


def assert_range_ordered(result: Analysis) -> None:
    lr = result.suggestion.lr
    if lr is None:
        return
    assert result.lr_range.min_lr is not None and result.lr_range.max_lr is not None
    assert result.lr_range.min_lr < lr <= result.lr_range.max_lr


# --------------------------------------------------------------------------- smoothing, slopes


def test_ema_smooth_matches_the_engines_step_by_step_formula() -> None:
    losses = [2.3, 2.1, 2.4, 1.7, 1.2, 0.9, 1.5, 0.4]
    beta = 0.9
    expected, average = [], 0.0
    for step, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        expected.append(average / (1 - beta ** (step + 1)))
    np.testing.assert_allclose(ema_smooth(losses, beta), expected, rtol=1e-12)


def test_ema_smooth_beta_zero_is_identity_and_first_value_is_unbiased() -> None:
    losses = [3.0, 1.0, 2.0]
    np.testing.assert_array_equal(ema_smooth(losses, 0.0), losses)
    assert ema_smooth(losses, 0.98)[0] == pytest.approx(3.0)


def test_ema_smooth_propagates_non_finite_values() -> None:
    smoothed = ema_smooth([1.0, 2.0, float("nan"), 1.0], 0.5)
    assert np.isfinite(smoothed[:2]).all() and np.isnan(smoothed[2:]).all()


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5])
def test_ema_smooth_rejects_beta_outside_unit_interval(beta: float) -> None:
    with pytest.raises(ValueError, match="beta"):
        ema_smooth([1.0], beta)


def test_slopes_are_per_decade_not_per_unit_lr() -> None:
    lrs = lr_ladder(50, 1e-6, 1.0)
    losses = 5 - 2 * np.log10(lrs)
    np.testing.assert_allclose(slopes(lrs, losses), -2.0, rtol=1e-9)


# --------------------------------------------------------------------------- known answers


def test_clean_descent_gives_the_expected_answer_range_and_high_confidence() -> None:
    result = analyze(make_history(clean_loss))
    assert result.suggestion.method == DEFAULT_METHOD
    assert result.suggestion.lr is not None
    assert abs(math.log10(result.suggestion.lr) - LRFIND_LOG10) < 0.2
    assert result.lr_range.max_lr is not None
    assert abs(math.log10(result.lr_range.max_lr) - MAX_LR_LOG10) < 0.2
    assert_range_ordered(result)
    assert result.confidence.level == "high", result.confidence.reasons
    assert set(result.methods) == set(METHODS)
    assert all(s.lr is not None for s in result.methods.values())


def test_suggestion_sits_where_the_loss_falls_fast_not_at_the_minimum() -> None:
    shape = describe_curve(make_history(clean_loss))
    lr = suggest(make_history(clean_loss)).lr
    assert lr is not None
    index = int(np.argmin(np.abs(shape.lrs - lr)))
    assert shape.trend_slope[index] < 0
    assert lr < shape.lrs[shape.lowest] / 10


def test_baseline_methods_follow_their_rules_on_an_unsmoothed_curve() -> None:
    history = make_history(clean_loss, beta=0.0)
    lrs = np.asarray(history.lrs)
    losses = np.asarray(history.losses)
    steepest = suggest(history, "steepest")
    assert steepest.index is not None
    # The sigmoid's steepest point is its centre.
    assert abs(math.log10(lrs[steepest.index]) - CENTRE) < 0.1
    minimum = suggest(history, "minimum")
    assert minimum.lr == pytest.approx(lrs[int(np.argmin(losses))] / 10)
    valley = suggest(history, "valley")
    # One long decreasing run from the start to the minimum: its middle.
    assert valley.index is not None
    assert abs(valley.index - int(np.argmin(losses)) / 2) <= 6


@pytest.mark.parametrize("seed", range(20))
def test_noisy_descent_answer_is_stable_across_seeds(seed: int) -> None:
    result = analyze(make_history(clean_loss, noise=0.08, seed=seed))
    assert result.suggestion.lr is not None
    assert abs(math.log10(result.suggestion.lr) - LRFIND_LOG10) < 0.3
    assert result.confidence.level in ("high", "medium", "low")
    assert_range_ordered(result)


def test_noisy_answers_spread_less_than_2x() -> None:
    answers = [
        analyze(make_history(clean_loss, noise=0.08, seed=seed)).suggestion.lr for seed in range(20)
    ]
    assert all(a is not None for a in answers)
    assert max(answers) / min(answers) < 2.0  # type: ignore[type-var, operator]


def test_flat_curve_has_no_answer() -> None:
    result = analyze(make_history(lambda x: np.full_like(x, 2.3)))
    assert result.suggestion.lr is None
    assert "no clear descent" in result.suggestion.reason
    assert result.confidence.level == "none"
    assert result.lr_range.min_lr is None and result.lr_range.max_lr is None
    assert all(s.lr is None for s in result.methods.values())
    # The loss never fell and never blew up: sweep further.
    assert result.confidence.try_range == (1e-7, 1000.0)


def test_a_sweep_that_ends_before_learning_starts_says_to_go_higher() -> None:
    """Bug: a completed, too-low sweep whose loss crept up at the end proposed no try_range."""
    creeping_up = make_history(
        lambda x: 2.3 + 0.05 * np.clip(x + 4.2, 0, None), start_lr=1e-5, end_lr=1e-4
    )
    result = analyze(creeping_up)
    assert creeping_up.stop_reason == "completed"
    assert result.suggestion.lr is None and "no clear descent" in result.suggestion.reason
    assert result.confidence.try_range == pytest.approx((1e-5, 1e-2))


def test_a_sweep_stopped_by_divergence_without_descent_proposes_no_wider_range() -> None:
    blows_up = make_history(lambda x: 2.3 + 50 * np.clip(x + 1.0, 0, None) ** 2)
    result = analyze(blows_up)
    assert blows_up.stop_reason == "diverged"
    assert result.suggestion.lr is None
    assert result.confidence.try_range is None or result.confidence.try_range[1] <= 10.0


@pytest.mark.parametrize("seed", range(30))
def test_flat_noisy_curve_never_gets_a_confident_number(seed: int) -> None:
    result = analyze(make_history(lambda x: np.full_like(x, 2.3), noise=0.1, seed=seed))
    assert result.suggestion.lr is None or result.confidence.level == "low"


def test_flat_curve_that_only_blows_up_hints_at_more_steps() -> None:
    history = make_history(lambda x: 2.3 + 0.5 * np.exp(3 * (x + 0.5)), noise=0.01)
    result = analyze(history)
    assert result.suggestion.lr is None
    assert "more steps" in result.suggestion.reason


def test_immediate_divergence_has_no_answer_and_suggests_starting_lower() -> None:
    history = make_history(lambda x: 2.3 * np.exp(0.8 * (x + 7)))
    assert history.stop_reason == "diverged"
    result = analyze(history)
    assert result.suggestion.lr is None
    assert result.suggestion.reason.startswith("diverged immediately")
    assert result.confidence.level == "none"
    assert result.confidence.try_range is not None
    assert result.confidence.try_range[0] < history.lrs[0]


def test_divergence_within_a_few_steps_is_too_short_to_analyse() -> None:
    nan = float("nan")
    history = History(
        lrs=(1e-3, 2e-3, 4e-3, 8e-3),
        losses=(2.0, 5.0, 50.0, nan),
        smoothed_losses=(2.0, 3.5, 19.0, nan),
        stop_reason="non_finite",
    )
    result = analyze(history)
    assert result.suggestion.lr is None
    assert result.suggestion.reason.startswith("diverged immediately")


def test_nan_tail_gives_the_same_answer_as_the_finite_curve() -> None:
    finite = make_history(clean_loss)
    nan = float("nan")
    with_tail = History(
        lrs=(*finite.lrs, finite.lrs[-1] * 1.2, finite.lrs[-1] * 1.44),
        losses=(*finite.losses, nan, float("inf")),
        smoothed_losses=(*finite.smoothed_losses, nan, nan),
        stop_reason="non_finite",
    )
    assert analyze(with_tail).suggestion.lr == analyze(finite).suggestion.lr


def test_too_short_curve_has_no_answer() -> None:
    history = make_history(clean_loss, steps=6, start_lr=1e-5, end_lr=1e-1)
    result = analyze(history)
    assert result.suggestion.lr is None
    assert result.suggestion.reason.startswith("too short")
    assert result.confidence.level == "none"


def test_short_spurious_dip_early_does_not_move_the_answer() -> None:
    clean = analyze(make_history(clean_loss)).suggestion.lr

    def with_dip(x: np.ndarray) -> np.ndarray:
        dip = np.where(np.abs(x + 5.5) < 0.1, -1.5, 0.0)
        return clean_loss(x) + dip

    dipped = analyze(make_history(with_dip)).suggestion.lr
    assert clean is not None and dipped is not None
    assert abs(math.log10(dipped / clean)) < 0.1


def test_loss_still_falling_at_end_lr_is_low_confidence_and_asks_for_a_higher_end() -> None:
    history = make_history(clean_loss, start_lr=1e-7, end_lr=2e-3, steps=80)
    result = analyze(history)
    assert result.confidence.level == "low"
    assert any("still falling at end_lr" in reason for reason in result.confidence.reasons)
    assert result.confidence.try_range is not None
    assert result.confidence.try_range[1] > history.lrs[-1]


def test_loss_already_falling_at_start_lr_asks_for_a_lower_start() -> None:
    history = make_history(clean_loss, start_lr=10**-3.2, end_lr=10.0, steps=100)
    result = analyze(history)
    assert any("already falling at start_lr" in reason for reason in result.confidence.reasons)
    assert result.confidence.try_range is not None
    assert result.confidence.try_range[0] < history.lrs[0]


def test_answer_does_not_depend_on_the_losses_scale_or_offset() -> None:
    base = analyze(make_history(clean_loss, noise=0.05, seed=3)).suggestion.lr
    moved = analyze(
        make_history(lambda x: 10 * clean_loss(x) - 40, noise=0.5, seed=3)
    ).suggestion.lr
    assert base is not None and moved is not None
    assert abs(math.log10(moved / base)) < 0.1


def test_linear_ladder_is_analysed_without_error() -> None:
    history = make_history(clean_loss, start_lr=1e-4, end_lr=0.1, steps=200, mode="linear")
    result = analyze(history)
    assert_range_ordered(result)


def test_unknown_method_is_a_value_error_listing_the_valid_ones() -> None:
    history = make_history(clean_loss)
    for call in (lambda: suggest(history, "fastest"), lambda: analyze(history, "fastest")):
        with pytest.raises(ValueError, match="lrfind, steepest, minimum, valley"):
            call()


@pytest.mark.parametrize("method", METHODS)
def test_analyze_picks_the_requested_method(method: str) -> None:
    result = analyze(make_history(clean_loss), method)
    assert result.suggestion == result.methods[method]
    assert_range_ordered(result)


# --------------------------------------------------------------------------- refine


def trial(lr: float, val: float | None, *, diverged: bool = False, train: float = 1.0) -> Trial:
    return Trial(lr=lr, train_loss=train, val_loss=val, diverged=diverged, steps=100)


def test_refine_candidates_are_grid_values_topped_by_max_lr_below_the_blow_up() -> None:
    history = make_history(clean_loss)
    result = analyze(history)
    candidates = refine_candidates(history, result, 5)
    assert len(candidates) == 5
    exponents = [grid_exponent(lr) for lr in candidates]
    assert candidates == [10 ** (k / 4) for k in exponents]
    assert exponents == list(range(exponents[0], exponents[0] + 5))
    assert result.lr_range.max_lr is not None
    assert exponents[-1] == grid_exponent(result.lr_range.max_lr)
    shape = describe_curve(history)
    assert shape.rise_index is not None
    assert max(candidates) < shape.lrs[shape.rise_index]


def test_refine_candidates_are_the_same_grid_values_across_noisy_seeds() -> None:
    windows = set()
    for seed in range(10):
        history = make_history(clean_loss, noise=0.05, seed=seed)
        windows.add(tuple(refine_candidates(history, analyze(history), 5)))
    assert len(windows) <= 2


def test_refine_candidates_stay_below_an_early_blow_up() -> None:
    def steep_wall(x: np.ndarray) -> np.ndarray:
        return clean_loss(x) + 5 * np.exp(12 * (x + 2.4))

    history = make_history(steep_wall)
    shape = describe_curve(history)
    candidates = refine_candidates(history, analyze(history), 5)
    assert shape.rise_index is not None and candidates
    assert max(candidates) < shape.lrs[shape.rise_index]


def test_no_refine_candidates_without_an_answer_or_a_count() -> None:
    flat = make_history(lambda x: np.full_like(x, 2.3))
    assert refine_candidates(flat, analyze(flat), 5) == []
    history = make_history(clean_loss)
    assert refine_candidates(history, analyze(history), 0) == []
    assert len(refine_candidates(history, analyze(history), 3)) == 3


def test_choose_refined_picks_the_clear_best_and_keeps_the_methods() -> None:
    history = make_history(clean_loss)
    base = analyze(history)
    lrs = refine_candidates(history, base, 5)
    trials = [trial(lr, val) for lr, val in zip(lrs, [0.9, 0.5, 0.2, 0.45, 0.8], strict=True)]
    refined = choose_refined(history, base, trials)
    assert refined.suggestion.lr == lrs[2]
    assert refined.suggestion.method == "lrfind+refine"
    assert refined.methods == base.methods
    assert_range_ordered(refined)
    assert refined.lr_range.max_lr == pytest.approx(lrs[2] * 10**0.5)


def test_refined_min_lr_stays_within_a_decade_of_the_chosen_lr() -> None:
    # A noisy sweep can put "where the descent begins" far down a flat stretch: after trials the
    # range's base stays near the LR that trained (the diabetes config showed 1e-5 .. 1.8e-3).
    history = make_history(clean_loss)
    base = analyze(history)
    far = Analysis(
        base.suggestion, replace(base.lr_range, min_lr=1e-9), base.confidence, base.methods
    )
    lrs = refine_candidates(history, base, 5)
    trials = [trial(lr, val) for lr, val in zip(lrs, [0.9, 0.5, 0.2, 0.45, 0.8], strict=True)]
    refined = choose_refined(history, far, trials)
    assert refined.lr_range.min_lr == pytest.approx(lrs[2] / 10)
    # A sweep whose own min_lr is closer than that keeps it.
    kept = choose_refined(history, base, trials).lr_range.min_lr
    assert kept == pytest.approx(max(base.lr_range.min_lr or 0.0, lrs[2] / 10))


def noisy_trial(lr: float, val: float, seed: int) -> Trial:
    """A trial whose 8 validation batches average ``val``, each off by about 0.01."""
    batches = val + np.random.default_rng(seed).normal(0.0, 0.01, 8)
    batches += val - batches.mean()
    return Trial(lr, 1.0, val, False, 100, tuple(float(b) for b in batches), (16,) * 8)


def test_choose_refined_prefers_the_lower_lr_when_scores_are_within_noise() -> None:
    history = make_history(clean_loss)
    base = analyze(history)
    lrs = refine_candidates(history, base, 5)
    # lrs[4] scores best; lrs[2] and lrs[3] are within one standard error of it (the per-batch
    # noise is ~0.01 / sqrt(8) per trial): the lowest of them wins; lrs[1] is clearly worse.
    scores = [0.9, 0.5, 0.302, 0.301, 0.300]
    trials = [noisy_trial(lr, val, i) for i, (lr, val) in enumerate(zip(lrs, scores, strict=True))]
    assert choose_refined(history, base, trials).suggestion.lr == lrs[2]
    # Without per-batch records there is no noise estimate: the best trial wins.
    plain = [trial(lr, val) for lr, val in zip(lrs, scores, strict=True)]
    assert choose_refined(history, base, plain).suggestion.lr == lrs[4]


def test_choose_refined_ignores_diverged_trials_and_orders_by_lr() -> None:
    history = make_history(clean_loss)
    base = analyze(history)
    lrs = refine_candidates(history, base, 5)
    trials = [
        trial(lrs[4], None, diverged=True),
        trial(lrs[0], 0.9),
        trial(lrs[3], None, diverged=True),
        trial(lrs[2], 0.4),
        trial(lrs[1], 0.6),
    ]
    refined = choose_refined(history, base, trials)
    assert refined.suggestion.lr == lrs[2]
    # The candidates above it diverged: there is no reason to look higher.
    assert not any("highest" in reason for reason in refined.confidence.reasons)


def test_choose_refined_uses_train_loss_without_validation() -> None:
    history = make_history(clean_loss)
    base = analyze(history)
    lrs = refine_candidates(history, base, 3)
    trials = [trial(lr, None, train=t) for lr, t in zip(lrs, [0.2, 0.9, 0.9], strict=True)]
    refined = choose_refined(history, base, trials)
    assert refined.suggestion.lr == lrs[0]
    assert refined.confidence.reasons[-1] == (
        f"the lowest trial ({format_lr(lrs[0])}) had the best train loss: try lower LRs too"
    )


def test_choose_refined_with_every_trial_diverged_has_no_answer() -> None:
    history = make_history(clean_loss)
    base = analyze(history)
    trials = [trial(lr, None, diverged=True) for lr in refine_candidates(history, base, 5)]
    refined = choose_refined(history, base, trials)
    assert refined.suggestion.lr is None
    assert refined.suggestion.reason == "every refine trial diverged"
    assert refined.confidence.level == "none"
    assert refined.confidence.try_range is not None


def test_choose_refined_handles_negative_scores() -> None:
    history = make_history(clean_loss)
    base = analyze(history)
    lrs = refine_candidates(history, base, 5)
    trials = [trial(lr, val) for lr, val in zip(lrs, [-1.0, -2.0, -4.0, -2.0, -1.0], strict=True)]
    assert choose_refined(history, base, trials).suggestion.lr == lrs[2]


def test_next_refine_candidate_extends_down_while_the_lowest_trial_is_best() -> None:
    history = make_history(clean_loss)
    base = analyze(history)
    lrs = refine_candidates(history, base, 5)
    low = grid_exponent(lrs[0])
    # The lowest candidate is the best: a lower LR might do better still.
    trials = [trial(lr, val) for lr, val in zip(lrs, [0.29, 0.30, 0.30, 0.5, 0.9], strict=True)]
    assert next_refine_candidate(history, base, trials) == grid_lr(low - 1)
    # One step lower is worse: the best is bracketed.
    trials.append(trial(grid_lr(low - 1), 0.34))
    assert next_refine_candidate(history, base, trials) is None
    assert choose_refined(history, base, trials).suggestion.lr == lrs[0]


def test_next_refine_candidate_extends_up_when_the_highest_trial_is_best() -> None:
    history = make_history(clean_loss)
    base = analyze(history)
    lrs = refine_candidates(history, base, 5)
    trials = [trial(lr, val) for lr, val in zip(lrs, [0.9, 0.7, 0.5, 0.4, 0.3], strict=True)]
    shape = describe_curve(history)
    assert shape.rise_index is not None
    above = grid_lr(grid_exponent(lrs[-1]) + 1)
    assert above < shape.lrs[shape.rise_index]
    assert next_refine_candidate(history, base, trials) == above


def test_next_refine_candidate_never_steps_into_the_divergence_region() -> None:
    def steep_wall(x: np.ndarray) -> np.ndarray:
        return clean_loss(x) + 5 * np.exp(12 * (x + 2.4))

    history = make_history(steep_wall)
    base = analyze(history)
    lrs = refine_candidates(history, base, 5)
    shape = describe_curve(history)
    assert shape.rise_index is not None
    rise = shape.lrs[shape.rise_index]
    assert max(lrs) < rise
    # The best trial is the highest: extend upwards only while below the divergence region.
    trials = [trial(lr, val) for lr, val in zip(lrs, [0.9, 0.7, 0.5, 0.4, 0.3], strict=True)]
    while (extra := next_refine_candidate(history, base, trials)) is not None:
        assert extra < rise
        trials.append(trial(extra, trials[-1].val_loss * 0.9))  # type: ignore[operator]
    assert grid_lr(grid_exponent(max(t.lr for t in trials)) + 1) >= rise


def test_next_refine_candidate_is_none_once_bracketed_or_without_an_answer() -> None:
    history = make_history(clean_loss)
    base = analyze(history)
    lrs = refine_candidates(history, base, 5)
    trials = [trial(lr, val) for lr, val in zip(lrs, [0.9, 0.5, 0.2, 0.45, 0.8], strict=True)]
    assert next_refine_candidate(history, base, trials) is None
    assert next_refine_candidate(history, base, []) is None
    flat = make_history(lambda x: np.full_like(x, 2.3))
    assert next_refine_candidate(flat, analyze(flat), trials) is None


def test_next_refine_candidate_looks_lower_when_every_trial_diverged() -> None:
    history = make_history(clean_loss)
    base = analyze(history)
    lrs = refine_candidates(history, base, 5)
    trials = [trial(lr, None, diverged=True) for lr in lrs]
    assert next_refine_candidate(history, base, trials) == grid_lr(grid_exponent(lrs[0]) - 1)


# --------------------------------------------------------------------------- properties

finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-10, max_value=10),
)


@st.composite
def histories(draw: st.DrawFn) -> History:
    steps = draw(st.integers(min_value=0, max_value=60))
    if draw(st.booleans()):
        start = draw(st.floats(min_value=1e-8, max_value=1e-2))
        span = draw(st.floats(min_value=1e-3, max_value=1e4))
        lrs = tuple(lr_ladder(steps, start, start * (1 + span))) if steps >= 2 else (1e-3,) * steps
    else:
        lrs = tuple(draw(st.lists(finite_or_not, min_size=steps, max_size=steps)))
    losses = tuple(draw(st.lists(finite_or_not, min_size=steps, max_size=steps)))
    smoothed = tuple(draw(st.lists(finite_or_not, min_size=steps, max_size=steps)))
    if draw(st.booleans()):
        smoothed = tuple(float(v) for v in ema_smooth(losses, 0.9)) if steps else ()
    stop = draw(st.sampled_from(["completed", "diverged", "non_finite", "interrupted"]))
    return History(lrs=lrs, losses=losses, smoothed_losses=smoothed, stop_reason=stop)


@st.composite
def noisy_curves(draw: st.DrawFn) -> History:
    centre = draw(st.floats(min_value=-6, max_value=-1))
    width = draw(st.floats(min_value=0.05, max_value=1.0))
    depth = draw(st.floats(min_value=0.0, max_value=3.0))
    noise = draw(st.floats(min_value=0.0, max_value=0.5))
    wall = draw(st.floats(min_value=-3, max_value=1))
    seed = draw(st.integers(min_value=0, max_value=1000))

    def loss(x: np.ndarray) -> np.ndarray:
        descent = depth / (1 + np.exp(-(x - centre) / width))
        return 3.0 - descent + 0.5 * np.exp(4 * (x - wall))

    return make_history(loss, noise=noise, seed=seed, steps=draw(st.integers(10, 150)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_any_history_is_analysed_without_raising(history: History) -> None:
    for method in METHODS:
        result = analyze(history, method)
        assert_range_ordered(result)
        if result.suggestion.lr is None:
            assert result.confidence.level == "none"
        candidates = refine_candidates(history, result, 5)
        assert candidates == sorted(candidates)
        assert all(lr > 0 and math.isfinite(lr) for lr in candidates)


@settings(max_examples=80, deadline=None)
@given(noisy_curves())
def test_range_is_ordered_and_refine_is_consistent_on_curve_like_inputs(history: History) -> None:
    result = analyze(history)
    assert_range_ordered(result)
    if result.suggestion.lr is not None:
        assert result.confidence.level != "none"
        assert result.lr_range.min_lr is not None and result.lr_range.max_lr is not None
        assert result.lr_range.min_lr < result.lr_range.max_lr
    candidates = refine_candidates(history, result, 5)
    assert len(candidates) in (0, 5)
    if candidates:
        trials = [trial(lr, 1.0 + 0.1 * i) for i, lr in enumerate(candidates)]
        refined = choose_refined(history, result, trials)
        assert refined.suggestion.lr == candidates[0]
        assert_range_ordered(refined)


@settings(max_examples=100, deadline=None)
@given(
    histories(),
    st.lists(
        st.tuples(
            st.floats(min_value=1e-8, max_value=10),
            finite_or_not,
            st.one_of(st.none(), finite_or_not),
            st.booleans(),
        ),
        max_size=7,
    ),
)
def test_choose_refined_never_raises(history: History, raw: list[tuple]) -> None:
    trials = [Trial(lr, train, val, diverged, 10) for lr, train, val, diverged in raw]
    base = analyze(history)
    refined = choose_refined(history, base, trials)
    assert_range_ordered(refined)
    if refined.suggestion.lr is not None:
        assert refined.suggestion.lr in [t.lr for t in trials]
    extra = next_refine_candidate(history, base, trials)
    if extra is not None:
        assert extra > 0 and math.isfinite(extra)
        assert grid_exponent(extra) not in {grid_exponent(t.lr) for t in trials}


def test_constants_keep_the_documented_relations() -> None:
    assert curve.MIN_SIGNIFICANCE < curve.NOISY_SIGNIFICANCE
    assert 0 < suggest_module.DESCENT_BEGINS < suggest_module.MAX_LR_FRACTION < 1
    assert math.isclose(GRID_STEP, 10**0.25)


def drifting_flat_history(seed: int) -> History:
    """A small ResNet under SGD at 100 steps: 2.30 -> 2.45 over four decades, then a blow-up."""
    rng = np.random.default_rng(seed)
    lrs = np.logspace(-5, math.log10(0.15), 100)
    losses = 2.30 + 0.035 * (np.log10(lrs) + 5) + rng.normal(0, 0.04, 100)
    losses[-4:] += [0.3, 0.8, 2.0, 6.0]
    return History(tuple(lrs), tuple(losses), tuple(ema_smooth(losses, 0.98)), "diverged")


@pytest.mark.parametrize("seed", range(10))
def test_a_flat_noisy_curve_is_not_called_an_immediate_divergence(seed: int) -> None:
    """Bug: a flat curve that rose only at the end read "diverged immediately: start lower"."""
    result = analyze(drifting_flat_history(seed))
    reason = result.suggestion.reason
    assert result.suggestion.lr is None
    assert not reason.startswith("diverged immediately")
    assert "sweep.steps" in reason
    assert result.confidence.try_range is None  # a lower start_lr will not help


def test_flat_reason_names_the_flat_stretch_and_the_remedy() -> None:
    reasons = {analyze(drifting_flat_history(seed)).suggestion.reason for seed in range(10)}
    flat = [r for r in reasons if r.startswith("flat:")]
    assert flat
    assert flat[0].startswith("flat: the loss stayed within 10% of its start from 1.00e-05 to ")
    assert flat[0].endswith(
        "then rose: the model needs more steps per LR to show a descent; raise sweep.steps "
        "(e.g. 3x), a lower start_lr will not help"
    )


@pytest.mark.parametrize("seed", range(5))
def test_a_loss_climbing_within_the_first_decade_diverged_immediately(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lrs = np.logspace(-5, -3.5, 40)
    losses = 2.3 * np.exp(0.5 * (np.log10(lrs) + 5)) + rng.normal(0, 0.04, 40)
    history = History(tuple(lrs), tuple(losses), tuple(ema_smooth(losses, 0.98)), "diverged")
    result = analyze(history)
    assert result.suggestion.reason == "diverged immediately: the loss rose from the first steps"
    assert result.confidence.try_range is not None
    assert result.confidence.try_range[0] < lrs[0]


# --- the answer stays inside the sweep; interrupted and too-narrow sweeps say so --------------


def test_an_interrupted_sweep_is_reported_as_interrupted_not_diverged() -> None:
    full = make_history(lambda x: 2.0 + 0.3 * (x + 7), steps=100)  # rises from the start
    history = History(
        lrs=full.lrs[:11],
        losses=full.losses[:11],
        smoothed_losses=full.smoothed_losses[:11],
        stop_reason="interrupted",
    )
    result = analyze(history)
    assert result.suggestion.lr is None
    assert result.suggestion.reason.startswith("interrupted after 11 step(s) at lr ")
    assert "diverged" not in result.suggestion.reason
    assert result.confidence.level == "none" and result.confidence.try_range is None


def test_a_sliver_of_lrs_gives_no_answer_and_a_wider_range_to_try() -> None:
    history = make_history(clean_loss, start_lr=1e-3, end_lr=1.0000001e-3, noise=0.01)
    for method in METHODS:
        result = analyze(history, method)
        assert result.suggestion.lr is None, method
        assert result.suggestion.reason.startswith("too narrow: the sweep spans")
        assert result.confidence.level == "none"
        assert result.confidence.try_range is not None
        low, high = result.confidence.try_range
        assert low < 1e-3 < high and high / low >= 1e3


def test_a_pick_below_the_swept_range_is_moved_inside_with_low_confidence() -> None:
    # The descent is 80% done under half a decade above start_lr: lrfind's max_lr / 10**0.5
    # (9.7e-4) lies below the first swept LR.
    history = make_history(
        lambda x: 2.3 - 2.0 / (1 + np.exp(-(x + 2.8) / 0.1)) + 0.3 * np.exp(3 * (x + 0.5)),
        start_lr=1e-3,
        end_lr=10.0,
        noise=0.01,
    )
    result = analyze(history, "lrfind")
    assert result.suggestion.lr == history.lrs[0] and result.suggestion.index == 0
    assert result.confidence.level == "low"
    assert any("outside the swept LRs: moved to start_lr" in r for r in result.confidence.reasons)
    # Lower, and no higher than where the raw loss blew up (before the sweep stopped).
    blew_up = history.lrs[-RAW_DIVERGE_STEPS]
    assert history.stop_reason == "diverged"
    assert result.confidence.try_range == (history.lrs[0] / 100, blew_up)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_every_suggestion_lies_inside_the_swept_lrs(history: History) -> None:
    for method in METHODS:
        for suggestion in analyze(history, method).methods.values():
            if suggestion.lr is not None:
                finite = [lr for lr in history.lrs if math.isfinite(lr) and lr > 0]
                assert min(finite) <= suggestion.lr <= max(finite)
