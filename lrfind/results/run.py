"""A whole range test: how it ran (RunInfo) and its result, with the ``result.json`` form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lrfind.results.analysis import Analysis, Confidence, LRRange, Suggestion
from lrfind.results.history import History, finite_or_none, float_or_none
from lrfind.results.train import TrainRun
from lrfind.results.trials import Refinement

#: result.json's ``schema_version`` (the running/failed placeholder of a sweep's too).
SCHEMA_VERSION = 1


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
    # The sweep's settings; None where a result does not record them (the defaults live in the
    # config schema, which this leaf module does not import).
    start_lr: float | None = None
    end_lr: float | None = None
    planned_steps: int | None = None
    mode: str = "exp"
    smoothing: float | None = None
    diverge_factor: float | None = None
    seconds: float = 0.0
    versions: Mapping[str, str] = field(default_factory=dict)
    #: Each optimizer param group's multiplier of the swept LR, in order (() when unknown).
    lr_scales: tuple[float, ...] = ()
    #: Training batches per epoch on one process (None when the loader has no length).
    batches_per_epoch: int | None = None
    #: How the model was spread over the processes: "ddp", "fsdp", or None (one process).
    strategy: str | None = None
    #: The run the answer is for, when the user stated it (``train:``).
    train: TrainRun | None = None

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

    @property
    def answer_steps(self) -> int | None:
        """The training length the answer holds for: the stated run's when the trials reached
        toward it (rungs, or an answer carried there), else the trials'.

        The answer is the best LR for runs about as long as the longest trials it measured (None
        without trials: about as long as the sweep), unless it was carried to the stated run.
        """
        train, refinement = self.info.train, self.refinement
        if train is not None and refinement is not None:
            carried = refinement.drift is not None and refinement.drift.to_steps == train.steps
            if carried or refinement.longest_trial >= train.steps:
                return train.steps
        if refinement is not None and refinement.steps_per_trial:
            return refinement.longest_trial
        return None

    def with_updates(self, **changes: Any) -> RangeTestResult:
        """Return a copy with the given fields replaced."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the ``result.json`` document (``schema_version``: SCHEMA_VERSION)."""
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
                "suggestions": [finite_or_none(lr) for lr in self.repeat_suggestions],
                "spread": self.spread,
            }
            if self.repeats
            else None,
            "stopped_early": history.stopped_early,
            "stop_reason": history.stop_reason,
            "steps": history.steps,
            "best_loss": None if best is None else finite_or_none(history.smoothed_losses[best]),
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
            "lr_scales": list(info.lr_scales),
            "batches_per_epoch": info.batches_per_epoch,
            "strategy": info.strategy,
            "train": info.train.to_dict() if info.train is not None else None,
            "answer_steps": self.answer_steps,
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
            start_lr=float_or_none(sweep.get("start_lr")),
            end_lr=float_or_none(sweep.get("end_lr")),
            planned_steps=int(sweep.get("steps") or history.steps),
            mode=str(sweep.get("mode", "exp")),
            smoothing=float_or_none(sweep.get("smoothing")),
            diverge_factor=float_or_none(sweep.get("diverge_factor")),
            seconds=float(data.get("seconds", 0.0)),
            versions=dict(data.get("versions") or {}),
            lr_scales=tuple(float(v) for v in data.get("lr_scales") or ()),
            batches_per_epoch=data.get("batches_per_epoch"),
            strategy=data.get("strategy"),
            train=TrainRun.from_dict(data["train"]) if data.get("train") else None,
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
