"""FSDP2 for ``distributed.strategy: fsdp``: ``fully_shard`` per block, then the root.

Applied to the built model before its optimizer is made, so that the optimizer holds the sharded
(DTensor) parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from torch import nn

from lrfind.errors import ComponentError
from lrfind.format import first_line

#: The blocks of the built-in models that get their own FSDP2 unit (the outermost of each).
BUILTIN_BLOCKS: tuple[type[nn.Module], ...] = (
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.Linear,
    nn.Conv2d,
    nn.Embedding,
)


def _class_names(module: nn.Module) -> set[str]:
    kind = type(module)
    return {kind.__name__, f"{kind.__module__}.{kind.__qualname__}"}


def _outermost(model: nn.Module, matches: set[int]) -> list[nn.Module]:
    """The matching submodules (not the root) that no other matching module contains."""
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            if id(child) in matches:
                found.append(child)
            else:
                visit(child)

    visit(model)
    return found


def shard_units(model: nn.Module, class_names: Sequence[str]) -> list[nn.Module]:
    """The submodules that become FSDP2 units: those of the named classes, else built-in blocks.

    Raises:
        ComponentError: a named class matches no module of the model.
    """
    modules = list(model.modules())[1:]
    if not class_names:
        return _outermost(model, {id(m) for m in modules if isinstance(m, BUILTIN_BLOCKS)})
    missing = [name for name in class_names if not any(name in _class_names(m) for m in modules)]
    if missing:
        present = sorted({type(m).__name__ for m in modules})
        raise ComponentError(
            f"distributed.shard_modules: no module of class {', '.join(map(repr, missing))} in "
            f"the model (its module classes: {', '.join(present) or 'none'})"
        )
    wanted = set(class_names)
    return _outermost(model, {id(m) for m in modules if _class_names(m) & wanted})


def shard_model(model: nn.Module, class_names: Sequence[str] = ()) -> int:
    """Apply FSDP2's ``fully_shard`` to each unit (``shard_units``), then to the root.

    Needs an initialised process group. Returns the number of units sharded below the root.

    Raises:
        ComponentError: a named class matches no module, or fully_shard refuses the model.
    """
    from torch.distributed.fsdp import fully_shard

    units = shard_units(model, class_names)
    # FSDP2 warns on every forward whose output is a view (the built-in transformer's last
    # token): only an in-place op on it would be unsafe, and lrfind's losses make none.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    try:
        for unit in units:
            fully_shard(unit)
        fully_shard(model)
    except (RuntimeError, ValueError, TypeError, AssertionError) as error:
        raise ComponentError(
            f"distributed.strategy fsdp: cannot shard the model: {first_line(error)}"
        ) from error
    return len(units)
