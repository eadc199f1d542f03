"""``range_test`` on objects from ``Accelerator.prepare``: in this process, and on 2 CPU processes
under ``accelerate launch``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lrfind
from lrfind.integrations.accelerate import find_lr

accelerate = pytest.importorskip("accelerate")

WORKER = Path(__file__).with_name("accelerate_worker.py")


def prepared(
    accumulation: int = 1,
) -> tuple[object, torch.nn.Module, torch.optim.Optimizer, DataLoader]:
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=accumulation)
    torch.manual_seed(0)
    inputs = torch.randn(256, 8)
    targets = (inputs[:, 0] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=16, shuffle=True)
    return accelerator, *accelerator.prepare(model, optimizer, loader)


def order(loader: DataLoader) -> list[list[int]]:
    return [batch[1].tolist() for batch in loader]


def test_prepared_objects_are_swept_and_given_back() -> None:
    accelerator, model, optimizer, loader = prepared()
    order(loader)  # one epoch done
    rng = torch.get_rng_state()
    expected_next = order(loader)
    loader.iteration = 1  # type: ignore[attr-defined]  # back to just before that epoch
    torch.set_rng_state(rng)
    gradient_state = accelerator.gradient_state  # type: ignore[attr-defined]
    references = list(gradient_state.dataloader_references)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer_state = repr(optimizer.state_dict())
    result = lrfind.range_test(
        model, optimizer, torch.nn.functional.cross_entropy, loader, steps=60, start_lr=1e-4,
        end_lr=1.0, refine="off",
    )  # fmt: skip
    assert result.suggestion.lr is not None
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert repr(optimizer.state_dict()) == optimizer_state
    assert loader.iteration == 1  # type: ignore[attr-defined]
    assert gradient_state.dataloader_references == references
    assert not gradient_state.in_dataloader
    assert order(loader) == expected_next


def test_find_lr_takes_the_accelerators_accumulation() -> None:
    accelerator, model, optimizer, loader = prepared(accumulation=2)
    result = find_lr(
        accelerator, model, optimizer, torch.nn.functional.cross_entropy, loader,
        steps=20, refine="off",
    )  # fmt: skip
    assert result.info.accumulation_steps == 2


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    command = [
        str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", str(WORKER), str(out),
    ]  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(root),
        "CUDA_VISIBLE_DEVICES": "",
    }
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(out.read_text(encoding="utf-8"))
    assert seen["processes"] == 2
    assert seen["model"] == "DistributedDataParallel"
    first, second = seen["suggestions"]
    assert first == second and first > 0  # every rank took the same decisions
    assert seen["restored"]
