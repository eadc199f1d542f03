"""``lrfind compare``: one range test per variant of a config, side by side.

    lrfind compare configs/quickstart.yaml --vary optimizer.name=sgd,adam,rmsprop,adagrad
    lrfind compare cfg.yaml --vary optimizer.name=sgd,adam --vary data.batch_size=32,128

Each ``--vary KEY=V1,V2,...`` lists values for one config key (each parsed as YAML, exactly like
``--set``); several ``--vary`` make a grid. Every variant is a full sweep written as its own run
directory under one compare folder, ``<output.dir>/<name>-compare/<UTC stamp>/`` (or ``--out``),
next to ``overlay.png``, ``compare.json`` and ``compare.csv``.

A variant that fails (a loss that is not a scalar under one optimizer, a model that does not fit
one batch size) is recorded with its error and the others still run. Every variant's config is
validated before the first sweep starts, so a misspelt key costs no training.

No torch or matplotlib at module level: the CLI imports this module.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lrfind import runs
from lrfind.config import Config, load_config, parse_override
from lrfind.errors import ConfigError, LrfindError
from lrfind.report import NO_VALUE, format_lr
from lrfind.results import RangeTestResult

if TYPE_CHECKING:
    from lrfind.engine import StopFlag
    from lrfind.workflows import Reporter

COMPARE_JSON = "compare.json"
COMPARE_CSV = "compare.csv"
OVERLAY_FILE = "overlay.png"
#: Longest slug one varied value contributes to a variant's name.
SLUG_LIMIT = 24
#: Run names are at most this long (``lrfind.config.NAME_PATTERN`` plus its length check).
NAME_LIMIT = 100

VariantStatus = Literal["ok", "no_answer", "failed", "interrupted", "skipped"]
CompareStatus = Literal["ok", "failed", "no_answer", "interrupted"]

_OPENERS = {"[": "]", "{": "}"}
_CLOSERS = {"]": "[", "}": "{"}
#: A quote opens a quoted YAML scalar only where a value starts (YAML allows "it's" unquoted).
_VALUE_STARTS = "[{,:"
_SLUG_JUNK = re.compile(r"[^A-Za-z0-9.]+")


# --------------------------------------------------------------------------------------------
# Parsing --vary


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
    values = tuple(parse_override(f"{key}={item}")[1] for item in raw)
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
    config_path: Path, variants: Sequence[Variant], overrides: Sequence[str] = ()
) -> list[Config]:
    """Load and validate every variant's config (``overrides`` first, then the variant's).

    Raises:
        ConfigError: listing every distinct problem of every variant at once.
    """
    keys = [key for key, _, _ in variants[0].settings] if variants else []
    configs: list[Config] = []
    problems: list[str] = []
    source: str | None = None
    for variant in variants:
        try:
            configs.append(load_config(config_path, [*overrides, *variant.overrides]))
        except ConfigError as error:
            source = error.source
            problems.extend(_vary_problem(problem, keys) for problem in error.problems)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)), source=source)
    return configs


def fit_optimizer_args(config: Config) -> tuple[Config, list[str]]:
    """Drop ``optimizer.args`` that the config's built-in optimizer does not accept.

    Comparing optimizers from one config (``--vary optimizer.name=sgd,adam``) would otherwise
    fail on arguments meant for the first one (SGD's ``momentum`` for Adam). Import-path
    optimizers are left alone.

    Returns:
        (the config, unchanged when nothing was dropped; the names of the dropped arguments)
    """
    import inspect

    from lrfind.components import OPTIMIZERS

    optimizer_class = OPTIMIZERS.get(config.optimizer.name)
    if optimizer_class is None:
        return config, []
    accepted = inspect.signature(optimizer_class).parameters
    kept = {name: value for name, value in config.optimizer.args.items() if name in accepted}
    dropped = [name for name in config.optimizer.args if name not in kept]
    if not dropped:
        return config, []
    optimizer = config.optimizer.model_copy(update={"args": kept})
    return config.model_copy(update={"optimizer": optimizer}), dropped


def _fit_variants(
    variants: Sequence[Variant], configs: list[Config], keys: Sequence[str]
) -> tuple[list[Config], list[str]]:
    """Apply ``fit_optimizer_args`` when the optimizer varies but its arguments do not."""
    if "optimizer.name" not in keys or any(key.startswith("optimizer.args") for key in keys):
        return configs, []
    fitted: list[Config] = []
    notes: list[str] = []
    for variant, config in zip(variants, configs, strict=True):
        config, dropped = fit_optimizer_args(config)
        fitted.append(config)
        if dropped:
            names = ", ".join(f"optimizer.args.{name}" for name in dropped)
            notes.append(
                f"{variant.name}: left out {names} ({config.optimizer.name} does not take it)"
            )
    return fitted, notes


# --------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class VariantOutcome:
    """What one variant's sweep gave: a result, or the error that stopped it."""

    variant: Variant
    status: VariantStatus
    run_dir: Path | None = None
    result: RangeTestResult | None = None
    error: str | None = None

    def row(self) -> dict[str, Any]:
        """Return this variant's row of compare.json (LRs and losses as numbers or None)."""
        result = self.result
        document = result.to_dict() if result is not None else {}
        return {
            "name": self.variant.name,
            "values": {key: _jsonable(value) for key, value in self.variant.values.items()},
            "status": self.status,
            "suggested_lr": document.get("suggestion", {}).get("lr"),
            "min_lr": document.get("range", {}).get("min_lr"),
            "max_lr": document.get("range", {}).get("max_lr"),
            "best_loss": document.get("best_loss"),
            "best_loss_lr": document.get("best_loss_lr"),
            "confidence": None if result is None else result.confidence.level,
            "stop_reason": None if result is None else result.history.stop_reason,
            "steps": None if result is None else result.history.steps,
            "run_dir": None if self.run_dir is None else str(self.run_dir),
            "error": self.error,
        }


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


@dataclass(frozen=True)
class Comparison:
    """A finished (or interrupted) compare: every variant's outcome and the files written."""

    name: str
    compare_dir: Path
    keys: tuple[str, ...]
    outcomes: tuple[VariantOutcome, ...]
    files: dict[str, Path] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def status(self) -> CompareStatus:
        """interrupted > failed (any variant) > no_answer (no variant gave a suggestion) > ok."""
        statuses = [outcome.status for outcome in self.outcomes]
        if "interrupted" in statuses or "skipped" in statuses:
            return "interrupted"
        if "failed" in statuses:
            return "failed"
        if "ok" not in statuses:
            return "no_answer"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        """Return the compare.json document."""
        vary: dict[str, list[Any]] = {key: [] for key in self.keys}
        for outcome in self.outcomes:
            for key, _, value in outcome.variant.settings:
                if _jsonable(value) not in vary[key]:
                    vary[key].append(_jsonable(value))
        overlay = self.files.get("overlay")
        return {
            "schema_version": 1,
            "name": self.name,
            "status": self.status,
            "vary": vary,
            "overlay": None if overlay is None else overlay.name,
            "variants": [outcome.row() for outcome in self.outcomes],
            "warnings": list(self.warnings),
        }


#: Called with a variant's name; returns a context manager that yields the sweep's reporter.
ReporterFactory = Callable[[str], AbstractContextManager["Reporter | None"]]


def _error_text(error: BaseException) -> str:
    if isinstance(error, LrfindError):
        return " ".join(str(error).split())
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"unexpected error: {type(error).__name__}" + (f": {first}" if first else "")


def _compare_dir(config: Config, out: Path | None) -> Path:
    from lrfind.workflows import new_run_dir

    if out is not None:
        return new_run_dir(config, out)
    return runs.create_run_dir(Path(config.output.dir), f"{config.name}-compare")


def run_compare(
    config_path: Path,
    varies: Sequence[str],
    overrides: Sequence[str] = (),
    *,
    out: Path | None = None,
    reporter_factory: ReporterFactory | None = None,
    stop: StopFlag | None = None,
) -> Comparison:
    """Sweep every variant of the config at ``config_path`` and write the comparison.

    ``varies`` are ``KEY=V1,V2,...`` strings; ``overrides`` are ``--set`` strings applied to
    every variant first. When ``optimizer.name`` varies (and its args do not), arguments a
    built-in optimizer does not take are left out for that variant, with a warning. Returns
    the Comparison: a variant that fails is recorded with its error (status "failed") and the
    rest still run; after a stop request the remaining variants are "skipped". compare.json,
    compare.csv and overlay.png are written in every case (a plot that fails to render becomes
    a warning).

    Raises:
        ConfigError: a malformed ``--vary``, or any variant's config is invalid (checked before
            anything is trained or written).
        OutputError: the compare folder or its tables cannot be written.
    """
    from lrfind.workflows import run_sweep

    base = load_config(config_path, list(overrides))
    parsed = [parse_vary(spec) for spec in varies]
    variants = variant_grid(base.name, parsed)
    configs = load_variants(config_path, variants, overrides)
    configs, notes = _fit_variants(variants, configs, [vary.key for vary in parsed])
    compare_dir = _compare_dir(base, out)
    outcomes: list[VariantOutcome] = []
    for index, (variant, config) in enumerate(zip(variants, configs, strict=True)):
        if stop is not None and stop.requested:
            outcomes.append(VariantOutcome(variant, "skipped", error="not run: interrupted"))
            continue
        run_dir = compare_dir / variant.name
        context = reporter_factory(variant.name) if reporter_factory else nullcontext(None)
        try:
            with context as reporter:
                if reporter is not None:
                    # The name, not the raw values: a reporter may read "[...]" as markup.
                    reporter.phase(f"variant {index + 1}/{len(variants)}: {variant.name}")
                sweep = run_sweep(config, out=run_dir, reporter=reporter, stop=stop)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # one variant's failure must not lose the others
            outcomes.append(
                VariantOutcome(
                    variant,
                    "failed",
                    run_dir=run_dir if run_dir.is_dir() else None,
                    error=_error_text(error),
                )
            )
            continue
        result = sweep.result
        status: VariantStatus = "ok" if result.suggestion.lr is not None else "no_answer"
        if not result.complete:
            status = "interrupted"
        outcomes.append(VariantOutcome(variant, status, run_dir=sweep.run_dir, result=result))
    comparison = Comparison(
        name=base.name,
        compare_dir=compare_dir,
        keys=tuple(vary.key for vary in parsed),
        outcomes=tuple(outcomes),
        warnings=tuple(notes),
    )
    return write_comparison(comparison, normalize=_needs_normalizing(comparison.keys))


def _needs_normalizing(keys: Sequence[str]) -> bool:
    """Different losses or datasets put curves on different scales; optimizers do not."""
    return any(key == "loss" or key.startswith(("loss.", "data.target")) for key in keys)


def write_comparison(comparison: Comparison, *, normalize: bool = False) -> Comparison:
    """Write overlay.png, compare.json and compare.csv into the compare folder.

    Returns the comparison with ``files`` (and any plotting warning) filled in.

    Raises:
        OutputError: compare.json or compare.csv cannot be written.
    """
    folder = comparison.compare_dir
    files: dict[str, Path] = {}
    warnings = list(comparison.warnings)
    plotted = [o for o in comparison.outcomes if o.result is not None and o.result.history.steps]
    if plotted:
        from lrfind.plot import plot_overlay

        labels = variant_labels([o.variant for o in plotted])
        title = f"{comparison.name}: {', '.join(comparison.keys)} compared"
        try:
            files["overlay"] = plot_overlay(
                [o.result for o in plotted if o.result is not None],
                labels,
                folder / OVERLAY_FILE,
                title=title,
                normalize=normalize,
            )
        except Exception as error:  # a plotting bug must not lose the table
            warnings.append(f"overlay plot failed: {_error_text(error)}")
    comparison = Comparison(
        name=comparison.name,
        compare_dir=folder,
        keys=comparison.keys,
        outcomes=comparison.outcomes,
        files=files,
        warnings=tuple(warnings),
    )
    files["csv"] = runs.atomic_write_text(folder / COMPARE_CSV, comparison_csv(comparison))
    document = comparison.to_dict()
    document["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    files["json"] = runs.write_json(folder / COMPARE_JSON, document)
    return comparison


# --------------------------------------------------------------------------------------------
# Tables

TABLE_HEADERS = ("variant", "suggested LR", "min LR", "max LR", "best loss", "confidence", "note")


def _loss_text(value: float | None) -> str:
    return NO_VALUE if value is None or not math.isfinite(value) else f"{value:.4g}"


def _note(outcome: VariantOutcome) -> str:
    if outcome.error:
        return outcome.error
    result = outcome.result
    if result is None:
        return ""
    if outcome.status == "no_answer":
        return result.suggestion.reason or "; ".join(result.confidence.reasons[:1]) or "no answer"
    if outcome.status == "interrupted":
        return "interrupted (partial curve)"
    return ""


def table_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    """Return the human table's rows (``TABLE_HEADERS`` columns), one per variant."""
    labels = variant_labels([o.variant for o in comparison.outcomes])
    rows: list[tuple[str, ...]] = []
    for label, outcome in zip(labels, comparison.outcomes, strict=True):
        row = outcome.row()
        failed = outcome.status in ("failed", "skipped")
        rows.append(
            (
                label,
                outcome.status.upper() if failed else format_lr(row["suggested_lr"]),
                format_lr(row["min_lr"]),
                format_lr(row["max_lr"]),
                _loss_text(row["best_loss"]),
                row["confidence"] or NO_VALUE,
                _note(outcome),
            )
        )
    return rows


def format_text_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 60
) -> list[str]:
    """Return a plain-text table (header, rule, rows), columns left-aligned.

    Cells longer than ``max_width`` are cut with an ellipsis, so one long error message cannot
    push the other columns off the screen (the full text stays in compare.json).
    """

    def cut(cell: str) -> str:
        flat = " ".join(cell.split())
        return flat if len(flat) <= max_width else flat[: max_width - 1] + "…"

    cells = [[cut(str(cell)) for cell in row] for row in [list(headers), *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines: list[str] = []
    for number, row in enumerate(cells):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append(line.rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


CSV_COLUMNS = (
    "name",
    "status",
    "suggested_lr",
    "min_lr",
    "max_lr",
    "best_loss",
    "best_loss_lr",
    "confidence",
    "stop_reason",
    "steps",
    "run_dir",
    "error",
)


def comparison_csv(comparison: Comparison) -> str:
    """Return compare.csv: one row per variant, a column per varied key, then CSV_COLUMNS."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", *comparison.keys, *CSV_COLUMNS[1:]])
    for outcome in comparison.outcomes:
        row = outcome.row()
        raws = {key: raw for key, raw, _ in outcome.variant.settings}
        writer.writerow(
            [
                row["name"],
                *(raws[key] for key in comparison.keys),
                *("" if row[column] is None else row[column] for column in CSV_COLUMNS[1:]),
            ]
        )
    return buffer.getvalue()
