"""FSDP2 for ``distributed.strategy: fsdp``: ``fully_shard`` per block, then the root.

Applied to the built model before its optimizer is made, so that the optimizer holds the sharded
(DTensor) parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from lrfind.assembly.imports import resolve_import
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


def _named_class(name: str, base_dir: Path) -> type | None:
    """The class an import path names ("torch.nn.Linear", "models:Block"), imported as the
    config's other import paths are; None for a bare class name or a path that names no class
    (then only the names of the model's own classes can match it)."""
    if "." not in name and ":" not in name:
        return None
    try:
        found = resolve_import(name, base_dir, "distributed.shard_modules")
    except ComponentError:
        return None
    return found if isinstance(found, type) else None


def _matches(module: nn.Module, name: str, named: type | None) -> bool:
    """Whether ``module`` is of the class ``name`` says: by its name, its full module path, or
    the class the import path names (a re-export such as ``torch.nn.Linear``)."""
    return name in _class_names(module) or type(module) is named


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


def shard_units(
    model: nn.Module, class_names: Sequence[str], base_dir: Path | None = None
) -> list[nn.Module]:
    """The submodules that become FSDP2 units: those of the named classes, else built-in blocks.

    A class is named by its name ("Linear") or an import path ("torch.nn.Linear"), resolved
    against ``base_dir`` (the config's folder; default: the current directory).

    Raises:
        ComponentError: a named class matches no module of the model.
    """
    modules = list(model.modules())[1:]
    if not class_names:
        return _outermost(model, {id(m) for m in modules if isinstance(m, BUILTIN_BLOCKS)})
    named = {name: _named_class(name, base_dir or Path.cwd()) for name in class_names}
    missing = [
        name for name in class_names if not any(_matches(m, name, named[name]) for m in modules)
    ]
    if missing:
        present = sorted({type(m).__name__ for m in modules})
        raise ComponentError(
            f"distributed.shard_modules: no module of class {', '.join(map(repr, missing))} in "
            f"the model (its module classes: {', '.join(present) or 'none'})"
        )
    return _outermost(
        model,
        {id(m) for m in modules if any(_matches(m, name, named[name]) for name in class_names)},
    )


def shard_model(
    model: nn.Module, class_names: Sequence[str] = (), base_dir: Path | None = None
) -> int:
    """Apply FSDP2's ``fully_shard`` to each unit (``shard_units``), then to the root.

    Needs an initialised process group. Returns the number of units sharded below the root.

    Raises:
        ComponentError: a named class matches no module, or fully_shard refuses the model.
    """
    from torch.distributed.fsdp import fully_shard

    units = shard_units(model, class_names, base_dir)
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
