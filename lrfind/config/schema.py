"""The config schema: typed, validated models of a config file; the one source of every default."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from lrfind.config.fields import (
    StrictModel,
    check_builtin,
    finite_args,
    finite_values,
    is_import_path,
)
from lrfind.names import (
    AUTO_LOSS,
    BUILTIN_DATASETS,
    BUILTIN_LOSSES,
    BUILTIN_MODELS,
    BUILTIN_OPTIMIZERS,
    DEFAULT_METHOD,
    SuggestMethod,
)
from lrfind.results import MIN_CURVE_POINTS, TRAIN_SCHEDULES, TrainRun, parse_budget
from lrfind.settings import (
    MAX_TRAIN_STEPS,
    SuggestOptions,
    SweepOptions,
    read_budget,
)

#: The settings' own defaults, which the YAML fields below take as theirs.
_SWEEP = SweepOptions()
_SUGGEST = SuggestOptions()

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

#: Run names are at most this long (they name folders).
NAME_LIMIT = 100


def run_name_problem(value: str) -> str | None:
    """What is wrong with a run name, or None for a valid one."""
    if len(value) > NAME_LIMIT:
        return f"invalid run name: {len(value)} characters, the limit is {NAME_LIMIT}"
    if not NAME_PATTERN.match(value):
        return (
            f"invalid run name {value!r}: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit"
        )
    return None


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


class _TargetSpec(StrictModel):
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
        return check_builtin(value, cls.builtins, cls.kind)

    _finite = field_validator("args")(finite_args)


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
    #: The key (or keys: passed as keyword arguments) of a dict batch that the model takes.
    inputs_key: str | list[str] | None = None
    targets_key: str | None = None
    #: ``module:fn`` collate function for both loaders (a ``datasets.Dataset`` of token lists).
    collate: str | None = None

    @field_validator("collate")
    @classmethod
    def _collate_path(cls, value: str | None) -> str | None:
        if value is not None and not is_import_path(value):
            raise ValueError(f"must be an import path like 'module:fn', got {value!r}")
        return value


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
        finite_values(self.model_extra or {})
        return self

    def options(self) -> dict[str, Any]:
        """Return the optimizer options this rule sets (everything but ``match``)."""
        return dict(self.model_extra or {})


class OptimizerSpec(StrictModel):
    """``optimizer:`` a built-in name or import path; ``args`` holds everything but the LR."""

    name: str = "sgd"
    args: dict[str, Any] = Field(default_factory=dict)
    param_groups: list[ParamGroupRule] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return check_builtin(value, BUILTIN_OPTIMIZERS, "optimizer")

    @field_validator("args")
    @classmethod
    def _no_lr(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "lr" in value:
            raise ValueError("do not set 'lr' here: the sweep sets the learning rate")
        finite_values(value)
        return value


class SweepSpec(StrictModel):
    """``sweep:`` the LR ladder, the stop rule, and how each step is computed."""

    start_lr: float = Field(default=_SWEEP.start_lr, gt=0)
    end_lr: float = Field(default=_SWEEP.end_lr, gt=0)
    steps: int = Field(default=_SWEEP.steps, ge=MIN_CURVE_POINTS, le=MAX_SWEEP_STEPS)
    mode: Literal["exp", "linear"] = _SWEEP.mode
    smoothing: float = Field(default=_SWEEP.smoothing, ge=0.0, lt=1.0)
    diverge_factor: float = Field(default=_SWEEP.diverge_factor, gt=1.0)
    precision: Literal["fp32", "bf16", "fp16"] = _SWEEP.precision
    accumulation_steps: int = Field(
        default=_SWEEP.accumulation_steps, ge=1, le=MAX_ACCUMULATION_STEPS
    )
    grad_clip: float | None = Field(default=_SWEEP.grad_clip, gt=0)
    repeats: int = Field(default=_SUGGEST.repeats, ge=1, le=100)
    check_every: int | None = Field(default=_SWEEP.check_every, ge=1, le=MAX_SWEEP_STEPS)
    # memory: a host copy of the weights and optimizer (each rank its shard under FSDP2);
    # disk: torch.distributed.checkpoint into a temporary folder, removed afterwards.
    snapshot: Literal["memory", "disk"] = "memory"
    # None: inside the run directory; a relative path is read against the current directory
    # (as output.dir). Several machines need a folder every one of them reads.
    snapshot_dir: str | None = None

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


#: The sweep's defaults as YAML writes them (``lrfind init``'s starter config).
SWEEP_DEFAULTS = SweepSpec()

#: A budget above this many sweeps is a typo, not a plan.
MAX_BUDGET = 1000.0


class SuggestSpec(StrictModel):
    """``suggest:`` which rule picks the LR, and the trials that refine or search for it."""

    method: SuggestMethod = DEFAULT_METHOD
    refine: Literal["auto", "on", "off"] = _SUGGEST.refine
    # None: the longest trials the budget affords (at most twice sweep.steps).
    refine_steps: int | None = Field(default=None, ge=1, le=MAX_REFINE_STEPS)
    # None: 3 grid LRs from the sweep's max_lr down (+1 past an edge), fewer on a tight budget.
    refine_candidates: int | None = Field(default=None, ge=2, le=20)
    # 1: the sweep alone (no trials). A number of sweeps, or with train.steps a share of the
    # run: "5%". Unset: the default for the run (lrfind.settings.default_budget).
    budget: float | str | None = Field(default=None)

    @field_validator("budget")
    @classmethod
    def _valid_budget(cls, value: float | str | None) -> float | str | None:
        if value is None:
            return None
        budget = parse_budget(value)
        if budget.sweeps is not None and budget.sweeps > MAX_BUDGET:
            raise ValueError(f"a budget above {MAX_BUDGET:g} sweeps is a typo, not a plan")
        return value if isinstance(value, str) and budget.share is not None else budget.sweeps or 0

    @field_validator("refine", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare on/off as a boolean.
        if value is True:
            return "on"
        if value is False:
            return "off"
        return value


#: The suggestion's defaults as one value: ``RangeTest.run`` reads its own here, and a test holds
#: ``range_test``'s signature to them.
SUGGEST_DEFAULTS = SuggestSpec()


class TrainSpec(StrictModel):
    """``train:`` the run you will train with the answer: its length, schedule and warmup.

    Give ``steps`` (optimizer steps) or ``epochs`` (converted with the training loader's
    length and ``sweep.accumulation_steps``). ``warmup`` below 1 is a fraction of the run,
    1 or more a number of steps.
    """

    steps: int | None = Field(default=None, ge=1, le=MAX_TRAIN_STEPS)
    epochs: float | None = Field(default=None, gt=0, le=1e6)
    schedule: Literal["constant", "onecycle", "cosine", "linear"] = "constant"
    warmup: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _one_length(self) -> TrainSpec:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give the run's length as steps or as epochs (one of the two)")
        if self.steps is not None:
            try:
                self.run(self.steps)  # a warmup that does not fit the run fails here
            except ValueError as error:
                raise ValueError(str(error).removeprefix("train ")) from None
        elif self.warmup >= 1 and self.warmup != int(self.warmup):
            raise ValueError(f"warmup of {self.warmup:g} steps must be a whole number")
        return self

    def run(self, steps: int) -> TrainRun:
        """The run as the engine takes it, ``steps`` long (``steps``, or ``epochs`` converted).

        Raises:
            ValueError: the warmup does not fit the run.
        """
        return TrainRun(steps=steps, schedule=self.schedule, warmup=self.warmup)


assert tuple(get_args(TrainSpec.model_fields["schedule"].annotation)) == TRAIN_SCHEDULES


class ExpectSpec(StrictModel):
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


class DistributedSpec(StrictModel):
    """``distributed:`` how the model is spread over processes under torchrun or ``--nproc``."""

    strategy: Literal["ddp", "fsdp"] = "ddp"
    # FSDP2 shards each module of these classes (names, or import paths), then the root; empty:
    # the built-in models' blocks.
    shard_modules: list[str] = Field(default_factory=list)

    @field_validator("shard_modules")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not name.strip()]
        if bad:
            raise ValueError("module class names must not be empty")
        return value


class OutputSpec(StrictModel):
    """``output:`` where run directories go."""

    dir: str = "runs"


class Config(StrictModel):
    """A validated lrfind config. ``base_dir`` is the folder relative paths resolve against."""

    name: str = "range-test"
    seed: int = Field(default=0, ge=-SEED_LIMIT - 1, le=SEED_LIMIT)
    device: str = "auto"
    model: ModelSpec
    data: DataSpec
    loss: str | ComponentSpec = AUTO_LOSS
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    step: str | None = None
    sweep: SweepSpec = Field(default_factory=SweepSpec)
    suggest: SuggestSpec = Field(default_factory=SuggestSpec)
    train: TrainSpec | None = None
    expect: ExpectSpec | None = None
    output: OutputSpec = Field(default_factory=OutputSpec)
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: Path | None = PrivateAttr(default=None)
    _unused: tuple[str, ...] = PrivateAttr(default=())

    def sweep_options(self) -> SweepOptions:
        """The engine's settings of the sweep (``sweep:`` less what the workflow handles)."""
        return SweepOptions(**{f.name: getattr(self.sweep, f.name) for f in fields(SweepOptions)})

    def suggest_options(self) -> SuggestOptions:
        """The engine's settings of the answer (``suggest:``, ``sweep.repeats`` and ``seed``)."""
        return SuggestOptions(
            method=self.suggest.method,
            refine=self.suggest.refine,
            refine_steps=self.suggest.refine_steps,
            refine_candidates=self.suggest.refine_candidates,
            budget=read_budget(self.suggest.budget),
            repeats=self.sweep.repeats,
            seed=self.seed,
        )

    @model_validator(mode="after")
    def _share_needs_a_run(self) -> Config:
        budget = self.suggest.budget
        if budget is not None and parse_budget(budget).share is not None and self.train is None:
            raise ValueError(
                f"suggest.budget {self.suggest.budget!r} is a share of the run: describe the run "
                "in train: (steps or epochs), or give the budget in sweeps"
            )
        return self

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        problem = run_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
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
            return check_builtin(value, BUILTIN_LOSSES, "loss")
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

    def mark_unused(self, keys: Iterable[str]) -> None:
        """Leave these dotted keys (``data.batch_size``) out of ``to_yaml``: the run ignored
        them, so the saved config must not show them as used."""
        self._unused = (*self._unused, *keys)

    def to_yaml(self) -> str:
        """Return the resolved config (every default filled in, unused keys left out) as YAML."""
        document = self.model_dump(mode="json")
        for dotted in self._unused:
            section, _, key = dotted.partition(".")
            if isinstance(document.get(section), dict):
                document[section].pop(key, None)
        return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)

    def import_paths(self) -> list[tuple[str, str]]:
        """Return (key, import path) for every piece of user code this config will import."""
        found: list[tuple[str, str]] = []
        if is_import_path(self.model.target):
            found.append(("model.target", self.model.target))
        if is_import_path(self.data.target):
            found.append(("data.target", self.data.target))
        if self.data.collate is not None:
            found.append(("data.collate", self.data.collate))
        loss_target = self.loss if isinstance(self.loss, str) else self.loss.target
        if is_import_path(loss_target):
            found.append(("loss" if isinstance(self.loss, str) else "loss.target", loss_target))
        if is_import_path(self.optimizer.name):
            found.append(("optimizer.name", self.optimizer.name))
        if self.step is not None:
            found.append(("step", self.step))
        return found
