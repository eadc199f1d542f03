"""lrfind/settings.py: one home for every default and every check of a range test's settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrfind import range_test
from lrfind.results import Budget, TrainRun
from lrfind.settings import (
    DEFAULT_BUDGET,
    DEFAULT_RUN_SHARE,
    SuggestOptions,
    SweepOptions,
    default_budget,
    read_budget,
    train_run,
)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"drift_prior": "0.3"}, "drift_prior must be a number, got '0.3'"),
        ({"drift_prior": True}, "drift_prior must be a number, got True"),
        ({"drift_prior": 1.5}, "drift_prior must be between 0 and 1 (or None), got 1.5"),
        ({"compress_schedule": "no"}, "compress_schedule must be True or False, got 'no'"),
        ({"repeats": 2.5}, "repeats must be a whole number, got 2.5"),
        ({"refine": "yes"}, "refine must be 'auto', 'on' or 'off', got 'yes'"),
        ({"method": "best"}, "unknown suggestion method 'best'; choose from"),
    ],
)
def test_suggest_options_refuse_what_would_be_misread(
    keywords: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        SuggestOptions(**keywords)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)


def test_a_stated_run_takes_numpy_integers_and_refuses_typos() -> None:
    assert train_run(np.int64(300)) == TrainRun(300)
    assert train_run(None) is None
    with pytest.raises(ValueError, match="whole number from 1 to 1,000,000,000, got 10000"):
        train_run(10**12)
    with pytest.raises(ValueError, match=r"train_steps must be a whole number, got 300\.5"):
        train_run(300.5)
    with pytest.raises(ValueError, match="give train_steps too"):
        train_run(None, "linear")


def test_range_test_checks_its_keywords_through_the_settings() -> None:
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(4, 2), torch.randn(4, 1))] * 12
    with pytest.raises(ValueError, match="drift_prior must be a number"):
        range_test(model, optimizer, torch.nn.MSELoss(), data, drift_prior="0.3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="train_steps must be a whole number from 1"):
        range_test(model, optimizer, torch.nn.MSELoss(), data, train_steps=10**12)
    with pytest.raises(ValueError, match=r"steps must be a whole number, got 20\.5"):
        range_test(model, optimizer, torch.nn.MSELoss(), data, steps=20.5)  # type: ignore[arg-type]


def test_the_default_budget_grows_with_a_stated_run() -> None:
    assert default_budget(None) == Budget(sweeps=DEFAULT_BUDGET)
    stated = default_budget(TrainRun(20_000))
    assert stated == Budget(share=DEFAULT_RUN_SHARE, at_least=DEFAULT_BUDGET)
    # 5% of 20k steps is 1000: 900 after a 100-step sweep; a short run keeps the 4 sweeps.
    assert stated.allowance(100, 20_000) == 900
    assert default_budget(TrainRun(1_000)).allowance(100, 1_000) == 300
    assert stated.describe() == "5% of the run, at least 4x"
    assert SuggestOptions().budget_for(TrainRun(20_000)) == stated
    assert SuggestOptions(budget=read_budget(2)).budget_for(TrainRun(20_000)) == Budget(sweeps=2)


def test_sweep_options_check_whole_numbers_and_ranges() -> None:
    assert SweepOptions(steps=np.int64(50)).steps == 50  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps must be at least 2"):
        SweepOptions(steps=1)
    with pytest.raises(ValueError, match="need 0 < start_lr < end_lr"):
        SweepOptions(start_lr=1.0, end_lr=0.1)
