"""Data-order state that loader wrappers keep outside their samplers and generators.

accelerate's prepared DataLoaders (``Accelerator.prepare``) count finished epochs in
``iteration`` (it seeds the next epoch's shuffle) and register themselves with the
accelerator's gradient state while an iterator is open. A sweep leaves iterators unfinished,
so without this the user's next epoch would be shuffled differently and the accelerator would
believe it is still inside a dataloader. Duck-typed: no third-party import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Attributes of an accelerate DataLoaderShard/DataLoaderDispatcher that a pass changes.
_COUNTERS = ("iteration", "end_of_dataloader", "remainder")


def loader_restorers(loader: Any) -> list[Callable[[], None]]:
    """Return functions that each put back one piece of ``loader``'s wrapper state as it is now."""
    restorers: list[Callable[[], None]] = []
    if isinstance(getattr(loader, "iteration", None), int):
        saved = {name: getattr(loader, name) for name in _COUNTERS if hasattr(loader, name)}

        def restore_counters() -> None:
            for name, value in saved.items():
                setattr(loader, name, value)

        restorers.append(restore_counters)
    gradient_state: Any = getattr(loader, "gradient_state", None)
    references = getattr(gradient_state, "dataloader_references", None)
    if isinstance(references, list):
        saved_references = list(references)

        def restore_references() -> None:
            # Assignment, not mutation: accelerate's setter updates its in_dataloader flag.
            gradient_state.dataloader_references = list(saved_references)

        restorers.append(restore_references)
    return restorers
