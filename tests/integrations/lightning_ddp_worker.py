"""``find_lr`` under ``Trainer(strategy="ddp", devices=2)`` on CPU: Lightning's launcher starts the
second process by running this script again; each rank writes what it got to ``OUT/rank<N>.json``.

    python tests/integrations/lightning_ddp_worker.py OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from lrfind.integrations.lightning import find_lr
from tests.integrations.lightning_tasks import CharData, CharLM, trainer


def main(out: Path) -> None:
    torch.manual_seed(0)
    module = CharLM(form="optimizer")
    fit = trainer(strategy="ddp", devices=2, max_steps=40)
    result = find_lr(fit, module, datamodule=CharData(), steps=30, refine="off")
    answer = {
        "lr": result.suggestion.lr,
        "world_size": torch.distributed.get_world_size(),
        "losses": list(result.history.losses),
        "hparams_lr": module.hparams.lr,
    }
    (out / f"rank{fit.global_rank}.json").write_text(json.dumps(answer), encoding="utf-8")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
