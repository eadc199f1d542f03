"""A run summarised as text: one line, and label/value rows shared by every report format."""

from __future__ import annotations

from lrfind.format import NO_SUGGESTION, NO_VALUE, format_lr, format_range
from lrfind.results import CheckOutcome, RangeTestResult


def one_line_summary(result: RangeTestResult, where: str | None = None) -> str:
    """Return the result in one line (what ``--quiet`` still prints), ending with ``where``.

    "suggested LR 5.62e-02 (range 1.87e-02 – 1.78e-01, confidence high)", or for a curve
    without an answer "no reliable suggestion: <first reason>; try start_lr .., end_lr ..".
    """
    confidence = result.confidence
    if result.suggestion.lr is None:
        reason = result.suggestion.reason or "; ".join(confidence.reasons[:1]) or "no answer"
        text = f"{NO_SUGGESTION}: {reason}"
        if confidence.try_range is not None:
            start, end = confidence.try_range
            text += f"; try start_lr {format_lr(start)}, end_lr {format_lr(end)}"
    else:
        text = (
            f"suggested LR {format_lr(result.suggestion.lr)} "
            f"(range {format_range(result.lr_range)}, confidence {confidence.level})"
        )
    if not result.complete:
        text += " [incomplete run]"
    return text if where is None else f"{text}; results in {where}"


def answer_for(result: RangeTestResult) -> str:
    """Which training run the answer holds for, in words.

    "a 400-step constant-LR run" when the run was stated; otherwise the trials' length and how
    to state the run: the best LR falls as training gets longer, so an answer measured on
    short trials is for short runs.
    """
    train = result.info.train
    steps = result.answer_steps
    if train is not None and steps == train.steps:
        return train.describe()
    if train is not None:
        measured = (
            f"the sweep's {result.history.steps} steps"
            if steps is None
            else f"the trials' {steps} steps"
        )
        return f"runs about as long as {measured}: nothing reached toward {train.describe()}"
    if steps is None:
        return f"runs about as long as the sweep ({result.history.steps} steps); set train.steps"
    return f"runs of about {steps} steps (the trials'); for yours, set train.steps"


def format_expected(check: CheckOutcome) -> str:
    """Return the check's expected interval as "[1.00e-04, 1.00e-02]" (open ends as "…")."""
    low = format_lr(check.expected_min) if check.expected_min is not None else "…"
    high = format_lr(check.expected_max) if check.expected_max is not None else "…"
    return f"[{low}, {high}]"


def _batch_size(result: RangeTestResult) -> str:
    info = result.info
    if info.batch_size is None:
        return NO_VALUE
    if info.global_batch_size != info.batch_size:
        extra = []
        if info.world_size > 1:
            extra.append(f"{info.world_size} processes")
        if info.accumulation_steps > 1:
            extra.append(f"{info.accumulation_steps} accumulation steps")
        return f"{info.batch_size} (global {info.global_batch_size}: {', '.join(extra)})"
    return str(info.batch_size)


def summary_rows(result: RangeTestResult) -> list[tuple[str, str]]:
    """Return the (field, value) rows every summary shows, in display order.

    Values are plain text (not escaped); each renderer escapes for its own format.
    """
    info, history = result.info, result.history
    suggestion = result.suggestion
    rows = [
        ("suggested LR", format_lr(suggestion.lr) if suggestion.lr is not None else NO_SUGGESTION),
        ("for", answer_for(result)),
        ("method", suggestion.method or NO_VALUE),
        ("min LR", format_lr(result.lr_range.min_lr)),
        ("max LR", format_lr(result.lr_range.max_lr)),
        ("confidence", result.confidence.level),
    ]
    refinement = result.refinement
    if refinement is not None and refinement.rungs:
        lengths = "/".join(str(max(t.steps for t in rung)) for rung in refinement.rungs if rung)
        counts = "/".join(str(len(rung)) for rung in refinement.rungs)
        rows.append(
            (
                "horizon trials",
                f"{format_lr(refinement.chosen_lr)} ({counts} trials at {lengths} steps, "
                f"continued; {refinement.seconds:.1f} s, by {refinement.metric})",
            )
        )
    elif refinement is not None:
        rows.append(
            (
                "refined LR",
                f"{format_lr(refinement.chosen_lr)} ({len(refinement.trials)} trials × "
                f"{refinement.steps_per_trial} steps, {refinement.seconds:.1f} s, "
                f"by {refinement.metric})",
            )
        )
    if result.repeats or result.repeat_suggestions:
        count = len(result.repeats) or len(result.repeat_suggestions)
        spread = result.spread
        rows.append(
            ("repeats", f"{count}" + (f" (suggestion spread ×{spread:.2f})" if spread else ""))
        )
    stop = history.stop_reason + ("" if result.complete else " (incomplete run)")
    rows += [
        ("stop reason", stop),
        ("steps", f"{history.steps} of {info.planned_steps}"),
        ("sweep", f"{format_lr(info.start_lr)} → {format_lr(info.end_lr)} ({info.mode})"),
        ("seconds", f"{info.seconds:.1f}"),
        ("device", f"{info.device} ({info.precision})"),
        ("model", info.model),
        ("optimizer", info.optimizer),
        ("batch size", _batch_size(result)),
    ]
    return rows
