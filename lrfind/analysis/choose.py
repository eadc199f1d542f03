"""The one rule that picks an LR from constant-LR trials: used by refine and verify alike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lrfind.format import format_lr
from lrfind.results import (
    Trial,
)

if TYPE_CHECKING:
    pass


def _trial_scores(trials: Sequence[Trial]) -> tuple[list[float], str]:
    """Each trial's score (inf when it diverged) and the metric used for all of them."""
    use_val = all(t.val_loss is not None for t in trials if not t.diverged) and any(
        t.val_loss is not None for t in trials
    )
    scores = []
    for trial in trials:
        value = trial.val_loss if use_val else trial.train_loss
        usable = not trial.diverged and value is not None and math.isfinite(value)
        scores.append(float(value) if usable and value is not None else math.inf)
    return scores, "val_loss" if use_val else "train_loss"


def smoothed_scores(scores: Sequence[float]) -> tuple[list[float], float]:
    """Return neighbour-smoothed trial scores (in LR order) and the tolerance that goes with them.

    Each score is averaged half-and-half with the mean of its grid neighbours (one at an edge),
    in log space when every finite score is positive; a score next to a diverged trial is
    kept as is. The tolerance is REFINE_TOLERANCE relative (log1p of it in log space).
    """
    finite = [s for s in scores if math.isfinite(s)]
    use_log = bool(finite) and min(finite) > 0
    values = [math.log(s) if use_log and math.isfinite(s) else s for s in scores]
    smoothed = []
    for index, value in enumerate(values):
        neighbours = [values[j] for j in (index - 1, index + 1) if 0 <= j < len(values)]
        if math.isfinite(value) and neighbours and all(math.isfinite(n) for n in neighbours):
            value = 0.5 * value + 0.5 * sum(neighbours) / len(neighbours)
        smoothed.append(value)
    if use_log:
        return smoothed, math.log1p(REFINE_TOLERANCE)
    best = min(finite) if finite else 0.0
    return smoothed, REFINE_TOLERANCE * max(abs(best), 1e-12)


@dataclass(frozen=True)
class _RefinePick:
    """The refine trials in LR order, their scores, and which one the choice rule picks."""

    ordered: list[Trial]
    scores: list[float]
    metric: str
    chosen: int | None
    best: int | None


def _refine_pick(trials: Sequence[Trial]) -> _RefinePick:
    """Apply the choice rule: the lowest LR within the tolerance of the best smoothed score."""
    ordered = sorted(trials, key=lambda t: t.lr)
    scores, metric = _trial_scores(ordered)
    if not any(math.isfinite(s) for s in scores):
        return _RefinePick(ordered, scores, metric, None, None)
    smoothed, tolerance = smoothed_scores(scores)
    best_value = min(v for v in smoothed if math.isfinite(v))
    best = smoothed.index(best_value)
    chosen = next(
        i for i, v in enumerate(smoothed) if math.isfinite(v) and v <= best_value + tolerance
    )
    return _RefinePick(ordered, scores, metric, chosen, best)


#: The suggestion is confirmed when its score is at most this fraction (of |best score|) worse
#: than the best trial's. Short trials are noisy: 2% separates "about as good" from "better".
MARGIN = 0.02

Metric = Literal["val_loss", "train_loss"]


def metric_for(trials: Sequence[Trial]) -> Metric:
    """Validation loss when every surviving trial measured one, else training loss."""
    survivors = [t for t in trials if not t.diverged and math.isfinite(t.train_loss)]
    if survivors and all(t.val_loss is not None and math.isfinite(t.val_loss) for t in survivors):
        return "val_loss"
    return "train_loss"


def score(trial: Trial, metric: Metric) -> float | None:
    """Return the trial's score under ``metric`` (None when it diverged or has no value)."""
    if trial.diverged:
        return None
    value = trial.val_loss if metric == "val_loss" else trial.train_loss
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Verdict:
    """Whether the trials confirm the suggestion.

    ``confirmed`` is True (within the margin of the best), False (another LR did clearly better,
    the suggestion diverged, or every trial diverged) or None (no suggestion to judge).
    ``improvement`` is how much lower the best score is than the suggestion's, as a fraction of
    the suggestion's score. ``note`` warns when no trial got clearly below the starting loss:
    then the trials were too short to tell LRs apart and the verdict means little.
    """

    confirmed: bool | None
    message: str
    metric: Metric
    best_lr: float | None
    best_score: float | None
    suggested_lr: float | None
    suggested_score: float | None
    improvement: float | None = None
    note: str | None = None


def _metric_name(metric: Metric) -> str:
    return "val loss" if metric == "val_loss" else "train loss"


def judge(
    trials: Sequence[Trial],
    suggested_lr: float | None,
    margin: float = MARGIN,
    start_score: float | None = None,
) -> Verdict:
    """Return the verdict on ``suggested_lr`` given constant-LR ``trials`` (see ``Verdict``).

    Lower scores are better. The suggestion is confirmed when ``its score - best <= margin *
    |best|``. ``start_score`` (the metric before any training) only adds the too-short note.
    """
    metric = metric_for(trials)
    name = _metric_name(metric)
    scored = [(t, score(t, metric)) for t in trials]
    valid = [(t, s) for t, s in scored if s is not None]
    best_trial, best_score = min(valid, key=lambda pair: pair[1]) if valid else (None, None)
    best_lr = best_trial.lr if best_trial is not None else None
    note = None
    if (
        start_score is not None
        and best_score is not None
        and start_score - best_score <= margin * abs(start_score)
    ):
        steps = max(t.steps for t in trials)
        note = (
            f"no trial lowered the {name} by more than {margin:.0%} from its start "
            f"({start_score:.4g}) in {steps} steps: give them more --steps"
        )
    mine = [
        (t, s)
        for t, s in scored
        if suggested_lr is not None and math.isclose(t.lr, suggested_lr, rel_tol=1e-6)
    ]
    suggested_score = mine[0][1] if mine else None

    def verdict(confirmed: bool | None, message: str, improvement: float | None = None) -> Verdict:
        return Verdict(
            confirmed=confirmed,
            message=message,
            metric=metric,
            best_lr=best_lr,
            best_score=best_score,
            suggested_lr=suggested_lr,
            suggested_score=suggested_score,
            improvement=improvement,
            note=note,
        )

    best_text = (
        f"best trial {format_lr(best_lr)} ({name} {best_score:.4g})"
        if best_score is not None
        else "every trial diverged"
    )
    if suggested_lr is None:
        return verdict(None, f"no suggestion to verify; {best_text}")
    if best_score is None:
        return verdict(
            False,
            f"every trial diverged, the suggested {format_lr(suggested_lr)} included: "
            "the model is unstable at these LRs; try lower ones with --lrs",
        )
    if not mine or suggested_score is None:
        why = "was not tried" if not mine else f"diverged within {mine[0][0].steps} steps"
        return verdict(False, f"the suggested {format_lr(suggested_lr)} {why}; {best_text}")
    gap = suggested_score - best_score
    if gap <= margin * abs(best_score):
        where = "the best trial" if best_lr == mine[0][0].lr else f"the {best_text}"
        return verdict(
            True,
            f"the suggested {format_lr(suggested_lr)} reached {name} "
            f"{suggested_score:.4g}, within {margin:.0%} of {where}",
        )
    improvement = gap / abs(suggested_score) if suggested_score != 0 else math.inf
    return verdict(
        False,
        f"{format_lr(best_lr)} did better: {name} {best_score:.4g} vs {suggested_score:.4g} at "
        f"the suggested {format_lr(suggested_lr)} ({improvement:.1%} lower)",
        improvement,
    )


#: Refine: the lowest LR whose neighbour-smoothed score is within this relative margin of the
#: best smoothed score wins.
REFINE_TOLERANCE = 0.05
