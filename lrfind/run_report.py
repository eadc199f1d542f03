"""``lrfind report``: redraw saved runs (no training) as a PNG and/or one self-contained HTML page.

    lrfind report runs/mnist/20250101-120000               # -> that run's report.png
    lrfind report runs/a/1 runs/b/2 --out both.png         # one overlay of both curves
    lrfind report runs/a/1 runs/b/2 --html report.html     # one page, plots embedded

Runs are named in legends by their run name; when names collide, by what differs between their
saved config.yaml files ("optimizer.name=adam, data.batch_size=128"). Existing files are never
overwritten without ``force``.

No torch here, and matplotlib only inside functions: the CLI imports this module.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from lrfind import runs
from lrfind.errors import ConfigError, OutputError
from lrfind.results import RangeTestResult

#: Default PNG for one run (inside its run directory) and for several (in the working directory).
SINGLE_REPORT = "report.png"
OVERLAY_REPORT = Path("lrfind-report.png")
#: Keys ignored when telling runs apart: the run name is what collided in the first place.
IGNORED_KEYS = frozenset({"name"})
MISSING = "unset"


# --------------------------------------------------------------------------------------------
# Labels


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
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------------------------
# The command


@dataclass(frozen=True)
class ReportOutput:
    """What ``make_report`` wrote: the PNG and/or HTML path, and each run's label."""

    png: Path | None
    html: Path | None
    labels: tuple[str, ...]
    results: tuple[RangeTestResult, ...]


def default_png(run_dirs: Sequence[Path]) -> Path:
    """``<run dir>/report.png`` for one run, ``./lrfind-report.png`` for several."""
    return Path(run_dirs[0]) / SINGLE_REPORT if len(run_dirs) == 1 else OVERLAY_REPORT


def _check_target(path: Path, force: bool, option: str) -> None:
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a directory, not a file name")
    if path.exists() and not force:
        raise OutputError(f"{path} already exists (use --force to overwrite it)")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")


def _png_bytes(result: RangeTestResult) -> bytes:
    from lrfind.plot import plot_result

    with tempfile.TemporaryDirectory(prefix="lrfind-report-") as folder:
        return plot_result(result, Path(folder) / "plot.png").read_bytes()


def make_report(
    run_dirs: Sequence[Path],
    *,
    out: Path | None = None,
    html: Path | None = None,
    title: str | None = None,
    force: bool = False,
) -> ReportOutput:
    """Redraw saved runs from their files: a PNG (one run's plot, or an overlay) and/or HTML.

    The PNG goes to ``out``, or to ``default_png(run_dirs)`` when neither ``out`` nor ``html`` is
    given; ``html`` is one self-contained page with every run's plot embedded. ``title`` heads
    the overlay and the page (for a single run's PNG it replaces the run name in the title).
    Returns what was written.

    Raises:
        ConfigError: no run directories given.
        OutputError: a run directory is missing or malformed, or an output file exists (and
            ``force`` is off), is a directory, or cannot be written.
    """
    if not run_dirs:
        raise ConfigError("report needs at least one run directory")
    dirs = [Path(run_dir) for run_dir in run_dirs]
    png = out if out is not None else (default_png(dirs) if html is None else None)
    targets = [(png, "--out"), (html, "--html")]
    if png is not None and html is not None and png.resolve() == html.resolve():
        raise OutputError(f"--out and --html name the same file: {png}")
    results = [runs.load_run(run_dir) for run_dir in dirs]
    for path, option in targets:
        if path is not None:
            _check_target(path, force, option)
    labels = run_labels(
        [result.info.name for result in results],
        [read_saved_config(run_dir) for run_dir in dirs],
        [run_dir.resolve().name for run_dir in dirs],
    )
    if png is not None:
        from lrfind.plot import plot_overlay, plot_result

        if len(results) == 1:
            single = results[0]
            if title:
                single = single.with_updates(info=replace(single.info, name=title))
            plot_result(single, png)
        else:
            plot_overlay(results, labels, png, title=title)
    if html is not None:
        from lrfind.report import render_html

        page_title = title or (
            f"LR range test: {labels[0]}"
            if len(results) == 1
            else f"LR range tests: {len(results)} runs"
        )
        entries = [
            (label, result, _png_bytes(result))
            for label, result in zip(labels, results, strict=True)
        ]
        runs.atomic_write_text(html, render_html(entries, page_title))
    return ReportOutput(png=png, html=html, labels=tuple(labels), results=tuple(results))
