"""``--vary key=a,b`` specs: parsing, the grid of config variants, their labels and slugs."""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lrfind.config.load import as_config, parse_override
from lrfind.config.schema import NAME_LIMIT, Config
from lrfind.errors import ConfigError

#: Longest slug one varied value contributes to a variant's name.
SLUG_LIMIT = 24

_OPENERS = {"[": "]", "{": "}"}

_CLOSERS = {"]": "[", "}": "{"}

#: A quote opens a quoted YAML scalar only where a value starts (YAML allows "it's" unquoted).
_VALUE_STARTS = "[{,:"

_SLUG_JUNK = re.compile(r"[^A-Za-z0-9.]+")


def split_values(text: str) -> list[str]:
    """Split a ``--vary`` value list at the commas that are outside brackets, braces and quotes.

    ``"sgd,adam"`` -> ``["sgd", "adam"]``; ``"[64],[128, 64]"`` -> ``["[64]", "[128, 64]"]``;
    ``"'a,b',c"`` -> ``["'a,b'", "c"]``. Items are stripped of surrounding spaces and otherwise
    kept verbatim (quotes included) so YAML parses them exactly as ``--set`` would.

    Raises:
        ConfigError: an empty item, an unbalanced bracket or brace, or an unterminated quote.
    """
    items: list[str] = []
    current: list[str] = []
    stack: list[str] = []
    quote: str | None = None
    previous = ","  # the last non-space character, for "is this where a value starts?"
    index = 0
    while index < len(text):
        char = text[index]
        if quote is not None:
            current.append(char)
            # YAML escapes: a backslash inside "...", a doubled quote inside '...'.
            backslash = quote == '"' and char == "\\"
            doubled = quote == "'" and text.startswith("''", index)
            if (backslash or doubled) and index + 1 < len(text):
                current.append(text[index + 1])
                index += 1
            elif char == quote:
                quote = None
            index += 1
            continue
        if char in "'\"" and previous in _VALUE_STARTS:
            quote = char
        elif char in _OPENERS:
            stack.append(char)
        elif char in _CLOSERS:
            if not stack or stack[-1] != _CLOSERS[char]:
                raise ConfigError(f"unbalanced {char!r} in {text!r}")
            stack.pop()
        elif char == "," and not stack:
            items.append("".join(current).strip())
            current = []
            previous = ","
            index += 1
            continue
        current.append(char)
        if not char.isspace():
            previous = char
        index += 1
    if quote is not None:
        raise ConfigError(f"unterminated {quote} quote in {text!r}")
    if stack:
        raise ConfigError(
            f"unbalanced {stack[-1]!r} in {text!r} (no closing {_OPENERS[stack[-1]]!r})"
        )
    items.append("".join(current).strip())
    if any(not item for item in items):
        raise ConfigError(f"empty value in {text!r}")
    return items


@dataclass(frozen=True)
class Vary:
    """One ``--vary``: a config key and the values to try, as typed (``raw``) and as parsed."""

    key: str
    raw: tuple[str, ...]
    values: tuple[Any, ...]


def _vary_value(key: str, item: str) -> Any:
    """One ``--vary`` value parsed as ``--set`` parses it; errors name the ``--vary``."""
    try:
        return parse_override(f"{key}={item}")[1]
    except ConfigError as error:
        problem = str(error).removeprefix(f"--set {key}={item}: ").replace("--set ", "--vary ")
        raise ConfigError(f"--vary {key}: value {item!r}: {problem}") from None


def parse_vary(spec: str) -> Vary:
    """Parse ``KEY=V1,V2,...`` (values split by ``split_values``, each parsed as YAML).

    Raises:
        ConfigError: no ``=``, an empty key or key part, a malformed value list, or a value
            given twice; the message quotes the offending ``--vary``.
    """
    key, sep, text = spec.partition("=")
    key = key.strip()
    if not sep or not key or any(not part.strip() for part in key.split(".")) or not text.strip():
        raise ConfigError(f"--vary expects KEY=VALUE1,VALUE2,..., got {spec!r}")
    if key == "name":
        raise ConfigError("--vary name: the run name cannot vary (each variant is named for you)")
    try:
        raw = split_values(text)
    except ConfigError as error:
        raise ConfigError(f"--vary {key}: {error}") from None
    values = tuple(_vary_value(key, item) for item in raw)
    for first, second in itertools.combinations(range(len(raw)), 2):
        if raw[first] == raw[second] or _canonical(values[first]) == _canonical(values[second]):
            raise ConfigError(f"--vary {key}: value {raw[second]!r} is given twice")
    return Vary(key=key, raw=tuple(raw), values=values)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _slug(raw: str) -> str:
    slug = _SLUG_JUNK.sub("-", raw).strip("-.")
    return slug[:SLUG_LIMIT].rstrip("-.")


@dataclass(frozen=True)
class Variant:
    """One point of the grid: its run name and the (key, raw text, parsed value) it sets."""

    name: str
    settings: tuple[tuple[str, str, Any], ...]

    @property
    def overrides(self) -> list[str]:
        """The ``--set``-style overrides that make this variant (its name included)."""
        return [f"name='{self.name}'", *(f"{key}={raw}" for key, raw, _ in self.settings)]

    @property
    def values(self) -> dict[str, Any]:
        """Varied key -> parsed value."""
        return {key: value for key, _, value in self.settings}


def variant_grid(base_name: str, varies: Sequence[Vary]) -> list[Variant]:
    """Return every combination of the ``varies`` values, in order, each with a unique run name.

    Names are ``<base_name>-<slug of each value>`` (e.g. ``quick-adam-128``), cut to the run-name
    length limit; a name already taken gets ``-2``, ``-3``, ... appended.

    Raises:
        ConfigError: ``varies`` is empty, or one key is varied twice.
    """
    if not varies:
        raise ConfigError("compare needs at least one --vary KEY=VALUE1,VALUE2,...")
    keys = [vary.key for vary in varies]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"--vary {key}: the key is varied twice (give all values in one)")
    taken: set[str] = set()
    variants: list[Variant] = []
    choices = [list(zip(vary.raw, vary.values, strict=True)) for vary in varies]
    for combination in itertools.product(*choices):
        slugs = [_slug(raw) or "empty" for raw, _ in combination]
        name = f"{base_name}-{'-'.join(slugs)}"[:NAME_LIMIT].rstrip("-.")
        unique, counter = name, 2
        while unique in taken:
            suffix = f"-{counter}"
            unique = name[: NAME_LIMIT - len(suffix)] + suffix
            counter += 1
        taken.add(unique)
        settings = tuple(
            (key, raw, value) for key, (raw, value) in zip(keys, combination, strict=True)
        )
        variants.append(Variant(name=unique, settings=settings))
    return variants


def variant_labels(variants: Sequence[Variant]) -> list[str]:
    """Return each variant's legend label: the value alone when one key varies, else
    ``leaf=value`` pairs (the full key where two varied keys share a last part)."""
    if not variants:
        return []
    keys = [key for key, _, _ in variants[0].settings]
    if len(keys) == 1:
        return [variant.settings[0][1] for variant in variants]
    leaves = [key.rsplit(".", 1)[-1] for key in keys]
    shown = [
        leaf if leaves.count(leaf) == 1 else key for key, leaf in zip(keys, leaves, strict=True)
    ]
    return [
        ", ".join(f"{label}={raw}" for label, (_, raw, _) in zip(shown, v.settings, strict=True))
        for v in variants
    ]


def _vary_problem(problem: str, keys: Sequence[str]) -> str:
    """Say "--vary" rather than "--set" in a config problem about a varied key."""
    rest = problem.removeprefix("--set: ")
    if rest != problem and any(f"'{key}'" in rest or rest.startswith(f"{key}:") for key in keys):
        return f"--vary: {rest}"
    return problem


def load_variants(
    config: Config | str | os.PathLike[str],
    variants: Sequence[Variant],
    overrides: Sequence[str] = (),
) -> list[Config]:
    """Load and validate every variant of ``config`` (a Config or a config file's path):
    ``overrides`` first, then the variant's.

    Raises:
        ConfigError: listing every distinct problem of every variant at once.
    """
    keys = [key for key, _, _ in variants[0].settings] if variants else []
    configs: list[Config] = []
    problems: list[str] = []
    source: str | None = None
    for variant in variants:
        try:
            configs.append(as_config(config, [*overrides, *variant.overrides]))
        except ConfigError as error:
            source = error.source
            problems.extend(_vary_problem(problem, keys) for problem in error.problems)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)), source=source)
    return configs
