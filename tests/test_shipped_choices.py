"""Every shipped config: the recommendation is its trials' own choice, and every reason is true.

Issue 12 found gallery configs whose refine stage chose the worst of its trials, with a reason
("the lowest refine candidate had the best val_loss") that was false of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lrfind.analysis.choose import Choice, choose, judge
from lrfind.analysis.suggest import analyze
from lrfind.config.load import load_config
from lrfind.format import format_lr
from lrfind.results import RangeTestResult
from lrfind.workflows.sweep import sweep

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))

LOWEST = re.compile(r"the lowest trial \((\S+)\) had the best (val|train) loss: try lower LRs too")
HIGHEST = re.compile(
    r"the highest trial \((\S+)\) had the best (val|train) loss: try higher LRs too"
)
SEARCHED = re.compile(
    r"the sweep showed no clear descent: (\d+) constant-LR trials searched (\S+)\.\.(\S+) instead"
)


def assert_true_of_the_trials(
    reason: str, choice: Choice, result: RangeTestResult, method: str
) -> None:
    """Each kind of reason the trials can give, checked against the trials themselves."""
    name = "val" if choice.metric == "val_loss" else "train"
    if match := LOWEST.fullmatch(reason):
        assert choice.best == 0 and match[1] == format_lr(choice.trials[0].lr)
        assert match[2] == name
    elif match := HIGHEST.fullmatch(reason):
        assert choice.best == len(choice.trials) - 1
        assert match[1] == format_lr(choice.trials[-1].lr) and match[2] == name
    elif match := SEARCHED.fullmatch(reason):
        assert int(match[1]) == len(choice.trials)
        assert match[2] == format_lr(choice.trials[0].lr)
        assert match[3] == format_lr(choice.trials[-1].lr)
    elif reason.startswith(("every refine trial diverged", "every search trial diverged")):
        assert choice.best is None
    else:  # not about the trials: then it is the sweep's own reason, true of the sweep
        assert reason in analyze(result.history, method).confidence.reasons, reason


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_a_shipped_config_chooses_a_trial_tied_with_the_best_and_says_only_true_things(
    path: Path,
) -> None:
    config = load_config(path)
    result = sweep(config, write=False).result
    refinement = result.refinement
    if refinement is None:
        assert config.suggest.refine == "off" or result.suggestion.lr is None
        return
    choice = choose(refinement.trials)
    assert result.suggestion.lr == choice.chosen_lr == refinement.chosen_lr
    if choice.chosen is not None:
        assert choice.tied[choice.chosen]
        assert choice.scores[choice.chosen] - choice.scores[choice.best] <= (  # type: ignore[index]
            choice.standard_errors[choice.chosen] + 1e-9
        )
        assert judge(refinement.trials, choice.chosen_lr).confirmed is True
    multiple = refinement.cost_multiple
    assert multiple is not None and multiple <= refinement.budget + 1e-9
    # The budget in force is the one given, else the default for the stated run (if any).
    budget = config.suggest_options().budget_for(result.info.train)
    assert refinement.budget == budget.as_sweeps(result.history.steps, result.answer_steps)
    for reason in result.confidence.reasons:
        assert_true_of_the_trials(reason, choice, result, config.suggest.method)
