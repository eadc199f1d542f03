"""The one rule that picks an LR from constant-LR trials: used by refine, search and verify.

The rule, exactly:

1. Score: every trial's validation loss when every surviving trial measured one, else every
   trial's final training loss. A diverged trial, or one without a finite score, is out.
2. Noise: for a trial *i* and the best (lowest-scoring) trial *b*, the standard error of the
   difference ``score_i - score_b`` is estimated from the trials' own records, paired: every
   trial is evaluated on the same validation batches (and trained on the same batches in the
   same order), so ``d_k = loss_i(batch k) - loss_b(batch k)`` are the per-batch differences
   and ``SE = sqrt(n / (n - 1) * sum_k w_k**2 * (d_k - D)**2)`` with ``w_k`` the batch's share
   of the samples and ``D = sum_k w_k * d_k = score_i - score_b`` (for equal batches: the
   standard deviation of the ``d_k`` over ``sqrt(n)``). Without validation the per-step
   training losses that make up the final training loss are paired the same way. Without such
   records (or with fewer than two batches) the standard error is 0.
3. Tie: trial *i* is tied with the best when ``score_i - score_b <= 1 * SE`` (the
   one-standard-error rule of model selection).
4. Choice: the lowest LR of the unbroken run of tied trials (in LR order) that contains the
   best; a diverged or untied trial ends the run. Verify confirms a suggestion exactly when its
   trial is tied with the best, so a refine or search choice is always confirmed by verify on
   the same trials, and no choice is ever worse than the best trial beyond its noise.

Why these choices: the lower LR of two statistically equal ones is the safer bet for training
runs longer than a trial (the best constant LR falls as training gets longer, and low LRs do
not diverge late). Training noise (seed to seed) is *not* estimated from the roughness of the
scores across neighbouring LRs: with three to seven trials that roughness is dominated by the
curve's own bend near its minimum: replayed on the benchmark's ground-truth curves (one seed's
3 or 5 grid LRs around the best), counting it as noise cut the lowest-tied rule's noise-aware
hit rate far below the best trial's (the metric and the current numbers: benchmarks/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lrfind.format import format_lr
from lrfind.results import Trial

Metric = Literal["val_loss", "train_loss"]

#: A trial within this many standard errors (of its paired difference from the best trial) of
#: the best trial's score is tied with it: the one-standard-error rule (Breiman et al. 1984;
#: Hastie, Tibshirani & Friedman, ESL section 7.10), which then takes the simplest of the tied
#: models -- here the lowest LR.
TIE_STANDARD_ERRORS = 1.0

#: Scores this close (relative) are equal whatever the noise estimate: float rounding only.
ROUNDING = 1e-9


def scored_metric(has_validation: bool) -> Metric:
    """What trials are scored on: the validation loss when there is validation data, else the
    training loss (``metric_for`` then says whether every trial measured it)."""
    return "val_loss" if has_validation else "train_loss"


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


def _samples(trial: Trial, metric: Metric) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-batch (or per-step) values behind a trial's score, and their weights."""
    if metric == "val_loss":
        values = trial.val_batch_losses
        sizes = trial.val_batch_sizes
        if len(sizes) == len(values):
            return values, tuple(float(s) for s in sizes)
        return values, (1.0,) * len(values)
    return trial.train_tail, (1.0,) * len(trial.train_tail)


def difference_standard_error(first: Trial, second: Trial, metric: Metric) -> float:
    """Return the paired standard error of ``score(first) - score(second)`` (rule step 2).

    0.0 when the two trials' records cannot be paired (missing, different lengths or batch
    sizes, fewer than two values, non-finite values).
    """
    values_a, weights_a = _samples(first, metric)
    values_b, weights_b = _samples(second, metric)
    count = len(values_a)
    if count < 2 or count != len(values_b) or weights_a != weights_b:
        return 0.0
    total = sum(weights_a)
    if not total > 0:
        return 0.0
    shares = [w / total for w in weights_a]
    differences = [a - b for a, b in zip(values_a, values_b, strict=True)]
    if not all(math.isfinite(d) for d in differences):
        return 0.0
    mean = sum(s * d for s, d in zip(shares, differences, strict=True))
    variance = sum(s * s * (d - mean) ** 2 for s, d in zip(shares, differences, strict=True))
    return math.sqrt(count / (count - 1) * variance)


def is_tied(difference: float, standard_error: float, best_score: float) -> bool:
    """Rule step 3: is a score ``difference`` above the best within the noise?"""
    if not math.isfinite(difference):
        return False
    return difference <= TIE_STANDARD_ERRORS * standard_error + ROUNDING * abs(best_score)


@dataclass(frozen=True)
class Choice:
    """The rule applied to a set of trials (see the module docstring).

    ``trials`` are in LR order; ``scores`` are inf where a trial is out; ``standard_errors``
    are those of each score's difference from the best (0 for the best itself, inf where out);
    ``tied`` marks the trials tied with the best; ``best`` and ``chosen`` index ``trials``
    (None when no trial has a score).
    """

    trials: tuple[Trial, ...]
    metric: Metric
    scores: tuple[float, ...]
    standard_errors: tuple[float, ...]
    tied: tuple[bool, ...]
    best: int | None
    chosen: int | None

    @property
    def chosen_lr(self) -> float | None:
        """The chosen trial's LR (None when every trial is out)."""
        return None if self.chosen is None else self.trials[self.chosen].lr

    @property
    def best_lr(self) -> float | None:
        """The best trial's LR (None when every trial is out)."""
        return None if self.best is None else self.trials[self.best].lr

    def position(self, lr: float) -> int | None:
        """Index of the trial at ``lr`` (relative tolerance 1e-6), or None."""
        for index, trial in enumerate(self.trials):
            if math.isclose(trial.lr, lr, rel_tol=1e-6):
                return index
        return None


def choose(trials: Sequence[Trial]) -> Choice:
    """Apply the choice rule (module docstring) to ``trials``; never raises."""
    ordered = tuple(sorted(trials, key=lambda t: t.lr))
    metric = metric_for(ordered)
    values = [score(t, metric) for t in ordered]
    scores = tuple(math.inf if v is None else v for v in values)
    finite = [i for i, s in enumerate(scores) if math.isfinite(s)]
    if not finite:
        count = len(ordered)
        return Choice(ordered, metric, scores, (math.inf,) * count, (False,) * count, None, None)
    best = min(finite, key=lambda i: (scores[i], i))
    errors = tuple(
        0.0
        if i == best
        else (difference_standard_error(t, ordered[best], metric) if i in finite else math.inf)
        for i, t in enumerate(ordered)
    )
    tied = tuple(
        i in finite and is_tied(scores[i] - scores[best], errors[i], scores[best])
        for i in range(len(ordered))
    )
    chosen = best
    while chosen > 0 and tied[chosen - 1]:
        chosen -= 1
    return Choice(ordered, metric, scores, errors, tied, best, chosen)


def beats_start(choice: Choice, start: Trial | float | None) -> bool | None:
    """Whether the best trial is below the start beyond the noise (None: nothing to compare).

    ``start`` is the metric before any training: a Trial at LR 0 with the same per-batch
    records as the trials (paired as in rule step 2), or a bare number (standard error 0).
    """
    if choice.best is None or start is None:
        return None if start is None else False
    best_trial, best_score = choice.trials[choice.best], choice.scores[choice.best]
    if isinstance(start, Trial):
        start_score = score(start, choice.metric)
        error = difference_standard_error(start, best_trial, choice.metric)
    else:
        start_score, error = float(start), 0.0
    if start_score is None or not math.isfinite(start_score):
        return None
    return not is_tied(start_score - best_score, error, best_score)


@dataclass(frozen=True)
class Verdict:
    """Whether the trials confirm the suggestion.

    ``confirmed`` is True (the suggestion's trial is tied with the best under the rule), False
    (another LR did better beyond the noise, the suggestion diverged or was not tried, or every
    trial diverged) or None (no suggestion to judge). ``improvement`` is how much lower the best
    score is than the suggestion's, as a fraction of the suggestion's score;
    ``standard_error`` the paired standard error of that difference. ``note`` warns when no
    trial got below the starting loss beyond the noise: then the trials were too short to tell
    LRs apart and the verdict means little.
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
    standard_error: float | None = None


def metric_name(metric: Metric) -> str:
    """Return how ``metric`` is written for people ("val loss" / "train loss")."""
    return "val loss" if metric == "val_loss" else "train loss"


def judge(
    trials: Sequence[Trial], suggested_lr: float | None, start: Trial | float | None = None
) -> Verdict:
    """Return the verdict on ``suggested_lr`` given constant-LR ``trials`` (see ``Verdict``).

    ``start`` (the metric before any training; see ``beats_start``) only adds the too-short
    note.
    """
    choice = choose(trials)
    metric = choice.metric
    name = metric_name(metric)
    best_lr = choice.best_lr
    best_score = None if choice.best is None else choice.scores[choice.best]
    note = None
    if beats_start(choice, start) is False and best_score is not None:
        start_value = score(start, metric) if isinstance(start, Trial) else start
        steps = max(t.steps for t in trials)
        note = (
            f"no trial lowered the {name} below its start ({start_value:.4g}) by more than "
            f"the noise in {steps} steps: give them more --steps"
        )
    mine = None if suggested_lr is None else choice.position(suggested_lr)
    suggested_score = None
    error = None
    if mine is not None and math.isfinite(choice.scores[mine]):
        suggested_score = choice.scores[mine]
        error = choice.standard_errors[mine]

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
            standard_error=error,
        )

    best_text = (
        f"best trial {format_lr(best_lr)} ({name} {best_score:.4g})"
        if best_lr is not None and best_score is not None
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
    if mine is None or suggested_score is None or error is None:
        why = (
            "was not tried"
            if mine is None
            else f"diverged within {choice.trials[mine].steps} steps"
        )
        return verdict(False, f"the suggested {format_lr(suggested_lr)} {why}; {best_text}")
    reached = f"the suggested {format_lr(suggested_lr)} reached {name} {suggested_score:.4g}"
    gap = suggested_score - best_score
    if mine == choice.best:
        return verdict(True, f"{reached}, the best trial")
    if choice.tied[mine]:
        return verdict(
            True,
            f"{reached}, tied with the {best_text}: {gap:.3g} worse, within "
            f"{_standard_errors_text(error)}",
        )
    improvement = gap / abs(suggested_score) if suggested_score != 0 else math.inf
    beyond = f", {gap / error:.1f} standard errors" if error > 0 else ""
    return verdict(
        False,
        f"{format_lr(best_lr)} did better: {name} {best_score:.4g} vs {suggested_score:.4g} at "
        f"the suggested {format_lr(suggested_lr)} ({improvement:.1%} lower{beyond})",
        improvement,
    )


def _standard_errors_text(error: float) -> str:
    if TIE_STANDARD_ERRORS == 1:
        return f"one standard error ({error:.2g}) of the paired difference"
    return (
        f"{TIE_STANDARD_ERRORS:g} standard errors ({TIE_STANDARD_ERRORS * error:.2g}) of the "
        "paired difference"
    )
