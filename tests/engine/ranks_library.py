"""Run under torchrun by tests/engine/test_distributed.py: ``range_test`` called as a user would.

Each case builds a model (DDP-wrapped or FSDP2-sharded), an Adam optimizer with or without a
step already taken, calls ``lrfind.range_test`` with a memory or disk snapshot, and records
what the result was and whether the weights, optimizer state and param-group LRs came back
bit-exact. Two more cases: a stop asked on rank 1 alone (both ranks stop at the same step),
and ranks whose data differ in size (a warning). Writes ``<out>/rank<r>.json``.

On CPU with gloo by default; ``LRFIND_RANKS_DEVICE=cuda`` runs it on each rank's GPU with NCCL
(``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from lrfind import range_test
from lrfind.engine.options import StopFlag

CASES = [
    ("ddp", False, "memory"),
    ("ddp", True, "disk"),
    ("fsdp", False, "memory"),
    ("fsdp", True, "memory"),
    ("fsdp", True, "disk"),
]


def _data(rank: int, world: int) -> tuple[DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(384, 8, generator=generator)
    labels = (inputs[:, 0] + 0.5 * inputs[:, 1] > 0).long() + (inputs[:, 2] > 1).long()
    train, val = (
        TensorDataset(inputs[:256], labels[:256]),
        TensorDataset(inputs[256:], labels[256:]),
    )
    # Uneven on purpose: 128 validation samples in batches of 24 leave ranks a short last batch.
    return (
        DataLoader(train, batch_size=16, sampler=DistributedSampler(train, world, rank, seed=0)),
        DataLoader(val, batch_size=24, sampler=DistributedSampler(val, world, rank, False)),
    )


def _device() -> torch.device:
    if os.environ.get("LRFIND_RANKS_DEVICE") == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _model(strategy: str) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))
    device = _device()
    model.to(device)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in (model[0], model[3]):
            fully_shard(layer)
        fully_shard(model)
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def _local(value: Any) -> Any:
    return value.to_local() if hasattr(value, "to_local") else value


def _state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Everything that must come back exactly: this rank's weights, optimizer state, LRs."""
    optim = optimizer.state_dict()
    return {
        "weights": {k: _local(v).clone() for k, v in model.state_dict().items()},
        "optim": {
            key: {name: _local(v).clone() for name, v in entry.items()}
            for key, entry in optim["state"].items()
        },
        "lrs": [group["lr"] for group in optimizer.param_groups],
    }


def _same(before: dict[str, Any], after: dict[str, Any]) -> bool:
    if before["lrs"] != after["lrs"] or before["optim"].keys() != after["optim"].keys():
        return False
    tensors = [(before["weights"][k], v) for k, v in after["weights"].items()]
    for key, entry in after["optim"].items():
        tensors += [(before["optim"][key][name], value) for name, value in entry.items()]
    return all(torch.equal(a, b) for a, b in tensors)


def _stop_on_one_rank(rank: int, world: int) -> dict[str, Any]:
    model = _model("ddp")
    train, _ = _data(rank, world)
    stop = StopFlag()

    def progress(event: Any) -> None:
        if rank == 1 and getattr(event, "step", None) == 5:
            stop.request("only rank 1 was asked")

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = range_test(
        model, optimizer, nn.CrossEntropyLoss(), train, steps=30, progress=progress, stop=stop
    )
    history = result.history
    return {"stopped": [len(history.losses), history.stop_reason, result.complete]}


def _uneven_data(rank: int, world: int) -> dict[str, Any]:
    model = _model("ddp")
    train, _ = _data(rank, world)
    if rank == 1:  # a rank that read less: what a user's own sharding can get wrong
        dataset = train.dataset
        train = DataLoader(torch.utils.data.Subset(dataset, range(96)), batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = range_test(model, optimizer, nn.CrossEntropyLoss(), train, steps=10)
    return {"uneven": list(result.warnings)}


def _mismatched_options(rank: int, world: int) -> dict[str, Any]:
    model = _model("ddp")
    train, _ = _data(rank, world)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = _state(model, optimizer)
    try:  # rank 1's script says 12 steps and a budget of 3: found before any training
        range_test(
            model,
            optimizer,
            nn.CrossEntropyLoss(),
            train,
            steps=12 if rank == 1 else 10,
            budget=3 if rank == 1 else 4,
        )
    except ValueError as error:
        return {"mismatched": [str(error), _same(before, _state(model, optimizer))]}
    return {"mismatched": None}


def main(out: Path) -> None:
    device = _device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    record: dict[str, Any] = {}
    for strategy, stepped, snapshot in CASES:
        model = _model(strategy)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
        train, val = _data(rank, world)
        if stepped:
            inputs, labels = next(iter(train))
            outputs = model(inputs.to(_device()))
            nn.functional.cross_entropy(outputs, labels.to(_device())).backward()
            optimizer.step()
            optimizer.zero_grad()
        before = _state(model, optimizer)
        result = range_test(
            model,
            optimizer,
            nn.CrossEntropyLoss(),
            train,
            val_loader=val,
            start_lr=1e-4,
            end_lr=10.0,
            steps=30,
            refine="on",
            refine_steps=6,
            refine_candidates=2,
            snapshot=snapshot,  # type: ignore[arg-type]
            snapshot_dir=out / "snapshots",
        )
        trials = result.refinement.trials if result.refinement else ()
        record[f"{strategy}-{'stepped' if stepped else 'fresh'}-{snapshot}"] = {
            "losses": list(result.history.losses),
            "stop": result.history.stop_reason,
            "suggestion": result.suggestion.lr,
            "trials": [[t.lr, t.train_loss, t.val_loss, t.steps] for t in trials],
            "strategy": result.info.strategy,
            "world": [result.info.world_size, result.info.global_batch_size],
            "exact": _same(before, _state(model, optimizer)),
        }
        del model
    record.update(_stop_on_one_rank(rank, world))
    record.update(_uneven_data(rank, world))
    record.update(_mismatched_options(rank, world))
    (out / f"rank{rank}.json").write_text(json.dumps(record), encoding="utf-8")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
