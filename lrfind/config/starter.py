"""``lrfind init``: a commented starter config for a chosen model, dataset and optimizer.

The text is valid YAML that ``load_config`` accepts; built-in choices that need no file run as
they are (``csv``, ``npz`` and ``pt`` starters point at a placeholder path to replace). No torch
import here: ``lrfind init`` stays instant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lrfind.config.schema import (
    SUGGEST_DEFAULTS,
    SWEEP_DEFAULTS,
    is_import_path,
    run_name_problem,
)
from lrfind.errors import ConfigError
from lrfind.format import did_you_mean
from lrfind.names import BUILTIN_DATASETS, BUILTIN_MODELS, BUILTIN_OPTIMIZERS

_SEQUENCE_MODELS = ("gru", "transformer")
_FILE_DATASETS = ("csv", "npz", "pt")

_MODEL_ARGS = {
    "linear": "  args: {}              # in_features / out_features come from the data",
    "logistic": "  args: {}              # one Linear layer: logistic regression",
    "mlp": """\
  args:
    hidden: [128, 64]     # hidden layer sizes
    activation: relu      # relu | gelu | tanh | silu
    dropout: 0.0
    norm: null            # null | batch | layer""",
    "cnn": """\
  args:
    channels: [16, 32]    # one conv block (conv -> relu -> 2x2 pool) per entry
    kernel_size: 3
    pool: max             # max | avg | null""",
    "gru": """\
  args:
    embed_dim: 32
    hidden_size: 64
    num_layers: 1         # vocab_size comes from the data""",
    "transformer": """\
  args:
    d_model: 64
    num_heads: 4
    num_layers: 2         # causal mask; vocab_size and max_len come from the data""",
}

_DATA_ARGS = {
    "sklearn": """\
  args:
    name: digits          # digits | wine | breast_cancer | iris | diabetes (shipped by sklearn)""",
    "synthetic_classification": """\
  args:
    size: 2000            # samples, generated from the seed
    features: 20
    classes: 4
    noise: 0.05           # fraction of random labels""",
    "synthetic_regression": """\
  args:
    size: 2000            # samples, generated from the seed
    features: 20
    noise: 0.1            # std of the noise added to the unit-variance targets""",
    "sequence": """\
  args:
    size: 1000            # sequences from a random Markov grammar, generated from the seed
    length: 32            # tokens per sequence; the targets are the next tokens
    vocab: 32
    branching: 3          # possible successors of each token""",
    "csv": """\
  args:
    path: data/train.csv  # REPLACE: relative to this file's folder; needs a header row
    target: label         # REPLACE: the column to predict
    # features: [a, b, c] # numeric columns to use (default: every column but the target)
    task: auto            # auto | classification | regression""",
    "npz": """\
  args:
    path: data/train.npz  # REPLACE: relative to this file's folder (np.savez(path, x=..., y=...))
    x_key: x
    y_key: y
    task: auto            # auto | classification | regression | sequence""",
    "pt": """\
  args:
    path: data/train.pt   # REPLACE: torch.save((inputs, targets), path) or a dict with x/y keys
    x_key: x
    y_key: y
    task: auto            # auto | classification | regression | sequence""",
}

_OPTIMIZER_ARGS = {
    "sgd": """\
  args:
    momentum: 0.9
    weight_decay: 0.0""",
    "adam": """\
  args:
    betas: [0.9, 0.999]
    weight_decay: 0.0""",
    "adamw": """\
  args:
    betas: [0.9, 0.999]
    weight_decay: 0.01""",
    "rmsprop": """\
  args:
    alpha: 0.99
    momentum: 0.0""",
    "adagrad": "  args: {}",
}

_PARAM_GROUPS_ON = """\
  # The first rule that matches a parameter takes it; the rest keep the args above.
  # "@no_decay" = biases + normalization-layer parameters; other matches are regular expressions
  # searched in names like "layers.0.weight". lr_scale multiplies the swept LR for a group.
  param_groups:
    - match: "@no_decay"
      weight_decay: 0.0"""

_PARAM_GROUPS_OFF = """\
  # param_groups:         # per-parameter options; the first matching rule wins
  #   - match: "@no_decay" # biases + normalization-layer parameters
  #     weight_decay: 0.0
  #   - match: "^layers\\\\.0\\\\." # a regular expression on parameter names
  #     lr_scale: 0.1     # this group gets 0.1x the swept LR"""


def _choose(value: str, builtins: Sequence[str], what: str) -> str:
    if value in builtins or is_import_path(value):
        return value
    hint = did_you_mean(value, builtins)
    raise ConfigError(
        f"unknown {what} '{value}'{hint}; choose one of {', '.join(builtins)} "
        "or an import path 'pkg.module:callable'"
    )


def _check_pair(model: str, dataset: str) -> None:
    if is_import_path(model) or is_import_path(dataset) or dataset in ("npz", "pt"):
        return
    if model in _SEQUENCE_MODELS and dataset != "sequence":
        raise ConfigError(
            f"model '{model}' reads token sequences: use dataset 'sequence' (or npz/pt tokens)"
        )
    if model == "cnn" and dataset != "sklearn":
        raise ConfigError(
            "model 'cnn' needs images: use dataset 'sklearn' (digits as 1x8x8) or npz/pt images"
        )
    if model not in _SEQUENCE_MODELS and dataset == "sequence":
        raise ConfigError(
            f"dataset 'sequence' holds tokens, which model '{model}' cannot read: "
            "use model 'gru' or 'transformer'"
        )


def _section_model(model: str) -> str:
    if is_import_path(model):
        return f"""\
# --- model: your nn.Module class or factory, called with args as keyword arguments -----------
# Required parameters named in_features, out_features, num_classes, in_channels or vocab_size
# that args leave out are filled from the data.
model:
  target: {model}
  args: {{}}"""
    return f"""\
# --- model: a built-in or "pkg.module:Class" -----------------------------------------------
# Built-ins: {", ".join(BUILTIN_MODELS)}. Input and output sizes come from
# the data unless args set them (in_features, out_features, in_channels, vocab_size...).
model:
  target: {model}
{_MODEL_ARGS[model]}"""


def _section_data(dataset: str, model: str) -> str:
    if is_import_path(dataset):
        args = """\
  args: {}                # passed to your factory as keyword arguments
  # It may return a Dataset, a DataLoader, or a (train, val) pair of them."""
    else:
        args = _DATA_ARGS[dataset]
        if dataset == "sklearn" and model == "cnn":
            args += "\n    as_image: true        # digits as (1, 8, 8) images for the cnn"
    return f"""\
# --- data: where batches come from ------------------------------------------------------------
data:
  target: {dataset}
{args}
  batch_size: 64
  val_fraction: 0.2       # held out (from the seed) for the validation-aware refine stage
  shuffle: true
  num_workers: 0
  drop_last: false
  # inputs_key: inputs    # for batches that are dicts: which keys hold inputs and targets
  # targets_key: targets"""


def _section_optimizer(optimizer: str) -> str:
    if is_import_path(optimizer):
        args = "  args: {}              # called as Optimizer(params, lr=..., **args)"
        groups = _PARAM_GROUPS_OFF
    else:
        args = _OPTIMIZER_ARGS[optimizer]
        groups = _PARAM_GROUPS_ON if optimizer == "adamw" else _PARAM_GROUPS_OFF
    return f"""\
# --- optimizer: everything but the learning rate (the sweep sets it) ---------------------------
optimizer:
  name: {optimizer:<20}  # {" | ".join(BUILTIN_OPTIMIZERS)} | pkg.module:Class
{args}
{groups}"""


def _yaml_scalar(value: object) -> str:
    """A default as YAML writes it (null, true/false, numbers and plain strings as they are)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_SWEEP_TEMPLATE = """\
# --- loss ---------------------------------------------------------------------------------------
# auto = cross_entropy for classes and sequences, mse for regression. Built-ins: cross_entropy,
# nll, mse, l1, smooth_l1, huber, bce_with_logits; or {{target: name, args: {{...}}}}, or your own
# "pkg.module:fn" called as fn(outputs, targets).
loss: auto
# step: pkg.module:fn     # instead of model + loss: fn(model, batch) -> scalar loss

# --- sweep: the LR ladder and when to stop -----------------------------------------------------
sweep:
  start_lr: 1.0e-6
  end_lr: {sweep[end_lr]}
  steps: {sweep[steps]:<17}# one optimizer step per LR
  mode: {sweep[mode]:<18}# exp (even in log LR) | linear
  smoothing: {sweep[smoothing]:<13}# EMA of the loss the stop rule and the suggestion read
  diverge_factor: {sweep[diverge_factor]:<8}# stop: smoothed loss (or 5 raw ones) > this x best
  precision: fp32         # fp32 | bf16 | fp16
  accumulation_steps: 1
  grad_clip: null
  repeats: 1              # >1 repeats the sweep with other seeds and reports the spread

# --- suggest: how the LR is picked from the curve ----------------------------------------------
suggest:
  method: {suggest[method]:<16}# lrfind | steepest | minimum | valley
  refine: {suggest[refine]:<16}# auto | on | off: short runs at candidate LRs, scored on val loss
  budget: {suggest[budget]:<16}# null: 4 sweeps (with train: more for long runs); or 4, "5%"
  refine_candidates: {suggest[refine_candidates]:<5}# null: what the budget affords (3 + 1 at most)

# --- train: the run you will train (the best LR falls as training gets longer) ----------------
# train:
#   steps: 20000          # or epochs: 30; the answer is then for this run
#   schedule: constant    # constant | onecycle | cosine | linear: the answer is the peak LR
#   warmup: 0.0           # fraction of the run (0.06) or steps (500)

# --- expect: what `lrfind check` compares the suggestion with (for CI) -------------------------
# expect:
#   lr_min: 1.0e-3
#   lr_max: 1.0e-1
#   min_confidence: medium

output:
  dir: runs               # each sweep writes runs/<name>/<UTC timestamp>/
"""

#: The loss, sweep, suggest and output sections, with the schema's defaults filled in.
_SWEEP = _SWEEP_TEMPLATE.format(
    sweep={key: _yaml_scalar(value) for key, value in SWEEP_DEFAULTS.model_dump().items()},
    suggest={key: _yaml_scalar(value) for key, value in SUGGEST_DEFAULTS.model_dump().items()},
)


def _default_name(model: str, dataset: str) -> str:
    parts = [re.split(r"[.:]", value)[-1] for value in (model, dataset)]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts)).strip("-._")
    return name or "range-test"


def render_starter(
    model: str = "mlp", dataset: str = "sklearn", optimizer: str = "sgd", name: str | None = None
) -> str:
    """Return a commented starter config for ``model`` on ``dataset`` with ``optimizer``.

    Every section is explained in comments; the text is valid YAML that ``load_config`` accepts.
    Each choice is a built-in name or an import path ("pkg.module:callable").

    Raises:
        ConfigError: an unknown built-in name, a model that cannot read the dataset (e.g. gru on
            tabular data), or an invalid run name.
    """
    model = _choose(model, BUILTIN_MODELS, "model")
    dataset = _choose(dataset, BUILTIN_DATASETS, "dataset")
    optimizer = _choose(optimizer, BUILTIN_OPTIMIZERS, "optimizer")
    _check_pair(model, dataset)
    run_name = name if name is not None else _default_name(model, dataset)
    problem = run_name_problem(run_name)
    if problem is not None:
        raise ConfigError(problem)
    placeholder = (
        "\n# Replace the placeholder data path below before running.\n"
        if dataset in _FILE_DATASETS
        else ""
    )
    header = f"""\
# lrfind starter config: {model} on {dataset} with {optimizer}.
#
#   lrfind validate <this file>    # check it without running anything
#   lrfind sweep <this file>       # run the range test; writes a plot and result.json
#
# Any value can be overridden on the command line: --set sweep.steps=200
{placeholder}
name: {run_name}
seed: 0                   # seeds the weights, the data split and the batch order
device: auto              # auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps
"""
    sections = [
        header,
        _section_model(model),
        "",
        _section_data(dataset, model),
        "",
        _section_optimizer(optimizer),
        "",
        _SWEEP,
    ]
    return "\n".join(sections)
