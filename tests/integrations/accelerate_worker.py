"""Run by ``accelerate launch`` (tests/integrations/test_accelerate.py): ``range_test`` on the
objects ``Accelerator.prepare`` returns, on every process; rank 0 writes what it saw as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

import lrfind


def main(out: str) -> None:
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    inputs = torch.randn(512, 8)
    targets = (inputs[:, 0] + inputs[:, 1] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=16, shuffle=True)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    result = lrfind.range_test(
        model,
        optimizer,
        torch.nn.functional.cross_entropy,
        loader,
        steps=60,
        start_lr=1e-4,
        end_lr=1.0,
        refine="off",
    )
    restored = all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    lr = torch.tensor([result.suggestion.lr or 0.0])
    every = accelerator.gather(lr).tolist()
    # One more training step through accelerate's own API: the prepared objects still work.
    batch_inputs, batch_targets = next(iter(loader))
    accelerator.backward(torch.nn.functional.cross_entropy(model(batch_inputs), batch_targets))
    optimizer.step()
    if accelerator.is_main_process:
        with Path(out).open("w", encoding="utf-8") as handle:
            json.dump(
                {
                    "processes": accelerator.num_processes,
                    "suggestions": every,
                    "restored": restored,
                    "steps": result.history.steps,
                    "reason": result.suggestion.reason,
                    "model": type(model).__name__,
                },
                handle,
            )
    # torch 2.13 with gloo aborts at exit ("terminate called without an active exception") while
    # a DDP wrapper is alive: drop it (accelerate keeps references too), then leave the group
    # after a barrier.
    del model, optimizer, loader
    accelerator.free_memory()
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
