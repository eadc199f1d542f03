"""The config schema: typed, validated models of a config file; the one source of every default."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from lrfind.format import did_you_mean
from lrfind.results import MIN_CURVE_POINTS

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
    "model",
)

BUILTIN_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")

SUGGEST_METHODS = ("lrfind", "steepest", "minimum", "valley")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

#: Bounds of the integer settings: generous for any real run, small enough that a typo
#: (99999999999999999999) is caught here rather than deep in torch.
SEED_LIMIT = 2**63 - 1
MAX_BATCH_SIZE = 2**20
MAX_WORKERS = 1024
MAX_SWEEP_STEPS = 100_000
MAX_ACCUMULATION_STEPS = 10_000
MAX_REFINE_STEPS = 1_000_000

#: The LR ladder's bounds: start/end ratios within them stay far from float overflow.
MIN_LR = 1e-12
MAX_LR = 1e6

#: Integers in ``args`` beyond int64 cannot reach torch or numpy.
_INT64_MAX = 2**63 - 1


def _finite_values(value: Any, path: str = "") -> None:
    """Raise a ``bad_number`` error naming the first NaN/inf float or beyond-int64 integer.

    The error's context holds ``path``, the dotted path inside ``value``, so the loader can name
    the exact key (``model.args.hidden.0``).
    """
    if isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError(
            "bad_number", "must be a finite number, got {value}", {"path": path, "value": value}
        )
    if isinstance(value, int) and abs(value) > _INT64_MAX:
        raise PydanticCustomError(
            "bad_number",
            "is too large ({value}); at most 2**63 - 1",
            {"path": path, "value": value},
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _finite_values(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _finite_values(item, f"{path}.{index}" if path else str(index))


def _finite_args(value: dict[str, Any]) -> dict[str, Any]:
    _finite_values(value)
    return value


def is_import_path(target: str) -> bool:
    """Return True when ``target`` is an import path ("pkg.mod:callable" or "pkg.mod.Callable")."""
    return ":" in target or "." in target


def _accepts_bool(annotation: Any) -> bool:
    """Whether a field annotated ``annotation`` takes True/False as they are."""
    if annotation is bool or annotation is Any:
        return True
    if get_origin(annotation) is Literal:
        return any(isinstance(choice, bool) for choice in get_args(annotation))
    return any(_accepts_bool(arg) for arg in get_args(annotation))


def _takes_number(annotation: Any) -> bool:
    """Whether a field annotated ``annotation`` takes an int or a float."""
    if annotation in (int, float):
        return True
    return any(_takes_number(arg) for arg in get_args(annotation))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads YAML's true/false (and yes/no/on/off) as 1/0 for a number field, so a
        # slip like "batch_size: yes" would run with batch size 1 instead of failing.
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            annotation = None if field is None else field.annotation
            if _takes_number(annotation) and not _accepts_bool(annotation):
                word = "true" if value else "false"
                raise ValueError(
                    f"expected a number, got the boolean {word} (YAML reads true/false, yes/no "
                    "and on/off as booleans)"
                )
        return value


def _check_builtin(value: str, builtins: Sequence[str], what: str) -> str:
    if is_import_path(value) or value in builtins:
        return value
    hint = did_you_mean(value, builtins)
    raise ValueError(
        f"unknown built-in {what} '{value}'{hint}; built-ins: {', '.join(builtins)}; "
        "or give an import path 'pkg.module:callable'"
    )


class _TargetSpec(_Strict):
    """A component given as ``{target: built-in name or import.path, args: {...}}``.

    Subclasses name their built-ins in ``builtins`` and what they are in ``kind``.
    """

    builtins: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "component"

    target: str
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("target")
    @classmethod
    def _known(cls, value: str) -> str:
        return _check_builtin(value, cls.builtins, cls.kind)

    _finite = field_validator("args")(_finite_args)


class ModelSpec(_TargetSpec):
    """``model:`` a built-in name or import path, called with ``args`` as keyword arguments.

    ``output_key`` names what the loss reads when the model returns an object, dict or tuple
    rather than a tensor: an attribute or key (default: ``logits`` when there is one) or a tuple
    index. ``loss: model`` ignores it (the model's own ``.loss`` is used).
    """

    builtins = BUILTIN_MODELS
    kind = "model"

    output_key: str | int | None = None


class ComponentSpec(_TargetSpec):
    """A loss given as ``{target: name or import.path, args: {...}}``."""

    builtins = BUILTIN_LOSSES
    kind = "loss"


class DataSpec(_TargetSpec):
    """``data:`` where batches come from and how they are batched."""

    builtins = BUILTIN_DATASETS
    kind = "dataset"

    batch_size: int = Field(default=64, ge=1, le=MAX_BATCH_SIZE)
    val_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    shuffle: bool = True
    num_workers: int = Field(default=0, ge=0, le=MAX_WORKERS)
    drop_last: bool = False
    inputs_key: str | None = None
    targets_key: str | None = None


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

    @model_validator(mode="after")
    def _finite_options(self) -> ParamGroupRule:
        _finite_values(self.model_extra or {})
        return self

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
        _finite_values(value)
        return value


class SweepSpec(_Strict):
    """``sweep:`` the LR ladder, the stop rule, and how each step is computed."""

    start_lr: float = Field(default=1e-7, gt=0)
    end_lr: float = Field(default=10.0, gt=0)
    steps: int = Field(default=100, ge=MIN_CURVE_POINTS, le=MAX_SWEEP_STEPS)
    mode: Literal["exp", "linear"] = "exp"
    smoothing: float = Field(default=0.98, ge=0.0, lt=1.0)
    diverge_factor: float = Field(default=4.0, gt=1.0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    accumulation_steps: int = Field(default=1, ge=1, le=MAX_ACCUMULATION_STEPS)
    grad_clip: float | None = Field(default=None, gt=0)
    repeats: int = Field(default=1, ge=1, le=100)
    check_every: int | None = Field(default=None, ge=1, le=MAX_SWEEP_STEPS)

    @field_validator("start_lr", "end_lr")
    @classmethod
    def _within_ladder_bounds(cls, value: float) -> float:
        if not MIN_LR <= value <= MAX_LR:
            raise ValueError(f"must be between {MIN_LR:g} and {MAX_LR:g}, got {value:g}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> SweepSpec:
        if self.start_lr >= self.end_lr:
            raise ValueError(f"start_lr ({self.start_lr:g}) must be below end_lr ({self.end_lr:g})")
        return self


#: The sweep's defaults as one value: the engine's SweepOptions and ``range_test`` read theirs here.
SWEEP_DEFAULTS = SweepSpec()


#: ``suggest.budget``: the whole recommendation (sweep plus refine or search trials, validation
#: included) costs at most this many sweeps. 4 leaves three sweeps' worth of trials: enough for
#: a three-LR window plus one extension at trials about as long as the sweep.
DEFAULT_BUDGET = 4.0

#: A budget above this many sweeps is a typo, not a plan.
MAX_BUDGET = 1000.0


class SuggestSpec(_Strict):
    """``suggest:`` which rule picks the LR, and the trials that refine or search for it."""

    method: Literal["lrfind", "steepest", "minimum", "valley"] = "lrfind"
    refine: Literal["auto", "on", "off"] = "auto"
    # None: the longest trials the budget affords (at most twice sweep.steps).
    refine_steps: int | None = Field(default=None, ge=1, le=MAX_REFINE_STEPS)
    # None: 3 grid LRs from the sweep's max_lr down (+1 past an edge), fewer on a tight budget.
    refine_candidates: int | None = Field(default=None, ge=2, le=20)
    # 1: the sweep alone (no trials).
    budget: float = Field(default=DEFAULT_BUDGET, ge=1.0, le=MAX_BUDGET)

    @field_validator("refine", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare on/off as a boolean.
        if value is True:
            return "on"
        if value is False:
            return "off"
        return value


#: The suggestion's defaults as one value (``range_test`` reads its own here).
SUGGEST_DEFAULTS = SuggestSpec()


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


#: ``lrfind check``'s defaults (the tolerance when neither the config nor the CLI sets one).
EXPECT_DEFAULTS = ExpectSpec()


class OutputSpec(_Strict):
    """``output:`` where run directories go."""

    dir: str = "runs"


class Config(_Strict):
    """A validated lrfind config. ``base_dir`` is the folder relative paths resolve against."""

    name: str = "range-test"
    seed: int = Field(default=0, ge=-SEED_LIMIT - 1, le=SEED_LIMIT)
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


#: Param-group key holding a per-group multiplier of the swept LR (e.g. 0.1 for a backbone).
LR_SCALE_KEY = "lr_scale"
