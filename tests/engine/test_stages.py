"""The trial stages: one interface, one driver, one place that picks (lrfind.engine.stages)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

from lrfind.analysis.horizon import RungPlan
from lrfind.engine.options import StopFlag, SweepOptions
from lrfind.engine.stages import Proposal, TrialRequest, TrialSettings
from lrfind.engine.stages.base import FixedLengthStage
from lrfind.engine.stages.horizon import HorizonStage
from lrfind.engine.stages.refine import RefineStage
from lrfind.engine.stages.search import SearchStage
from lrfind.engine.state import snapshot_state
from lrfind.engine.steps import make_compute_loss
from lrfind.engine.trials import TrialRunner
from lrfind.results import Analysis, Confidence, History, LRRange, Refinement, Suggestion, Trial

PACKAGE = Path(__file__).resolve().parents[2] / "lrfind"
STAGES = PACKAGE / "engine" / "stages"


def _calls(path: Path, name: str) -> int:
    tree = ast.parse(path.read_text("utf-8"))
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
    )


def test_only_the_driver_trains_trials() -> None:
    # run_trial is called from one place (TrialRunner.trial), and stages never train: they
    # import neither torch nor the trial runner, so every stage goes through TrialRunner.drive.
    callers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if _calls(path, "run_trial")
    }
    assert callers == {"engine/trials.py"}
    for path in STAGES.glob("*.py"):
        imports = {
            alias.name if isinstance(node, ast.Import) else node.module or ""
            for node in ast.walk(ast.parse(path.read_text("utf-8")))
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in (node.names if isinstance(node, ast.Import) else [node])
        }
        assert not any(m == "torch" or m.startswith("torch.") for m in imports), path.name
        assert "lrfind.engine.trials" not in imports, path.name


def test_every_stage_module_is_picked() -> None:
    # A new stage is one new module: pick.py must know it, or it never runs.
    pick = (STAGES / "pick.py").read_text("utf-8")
    for path in STAGES.glob("*.py"):
        if path.stem in ("__init__", "base", "pick"):
            continue
        assert f"lrfind.engine.stages.{path.stem} import" in pick, path.name
    for stage in (RefineStage, SearchStage, HorizonStage):
        for member in ("first", "record", "propose", "finish", "planned", "name"):
            assert hasattr(stage, member), (stage.__name__, member)


class _ListStage(FixedLengthStage):
    """A fixed-length stage over given LRs; extends with ``extra`` once."""

    name = "refine"

    def finish(
        self, start: Trial | float | None, cost: float, seconds: float
    ) -> tuple[Analysis, Refinement]:
        lr = min(self.trials, key=lambda t: t.val_loss or math.inf).lr
        analysis = Analysis(Suggestion("test", lr), LRRange(lr / 10, lr), Confidence("low", ()), ())
        return analysis, self.refinement(analysis, None, cost, seconds)


class _ContinuingStage:
    """Two rungs: every LR trains 4 steps (paused), then the first continues to 8."""

    name = "horizon"

    def __init__(self, lrs: list[float]) -> None:
        self.lrs = lrs
        self.plan = RungPlan(
            candidates=len(lrs),
            rungs=(4, 8),
            survivors=(len(lrs), 1),
            val_batches=2,
            val_batch_cost=1.0,
            horizon=8,
            allowance=100.0,
            sweep_steps=10,
            budget_text="4x",
        )
        # A continued trial's first loss is already low: divergence is judged against a fixed
        # reference, as the horizon stage judges it against the untrained model's loss.
        self.settings = TrialSettings(val_batches=2, val_batch_cost=1.0, reference_loss=10.0)
        self.recorded: list[Trial] = []
        self.rung = 0
        self.planned = len(lrs) + 1

    def first(self) -> list[TrialRequest]:
        return [TrialRequest(lr, 4, pause=True) for lr in self.lrs]

    def record(self, trial: Trial) -> None:
        self.recorded.append(trial)

    def propose(self, cost: float) -> Proposal:
        if self.rung > 0:
            return Proposal()
        self.rung = 1
        return Proposal([TrialRequest(self.lrs[0], 8)], drop=self.lrs[1:])

    def finish(
        self, start: Trial | float | None, cost: float, seconds: float
    ) -> tuple[Analysis, Refinement]:
        analysis = Analysis(
            Suggestion("test", self.lrs[0]), LRRange(1e-3, 1e-1), Confidence("low", ()), ()
        )
        refinement = Refinement(
            trials=tuple(self.recorded),
            chosen_lr=self.lrs[0],
            steps_per_trial=8,
            seconds=seconds,
            metric="val_loss",
            stage="horizon",
            cost_steps=cost,
        )
        return analysis, refinement


def _runner(snapshots: list[object]) -> tuple[TrialRunner, object]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(6)]
    compute = make_compute_loss(torch.nn.functional.mse_loss, None, None, None, None)

    def take() -> object:
        taken = snapshot_state(model, optimizer, [])
        closed = taken.close

        def close() -> None:
            snapshots[:] = [s for s in snapshots if s is not taken]
            closed()

        taken.close = close  # type: ignore[method-assign]
        snapshots.append(taken)
        return taken

    runner = TrialRunner(
        model, optimizer, compute, data, data, torch.device("cpu"), take_snapshot=take
    )
    return runner, snapshot_state(model, optimizer, [])


def test_the_driver_continues_paused_trials_and_releases_every_pause() -> None:
    snapshots: list[object] = []
    runner, snapshot = _runner(snapshots)
    stage = _ContinuingStage([0.01, 0.1])
    events = []
    outcome = runner.drive(
        stage,  # type: ignore[arg-type]
        snapshot,  # type: ignore[arg-type]
        SweepOptions(),
        stop=StopFlag(),
        on_trial=events.append,
    )
    assert outcome is not None
    # The continued trial counts every step since the snapshot; the cost counts each step once
    # (4 + 4 + 4 more) plus three validation passes of 2 batches.
    assert [t.steps for t in stage.recorded] == [4, 4, 8]
    assert outcome[1].cost_steps == pytest.approx(12 + 3 * 2)
    assert [(e.index, e.count) for e in events] == [(0, 3), (1, 3), (2, 3)]
    assert snapshots == []  # the dropped pause at once, the rest when the stage ends


def test_a_continued_trial_matches_an_uninterrupted_one() -> None:
    runner, snapshot = _runner([])
    stage = _ContinuingStage([0.05])
    runner.drive(stage, snapshot, SweepOptions(), stop=StopFlag())  # type: ignore[arg-type]
    straight = runner.trial(
        0.05,
        8,
        snapshot,  # type: ignore[arg-type]
        SweepOptions(),
        max_val_batches=2,
        reference_loss=10.0,
    )
    assert stage.recorded[-1].val_loss == straight.val_loss


def test_a_stop_ends_the_stage_without_an_answer_and_releases_pauses() -> None:
    snapshots: list[object] = []
    runner, snapshot = _runner(snapshots)
    stage = _ContinuingStage([0.01, 0.1])
    stop = StopFlag()

    def stop_after_first(event: object) -> None:
        stop.request()

    outcome = runner.drive(
        stage,  # type: ignore[arg-type]
        snapshot,  # type: ignore[arg-type]
        SweepOptions(),
        stop=stop,
        on_trial=stop_after_first,
    )
    assert outcome is None
    assert len(stage.recorded) == 1
    assert snapshots == []


def test_a_fixed_length_stage_extends_only_while_a_whole_trial_fits() -> None:
    from lrfind.analysis.budget import plan_trials

    plan = plan_trials("refine", sweep_steps=20, budget=3, val_batches=None, steps=10)
    assert plan is not None
    asked: list[int] = []

    def next_lr(trials: list[Trial]) -> float | None:
        asked.append(len(trials))
        return trials[-1].lr / 10

    stage = _ListStage(plan, [0.1, 0.01], next_lr, TrialSettings(None, 1.0))
    assert [r.lr for r in stage.first()] == [0.1, 0.01]
    for request in stage.first():
        stage.record(Trial(request.lr, 1.0, None, diverged=False, steps=10))
    # 20 steps spent of the 40 the plan allows: one more 10-step trial fits, and another.
    assert [r.lr for r in stage.propose(20.0).requests] == [pytest.approx(1e-3)]
    stage.record(Trial(1e-3, 1.0, None, diverged=False, steps=10))
    assert stage.propose(35.0).requests == ()
    assert stage.planned == 3
    assert asked == [2]


def test_the_horizon_stage_continues_the_best_and_the_lrs_below_it() -> None:
    curve = (1.0, 0.9, 0.5, 2.0)
    history = History(lrs=(1e-4, 1e-3, 1e-2, 1e-1), losses=curve, smoothed_losses=curve)
    analysis = Analysis(
        Suggestion("lrfind", 1e-2), LRRange(1e-3, 3e-2), Confidence("medium", ()), ()
    )
    plan = RungPlan(
        candidates=4,
        rungs=(10, 20, 40),
        survivors=(4, 2, 2),
        val_batches=None,
        val_batch_cost=1.0,
        horizon=40,
        allowance=500.0,
        sweep_steps=50,
        budget_text="10x",
        extensions=0,
    )
    from lrfind.results import TrainRun

    stage = HorizonStage(
        plan,
        [1e-3, 3e-3, 1e-2, 3e-2],
        history,
        analysis,
        TrainRun(40),
        TrialSettings(None, 1.0),
        drift_prior=None,
        budget_sweeps=11.0,
    )
    requests = stage.first()
    assert [r.steps for r in requests] == [10] * 4 and all(r.pause for r in requests)
    losses = {1e-3: 0.9, 3e-3: 0.5, 1e-2: 0.6, 3e-2: 1.5}
    for request in requests:
        stage.record(Trial(request.lr, losses[request.lr], None, diverged=False, steps=10))
    proposal = stage.propose(40.0)
    # 3e-3 is best; the one below it continues with it (the best LR falls with training).
    assert [r.lr for r in proposal.requests] == [1e-3, 3e-3]
    assert all(r.steps == 20 and r.pause for r in proposal.requests)
    assert sorted(proposal.drop) == [1e-2, 3e-2]
    for request in proposal.requests:
        stage.record(Trial(request.lr, losses[request.lr], None, diverged=False, steps=20))
    last = stage.propose(60.0)
    assert [r.steps for r in last.requests] == [40, 40]
    assert not any(r.pause for r in last.requests)
