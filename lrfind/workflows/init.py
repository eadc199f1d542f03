"""``lrfind init``: write a commented starter config, validated before it is written."""

from __future__ import annotations

import os
from pathlib import Path

from lrfind.errors import OutputError
from lrfind.outputs import runs

#: Where ``lrfind init`` writes when no path is given.
DEFAULT_STARTER_PATH = Path("lrfind.yaml")


def init(
    path: str | os.PathLike[str] = DEFAULT_STARTER_PATH,
    *,
    model: str = "mlp",
    dataset: str = "sklearn",
    optimizer: str = "sgd",
    name: str | None = None,
    force: bool = False,
) -> Path:
    """Write a starter config for ``model`` on ``dataset`` with ``optimizer`` and return its path.

    The text is validated against the schema before anything is written, so a starter always
    loads.

    Raises:
        ConfigError: an unknown built-in or a model/dataset pair that cannot work together.
        OutputError: the file exists (without ``force``) or its folder does not.
    """
    from lrfind.config.load import parse_yaml, validate_config
    from lrfind.config.starter import render_starter

    target = Path(path)
    if target.is_dir():
        raise OutputError(
            f"{target} is a directory: give the config file's name, e.g. "
            f"{target / DEFAULT_STARTER_PATH.name}"
        )
    if target.exists() and not force:
        raise OutputError(f"{target} already exists (use --force to overwrite it)")
    text = render_starter(model=model, dataset=dataset, optimizer=optimizer, name=name)
    data, lines = parse_yaml(text, str(target))
    validate_config(data, source=str(target), lines=lines)
    if not target.parent.exists():
        raise OutputError(f"cannot write {target}: folder {target.parent} does not exist")
    return runs.atomic_write_text(target, text)
