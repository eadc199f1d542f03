"""Value objects that cross module boundaries, and their JSON form (``result.json`` schema v1).

Nothing here imports torch or numpy: a saved run can be loaded, re-analysed and re-plotted without
them. ``RangeTestResult.to_dict()`` *is* the documented ``result.json`` layout; bump
``SCHEMA_VERSION`` on any incompatible change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

SCHEMA_VERSION = 1

StopReason = Literal["completed", "diverged", "non_finite", "interrupted"]
ConfidenceLevel = Literal["high", "medium", "low", "none"]

#: Fewest finite sweep points the analysis reads a curve from (and so the schema's minimum
#: ``sweep.steps``: a shorter sweep could never give an answer).
MIN_CURVE_POINTS = 10


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class History:
    """One sweep's per-step record.

    ``losses`` are raw (mean over accumulation micro-batches and processes) and may hold NaN/inf;
    ``smoothed_losses`` are the bias-corrected EMA used for the stop rule and the suggestion.
    ``val_losses`` is empty or aligned with ``lrs`` (NaN where not measured).
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed_losses: tuple[float, ...]
    stop_reason: StopReason = "completed"
    val_losses: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (len(self.lrs) == len(self.losses) == len(self.smoothed_losses)):
            raise ValueError("History: lrs, losses and smoothed_losses must have equal length")
        if self.val_losses and len(self.val_losses) != len(self.lrs):
            raise ValueError("History: val_losses must be empty or as long as lrs")

    @property
    def steps(self) -> int:
        """Number of recorded optimizer steps."""
        return len(self.lrs)

    @property
    def stopped_early(self) -> bool:
        """True when the sweep ended before its last planned step."""
        return self.stop_reason != "completed"

    def best_index(self) -> int | None:
        """Index of the lowest finite smoothed loss, or None when no loss is finite."""
        best: int | None = None
        for index, value in enumerate(self.smoothed_losses):
            if math.isfinite(value) and (best is None or value < self.smoothed_losses[best]):
                best = index
        return best


@dataclass(frozen=True)
class Suggestion:
    """One method's answer; ``lr`` is None when it finds no reliable answer (see ``reason``)."""

    method: str
    lr: float | None
    index: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        out: dict[str, Any] = {"method": self.method, "lr": _finite_or_none(self.lr)}
        out["index"] = self.index
        if self.reason:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Suggestion:
        """Build from the JSON form."""
        return cls(
            method=str(data.get("method", "")),
            lr=data.get("lr"),
            index=data.get("index"),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class LRRange:
    """The recommended range: ``min_lr`` (a cyclical schedule's base) to ``max_lr`` (its peak)."""

    min_lr: float | None
    max_lr: float | None

    def to_dict(self) -> dict[str, float | None]:
        """Return the JSON form."""
        return {"min_lr": _finite_or_none(self.min_lr), "max_lr": _finite_or_none(self.max_lr)}


@dataclass(frozen=True)
class Confidence:
    """How far the curve supports the suggestion.

    ``level`` is high/medium/low/none; ``reasons`` are short human sentences; ``try_range`` is a
    (start_lr, end_lr) worth sweeping instead when the current range looks wrong.
    """

    level: ConfidenceLevel
    reasons: tuple[str, ...] = ()
    try_range: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        try_range = None
        if self.try_range is not None:
            try_range = {"start_lr": self.try_range[0], "end_lr": self.try_range[1]}
        return {"level": self.level, "reasons": list(self.reasons), "try_range": try_range}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Confidence:
        """Build from the JSON form."""
        raw = data.get("try_range")
        try_range = (float(raw["start_lr"]), float(raw["end_lr"])) if raw else None
        return cls(
            level=data.get("level", "none"),
            reasons=tuple(data.get("reasons", ())),
            try_range=try_range,
        )


@dataclass(frozen=True)
class Analysis:
    """What the pure analysis of a curve concludes (see ``lrfind.analysis.analyze``)."""

    suggestion: Suggestion
    lr_range: LRRange
    confidence: Confidence
    methods: Mapping[str, Suggestion] = field(default_factory=dict)


@dataclass(frozen=True)
class Trial:
    """A short training run at one constant LR from the sweep's initial weights.

    ``val_batch_losses`` / ``val_batch_sizes``: the mean loss and sample count of each
    validation batch (every trial sees the same batches in the same order, so two trials'
    losses can be compared batch by batch); ``train_tail``: the per-step training losses that
    ``train_loss`` averages (the same steps' batches in every trial). Empty when not recorded.
    """

    lr: float
    train_loss: float
    val_loss: float | None
    diverged: bool
    steps: int
    val_batch_losses: tuple[float, ...] = ()
    val_batch_sizes: tuple[int, ...] = ()
    train_tail: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (the per-batch and per-step records only when present)."""
        out: dict[str, Any] = {
            "lr": self.lr,
            "train_loss": _finite_or_none(self.train_loss),
            "val_loss": _finite_or_none(self.val_loss),
            "diverged": self.diverged,
            "steps": self.steps,
        }
        if self.val_batch_losses:
            out["val_batch_losses"] = [_finite_or_none(v) for v in self.val_batch_losses]
            out["val_batch_sizes"] = list(self.val_batch_sizes)
        if self.train_tail:
            out["train_tail"] = [_finite_or_none(v) for v in self.train_tail]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trial:
        """Build from the JSON form (missing losses come back as NaN / None, records empty)."""
        train_loss = data.get("train_loss")

        def floats(key: str) -> tuple[float, ...]:
            return tuple(math.nan if v is None else float(v) for v in data.get(key) or ())

        return cls(
            lr=float(data["lr"]),
            train_loss=float("nan") if train_loss is None else float(train_loss),
            val_loss=data.get("val_loss"),
            diverged=bool(data.get("diverged", False)),
            steps=int(data.get("steps", 0)),
            val_batch_losses=floats("val_batch_losses"),
            val_batch_sizes=tuple(int(v) for v in data.get("val_batch_sizes") or ()),
            train_tail=floats("train_tail"),
        )


@dataclass(frozen=True)
class Refinement:
    """The trials after the sweep and the LR they chose.

    ``stage`` is "refine" (trials around the sweep's answer) or "search" (trials across the
    range a flat sweep showed to be stable). ``cost_steps``: what the trials cost, in sweep
    steps (training steps plus validation batches); ``sweep_steps``: the sweep's own steps;
    ``budget``: the cap on (sweep + trials) / sweep. ``start_score``: the metric before any
    training, when the stage measured it.
    """

    trials: tuple[Trial, ...]
    chosen_lr: float | None
    steps_per_trial: int
    seconds: float
    metric: str = "val_loss"
    stage: str = "refine"
    val_batches: int | None = None
    cost_steps: float | None = None
    sweep_steps: int | None = None
    budget: float | None = None
    start_score: float | None = None

    @property
    def cost_multiple(self) -> float | None:
        """(sweep + trials) / sweep, in steps; None when not recorded."""
        if self.cost_steps is None or not self.sweep_steps:
            return None
        return 1 + self.cost_steps / self.sweep_steps

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        multiple = self.cost_multiple
        return {
            "stage": self.stage,
            "chosen_lr": _finite_or_none(self.chosen_lr),
            "steps_per_trial": self.steps_per_trial,
            "val_batches": self.val_batches,
            "seconds": round(self.seconds, 3),
            "metric": self.metric,
            "cost_steps": None if self.cost_steps is None else round(self.cost_steps, 3),
            "sweep_steps": self.sweep_steps,
            "cost_multiple": None if multiple is None else round(multiple, 3),
            "budget": self.budget,
            "start_score": _finite_or_none(self.start_score),
            "trials": [trial.to_dict() for trial in self.trials],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Refinement:
        """Build from the JSON form (documents written before the cost fields load too)."""
        return cls(
            trials=tuple(Trial.from_dict(item) for item in data.get("trials", ())),
            chosen_lr=data.get("chosen_lr"),
            steps_per_trial=int(data.get("steps_per_trial", 0)),
            seconds=float(data.get("seconds", 0.0)),
            metric=str(data.get("metric", "val_loss")),
            stage=str(data.get("stage", "refine")),
            val_batches=data.get("val_batches"),
            cost_steps=data.get("cost_steps"),
            sweep_steps=data.get("sweep_steps"),
            budget=data.get("budget"),
            start_score=data.get("start_score"),
        )


@dataclass(frozen=True)
class RunInfo:
    """Facts about how a sweep ran, recorded in result.json and shown in the plot title."""

    name: str = "range-test"
    model: str = "model"
    optimizer: str = "optimizer"
    loss: str = "loss"
    batch_size: int | None = None
    world_size: int = 1
    accumulation_steps: int = 1
    device: str = "cpu"
    precision: str = "fp32"
    seed: int | None = None
    start_lr: float = 1e-7
    end_lr: float = 10.0
    planned_steps: int = 100
    mode: str = "exp"
    smoothing: float = 0.98
    diverge_factor: float = 4.0
    seconds: float = 0.0
    versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def global_batch_size(self) -> int | None:
        """Samples per optimizer step across all processes and accumulation micro-batches."""
        if self.batch_size is None:
            return None
        return self.batch_size * self.world_size * self.accumulation_steps


@dataclass(frozen=True)
class RangeTestResult:
    """Everything a range test produced: the curve, the recommendation and how it was reached.

    ``repeats`` holds each repeat's history when ``sweep.repeats > 1`` (``history`` is then their
    mean curve); ``refinement`` is set when the refine stage ran.
    """

    history: History
    analysis: Analysis
    info: RunInfo = field(default_factory=RunInfo)
    complete: bool = True
    refinement: Refinement | None = None
    repeats: tuple[History, ...] = ()
    repeat_suggestions: tuple[float | None, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def suggestion(self) -> Suggestion:
        """The recommended learning rate (``suggestion.lr`` may be None: see ``confidence``)."""
        return self.analysis.suggestion

    @property
    def lr_range(self) -> LRRange:
        """The recommended (min_lr, max_lr) range."""
        return self.analysis.lr_range

    @property
    def confidence(self) -> Confidence:
        """How far the curve supports the suggestion."""
        return self.analysis.confidence

    @property
    def spread(self) -> float | None:
        """max/min of the repeats' suggestions, or None with fewer than two valid repeats."""
        valid = [lr for lr in self.repeat_suggestions if lr is not None and lr > 0]
        if len(valid) < 2:
            return None
        return max(valid) / min(valid)

    def with_updates(self, **changes: Any) -> RangeTestResult:
        """Return a copy with the given fields replaced."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the ``result.json`` document (schema_version 1)."""
        history, info = self.history, self.info
        best = history.best_index()
        return {
            "schema_version": SCHEMA_VERSION,
            "complete": self.complete,
            "name": info.name,
            "suggestion": self.suggestion.to_dict(),
            "range": self.lr_range.to_dict(),
            "confidence": self.confidence.to_dict(),
            "methods": {name: s.to_dict() for name, s in self.analysis.methods.items()},
            "refine": self.refinement.to_dict() if self.refinement else None,
            "repeats": {
                "count": len(self.repeats),
                "suggestions": [_finite_or_none(lr) for lr in self.repeat_suggestions],
                "spread": self.spread,
            }
            if self.repeats
            else None,
            "stopped_early": history.stopped_early,
            "stop_reason": history.stop_reason,
            "steps": history.steps,
            "best_loss": None if best is None else _finite_or_none(history.smoothed_losses[best]),
            "best_loss_lr": None if best is None else history.lrs[best],
            "seconds": round(info.seconds, 3),
            "device": info.device,
            "precision": info.precision,
            "world_size": info.world_size,
            "batch_size": info.batch_size,
            "accumulation_steps": info.accumulation_steps,
            "global_batch_size": info.global_batch_size,
            "model": info.model,
            "optimizer": info.optimizer,
            "loss": info.loss,
            "seed": info.seed,
            "sweep": {
                "start_lr": info.start_lr,
                "end_lr": info.end_lr,
                "steps": info.planned_steps,
                "mode": info.mode,
                "smoothing": info.smoothing,
                "diverge_factor": info.diverge_factor,
            },
            "warnings": list(self.warnings),
            "versions": dict(info.versions),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], history: History) -> RangeTestResult:
        """Rebuild a result from its ``result.json`` document and the history read from history.csv.

        Raises:
            ValueError: the document is not a schema-1 result.
        """
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported result schema_version {data.get('schema_version')!r}")
        sweep = data.get("sweep") or {}
        info = RunInfo(
            name=str(data.get("name", "range-test")),
            model=str(data.get("model", "model")),
            optimizer=str(data.get("optimizer", "optimizer")),
            loss=str(data.get("loss", "loss")),
            batch_size=data.get("batch_size"),
            world_size=int(data.get("world_size") or 1),
            accumulation_steps=int(data.get("accumulation_steps") or 1),
            device=str(data.get("device", "cpu")),
            precision=str(data.get("precision", "fp32")),
            seed=data.get("seed"),
            start_lr=float(sweep.get("start_lr", 1e-7)),
            end_lr=float(sweep.get("end_lr", 10.0)),
            planned_steps=int(sweep.get("steps", history.steps)),
            mode=str(sweep.get("mode", "exp")),
            smoothing=float(sweep.get("smoothing", 0.98)),
            diverge_factor=float(sweep.get("diverge_factor", 4.0)),
            seconds=float(data.get("seconds", 0.0)),
            versions=dict(data.get("versions") or {}),
        )
        analysis = Analysis(
            suggestion=Suggestion.from_dict(data.get("suggestion") or {}),
            lr_range=LRRange(**(data.get("range") or {"min_lr": None, "max_lr": None})),
            confidence=Confidence.from_dict(data.get("confidence") or {}),
            methods={k: Suggestion.from_dict(v) for k, v in (data.get("methods") or {}).items()},
        )
        repeats = data.get("repeats") or {}
        refine = data.get("refine")
        return cls(
            history=history,
            analysis=analysis,
            info=info,
            complete=bool(data.get("complete", True)),
            refinement=Refinement.from_dict(refine) if refine else None,
            repeat_suggestions=tuple(repeats.get("suggestions", ())),
            warnings=tuple(data.get("warnings", ())),
        )


def mean_history(histories: Sequence[History]) -> History:
    """Return the step-wise mean of several histories on the same LR ladder.

    The mean stops where the shortest history stops: past the step where one repeat diverged, a
    mean over the survivors alone would hide that divergence.

    Raises:
        ValueError: ``histories`` is empty.
    """
    if not histories:
        raise ValueError("mean_history needs at least one history")
    shortest = min(histories, key=lambda h: h.steps)
    count = len(histories)
    losses = tuple(sum(h.losses[i] for h in histories) / count for i in range(shortest.steps))
    smoothed = tuple(
        sum(h.smoothed_losses[i] for h in histories) / count for i in range(shortest.steps)
    )
    reasons = {h.stop_reason for h in histories}
    stop_reason: StopReason = shortest.stop_reason
    if "interrupted" in reasons:
        stop_reason = "interrupted"
    return History(
        lrs=shortest.lrs,
        losses=losses,
        smoothed_losses=smoothed,
        stop_reason=stop_reason,
    )
