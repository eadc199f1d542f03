"""Diagnosis of hard sweeps: the flat-sweep search window, raw-loss blow-ups the lagging EMA
misses, the advice never reaching into a blow-up, and repeats whose mean loses the answer.

Pure tests on synthetic curves with known answers: no torch, no training.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrfind.analysis.curve import describe_curve, ema_smooth
from lrfind.analysis.grid import GRID_PER_DECADE
from lrfind.analysis.search import search_candidates, stable_window, sweep_noise
from lrfind.analysis.suggest import analyze, reconcile_repeats
from lrfind.config.schema import SWEEP_DEFAULTS
from lrfind.results import (
    DEFAULT_DIVERGE_FACTOR,
    RAW_DIVERGE_STEPS,
    Analysis,
    Confidence,
    History,
    LRRange,
    Suggestion,
    raw_divergence_step,
)

LRS = np.logspace(-7, 1, 100)
X = np.log10(LRS)


def history(losses: np.ndarray, stop: str = "completed", beta: float = 0.98) -> History:
    """A recorded sweep over LRS[:len(losses)] with the engine's EMA of ``losses``."""
    count = len(losses)
    return History(
        lrs=tuple(float(v) for v in LRS[:count]),
        losses=tuple(float(v) for v in losses),
        smoothed_losses=tuple(float(v) for v in ema_smooth(losses, beta)),
        stop_reason=stop,  # type: ignore[arg-type]
    )


# --- the flat sweep's search window -------------------------------------------------------------


def mean_of_repeats_flat(seed: int, blip: float) -> np.ndarray:
    """A flat curve at ln 2 drifting up by 1.5% as the mean of 3 repeats (noise sd 0.01), whose
    first ten points happen to be quiet (sd 0.001), with one ordinary two-point blip at 3e-6."""
    rng = np.random.default_rng(seed)
    losses = 0.693 + np.linspace(0.0, 0.01, 100) + 0.01 * rng.standard_normal(100)
    losses[:10] = 0.693 + 0.001 * rng.standard_normal(10)
    losses[18:20] += blip
    return losses


@pytest.mark.parametrize("seed", range(5))
def test_one_ordinary_blip_does_not_cap_a_flat_sweeps_search_window(seed: int) -> None:
    # Held out: the noise estimate came from the few points before the lowest one (0.0028),
    # and a blip of a few noise sd capped the window at 3.16e-6, far below where training is.
    flat = history(mean_of_repeats_flat(seed, blip=0.03))
    assert analyze(flat).suggestion.lr is None
    window = stable_window(flat)
    assert window is not None
    assert not window.rose and window.high == GRID_PER_DECADE * 1  # the whole sweep, to 10
    assert max(search_candidates(flat, 3)) == pytest.approx(10.0)


def test_a_real_rise_still_caps_the_flat_window() -> None:
    losses = mean_of_repeats_flat(0, blip=0.0)
    losses[X > -1.0] += 0.3  # a sustained 40% rise from 0.1 on
    window = stable_window(history(losses))
    assert window is not None and window.rose
    assert 10 ** (window.high / GRID_PER_DECADE) <= 0.1


def test_sweep_noise_reads_every_step_and_ignores_the_trend() -> None:
    rng = np.random.default_rng(3)
    ramp = np.linspace(2.3, 0.3, 400) + 0.05 * rng.standard_normal(400)
    assert sweep_noise(ramp) == pytest.approx(0.05, rel=0.15)
    assert sweep_noise(np.array([1.0, 2.0])) == 0.0


# --- raw losses far above the best: a divergence the lagging EMA misses -------------------------


BLOWS_UP_FROM = math.log10(0.25)


def descent_then_raw_blow_up() -> np.ndarray:
    """A clear descent from 2.3 to 0.3 around 1e-3, then from 0.25 to 1 the raw loss sits at
    8-12 (tens of times the best), while the 0.98 EMA stays under 4x its best."""
    rng = np.random.default_rng(0)
    losses = 2.3 - 2.0 / (1 + np.exp(-(X + 3) / 0.25)) + 0.01 * rng.standard_normal(100)
    high = X > BLOWS_UP_FROM
    losses[high] = np.linspace(8.0, 12.0, int(high.sum()))
    return losses[X <= 0.0]


def test_the_analysis_reads_blow_ups_with_the_default_diverge_factor() -> None:
    assert SWEEP_DEFAULTS.diverge_factor == DEFAULT_DIVERGE_FACTOR


def test_raw_divergence_step_fires_on_a_run_not_on_spikes() -> None:
    level = np.ones(60)
    assert raw_divergence_step(level, level) is None
    spikes = level.copy()
    spikes[10::RAW_DIVERGE_STEPS] = 50.0  # one in every RAW_DIVERGE_STEPS: never a run
    assert raw_divergence_step(spikes, level) is None
    run = level.copy()
    run[30:] = 4.5  # above DEFAULT_DIVERGE_FACTOR x the best smoothed loss (1)
    assert run[30] > DEFAULT_DIVERGE_FACTOR
    assert raw_divergence_step(run, level) == 30 + RAW_DIVERGE_STEPS - 1
    # The scan ends at the first non-finite loss.
    run[31] = math.nan
    assert raw_divergence_step(run, level) is None
    # Losses that go negative: the threshold is best + (factor - 1) x the scale.
    negative = -np.ones(60)
    negative[0] = 0.0
    blown = negative.copy()
    blown[40:] = 3.0
    assert raw_divergence_step(blown, negative) == 40 + RAW_DIVERGE_STEPS - 1


def test_a_raw_blow_up_under_a_lagging_ema_is_read_as_the_divergence_region() -> None:
    losses = descent_then_raw_blow_up()
    sweep = history(losses)  # an older sweep (or a lenient diverge_factor) ran on to the end
    assert max(sweep.smoothed_losses) < 4 * min(sweep.smoothed_losses)
    first_high = int(np.argmax(X > BLOWS_UP_FROM))
    shape = describe_curve(sweep)
    assert shape.blow_up == first_high
    assert shape.diverged_lr == pytest.approx(LRS[first_high])
    assert shape.points == first_high + RAW_DIVERGE_STEPS  # read as if stopped there
    assert shape.rise_index is not None and shape.rise_index <= first_high
    result = analyze(sweep)
    assert result.suggestion.lr is not None and result.suggestion.lr < 0.01
    assert not any("never blew up" in reason for reason in result.confidence.reasons)
    # A sweep stopped by the engine's raw rule reads the same.
    stopped = history(losses[: first_high + RAW_DIVERGE_STEPS], stop="diverged")
    assert analyze(stopped) == result


def flat_then_raw_blow_up() -> np.ndarray:
    """The held-out fine-tuning shape: flat at 2-4, then raw losses of 23-35 from 0.25 to 1."""
    rng = np.random.default_rng(1)
    losses = 3.0 + 0.4 * rng.standard_normal(100)
    high = (X > BLOWS_UP_FROM) & (X <= 0.0)
    losses[high] = np.linspace(23.0, 35.0, int(high.sum()))
    return losses[X <= 0.0]


def test_a_flat_sweep_whose_raw_loss_blew_up_is_never_told_to_sweep_higher() -> None:
    sweep = history(flat_then_raw_blow_up())
    assert sweep.stop_reason == "completed"
    assert max(sweep.smoothed_losses) < 4 * min(sweep.smoothed_losses)
    result = analyze(sweep)
    assert result.suggestion.lr is None
    blew_up = describe_curve(sweep).diverged_lr
    assert blew_up is not None and 0.2 < blew_up < 0.3
    try_range = result.confidence.try_range
    assert try_range is None or try_range[1] <= blew_up
    # The search window stops below the blow-up too.
    window = stable_window(sweep)
    assert window is not None and window.rose
    assert 10 ** (window.high / GRID_PER_DECADE) < blew_up


def test_immediate_divergence_advice_stays_below_the_blow_up() -> None:
    # Blows up within the first steps: the advice starts lower, and never ends above it.
    losses = np.full(100, 2.3)
    losses[6:] = 30.0
    sweep = history(losses[: 6 + RAW_DIVERGE_STEPS], stop="diverged")
    result = analyze(sweep)
    assert result.suggestion.reason.startswith("diverged immediately")
    assert result.confidence.try_range is not None
    start, end = result.confidence.try_range
    assert start < sweep.lrs[0] and end <= LRS[6]


# --- repeats whose mean gives no answer ---------------------------------------------------------


def answer(lr: float | None, level: str = "high") -> Analysis:
    reason = "" if lr is not None else "no clear descent: the loss fell by only 3.1 standard errors"
    return Analysis(
        suggestion=Suggestion("lrfind", lr, 10 if lr else None, reason),
        lr_range=LRRange(lr / 10, lr * 3) if lr else LRRange(None, None),
        confidence=Confidence(level if lr else "none", ("a reason",) if lr else (reason,)),  # type: ignore[arg-type]
        methods={},
    )


def test_repeats_fall_back_to_the_median_answer_when_the_mean_has_none() -> None:
    mean = history(np.full(100, 2.3))
    repeats = [answer(1e-3), answer(1.78e-3), answer(1e-3, "medium")]
    result, chosen = reconcile_repeats(answer(None), repeats, mean)
    assert result.suggestion.lr == 1e-3 and chosen in (0, 2)
    assert result.suggestion.index == int(np.argmin(np.abs(X - math.log10(1e-3))))
    assert result.confidence.level == "medium"  # agreeing answers: at most medium
    assert "the mean of the 3 repeats gave no answer" in result.confidence.reasons[0]
    assert "no clear descent" in result.confidence.reasons[0]
    assert result.lr_range == repeats[chosen].lr_range  # type: ignore[index]
    # Spread over more than half a decade: low.
    spread, _ = reconcile_repeats(answer(None), [answer(1e-4), answer(1e-3), answer(1e-2)], mean)
    assert spread.suggestion.lr == 1e-3 and spread.confidence.level == "low"
    # An even count takes the lower middle answer: the safer one for a longer run.
    even, _ = reconcile_repeats(answer(None), [answer(2e-3), answer(1e-3)], mean)
    assert even.suggestion.lr == 1e-3


def test_the_mean_answer_stands_and_a_missing_repeat_answer_keeps_none() -> None:
    mean = history(np.full(100, 2.3))
    answered = answer(5e-4)
    assert reconcile_repeats(answered, [answer(1e-3), answer(1e-3)], mean) == (answered, None)
    silent = answer(None)
    assert reconcile_repeats(silent, [answer(1e-3), answer(None)], mean) == (silent, None)
    assert reconcile_repeats(silent, [answer(1e-3)], mean) == (silent, None)


def test_after_a_search_found_nothing_a_majority_of_repeats_answers_at_low_confidence() -> None:
    mean = history(np.full(100, 2.3))
    repeats = [answer(1e-3), answer(None), answer(2e-3)]
    # Before trials every repeat must answer; after a search that found nothing, a majority.
    assert reconcile_repeats(answer(None), repeats, mean) == (answer(None), None)
    result, chosen = reconcile_repeats(answer(None), repeats, mean, after_trials=True)
    assert result.suggestion.lr == 1e-3 and chosen == 0
    assert result.confidence.level == "low"
    assert "2 of the 3 repeats did" in result.confidence.reasons[0]
    lone = [answer(1e-3), answer(None), answer(None)]
    assert reconcile_repeats(answer(None), lone, mean, after_trials=True)[1] is None
