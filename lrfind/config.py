"""The YAML config: safe parsing, ``--set`` overrides, typed validation reporting every problem.

``load_config(path, overrides)`` returns a validated ``Config`` or raises one ``ConfigError`` that
lists each problem with its key path, its line in the file when known, and the closest valid key
for a misspelt one. No torch import happens here: ``lrfind validate`` must stay fast.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from lrfind.errors import ConfigError

#: Built-in component names (implemented in lrfind.components; a test keeps the lists in sync).
BUILTIN_MODELS = ("linear", "logistic", "mlp", "cnn", "gru", "transformer")
BUILTIN_DATASETS = (
    "sklearn",
    "synthetic_classification",
    "synthetic_regression",
    "sequence",
    "csv",
    "npz",
    "pt",
)
BUILTIN_LOSSES = (
    "auto",
    "cross_entropy",
    "nll",
    "mse",
    "l1",
    "smooth_l1",
    "huber",
    "bce_with_logits",
)
BUILTIN_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SUGGEST_METHODS = ("lrfind", "steepest", "minimum", "valley")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def is_import_path(target: str) -> bool:
    """Return True when ``target`` is an import path ("pkg.mod:callable" or "pkg.mod.Callable")."""
    return ":" in target or "." in target


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _check_builtin(value: str, builtins: Sequence[str], what: str) -> str:
    if is_import_path(value) or value in builtins:
        return value
    close = difflib.get_close_matches(value, builtins, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ValueError(
        f"unknown built-in {what} '{value}'{hint}; built-ins: {', '.join(builtins)}; "
        "or give an import path 'pkg.module:callable'"
    )


class ModelSpec(_Strict):
    """``model:`` a built-in name or import path, called with ``args`` as keyword arguments."""

    target: str
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("target")
    @classmethod
    def _known(cls, value: str) -> str:
        return _check_builtin(value, BUILTIN_MODELS, "model")


class ComponentSpec(_Strict):
    """A loss given as ``{target: name or import.path, args: {...}}``."""

    target: str
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("target")
    @classmethod
    def _known(cls, value: str) -> str:
        return _check_builtin(value, BUILTIN_LOSSES, "loss")


class DataSpec(_Strict):
    """``data:`` where batches come from and how they are batched."""

    target: str
    args: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(default=64, ge=1)
    val_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    shuffle: bool = True
    num_workers: int = Field(default=0, ge=0)
    drop_last: bool = False
    inputs_key: str | None = None
    targets_key: str | None = None

    @field_validator("target")
    @classmethod
    def _known(cls, value: str) -> str:
        return _check_builtin(value, BUILTIN_DATASETS, "dataset")


class ParamGroupRule(BaseModel):
    """One ``optimizer.param_groups`` rule.

    ``match`` is a regular expression searched in each parameter's qualified name, or the token
    ``"@no_decay"`` (biases and every parameter of a normalization layer). Every other key is an
    optimizer option for the matching parameters (``weight_decay: 0``, ``lr_scale: 0.1``...).
    The first matching rule wins; unmatched parameters form the default group.
    """

    model_config = ConfigDict(extra="allow")

    match: str

    @field_validator("match")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        if value == "@no_decay":
            return value
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"invalid regular expression {value!r}: {error}") from error
        return value

    def options(self) -> dict[str, Any]:
        """Return the optimizer options this rule sets (everything but ``match``)."""
        return dict(self.model_extra or {})


class OptimizerSpec(_Strict):
    """``optimizer:`` a built-in name or import path; ``args`` holds everything but the LR."""

    name: str = "sgd"
    args: dict[str, Any] = Field(default_factory=dict)
    param_groups: list[ParamGroupRule] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _check_builtin(value, BUILTIN_OPTIMIZERS, "optimizer")

    @field_validator("args")
    @classmethod
    def _no_lr(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "lr" in value:
            raise ValueError("do not set 'lr' here: the sweep sets the learning rate")
        return value


class SweepSpec(_Strict):
    """``sweep:`` the LR ladder, the stop rule, and how each step is computed."""

    start_lr: float = Field(default=1e-7, gt=0)
    end_lr: float = Field(default=10.0, gt=0)
    steps: int = Field(default=100, ge=5, le=100_000)
    mode: Literal["exp", "linear"] = "exp"
    smoothing: float = Field(default=0.98, ge=0.0, lt=1.0)
    diverge_factor: float = Field(default=4.0, gt=1.0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    accumulation_steps: int = Field(default=1, ge=1)
    grad_clip: float | None = Field(default=None, gt=0)
    repeats: int = Field(default=1, ge=1, le=100)
    check_every: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> SweepSpec:
        if self.start_lr >= self.end_lr:
            raise ValueError(f"start_lr ({self.start_lr:g}) must be below end_lr ({self.end_lr:g})")
        return self


class SuggestSpec(_Strict):
    """``suggest:`` which rule picks the LR, and the validation-aware refine stage."""

    method: Literal["lrfind", "steepest", "minimum", "valley"] = "lrfind"
    refine: Literal["auto", "on", "off"] = "auto"
    # None: twice sweep.steps (the LR a short trial favours falls as the trial gets longer).
    refine_steps: int | None = Field(default=None, ge=1)
    refine_candidates: int = Field(default=5, ge=2, le=20)

    @field_validator("refine", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare on/off as a boolean.
        if value is True:
            return "on"
        if value is False:
            return "off"
        return value


class ExpectSpec(_Strict):
    """``expect:`` what ``lrfind check`` compares the suggestion with."""

    lr_min: float | None = Field(default=None, gt=0)
    lr_max: float | None = Field(default=None, gt=0)
    baseline: str | None = None
    tolerance: float = Field(default=2.0, gt=1.0)
    min_confidence: Literal["low", "medium", "high"] = "low"

    @model_validator(mode="after")
    def _consistent(self) -> ExpectSpec:
        if self.lr_min is not None and self.lr_max is not None and self.lr_min > self.lr_max:
            raise ValueError(f"lr_min ({self.lr_min:g}) must not exceed lr_max ({self.lr_max:g})")
        return self


class OutputSpec(_Strict):
    """``output:`` where run directories go."""

    dir: str = "runs"


class Config(_Strict):
    """A validated lrfind config. ``base_dir`` is the folder relative paths resolve against."""

    name: str = "range-test"
    seed: int = 0
    device: str = "auto"
    model: ModelSpec
    data: DataSpec
    loss: str | ComponentSpec = "auto"
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    step: str | None = None
    sweep: SweepSpec = Field(default_factory=SweepSpec)
    suggest: SuggestSpec = Field(default_factory=SuggestSpec)
    expect: ExpectSpec | None = None
    output: OutputSpec = Field(default_factory=OutputSpec)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value) or len(value) > 100:
            raise ValueError(
                f"invalid run name {value!r}: use letters, digits, '-', '_' and '.', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("device")
    @classmethod
    def _valid_device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"invalid device {value!r}: use auto, cpu, cuda, cuda:N or mps")
        return value

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: str | ComponentSpec) -> str | ComponentSpec:
        if isinstance(value, str):
            return _check_builtin(value, BUILTIN_LOSSES, "loss")
        return value

    @field_validator("step")
    @classmethod
    def _step_is_path(cls, value: str | None) -> str | None:
        if value is not None and not is_import_path(value):
            raise ValueError(f"step must be an import path 'pkg.module:fn', got {value!r}")
        return value

    @property
    def base_dir(self) -> Path:
        """Folder that relative import paths and data files resolve against."""
        return self._base_dir

    @property
    def source(self) -> Path | None:
        """The YAML file this config was loaded from, if any."""
        return self._source

    def to_yaml(self) -> str:
        """Return the resolved config (every default filled in) as YAML."""
        return yaml.safe_dump(
            self.model_dump(mode="json"), sort_keys=False, default_flow_style=False
        )

    def import_paths(self) -> list[tuple[str, str]]:
        """Return (key, import path) for every piece of user code this config will import."""
        found: list[tuple[str, str]] = []
        if is_import_path(self.model.target):
            found.append(("model.target", self.model.target))
        if is_import_path(self.data.target):
            found.append(("data.target", self.data.target))
        loss_target = self.loss if isinstance(self.loss, str) else self.loss.target
        if is_import_path(loss_target):
            found.append(("loss" if isinstance(self.loss, str) else "loss.target", loss_target))
        if is_import_path(self.optimizer.name):
            found.append(("optimizer.name", self.optimizer.name))
        if self.step is not None:
            found.append(("step", self.step))
        return found


# --- YAML parsing with positions -------------------------------------------------------------

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
