"""`lrfind report`: saved runs -> a PNG (one run or an overlay), Markdown or HTML."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lrfind.errors import ConfigError, OutputError
from lrfind.outputs import runs
from lrfind.outputs.labels import read_saved_config, run_labels
from lrfind.results import RangeTestResult

#: Default PNG for one run (inside its run directory) and for several (in the working directory).
SINGLE_REPORT = "report.png"

OVERLAY_REPORT = Path("lrfind-report.png")


@dataclass(frozen=True)
class ReportOutput:
    """What ``report`` wrote: the PNG and/or HTML path, and each run's label."""

    png: Path | None
    html: Path | None
    labels: tuple[str, ...]
    results: tuple[RangeTestResult, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return what ``lrfind report --json`` prints: the files written and the run labels."""
        return {
            "png": None if self.png is None else str(self.png),
            "html": None if self.html is None else str(self.html),
            "runs": list(self.labels),
        }


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
    from lrfind.outputs.plot.single import plot_result

    with tempfile.TemporaryDirectory(prefix="lrfind-report-") as folder:
        return plot_result(result, Path(folder) / "plot.png").read_bytes()


def report(
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
        from lrfind.outputs.plot.overlay import plot_overlay
        from lrfind.outputs.plot.single import plot_result

        if len(results) == 1:
            single = results[0]
            if title:
                single = single.with_updates(info=replace(single.info, name=title))
            plot_result(single, png)
        else:
            plot_overlay(results, labels, png, title=title)
    if html is not None:
        from lrfind.outputs.report.html import render_html

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
