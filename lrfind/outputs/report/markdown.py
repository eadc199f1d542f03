"""A check or sweep as Markdown (PR comments, GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from lrfind.format import format_lr
from lrfind.outputs.report.summary import format_expected, summary_rows
from lrfind.results import CheckOutcome, RangeTestResult

# Inline Markdown syntax; "(" and "!" are harmless once "[" and "]" are escaped.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")

# Block syntax: a heading or list marker at the start of the text ("&gt;" quotes are inert).
_MARKDOWN_LINE_START = re.compile(r"^(\d*)([#+\-]|(?<=\d)[.)])(?=\s|$)")


def _md(text: object) -> str:
    """Escape user text for one line of Markdown: HTML entities and Markdown punctuation."""
    flat = " ".join(str(text).split())
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))
    return _MARKDOWN_LINE_START.sub(r"\1\\\2", escaped)


def render_markdown(
    result: RangeTestResult, plot_path: str | None, check: CheckOutcome | None = None
) -> str:
    """Return a Markdown summary: a field table, the check verdict, reasons, warnings, the plot."""
    lines = [f"## LR range test: {_md(result.info.name)}", ""]
    if check is not None:
        verdict = (
            "✅ check passed"
            if check.passed
            else ("⚠️ no reliable answer" if check.no_answer else "❌ check failed")
        )
        lines += [
            f"**{verdict}**: {_md(check.message)} (expected {_md(format_expected(check))})",
            "",
        ]
    lines += ["| field | value |", "|---|---|"]
    lines += [f"| {_md(name)} | {_md(value)} |" for name, value in summary_rows(result)]
    if result.confidence.reasons:
        lines += ["", f"**Why confidence is {_md(result.confidence.level)}:**", ""]
        lines += [f"- {_md(reason)}" for reason in result.confidence.reasons]
    if result.confidence.try_range is not None:
        start, end = result.confidence.try_range
        lines += ["", f"Try sweeping {format_lr(start)} to {format_lr(end)} instead."]
    if result.warnings:
        lines += ["", "**Warnings:**", ""]
        lines += [f"- {_md(warning)}" for warning in result.warnings]
    if plot_path:
        lines += ["", f"![LR range test plot]({quote(plot_path)})"]
    return "\n".join(lines) + "\n"


def render_step_summary(
    result: RangeTestResult, plot_path: str | None, check: CheckOutcome | None = None
) -> str:
    """The Markdown for a CI job summary ($GITHUB_STEP_SUMMARY): no image by path.

    A job summary cannot show a file from the runner by its path, so the plot is named instead,
    with where to find it.
    """
    text = render_markdown(result, None, check)
    if plot_path:
        shown = " ".join(plot_path.replace("`", "'").split())
        text += (
            f"\nThe plot is `{shown}` on the runner: upload the run directory as a build "
            "artifact (e.g. actions/upload-artifact) to see it.\n"
        )
    return text
