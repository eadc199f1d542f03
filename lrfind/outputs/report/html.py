"""A self-contained HTML report: runs with their plots embedded."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from lrfind._version import __version__
from lrfind.format import NO_SUGGESTION, format_lr, format_range
from lrfind.outputs.report.summary import summary_rows
from lrfind.results import RangeTestResult

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
