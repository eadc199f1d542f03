"""Constant-LR trials and the refine/search stage that ran them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lrfind.results.history import finite_or_none
from lrfind.results.train import Drift


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
            "train_loss": finite_or_none(self.train_loss),
            "val_loss": finite_or_none(self.val_loss),
            "diverged": self.diverged,
            "steps": self.steps,
        }
        if self.val_batch_losses:
            out["val_batch_losses"] = [finite_or_none(v) for v in self.val_batch_losses]
            out["val_batch_sizes"] = list(self.val_batch_sizes)
        if self.train_tail:
            out["train_tail"] = [finite_or_none(v) for v in self.train_tail]
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

    The "horizon" stage (a stated training run) trains its candidates in rungs of doubling
    length, continuing the finalists from their own state: ``rungs`` holds every rung's
    evaluations (``trials`` is the last rung, the one the choice was made on) and ``drift``
    how the best LR moved across them and what that did to the answer.
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
    rungs: tuple[tuple[Trial, ...], ...] = ()
    drift: Drift | None = None

    @property
    def longest_trial(self) -> int:
        """The most steps any trial trained (``steps_per_trial`` without trials)."""
        return max((t.steps for t in self.trials), default=self.steps_per_trial)

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
            "chosen_lr": finite_or_none(self.chosen_lr),
            "steps_per_trial": self.steps_per_trial,
            "val_batches": self.val_batches,
            "seconds": round(self.seconds, 3),
            "metric": self.metric,
            "cost_steps": None if self.cost_steps is None else round(self.cost_steps, 3),
            "sweep_steps": self.sweep_steps,
            "cost_multiple": None if multiple is None else round(multiple, 3),
            "budget": self.budget,
            "start_score": finite_or_none(self.start_score),
            "trials": [trial.to_dict() for trial in self.trials],
            "rungs": [[trial.to_dict() for trial in rung] for rung in self.rungs],
            "drift": self.drift.to_dict() if self.drift is not None else None,
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
            rungs=tuple(
                tuple(Trial.from_dict(item) for item in rung) for rung in data.get("rungs") or ()
            ),
            drift=Drift.from_dict(data["drift"]) if data.get("drift") else None,
        )
