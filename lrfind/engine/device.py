"""Where a sweep runs (the device a config asks for) and the versions recorded with a run."""

from __future__ import annotations

import platform

import torch

from lrfind.errors import SweepError


def versions() -> dict[str, str]:
    """Return the versions that matter for reproducing a run."""
    import numpy

    from lrfind._version import __version__

    return {
        "lrfind": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def resolve_device(
    device: str | torch.device | None, model: torch.nn.Module | None = None
) -> torch.device:
    """Return the torch device for ``device`` ("auto" picks cuda, then mps, then cpu).

    ``None`` means the device of the model's first parameter (cpu if it has none).

    Raises:
        SweepError: the requested device is not available here.
    """
    if device is None:
        if model is not None:
            for param in model.parameters():
                return param.device
        return torch.device("cpu")
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    resolved = torch.device(name)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise SweepError(f"device '{name}' requested but CUDA is not available on this machine")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise SweepError(
                f"device '{name}' requested but only {torch.cuda.device_count()} GPU(s) are visible"
            )
    if resolved.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise SweepError(f"device '{name}' requested but MPS is not available on this machine")
    return resolved
