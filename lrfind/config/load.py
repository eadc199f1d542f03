"""Loading a config: safe YAML with line numbers, ``--set`` overrides, all problems at once."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from lrfind.config.schema import Config
from lrfind.errors import ConfigError

KeyPath = tuple[str | int, ...]


def _format_path(path: Iterable[str | int]) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _node_lines(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], dupes: list[str]
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                dupes.append(
                    f"line {key_node.start_mark.line + 1}: duplicate key '{_format_path(child)}'"
                )
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _node_lines(value_node, child, lines, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _node_lines(item, child, lines, dupes)


def parse_yaml(text: str, source: str = "<config>") -> tuple[dict[str, Any], dict[KeyPath, int]]:
    """Parse config YAML safely; return the mapping and the line of every key.

    Raises:
        ConfigError: malformed YAML (with line:column), duplicate keys, or a top level that is
            not a mapping.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(f"invalid YAML: {problem}", source=where) from None
    if data is None:
        raise ConfigError("the config is empty", source=source)
    if not isinstance(data, dict):
        raise ConfigError(
            f"the config must be a mapping of keys, not a {type(data).__name__}", source=source
        )
    lines: dict[KeyPath, int] = {}
    dupes: list[str] = []
    if node is not None:
        _node_lines(node, (), lines, dupes)
    if dupes:
        raise ConfigError(dupes, source=source)
    return data, lines


def parse_override(override: str) -> tuple[list[str], Any]:
    """Split a ``--set key.path=value`` override into its key path and YAML-parsed value.

    Raises:
        ConfigError: no '=' or an empty key.
    """
    key, sep, raw_value = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects KEY.PATH=VALUE, got {override!r}")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError:
        value = raw_value
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``--set`` override applied in order.

    Raises:
        ConfigError: a malformed override, or one whose path runs through a non-mapping value.
    """
    import copy

    result = copy.deepcopy(data)
    for override in overrides:
        parts, value = parse_override(override)
        node: Any = result
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"--set {override}: '{'.'.join(parts[:depth])}' is not a mapping")
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, (dict, list)):
                raise ConfigError(
                    f"--set {override}: '{'.'.join(parts[: depth + 1])}' is "
                    f"{type(child).__name__} {child!r}, not a mapping"
                )
            node = child
        last = parts[-1]
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"--set {override}: cannot set '{last}' inside a list")
    return result


def _valid_keys(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """Return the field names valid at ``path`` (the parent of an unknown key)."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        current = nested[0]
    return list(getattr(current, "model_fields", {}))


def _describe(error: Mapping[str, Any], lines: Mapping[KeyPath, int], overridden: set[str]) -> str:
    loc = tuple(part for part in error["loc"] if not str(part).startswith("function-after"))
    # pydantic adds the union member's name (e.g. 'str', 'ComponentSpec') to the location.
    loc = tuple(p for p in loc if p not in ("str", "ComponentSpec"))
    key = _format_path(loc)
    line = None
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in lines:
            line = lines[loc[:cut]]
            break
    where = f"line {line}: " if line is not None and key.split(".")[0] not in overridden else ""
    if key in overridden or any(key.startswith(o + ".") for o in overridden):
        where = "--set: "
    if error["type"] == "extra_forbidden":
        valid = _valid_keys(Config, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        if not close and valid:
            hint = f" (valid keys: {', '.join(valid)})"
        return f"{where}unknown key '{key}'{hint}"
    if error["type"] == "missing":
        return f"{where}missing required key '{key}'"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = ""
    if error["type"] not in ("value_error", "assertion_error") and not isinstance(value, dict):
        shown = f" (got {value!r})"
    return f"{where}{key}: {message}{shown}"


def validate_config(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    lines: Mapping[KeyPath, int] | None = None,
    base_dir: Path | None = None,
    default_name: str | None = None,
    overridden_keys: Iterable[str] = (),
) -> Config:
    """Validate a config mapping and return the typed Config.

    Raises:
        ConfigError: listing every problem, each with its key path (and line when known).
    """
    document = dict(data)
    if "name" not in document and default_name:
        document["name"] = default_name
    try:
        config = Config.model_validate(document)
    except ValidationError as error:
        overridden = set(overridden_keys)
        problems = [_describe(item, lines or {}, overridden) for item in error.errors()]
        unique = list(dict.fromkeys(problems))
        raise ConfigError(unique, source=source) from None
    config._base_dir = (base_dir or Path.cwd()).resolve()
    return config


def _stem_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._")
    return name or "range-test"


def load_config(
    path: str | Path, overrides: Sequence[str] = (), base_dir: str | Path | None = None
) -> Config:
    """Read, override and validate the YAML config at ``path``.

    Returns the validated Config (its ``name`` defaults to the file's stem). Relative import
    paths and data files resolve against ``base_dir`` (default: the file's folder; a run
    directory's saved config passes the original config's folder).

    Raises:
        ConfigError: the file is missing or unreadable, the YAML is malformed, or any value is
            invalid (all problems are listed at once).
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no such config file: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    data, lines = parse_yaml(text, source)
    overridden_keys = [".".join(parse_override(o)[0]) for o in overrides]
    data = apply_overrides(data, overrides)
    config = validate_config(
        data,
        source=source,
        lines=lines,
        base_dir=Path(base_dir) if base_dir is not None else path.resolve().parent,
        default_name=_stem_name(path),
        overridden_keys=overridden_keys,
    )
    config._source = path
    return config
