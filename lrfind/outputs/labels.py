"""Labels for runs in one figure: what differs between their configs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lrfind.config.load import parse_yaml
from lrfind.errors import ConfigError
from lrfind.outputs import runs

#: Keys ignored when telling runs apart: the run name is what collided in the first place.
IGNORED_KEYS = frozenset({"name"})

MISSING = "unset"


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return ``mapping`` flattened to dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``.

    Lists stay whole values (``model.args.hidden: [64, 32]``); an empty mapping is a value.
    """
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def format_value(value: Any) -> str:
    """Return a config value the way it is written in YAML flow style, on one line."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    try:
        return json.dumps(value, separators=(", ", ": "), default=str)
    except (TypeError, ValueError):
        return str(value)


def config_differences(configs: Sequence[Mapping[str, Any] | None]) -> list[dict[str, str]]:
    """Return, per config, the dotted keys whose values differ between the configs, formatted.

    Keys keep their order of first appearance; a key one config lacks shows as "unset"; a None
    config (no config.yaml) contributes nothing and gets an empty dict.
    """
    flats = [flatten(config) if config is not None else None for config in configs]
    present = [flat for flat in flats if flat is not None]
    keys: list[str] = []
    for flat in present:
        keys.extend(key for key in flat if key not in keys and key not in IGNORED_KEYS)

    def shown(flat: Mapping[str, Any], key: str) -> str:
        return format_value(flat[key]) if key in flat else MISSING

    differing = [key for key in keys if len({shown(flat, key) for flat in present}) > 1]
    return [{} if flat is None else {key: shown(flat, key) for key in differing} for flat in flats]


def diff_label(differences: Mapping[str, str]) -> str:
    """Return ``"optimizer.name=adam, data.batch_size=128"`` (empty when nothing differs)."""
    return ", ".join(f"{key}={value}" for key, value in differences.items())


def run_labels(
    names: Sequence[str],
    configs: Sequence[Mapping[str, Any] | None],
    folders: Sequence[str],
) -> list[str]:
    """Return one unique legend label per run.

    A run whose name no other run shares is labelled by its name. Runs sharing a name are
    labelled by what differs between their configs, with the name in front when other names
    appear too; runs with identical (or missing) configs fall back to their folder name (the
    timestamp). A label still taken gets " #2", " #3", ... appended.
    """
    labels = list(names)
    all_same = len(set(names)) == 1
    for name in dict.fromkeys(names):
        group = [index for index, other in enumerate(names) if other == name]
        if len(group) < 2:
            continue
        differences = config_differences([configs[index] for index in group])
        for index, difference in zip(group, differences, strict=True):
            text = diff_label(difference) or folders[index]
            labels[index] = text if all_same else f"{name} ({text})"
    seen: dict[str, int] = {}
    unique: list[str] = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return unique


def read_saved_config(run_dir: Path) -> dict[str, Any] | None:
    """Return the run's config.yaml as a mapping, or None when it is missing or unreadable."""
    path = Path(run_dir) / runs.CONFIG_FILE
    try:
        # The bounded loader: a saved config is a file anyone may have edited (alias bombs).
        data, _ = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, ConfigError):
        return None
    return data if isinstance(data, dict) else None
