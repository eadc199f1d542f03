"""Host memory of the state snapshot: memory vs disk, DDP vs FSDP2, against the model's state.

``range_test`` snapshots the model and optimizer before it sweeps and restores them afterwards.
This measures what that snapshot costs in host memory on each rank, for an MLP trained by Adam
(one step taken, so the optimizer holds two moments per parameter: the state is 3x the
parameters), on 2 processes (gloo, CPU):

* ``ddp``  the model replicated on every rank (DistributedDataParallel); the memory snapshot is a
  full copy of the model and optimizer state on every rank;
* ``fsdp`` the model sharded with FSDP2 (``fully_shard`` per Linear, then the root); the memory
  snapshot keeps each rank's own shard (torch.distributed.checkpoint.state_dict);
* ``disk`` torch.distributed.checkpoint writes every rank's shard into a temporary folder.

Per rank it reports the model and optimizer state this rank holds (its shard under FSDP2),
the snapshot's held memory (RSS after the snapshot minus before) and its peak (the kernel's
high-water mark, reset just before, minus the RSS before), and the same peak across a restore.
Each configuration runs in fresh processes, so one run's freed memory does not hide another's.

    python benchmarks/memory.py                   # 24M parameters (~290 MB of state)
    python benchmarks/memory.py --width 1024      # smaller and faster
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATIONS = [("ddp", "memory"), ("ddp", "disk"), ("fsdp", "memory"), ("fsdp", "disk")]
MB = 2**20


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _settle() -> None:
    """Collect garbage and hand freed heap pages back to the OS, so that RSS counts live data
    (glibc keeps freed memory mapped and reuses it: a snapshot could otherwise hide in the
    pages the gradients just left)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak() -> None:
    # Writing 5 resets the high-water mark (VmHWM) to the current RSS (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def _state_bytes(model: Any, optimizer: Any) -> int:
    def local(tensor: Any) -> Any:
        return tensor.to_local() if hasattr(tensor, "to_local") else tensor

    total = sum(local(p).numel() * local(p).element_size() for p in model.parameters())
    for entry in optimizer.state.values():
        for value in entry.values():
            if hasattr(value, "numel"):
                total += local(value).numel() * local(value).element_size()
    return total


def worker(strategy: str, store: str, width: int, layers: int, folder: Path, out: Path) -> None:
    """One rank: build, step once, then snapshot and restore while measuring memory."""
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint  # loaded first: its code is not the snapshot's cost
    from torch import nn

    from lrfind.engine.state import restore_state, snapshot_state

    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model: nn.Module = nn.Sequential(*(nn.Linear(width, width) for _ in range(layers)))
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            fully_shard(layer)
        fully_shard(model)
    else:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(8, width)).square().mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    _settle()
    before = _status("VmRSS")
    _reset_peak()
    snapshot = snapshot_state(model, optimizer, store=store, folder=folder)  # type: ignore[arg-type]
    peak = _status("VmHWM") - before
    _settle()
    held = _status("VmRSS") - before
    _reset_peak()
    restore_state(snapshot, model, optimizer)
    restore_peak = _status("VmHWM") - before
    snapshot.close()
    record = {
        "strategy": strategy,
        "snapshot": store,
        "rank": dist.get_rank(),
        "parameters": layers * (width * width + width),
        "state": _state_bytes(model, optimizer),
        "held": held,
        "peak": peak,
        "restore_peak": restore_peak,
    }
    (out / f"{strategy}-{store}-rank{dist.get_rank()}.json").write_text(json.dumps(record))
    dist.barrier()
    del model
    dist.destroy_process_group()


def _run(strategy: str, store: str, width: int, layers: int, out: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", __file__, "--worker", strategy, store]
    command += ["--width", str(width), "--layers", str(layers), "--out", str(out)]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)


def _table(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| strategy | snapshot | state per rank (MB) | held per rank (MB) | held / state "
        "| peak while taking (MB) | peak while restoring (MB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for strategy, store in CONFIGURATIONS:
        ranks = [r for r in records if (r["strategy"], r["snapshot"]) == (strategy, store)]
        state = max(r["state"] for r in ranks)
        held = max(r["held"] for r in ranks)
        peak = max(r["peak"] for r in ranks)
        restore = max(r["restore_peak"] for r in ranks)
        lines.append(
            f"| {strategy} | {store} | {state / MB:.0f} | {held / MB:.1f} | {held / state:.2f} "
            f"| {peak / MB:.0f} | {restore / MB:.0f} |"
        )
    return lines


def main() -> None:
    """Run every configuration on 2 processes and print the table (the worst rank of each)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=2048, help="features of each Linear")
    parser.add_argument("--layers", type=int, default=6, help="number of Linear layers")
    parser.add_argument(
        "--worker", nargs=2, metavar=("STRATEGY", "SNAPSHOT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        folder = args.out / "snapshots"
        folder.mkdir(exist_ok=True)
        worker(*args.worker, args.width, args.layers, folder, args.out)
        return
    with tempfile.TemporaryDirectory(prefix="lrfind-memory-") as scratch:
        out = Path(scratch)
        for strategy, store in CONFIGURATIONS:
            _run(strategy, store, args.width, args.layers, out)
        records = [json.loads(path.read_text()) for path in sorted(out.glob("*.json"))]
    parameters = records[0]["parameters"]
    shape = f"{args.layers} x Linear({args.width}, {args.width})"
    print(f"{shape}, Adam: {parameters / 1e6:.1f}M parameters")
    print(
        f"(full model + optimizer state: {3 * parameters * 4 / MB:.0f} MB), 2 processes (gloo, CPU)"
    )
    print()
    print("\n".join(_table(records)))


if __name__ == "__main__":
    main()
