"""Text renderings of range-test results: Markdown, JUnit XML and one self-contained HTML page.

No matplotlib and no torch: a saved run can be reported on anywhere. Every rendering shows the
same fields in the same order (``summary_rows``) with LRs formatted the same way (``format_lr``),
so the console table, the Markdown summary and the HTML page never disagree.

JUnit semantics (for CI dashboards): one ``<testcase>`` per config. A failed check is a
``<failure type="CheckFailed">``; a run with no reliable suggestion, or an interrupted run, is an
``<error>`` (``type="NoReliableSuggestion"`` / ``"Interrupted"``) -- not ``<skipped>``, because a
gate that could not reach an answer must keep CI red, and an error keeps that cause apart from a
failed expectation (exit code 3 vs 1). Everything else passes.
"""

from __future__ import annotations

import base64
import html
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from lrfind import __version__
from lrfind.results import LRRange, RangeTestResult

#: What a missing or non-finite LR prints as.
NO_VALUE = "—"
NO_SUGGESTION = "no reliable suggestion"

# XML 1.0 forbids most C0 control characters even when escaped; ElementTree does not strip them.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Inline Markdown syntax; "(" and "!" are harmless once "[" and "]" are escaped.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
# Block syntax: a heading or list marker at the start of the text ("&gt;" quotes are inert).
_MARKDOWN_LINE_START = re.compile(r"^(\d*)([#+\-]|(?<=\d)[.)])(?=\s|$)")


@dataclass(frozen=True)
class CheckOutcome:
    """The verdict of ``lrfind check``: is the suggestion inside [expected_min, expected_max]?"""

    passed: bool
    message: str
    expected_min: float | None = None
    expected_max: float | None = None


def format_lr(lr: float | None, digits: int = 3) -> str:
    """Return ``lr`` in scientific notation with ``digits`` significant digits ("3.16e-03").

    None and non-finite values print as an em dash.
    """
    if lr is None or not math.isfinite(lr):
        return NO_VALUE
    return f"{lr:.{max(1, digits) - 1}e}"


def format_range(lr_range: LRRange) -> str:
    """Return "1.00e-04 – 1.00e-02", or an em dash when the range is unknown."""
    if lr_range.min_lr is None and lr_range.max_lr is None:
        return NO_VALUE
    return f"{format_lr(lr_range.min_lr)} – {format_lr(lr_range.max_lr)}"


def one_line_summary(result: RangeTestResult, where: str | None = None) -> str:
    """Return the result in one line (what ``--quiet`` still prints), ending with ``where``.

    "suggested LR 5.62e-02 (range 1.87e-02 – 1.78e-01, confidence high)", or for a curve
    without an answer "no reliable suggestion: <first reason>; try start_lr .., end_lr ..".
    """
    confidence = result.confidence
    if result.suggestion.lr is None:
        reason = result.suggestion.reason or "; ".join(confidence.reasons[:1]) or "no answer"
        text = f"{NO_SUGGESTION}: {reason}"
        if confidence.try_range is not None:
            start, end = confidence.try_range
            text += f"; try start_lr {format_lr(start)}, end_lr {format_lr(end)}"
    else:
        text = (
            f"suggested LR {format_lr(result.suggestion.lr)} "
            f"(range {format_range(result.lr_range)}, confidence {confidence.level})"
        )
    if not result.complete:
        text += " [incomplete run]"
    return text if where is None else f"{text}; results in {where}"


def format_expected(check: CheckOutcome) -> str:
    """Return the check's expected interval as "[1.00e-04, 1.00e-02]" (open ends as "…")."""
    low = format_lr(check.expected_min) if check.expected_min is not None else "…"
    high = format_lr(check.expected_max) if check.expected_max is not None else "…"
    return f"[{low}, {high}]"


def _batch_size(result: RangeTestResult) -> str:
    info = result.info
    if info.batch_size is None:
        return NO_VALUE
    if info.global_batch_size != info.batch_size:
        extra = []
        if info.world_size > 1:
            extra.append(f"{info.world_size} processes")
        if info.accumulation_steps > 1:
            extra.append(f"{info.accumulation_steps} accumulation steps")
        return f"{info.batch_size} (global {info.global_batch_size}: {', '.join(extra)})"
    return str(info.batch_size)


def summary_rows(result: RangeTestResult) -> list[tuple[str, str]]:
    """Return the (field, value) rows every summary shows, in display order.

    Values are plain text (not escaped); each renderer escapes for its own format.
    """
    info, history = result.info, result.history
    suggestion = result.suggestion
    rows = [
        ("suggested LR", format_lr(suggestion.lr) if suggestion.lr is not None else NO_SUGGESTION),
        ("method", suggestion.method or NO_VALUE),
        ("min LR", format_lr(result.lr_range.min_lr)),
        ("max LR", format_lr(result.lr_range.max_lr)),
        ("confidence", result.confidence.level),
    ]
    if result.refinement is not None:
        refinement = result.refinement
        rows.append(
            (
                "refined LR",
                f"{format_lr(refinement.chosen_lr)} ({len(refinement.trials)} trials × "
                f"{refinement.steps_per_trial} steps, {refinement.seconds:.1f} s, "
                f"by {refinement.metric})",
            )
        )
    if result.repeats or result.repeat_suggestions:
        count = len(result.repeats) or len(result.repeat_suggestions)
        spread = result.spread
        rows.append(
            ("repeats", f"{count}" + (f" (suggestion spread ×{spread:.2f})" if spread else ""))
        )
    stop = history.stop_reason + ("" if result.complete else " (incomplete run)")
    rows += [
        ("stop reason", stop),
        ("steps", f"{history.steps} of {info.planned_steps}"),
        ("sweep", f"{format_lr(info.start_lr)} → {format_lr(info.end_lr)} ({info.mode})"),
        ("seconds", f"{info.seconds:.1f}"),
        ("device", f"{info.device} ({info.precision})"),
        ("model", info.model),
        ("optimizer", info.optimizer),
        ("batch size", _batch_size(result)),
    ]
    return rows


# --------------------------------------------------------------------------------------------
# Markdown


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
        verdict = "✅ check passed" if check.passed else "❌ check failed"
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


# --------------------------------------------------------------------------------------------
# JUnit XML


def _xml_text(text: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


def _float_attr(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def render_junit(
    results: Sequence[tuple[str, RangeTestResult, CheckOutcome | None]],
    seconds: float | None = None,
) -> str:
    """Return a JUnit XML report with one testcase per (name, result, check).

    A failed check is a ``<failure>``; no reliable suggestion or an interrupted run is an
    ``<error>`` (see the module docstring); ``seconds`` is the suite's wall time (default: the
    sum of the runs' times).
    """
    failures = errors = 0
    total_seconds = sum(result.info.seconds for _, result, _ in results)
    suite = ET.Element("testsuite", name="lrfind")
    for name, result, check in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="lrfind.check",
            name=_xml_text(name),
            time=f"{result.info.seconds:.3f}",
        )
        properties = ET.SubElement(case, "properties")
        for key, value in (
            ("suggested_lr", _float_attr(result.suggestion.lr)),
            ("min_lr", _float_attr(result.lr_range.min_lr)),
            ("max_lr", _float_attr(result.lr_range.max_lr)),
            ("confidence", result.confidence.level),
            ("stop_reason", result.history.stop_reason),
        ):
            ET.SubElement(properties, "property", name=key, value=_xml_text(value))
        details = "\n".join(f"{field}: {value}" for field, value in summary_rows(result))
        if result.confidence.reasons:
            details += "\nreasons:\n" + "\n".join(f"- {r}" for r in result.confidence.reasons)
        if result.suggestion.lr is None or not result.complete:
            errors += 1
            if result.suggestion.lr is None:
                kind = "NoReliableSuggestion"
                why = result.suggestion.reason or "; ".join(result.confidence.reasons[:1])
                message = NO_SUGGESTION + (f": {why}" if why else "")
            else:
                kind, message = "Interrupted", "the run was interrupted before it completed"
            element = ET.SubElement(case, "error", message=_xml_text(message), type=kind)
            element.text = _xml_text(details)
        elif check is not None and not check.passed:
            failures += 1
            message = f"{check.message} (expected {format_expected(check)})"
            element = ET.SubElement(case, "failure", message=_xml_text(message), type="CheckFailed")
            element.text = _xml_text(details)
        else:
            out = ET.SubElement(case, "system-out")
            verdict = f"check passed: {check.message}\n" if check is not None else ""
            out.text = _xml_text(verdict + details)
    wall = total_seconds if seconds is None else seconds
    counts = {
        "tests": str(len(results)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": "0",
        "time": f"{wall:.3f}",
    }
    suite.attrib.update(counts)
    root = ET.Element("testsuites", {"name": "lrfind", **counts})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1.5rem; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem;
     margin-top: 2.2rem; }
.meta { color: #59636e; margin-top: 0; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .7rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td { font-variant-numeric: tabular-nums; }
.run { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
.run table { flex: 0 0 auto; }
.run figure { flex: 1 1 36rem; margin: 0; }
.run img { width: 100%; max-width: 1170px; height: auto; border: 1px solid #d0d7de; }
.badge { display: inline-block; padding: .05rem .55rem; border-radius: 1rem; font-size: .85rem;
         font-weight: 600; color: #fff; }
.conf-high { background: #009E73; } .conf-medium { background: #B07800; }
.conf-low, .conf-none { background: #D55E00; }
ul.reasons li { margin: .15rem 0; } .warning { color: #9a3b00; }
"""


def _badge(level: str) -> str:
    safe = html.escape(level)
    return f'<span class="badge conf-{safe}">{safe}</span>'


def _run_section(anchor: str, name: str, result: RangeTestResult, png: bytes) -> list[str]:
    esc = html.escape
    parts = [f'<section id="{anchor}">', f"<h2>{esc(name)}</h2>", '<div class="run">', "<table>"]
    for field, value in summary_rows(result):
        cell = _badge(value) if field == "confidence" else esc(value)
        parts.append(f'<tr><th scope="row">{esc(field)}</th><td>{cell}</td></tr>')
    parts.append("</table>")
    if png:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="LR range test plot for {esc(name)}" '
            f'src="data:image/png;base64,{data}"></figure>'
        )
    parts.append("</div>")
    if result.confidence.reasons:
        parts.append(f"<p>Why confidence is {esc(result.confidence.level)}:</p>")
        parts.append('<ul class="reasons">')
        parts += [f"<li>{esc(reason)}</li>" for reason in result.confidence.reasons]
        parts.append("</ul>")
    if result.confidence.try_range is not None:
        start, end = result.confidence.try_range
        parts.append(f"<p>Try sweeping {format_lr(start)} to {format_lr(end)} instead.</p>")
    if result.warnings:
        parts.append('<ul class="reasons">')
        parts += [f'<li class="warning">⚠ {esc(warning)}</li>' for warning in result.warnings]
        parts.append("</ul>")
    parts.append("</section>")
    return parts


def render_html(entries: Sequence[tuple[str, RangeTestResult, bytes]], title: str) -> str:
    """Return one self-contained HTML page (inline CSS, plots as base64 data URIs).

    ``entries`` are (name, result, PNG bytes); empty bytes leave that run without a picture. With
    several runs an overview table links to each run's section. All user text is escaped.
    """
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">{len(entries)} run(s) · lrfind {esc(__version__)}</p>',
    ]
    if len(entries) > 1:
        parts += [
            "<table>",
            "<tr><th>run</th><th>suggested LR</th><th>range</th><th>confidence</th>"
            "<th>stop reason</th></tr>",
        ]
        for index, (name, result, _) in enumerate(entries, start=1):
            suggested = (
                format_lr(result.suggestion.lr)
                if result.suggestion.lr is not None
                else NO_SUGGESTION
            )
            lr_range = format_range(result.lr_range)
            parts.append(
                f'<tr><td><a href="#run-{index}">{esc(name)}</a></td>'
                f"<td>{esc(suggested)}</td><td>{esc(lr_range)}</td>"
                f"<td>{_badge(result.confidence.level)}</td>"
                f"<td>{esc(result.history.stop_reason)}</td></tr>"
            )
        parts.append("</table>")
    for index, (name, result, png) in enumerate(entries, start=1):
        parts += _run_section(f"run-{index}", name, result, png)
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
