"""The CI gate's verdict on synthetic results: bounds, baselines, confidence, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrfind.errors import ConfigError, NoReliableSuggestion
from lrfind.workflows.check import Expectations, evaluate_check, read_baseline_lr
from tests.fixtures.results import make_result


def result_at(lr: float | None, confidence: str = "high"):  # type: ignore[no-untyped-def]
    return make_result(suggestion_lr=lr, confidence=confidence)  # type: ignore[arg-type]


def test_within_bounds_passes() -> None:
    outcome = evaluate_check(result_at(3e-3), Expectations(lr_min=1e-3, lr_max=1e-2))
    assert outcome.passed
    assert outcome.message == "suggested lr 3.00e-03 is within [1.00e-03, 1.00e-02]"


def test_below_minimum_says_by_how_much_and_which_way() -> None:
    outcome = evaluate_check(result_at(2.5e-4), Expectations(lr_min=1e-3))
    assert not outcome.passed
    assert outcome.message == "suggested lr 2.50e-04 is 4.00x below the expected minimum 1.00e-03"


def test_above_maximum() -> None:
    outcome = evaluate_check(result_at(5e-2), Expectations(lr_max=1e-2))
    assert not outcome.passed
    assert outcome.message == "suggested lr 5.00e-02 is 5.00x above the expected maximum 1.00e-02"


@pytest.mark.parametrize(
    ("lr", "passed"), [(1e-3, True), (1.9e-3, True), (4.9e-4, False), (2.1e-3, False)]
)
def test_baseline_tolerance_is_a_factor_both_ways(lr: float, passed: bool) -> None:
    outcome = evaluate_check(result_at(lr), Expectations(baseline_lr=1e-3, tolerance=2.0))
    assert outcome.passed is passed
    assert "baseline 1.00e-03 within 2x" in outcome.message


def test_no_suggestion_is_no_answer_not_a_failed_check() -> None:
    outcome = evaluate_check(result_at(None, "none"), Expectations(lr_min=1e-4))
    assert outcome.no_answer and not outcome.passed
    assert outcome.message.startswith("the sweep gave no reliable learning rate")
    assert NoReliableSuggestion.exit_code == 3


def test_confidence_below_required_is_no_answer() -> None:
    outcome = evaluate_check(
        result_at(1e-3, "low"), Expectations(lr_min=1e-4, min_confidence="high")
    )
    assert outcome.no_answer and not outcome.passed
    assert outcome.message.startswith("confidence 'low' is below the required 'high'")


def test_nothing_to_check_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="nothing to check against"):
        evaluate_check(result_at(1e-3), Expectations())


def test_read_baseline(tmp_path: Path) -> None:
    good = tmp_path / "run"
    good.mkdir()
    (good / "result.json").write_text(json.dumps({"suggestion": {"lr": 0.01}}))
    assert read_baseline_lr(good) == 0.01
    assert read_baseline_lr(good / "result.json") == 0.01
    with pytest.raises(ConfigError, match="does not exist; create it with"):
        read_baseline_lr(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match=r"not an lrfind result\.json"):
        read_baseline_lr(tmp_path / "bad.json")
    (tmp_path / "none.json").write_text(json.dumps({"suggestion": {"lr": None}}))
    with pytest.raises(ConfigError, match=r"records no suggested learning rate"):
        read_baseline_lr(tmp_path / "none.json")
