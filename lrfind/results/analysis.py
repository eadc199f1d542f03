"""What the analysis of a curve concludes: suggestions, the LR range, the confidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lrfind.results.history import finite_or_none

ConfidenceLevel = Literal["high", "medium", "low", "none"]


@dataclass(frozen=True)
class Suggestion:
    """One method's answer; ``lr`` is None when it finds no reliable answer (see ``reason``)."""

    method: str
    lr: float | None
    index: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        out: dict[str, Any] = {"method": self.method, "lr": finite_or_none(self.lr)}
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
        return {"min_lr": finite_or_none(self.min_lr), "max_lr": finite_or_none(self.max_lr)}


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
    """What the pure analysis of a curve concludes (see ``lrfind.analysis.suggest.analyze``)."""

    suggestion: Suggestion
    lr_range: LRRange
    confidence: Confidence
    methods: Mapping[str, Suggestion] = field(default_factory=dict)
