"""The library with dict batches: several input keys, errors in range_test's terms, and the
``progress=True`` display."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

import lrfind
from lrfind.data.batches import split_batch
from lrfind.engine.options import StepEvent
from lrfind.engine.progress import ProgressBar
from lrfind.errors import DataError


class MaskedMean(torch.nn.Module):
    """Averages the embedded tokens the mask keeps: needs both input_ids and attention_mask."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(16, 8)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)
        return self.head(pooled)


def dict_batches(count: int = 16) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        ids = torch.randint(0, 16, (8, 6), generator=generator)
        mask = torch.ones(8, 6, dtype=torch.long)
        mask[:, 4:] = 0
        batches.append({"input_ids": ids, "attention_mask": mask, "labels": (ids[:, 0] > 7).long()})
    return batches


def test_several_input_keys_are_passed_as_keyword_arguments() -> None:
    torch.manual_seed(0)
    model = MaskedMean()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lrfind.range_test(
        model, optimizer, torch.nn.functional.cross_entropy, dict_batches(),
        inputs_key=["input_ids", "attention_mask"], targets_key="labels", steps=20, refine="off",
    )  # fmt: skip
    assert result.history.steps == 20


def test_library_errors_name_the_library_arguments() -> None:
    model = MaskedMean()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(DataError) as caught:
        lrfind.range_test(
            model, optimizer, torch.nn.functional.cross_entropy, dict_batches(), steps=5,
            refine="off",
        )  # fmt: skip
    assert str(caught.value) == (
        "a dict batch needs inputs and targets keys (batch has: input_ids, attention_mask, "
        'labels); pass inputs_key= and targets_key= (inputs_key=["input_ids", '
        '"attention_mask"] for several), or loss_fn="model" if the model computes its own loss'
    )
    with pytest.raises(DataError, match=r"^inputs_key=: the batches have no key 'attention'"):
        lrfind.range_test(
            model, optimizer, torch.nn.functional.cross_entropy, dict_batches(), steps=5,
            refine="off", inputs_key=["input_ids", "attention"], targets_key="labels",
        )  # fmt: skip


def test_config_terms_are_kept_for_the_config_path() -> None:
    with pytest.raises(DataError, match=r"set data\.inputs_key and data\.targets_key$"):
        split_batch({"a": 1, "b": 2})


def test_progress_true_draws_a_bar_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    model = MaskedMean()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    lrfind.range_test(
        model, optimizer, torch.nn.functional.cross_entropy, dict_batches(),
        inputs_key=["input_ids", "attention_mask"], targets_key="labels", steps=20,
        refine="off", progress=True,
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith("sweep [") and "1/20" in lines[0]
    assert len(lines) <= 6  # not a terminal: a line per quarter, not per step


def test_progress_must_be_a_flag_or_a_callable() -> None:
    model = MaskedMean()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"^progress must be True, False or a callable"):
        lrfind.range_test(
            model, optimizer, torch.nn.functional.cross_entropy, dict_batches(), progress="yes",  # type: ignore[arg-type]
        )  # fmt: skip


def test_a_live_bar_redraws_one_line() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = ProgressBar(stream)
    for step in range(3):
        bar(StepEvent(step, 3, 1e-3 * (step + 1), 1.0, 0.9))
    bar.close()
    text: Any = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("3/3  lr 0.003  loss 0.9\n")
