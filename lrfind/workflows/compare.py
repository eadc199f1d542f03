"""`lrfind compare`: one sweep per variant, compare.json/csv and an overlay plot."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from lrfind.config.load import as_config
from lrfind.config.schema import Config
from lrfind.config.variants import load_variants, parse_vary, variant_grid, variant_labels
from lrfind.errors import Interrupted, LrfindError
from lrfind.format import error_summary
from lrfind.outputs import runs
from lrfind.outputs.comparison import (
    Comparison,
    VariantOutcome,
    VariantStatus,
    comparison_csv,
)

if TYPE_CHECKING:
    from lrfind.config.variants import Variant
    from lrfind.engine.options import StopFlag
    from lrfind.workflows.sweep import Reporter

COMPARE_JSON = "compare.json"

COMPARE_CSV = "compare.csv"

OVERLAY_FILE = "overlay.png"

#: Called with a variant's name; returns a context manager that yields the sweep's reporter.
ReporterFactory = Callable[[str], AbstractContextManager["Reporter | None"]]


def _error_text(error: BaseException) -> str:
    if isinstance(error, LrfindError):
        return " ".join(str(error).split())
    return f"unexpected error: {error_summary(error)}"


def _compare_dir(config: Config, out: Path | None) -> Path:
    from lrfind.workflows.sweep import new_run_dir, output_dir

    if out is not None:
        return new_run_dir(config, out)
    return runs.create_run_dir(output_dir(config), f"{config.name}-compare")


def compare(
    config: Config | str | os.PathLike[str],
    varies: Sequence[str],
    overrides: Sequence[str] = (),
    *,
    out: str | os.PathLike[str] | None = None,
    reporter_factory: ReporterFactory | None = None,
    stop: StopFlag | None = None,
) -> Comparison:
    """Sweep every variant of ``config`` (a loaded Config or the path of a config file) and
    write the comparison.

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
    from lrfind.workflows.sweep import absolute, sweep

    if isinstance(varies, str):
        varies = [varies]
    base = as_config(config, overrides)
    parsed = [parse_vary(spec) for spec in varies]
    variants = variant_grid(base.name, parsed)
    configs = load_variants(config, variants, overrides)
    configs, notes = _fit_variants(variants, configs, [vary.key for vary in parsed])
    compare_dir = _compare_dir(base, absolute(out))
    outcomes: list[VariantOutcome] = []
    for index, (variant, variant_config) in enumerate(zip(variants, configs, strict=True)):
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
                sweep_run = sweep(variant_config, out=run_dir, reporter=reporter, stop=stop)
        except KeyboardInterrupt:
            raise
        except Interrupted as error:  # stopped while setting up: no sweep, no run directory
            outcomes.append(VariantOutcome(variant, "interrupted", error=_error_text(error)))
            continue
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
        result = sweep_run.result
        status: VariantStatus = "ok" if result.suggestion.lr is not None else "no_answer"
        if not result.complete:
            status = "interrupted"
        outcomes.append(VariantOutcome(variant, status, run_dir=sweep_run.run_dir, result=result))
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
        from lrfind.outputs.plot.guard import plot_or_warning
        from lrfind.outputs.plot.overlay import plot_overlay

        labels = variant_labels([o.variant for o in plotted])
        title = f"{comparison.name}: {', '.join(comparison.keys)} compared"
        overlay, problem = plot_or_warning(
            lambda: plot_overlay(
                [o.result for o in plotted if o.result is not None],
                labels,
                folder / OVERLAY_FILE,
                title=title,
                normalize=normalize,
            ),
            "overlay plot",
        )
        if overlay is not None:
            files["overlay"] = overlay
        if problem is not None:
            warnings.append(problem)
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


def fit_optimizer_args(config: Config) -> tuple[Config, list[str]]:
    """Drop ``optimizer.args`` that the config's built-in optimizer does not accept.

    Comparing optimizers from one config (``--vary optimizer.name=sgd,adam``) would otherwise
    fail on arguments meant for the first one (SGD's ``momentum`` for Adam). Import-path
    optimizers are left alone.

    Returns:
        (the config, unchanged when nothing was dropped; the names of the dropped arguments)
    """
    import inspect

    from lrfind.assembly.optim import OPTIMIZERS

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
