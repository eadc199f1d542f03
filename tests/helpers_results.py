"""Synthetic RangeTestResult objects for tests: known curves, known answers, no torch.

``make_result("clean")`` is a textbook sweep (flat, steep descent, valley, blow-up);
``"diverged"`` stops early on the divergence rule; ``"non_finite"`` ends in NaN/inf;
``"flat"`` never descends and carries no suggestion; ``"noisy"`` is ``"clean"`` with heavy noise.
Everything is deterministic (seeded) so tests can assert on it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Literal

from lrfind.results import (
    Analysis,
    Confidence,
    ConfidenceLevel,
    History,
    LRRange,
    RangeTestResult,
    Refinement,
    RunInfo,
    StopReason,
    Suggestion,
    Trial,
    mean_history,
)

Curve = Literal["clean", "diverged", "non_finite", "flat", "noisy"]
CURVES: tuple[Curve, ...] = ("clean", "diverged", "non_finite", "flat", "noisy")

#: Where the synthetic descent is steepest (log10 of the LR) and where it blows up.
DESCENT_CENTRE = -3.5
BLOW_UP_AT = -0.7
AUTO = "auto"


def log_ladder(steps: int, start_lr: float, end_lr: float) -> list[float]:
    """The sweep's exponential ladder with exact endpoints."""
    ratio = end_lr / start_lr
    lrs = [start_lr * ratio ** (i / (steps - 1)) for i in range(steps)]
    lrs[-1] = end_lr
    return lrs


def ema(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """Bias-corrected EMA, as the engine computes it (NaN/inf propagate)."""
    average = 0.0
    out = []
    for index, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (index + 1)))
    return out


def _clean_loss(log_lr: float, scale: float, shift: float = 0.0) -> float:
    descent = 1.0 / (1.0 + math.exp(-(log_lr - DESCENT_CENTRE - shift) * 2.2))
    blow_up = math.exp((log_lr - BLOW_UP_AT - shift) * 3.0)
    return scale * (2.3 - 1.9 * descent + 0.6 * blow_up)


def make_history(
    curve: Curve = "clean",
    steps: int = 120,
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    seed: int = 0,
    loss_scale: float = 1.0,
    diverge_factor: float = 4.0,
    with_val: bool = False,
    shift: float = 0.0,
) -> History:
    """A synthetic history on the exponential ladder, stopped the way the engine would stop it."""
    rng = random.Random(seed)
    lrs = log_ladder(steps, start_lr, end_lr)
    noise = {"noisy": 0.25, "flat": 0.05}.get(curve, 0.06) * loss_scale
    losses: list[float] = []
    for lr in lrs:
        if curve == "flat":
            value = 2.3 * loss_scale
        else:
            value = _clean_loss(math.log10(lr), loss_scale, shift)
        losses.append(value + rng.gauss(0.0, noise))
    stop_reason: StopReason = "completed"
    if curve == "non_finite":
        cut = int(steps * 0.85)
        losses = [*losses[:cut], float("inf"), float("nan")]
        stop_reason = "non_finite"
    smoothed = ema(losses)
    if curve == "diverged":
        best = math.inf
        for index, value in enumerate(smoothed):
            best = min(best, value)
            if value > diverge_factor * best:
                losses, smoothed = losses[: index + 1], smoothed[: index + 1]
                stop_reason = "diverged"
                break
    lrs = lrs[: len(losses)]
    val_losses: tuple[float, ...] = ()
    if with_val:
        val_losses = tuple(
            value * 1.05 if index % 10 == 0 else float("nan")
            for index, value in enumerate(smoothed)
        )
    return History(
        lrs=tuple(lrs),
        losses=tuple(losses),
        smoothed_losses=tuple(smoothed),
        stop_reason=stop_reason,
        val_losses=val_losses,
    )


def make_trials(
    lrs: Sequence[float] = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
    diverged_above: float | None = 1e-2,
    with_val: bool = True,
    steps: int = 50,
) -> tuple[Trial, ...]:
    """Constant-LR trials with a U-shaped val loss; those above ``diverged_above`` diverge."""
    trials = []
    for lr in lrs:
        distance = math.log10(lr) - (DESCENT_CENTRE + 0.6)
        train = 0.45 + 0.35 * distance**2
        diverged = diverged_above is not None and lr > diverged_above
        if diverged:
            trials.append(
                Trial(lr=lr, train_loss=float("nan"), val_loss=None, diverged=True, steps=steps)
            )
            continue
        val = train * 1.12 + 0.05 if with_val else None
        trials.append(Trial(lr=lr, train_loss=train, val_loss=val, diverged=False, steps=steps))
    return tuple(trials)


def make_result(
    curve: Curve = "clean",
    *,
    suggestion_lr: float | str | None = AUTO,
    lr_range: tuple[float, float] | str | None = AUTO,
    confidence: ConfidenceLevel | None = None,
    reasons: Sequence[str] | None = None,
    with_refine: bool = False,
    repeats: int = 0,
    steps: int = 120,
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    name: str = "synthetic",
    model: str = "MLP(784-256-10)",
    optimizer: str = "SGD(momentum=0.9)",
    loss: str = "cross_entropy",
    batch_size: int | None = 64,
    world_size: int = 1,
    accumulation_steps: int = 1,
    loss_scale: float = 1.0,
    seed: int = 0,
    warnings: Sequence[str] = (),
    with_val: bool = False,
    complete: bool = True,
    shift: float = 0.0,
) -> RangeTestResult:
    """A synthetic RangeTestResult; ``"auto"`` fills in the answer that fits the curve.

    ``shift`` moves the whole curve (and the automatic answer) by that many decades of LR.
    """
    history = make_history(
        curve,
        steps,
        start_lr,
        end_lr,
        seed=seed,
        loss_scale=loss_scale,
        with_val=with_val,
        shift=shift,
    )
    repeat_histories: tuple[History, ...] = ()
    repeat_suggestions: tuple[float | None, ...] = ()
    if repeats:
        repeat_histories = tuple(
            make_history(
                curve,
                steps,
                start_lr,
                end_lr,
                seed=seed + 1 + i,
                loss_scale=loss_scale,
                shift=shift + 0.25 * (i - (repeats - 1) / 2),
            )
            for i in range(repeats)
        )
        repeat_suggestions = tuple(
            10 ** (DESCENT_CENTRE + shift + 0.25 * (i - (repeats - 1) / 2)) for i in range(repeats)
        )
        history = mean_history(repeat_histories)
    no_descent = curve == "flat"
    if suggestion_lr == AUTO:
        suggestion_lr = None if no_descent else 10 ** (DESCENT_CENTRE + shift)
    if lr_range == AUTO:
        lr_range = (
            None
            if no_descent
            else (10 ** (DESCENT_CENTRE + shift - 1.2), 10 ** (BLOW_UP_AT + shift - 0.8))
        )
    assert not isinstance(suggestion_lr, str) and not isinstance(lr_range, str)
    if confidence is None:
        confidence = "none" if suggestion_lr is None else "high"
    if reasons is None:
        reasons = {
            "high": (),
            "medium": ("the descent spans only 1.4 decades of LR",),
            "low": ("the curve is noisy: the suggestion may move between runs",),
            "none": ("the loss never descends: the sweep may start too high or end too low",),
        }[confidence]
    index = None
    if suggestion_lr is not None:
        index = min(
            range(history.steps), key=lambda i: abs(math.log10(history.lrs[i] / suggestion_lr))
        )
    suggestion = Suggestion(
        method="steepest",
        lr=suggestion_lr,
        index=index,
        reason="" if suggestion_lr is not None else "no descent in the curve",
    )
    analysis = Analysis(
        suggestion=suggestion,
        lr_range=LRRange(*lr_range) if lr_range else LRRange(None, None),
        confidence=Confidence(
            level=confidence,
            reasons=tuple(reasons),
            try_range=(1e-3, 100.0) if confidence == "none" else None,
        ),
        methods={"steepest": suggestion},
    )
    refinement = None
    if with_refine:
        trials = make_trials(with_val=True)
        finite = [t for t in trials if not t.diverged and t.val_loss is not None]
        chosen = min(finite, key=lambda t: t.val_loss or math.inf).lr
        refinement = Refinement(trials=trials, chosen_lr=chosen, steps_per_trial=50, seconds=3.2)
    info = RunInfo(
        name=name,
        model=model,
        optimizer=optimizer,
        loss=loss,
        batch_size=batch_size,
        world_size=world_size,
        accumulation_steps=accumulation_steps,
        start_lr=start_lr,
        end_lr=end_lr,
        planned_steps=steps,
        seconds=4.25,
        seed=seed,
        versions={"torch": "2.13.0", "lrfind": "0.1.0"},
    )
    return RangeTestResult(
        history=history,
        analysis=analysis,
        info=info,
        complete=complete,
        refinement=refinement,
        repeats=repeat_histories,
        repeat_suggestions=repeat_suggestions,
        warnings=tuple(warnings),
    )
