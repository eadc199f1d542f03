"""Loading a config: safe YAML with line numbers, ``--set`` overrides, all problems at once."""

from __future__ import annotations

import copy
import os
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
from lrfind.format import did_you_mean, first_line

KeyPath = tuple[str | int, ...]


def _format_path(path: Iterable[str | int]) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


#: A config whose aliases add more than this many values is rejected (a "billion laughs" YAML
#: costs gigabytes and minutes; real configs stay in the hundreds). A scalar counts one value
#: per started 100 characters.
MAX_ALIAS_VALUES = 100_000

#: Deeper nesting than this is rejected before Python's recursion limit is anywhere near.
MAX_NESTING = 100


def _weight(node: yaml.Node, sizes: Mapping[int, int]) -> int:
    """Values in ``node`` once every alias inside it is expanded (children already sized)."""
    if isinstance(node, yaml.ScalarNode):
        return 1 + len(str(node.value)) // 100
    if isinstance(node, yaml.SequenceNode):
        return 1 + sum(sizes[id(item)] for item in node.value)
    return 1 + sum(sizes[id(key)] + sizes[id(value)] for key, value in node.value)


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader that refuses recursive aliases, alias bombs and runaway nesting.

    Composing counts, node by node, how many values each alias adds once expanded, so a
    "billion laughs" is refused after reading its text once, before anything expands it.
    """

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.open_anchors: set[str] = set()
        self.sizes: dict[int, int] = {}
        self.alias_values = 0
        self.depth = 0

    def _refuse(self, event: yaml.Event, problem: str) -> ConfigError:
        """A ConfigError for ``problem`` ("{where}" in it becomes "line N"), at ``event``."""
        mark = event.start_mark
        line = mark.line + 1 if mark is not None else 0
        where = f"{self.source}:{line}:{mark.column + 1}" if mark is not None else self.source
        return ConfigError(problem.format(where=f"line {line}"), source=where)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self.open_anchors:
                raise self._refuse(
                    event,
                    f"recursive alias at {{where}}: '*{event.anchor}' refers to the node that "
                    "contains it",
                )
            aliased: yaml.Node | None = super().compose_node(parent, index)
            assert aliased is not None
            self.alias_values += self.sizes.get(id(aliased), 1)
            if self.alias_values > MAX_ALIAS_VALUES:
                raise self._refuse(
                    event,
                    f"aliases expand this config to more than {MAX_ALIAS_VALUES:,} values "
                    f"(alias '*{event.anchor}' at {{where}}); write the values out, or nest "
                    "fewer aliases",
                )
            return aliased
        anchor = getattr(event, "anchor", None)
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self._refuse(
                event, f"the config nests more than {MAX_NESTING} levels deep ({{where}})"
            )
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            composed: yaml.Node | None = super().compose_node(parent, index)
        finally:
            self.depth -= 1
            if anchor is not None:
                self.open_anchors.discard(anchor)
        assert composed is not None
        node = composed
        self.sizes[id(node)] = _weight(node, self.sizes)
        return node


def _yaml_error(error: yaml.YAMLError, source: str) -> ConfigError:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or first_line(error)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    return ConfigError(f"invalid YAML: {problem}", source=where)


def _load_bounded(text: str, source: str) -> tuple[Any, dict[KeyPath, int], list[str]]:
    """Compose ``text`` within the alias and nesting bounds.

    Returns the value, the line of every key path and the duplicate-key problems.

    Raises:
        ConfigError: malformed YAML, a recursive alias, an alias bomb or runaway nesting.
    """
    lines: dict[KeyPath, int] = {}
    dupes: list[str] = []
    try:
        loader = _BoundedLoader(text, source)
    except yaml.YAMLError as error:  # the reader checks every character up front
        raise _yaml_error(error, source) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines, dupes
        # Walk before constructing: construction flattens merge keys ('<<') into the nodes.
        _node_lines(node, lines, dupes)
        return loader.construct_document(node), lines, dupes
    except yaml.YAMLError as error:
        raise _yaml_error(error, source) from None
    finally:
        loader.dispose()


def _node_lines(root: yaml.Node, lines: dict[KeyPath, int], dupes: list[str]) -> None:
    """Record the line of every key path; walk each node once (an alias is not re-entered).

    Nodes are visited in document order, so an anchored node's keys get their own lines; keys
    reached through an alias fall back to the line of the key that holds the alias.
    """
    visited: set[int] = set()
    pending: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
    while pending:
        node, path = pending.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        children: list[tuple[yaml.Node, KeyPath]] = []
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                if key in seen:
                    dupes.append(
                        f"line {key_node.start_mark.line + 1}: duplicate key "
                        f"'{_format_path(child)}'"
                    )
                seen.add(key)
                lines[child] = key_node.start_mark.line + 1
                children.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*path, index)
                lines[child] = item.start_mark.line + 1
                children.append((item, child))
        pending.extend(reversed(children))


def parse_yaml(text: str, source: str = "<config>") -> tuple[dict[str, Any], dict[KeyPath, int]]:
    """Parse config YAML safely; return the mapping and the line of every key.

    Aliases are bounded: a recursive alias, or aliases that would expand the config beyond
    MAX_ALIAS_VALUES values, are refused before anything is expanded.

    Raises:
        ConfigError: malformed YAML (with line:column), a recursive alias, an alias bomb,
            nesting deeper than MAX_NESTING, duplicate keys, or a top level that is not a
            mapping.
    """
    data, lines, dupes = _load_bounded(text, source)
    if data is None:
        raise ConfigError("the config is empty", source=source)
    if not isinstance(data, dict):
        raise ConfigError(
            f"the config must be a mapping of keys, not a {type(data).__name__}", source=source
        )
    if dupes:
        raise ConfigError(dupes, source=source)
    return data, lines


def parse_override(override: str) -> tuple[list[str], Any]:
    """Split a ``--set key.path=value`` override into its key path and YAML-parsed value.

    Raises:
        ConfigError: no '=', an empty key, or a value that is not valid YAML (an unclosed
            bracket, a stray indicator, an alias bomb); strings with such characters need quotes.
    """
    key, sep, raw_value = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects KEY.PATH=VALUE, got {override!r}")
    value = None
    if raw_value.strip():
        try:
            value, _, _ = _load_bounded(raw_value, f"--set {override}")
        except ConfigError as error:
            problem = error.problems[0]
            if not problem.startswith("invalid YAML: "):
                raise ConfigError(f"--set {override}: {problem}") from None
            raise ConfigError(
                f"--set {override}: the value is not valid YAML "
                f"({problem.removeprefix('invalid YAML: ')}); "
                f"quote it to pass a string: --set '{key}=\"...\"'"
            ) from None
    return key.split("."), value


def _unshared(value: Any) -> Any:
    """A copy of ``value`` in which no two places share a mapping or list.

    YAML aliases (``*name``) make one Python object appear in several places, and so does
    ``copy.deepcopy`` (it keeps shared objects shared): an override of one place would change
    every alias of it.
    """
    if isinstance(value, dict):
        copied = copy.copy(value)
        for key in copied:
            copied[key] = _unshared(copied[key])
        return copied
    if isinstance(value, list):
        copied_list = copy.copy(value)
        for index, item in enumerate(copied_list):
            copied_list[index] = _unshared(item)
        return copied_list
    return value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``--set`` override applied in order.

    Raises:
        ConfigError: a malformed override, or one whose path runs through a non-mapping value.
    """
    result = _unshared(data)
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


def _origin(loc: KeyPath, lines: Mapping[KeyPath, int], overridden: Mapping[str, str]) -> str:
    """Where the value at ``loc`` came from: "line N: ", "--set k=v: ", both, or ""."""
    key = _format_path(loc) if loc else ""
    line = next((lines[loc[:cut]] for cut in range(len(loc), 0, -1) if loc[:cut] in lines), None)
    # An override at the key or above it replaced the file's value: the file is not to blame.
    replaced = [o for o in overridden if key == o or key.startswith(o + ".")]
    if replaced:
        return f"{overridden[replaced[-1]]}: "
    inside = [f"{overridden[o]} {o}" for o in overridden if not key or o.startswith(key + ".")]
    if inside and loc not in lines:
        return f"{inside[-1]}: "
    if inside:
        return f"line {line} (with {', '.join(inside)}): "
    return f"line {line}: " if line is not None else ""


def _other_union_member(error: Mapping[str, Any]) -> bool:
    """A mapping given for ``str | Spec`` also fails the ``str`` member: that failure is noise."""
    return (
        error["type"] == "string_type"
        and bool(error["loc"])
        and error["loc"][-1] == "str"
        and isinstance(error.get("input"), dict)
    )


def _describe(
    error: Mapping[str, Any], lines: Mapping[KeyPath, int], overridden: Mapping[str, str]
) -> str:
    loc = tuple(part for part in error["loc"] if not str(part).startswith("function-after"))
    # pydantic adds the union member's name (e.g. 'str', 'ComponentSpec') to the location.
    loc = tuple(p for p in loc if p not in ("str", "ComponentSpec"))
    if error["type"] == "bad_number" and error["ctx"]["path"]:
        inner = str(error["ctx"]["path"]).split(".")
        loc = (*loc, *(int(part) if part.isdigit() else part for part in inner))
    key = _format_path(loc)
    where = _origin(loc, lines, overridden)
    if error["type"] == "extra_forbidden":
        valid = _valid_keys(Config, loc[:-1])
        hint = did_you_mean(loc[-1], valid)
        if not hint and valid:
            hint = f" (valid keys: {', '.join(valid)})"
        return f"{where}unknown key '{key}'{hint}"
    if error["type"] == "missing":
        return f"{where}missing required key '{key}'"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "bad_number":
        return f"{where}{key} {message}"
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
    overridden_keys: Iterable[str] | Mapping[str, str] = (),
) -> Config:
    """Validate a config mapping and return the typed Config.

    ``overridden_keys`` are the key paths that overrides replaced, or a mapping from each to
    the option that set it ("--set", "--method"): a problem in an overridden value names the
    option, never a line of the file.

    Raises:
        ConfigError: listing every problem, each with its key path (and line when known).
    """
    document = dict(data)
    if "name" not in document and default_name:
        document["name"] = default_name
    try:
        config = Config.model_validate(document)
    except ValidationError as error:
        overridden = (
            dict(overridden_keys)
            if isinstance(overridden_keys, Mapping)
            else {key: "--set" for key in overridden_keys}
        )
        problems = [
            _describe(item, lines or {}, overridden)
            for item in error.errors()
            if not _other_union_member(item)
        ]
        unique = list(dict.fromkeys(problems))
        raise ConfigError(unique, source=source) from None
    config._base_dir = (base_dir or Path.cwd()).resolve()
    return config


def _stem_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._")
    return name or "range-test"


def load_config(
    path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    base_dir: str | os.PathLike[str] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> Config:
    """Read, override and validate the YAML config at ``path``.

    Returns the validated Config (its ``name`` defaults to the file's stem). Relative import
    paths and data files resolve against ``base_dir`` (default: the file's folder; a run
    directory's saved config passes the original config's folder). ``labels`` maps an
    override to the option that gave it (``{"suggest.method=nope": "--method"}``), for the
    error messages; the default is ``--set``.

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
    overridden_keys = {
        ".".join(parse_override(o)[0]): (labels or {}).get(o, "--set") for o in overrides
    }
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


def as_config(config: Config | str | os.PathLike[str], overrides: Sequence[str] = ()) -> Config:
    """The Config a command twin runs: ``config`` with ``overrides`` (``--set`` strings) applied.

    A path is loaded with ``load_config``; a Config without overrides is returned as it is, and
    with overrides it is validated again with them applied (its folder and source kept).

    Raises:
        ConfigError: the file cannot be loaded, or an override is invalid.
    """
    if not isinstance(config, Config):
        return load_config(config, list(overrides))
    if not overrides:
        return config
    overridden = validate_config(
        apply_overrides(config.model_dump(mode="json"), overrides),
        source=str(config.source or "<config>"),
        base_dir=config.base_dir,
        overridden_keys=[".".join(parse_override(o)[0]) for o in overrides],
    )
    overridden._source = config.source
    return overridden
