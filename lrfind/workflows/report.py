"""`lrfind report`: saved runs -> a PNG (one run or an overlay), Markdown or HTML."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from lrfind.errors import ConfigError, OutputError
from lrfind.outputs import runs
from lrfind.outputs.labels import read_saved_config, run_labels
from lrfind.outputs.report.html import ReportEntry
from lrfind.results import RangeTestResult

#: Default PNG for one run (inside its run directory) and for several (in the working directory).
SINGLE_REPORT = "report.png"

OVERLAY_REPORT = Path("lrfind-report.png")

#: The HTML page's name in ``--out DIR``.
HTML_REPORT = "report.html"


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


def _in_folder(out: Path, png: Path | None, html: Path | None) -> tuple[Path, Path]:
    """report.png and report.html in the folder ``out`` (created), unless named otherwise."""
    if out.suffix.lower() in (*(f".{suffix}" for suffix in runs.PLOT_FORMATS), ".html"):
        raise ConfigError(
            f"--out {out}: --out is the folder for report.png and report.html; "
            "name a file with --png or --html"
        )
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {out}: {error.strerror}") from error
    return png or out / SINGLE_REPORT, html or out / HTML_REPORT


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _read_verify(run_dir: Path) -> dict[str, Any] | None:
    """The run's verify.json (in the run directory, or its verify/ folder), if it has one."""
    from lrfind.workflows.verify import VERIFY_DIR, VERIFY_JSON

    for path in (run_dir / VERIFY_JSON, run_dir / VERIFY_DIR / VERIFY_JSON):
        text = _read_text(path)
        if text is None:
            continue
        try:
            document = json.loads(text)
        except ValueError:
            continue
        if isinstance(document, dict):
            return document
    return None


def _report_entry(label: str, run_dir: Path, result: RangeTestResult) -> ReportEntry:
    """Everything the HTML page shows about one run directory."""
    finished: str | None = None
    try:
        stamp = (run_dir / runs.RESULT_FILE).stat().st_mtime
        finished = datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")
    except OSError:
        pass
    return ReportEntry(
        name=label,
        result=result,
        png=_png_bytes(result),
        run_dir=str(run_dir.resolve()),
        finished=finished,
        config_yaml=_read_text(run_dir / runs.CONFIG_FILE),
        verify=_read_verify(run_dir),
    )


def report(
    run_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = None,
    png: str | os.PathLike[str] | None = None,
    html: str | os.PathLike[str] | None = None,
    title: str | None = None,
    force: bool = False,
) -> ReportOutput:
    """Redraw saved runs from their files: a PNG (one run's plot, or an overlay) and/or HTML.

    ``run_dirs`` is one run directory or a list of them.

    ``out`` is a folder (created when missing) for ``report.png`` and ``report.html``, like
    every command's ``--out``; ``png`` and ``html`` name the files themselves (and win over
    ``out``). Without any of them the PNG goes to ``default_png(run_dirs)``; with only ``html``
    no PNG is drawn. The HTML is one self-contained page a reviewer can judge alone (see
    ``lrfind.outputs.report.html``). ``title`` heads the overlay and the page (for a single
    run's PNG it replaces the run name in the title). Returns what was written.

    Raises:
        ConfigError: no run directories given, or ``out`` names a .png/.html file.
        OutputError: a run directory is missing or malformed, ``out`` is not a folder, or an
            output file exists (and ``force`` is off), is a directory, or cannot be written.
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise ConfigError("report needs at least one run directory")
    dirs = [Path(run_dir) for run_dir in run_dirs]
    png, html = (None if path is None else Path(path) for path in (png, html))
    if out is not None:
        png, html = _in_folder(Path(out), png, html)
    elif png is None and html is None:
        png = default_png(dirs)
    targets = [(png, "--png"), (html, "--html")]
    if png is not None and html is not None and png.resolve() == html.resolve():
        raise OutputError(f"--png and --html name the same file: {png}")
    results = [runs.load_run(run_dir) for run_dir in dirs]
    for path, option in targets:
        if path is not None:
            _check_target(path, force, option)
    if png is not None and png.suffix.lower().removeprefix(".") not in runs.PLOT_FORMATS:
        raise OutputError(
            f"--png {png}: the plot's format is chosen by its suffix: .png, .svg or .pdf, "
            f"not '{png.suffix or '(none)'}'"
        )
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
            _report_entry(label, run_dir, result)
            for label, run_dir, result in zip(labels, dirs, results, strict=True)
        ]
        generated = datetime.now().astimezone().isoformat(timespec="seconds")
        runs.atomic_write_text(html, render_html(entries, page_title, generated))
    return ReportOutput(png=png, html=html, labels=tuple(labels), results=tuple(results))
