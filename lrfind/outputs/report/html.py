"""A self-contained HTML report a reviewer can judge alone: the plot, the decision and its evidence.

Per run: the plot at full width; the decision (suggestion, range, confidence and why, the
verify verdict when verify.json sits in the run directory); its evidence (the refine/search
trials with their noise and ties, every method's answer); the run's facts (seed, path,
timestamp, versions, timing, warnings); and the resolved config, collapsed. One file: inline
CSS, plots as data URIs, nothing fetched, no script; every piece of user text is escaped.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lrfind._version import __version__
from lrfind.analysis.choose import choose
from lrfind.format import NO_SUGGESTION, NO_VALUE, format_lr, format_range
from lrfind.outputs.report.summary import summary_rows
from lrfind.results import RangeTestResult, Refinement

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem auto;
       max-width: 76rem; padding: 0 1.5rem; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.35rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem;
     margin-top: 2.4rem; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
.meta { color: #59636e; margin-top: 0; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .7rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td { font-variant-numeric: tabular-nums; }
tr.chosen td { background: #fff4dc; font-weight: 600; }
figure { margin: .8rem 0; }
figure img { display: block; width: 100%; height: auto; border: 1px solid #d0d7de; }
.columns { display: flex; flex-wrap: wrap; gap: 0 2.5rem; align-items: flex-start; }
.badge { display: inline-block; padding: .05rem .55rem; border-radius: 1rem; font-size: .85rem;
         font-weight: 600; color: #fff; }
.conf-high, .verify-confirmed { background: #007a5a; }
.conf-medium { background: #9a6700; }
.conf-low, .conf-none, .verify-not_confirmed { background: #c2410c; }
.verify-no_suggestion, .verify-interrupted { background: #59636e; }
.answer { font-size: 1.25rem; margin: .3rem 0 .6rem; }
.verdict { border-left: 4px solid #59636e; padding: .3rem .8rem; background: #f6f8fa; }
.verdict.not_confirmed { border-color: #c2410c; background: #fff1ea; }
.verdict.confirmed { border-color: #007a5a; background: #eefaf5; }
ul.reasons li { margin: .15rem 0; } .warning { color: #9a3b00; }
details { margin: .6rem 0; } summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: .7rem; overflow-x: auto;
      font-size: .85rem; }
"""

#: The sections every run's part of the page has, in order (ids are "<run anchor>-<section>").
SECTIONS = ("plot", "decision", "evidence", "run", "config")


@dataclass(frozen=True)
class ReportEntry:
    """One run on the page: its result, its plot, and what its run directory holds.

    ``run_dir`` and ``finished`` (the time result.json was written) are shown as given;
    ``config_yaml`` is the run's config.yaml text; ``verify`` is its verify.json document.
    """

    name: str
    result: RangeTestResult
    png: bytes = b""
    run_dir: str | None = None
    finished: str | None = None
    config_yaml: str | None = None
    verify: Mapping[str, Any] | None = None


def _esc(value: object) -> str:
    return html.escape(str(value))


def _badge(level: str) -> str:
    return f'<span class="badge conf-{_esc(level)}">{_esc(level)}</span>'


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return NO_VALUE
    return f"{value:.{digits}g}"


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()
) -> str:
    """An HTML table of already-escaped cells; ``classes`` (per row) mark rows."""
    parts = ["<table>", "<tr>" + "".join(f"<th>{cell}</th>" for cell in header) + "</tr>"]
    for index, row in enumerate(rows):
        css = classes[index] if index < len(classes) and classes[index] else ""
        opening = f'<tr class="{css}">' if css else "<tr>"
        parts.append(opening + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    parts.append("</table>")
    return "\n".join(parts)


def _verify_status(verify: Mapping[str, Any]) -> str:
    status = str(verify.get("status", "interrupted"))
    return status if status in ("confirmed", "not_confirmed", "no_suggestion") else "interrupted"


_VERIFY_WORDS = {
    "confirmed": "CONFIRMED",
    "not_confirmed": "NOT CONFIRMED",
    "no_suggestion": "no suggestion to verify",
    "interrupted": "interrupted",
}


def _verify_badge(verify: Mapping[str, Any]) -> str:
    status = _verify_status(verify)
    return f'<span class="badge verify-{status}">verify: {_esc(_VERIFY_WORDS[status])}</span>'


def _decision(anchor: str, entry: ReportEntry) -> list[str]:
    result = entry.result
    suggestion, confidence = result.suggestion, result.confidence
    parts = [f'<section id="{anchor}-decision">', "<h3>Decision</h3>"]
    if suggestion.lr is not None:
        answer = (
            f"suggested LR <strong>{_esc(format_lr(suggestion.lr))}</strong> "
            f"(range {_esc(format_range(result.lr_range))}, by {_esc(suggestion.method)})"
        )
    else:
        answer = f"<strong>{_esc(NO_SUGGESTION)}</strong>"
        if suggestion.reason:
            answer += f": {_esc(suggestion.reason)}"
    badges = f"confidence {_badge(confidence.level)}"
    if entry.verify is not None:
        badges += " " + _verify_badge(entry.verify)
    parts.append(f'<p class="answer">{answer} · {badges}</p>')
    if confidence.reasons:
        parts.append(f"<p>Why confidence is {_esc(confidence.level)}:</p>")
        parts.append('<ul class="reasons">')
        parts += [f"<li>{_esc(reason)}</li>" for reason in confidence.reasons]
        parts.append("</ul>")
    if confidence.try_range is not None:
        start, end = confidence.try_range
        parts.append(
            f"<p>Try sweeping {_esc(format_lr(start))} to {_esc(format_lr(end))} instead.</p>"
        )
    if entry.verify is not None:
        parts += _verify_block(anchor, entry.verify)
    parts.append("</section>")
    return parts


def _verify_block(anchor: str, verify: Mapping[str, Any]) -> list[str]:
    status = _verify_status(verify)
    parts = [
        f'<div class="verdict {status}" id="{anchor}-verify">',
        f"<p><strong>verify: {_esc(_VERIFY_WORDS[status])}</strong> — "
        f"{_esc(verify.get('message', ''))}</p>",
    ]
    if verify.get("note"):
        parts.append(f'<p class="warning">{_esc(verify["note"])}</p>')
    trials = verify.get("trials") or []
    if trials:
        rows, classes = [], []
        for trial in trials:
            lr = trial.get("lr")
            marks = []
            if lr is not None and lr == verify.get("suggested_lr"):
                marks.append("suggested")
            if lr is not None and lr == verify.get("best_lr"):
                marks.append("best")
            if trial.get("diverged"):
                marks.append("diverged")
            rows.append(
                [
                    _esc(format_lr(lr)),
                    _esc(_number(trial.get("train_loss"))),
                    _esc(_number(trial.get("val_loss"))),
                    _esc(", ".join(marks)),
                ]
            )
            classes.append("chosen" if "suggested" in marks else "")
        steps = verify.get("steps_per_trial")
        parts.append(
            f"<p>{len(trials)} constant-LR trials"
            + (f" of {_esc(steps)} steps" if steps else "")
            + f", scored by {_esc(verify.get('metric', 'val_loss'))}:</p>"
        )
        parts.append(_table(["LR", "train loss", "val loss", ""], rows, classes))
    parts.append("</div>")
    return parts


def _trials_table(refinement: Refinement) -> list[str]:
    choice = choose(refinement.trials)
    metric = "val loss" if choice.metric == "val_loss" else "train loss"
    rows, classes = [], []
    for index, trial in enumerate(choice.trials):
        score = choice.scores[index]
        error = choice.standard_errors[index]
        if trial.diverged or not math.isfinite(score):
            status = "diverged" if trial.diverged else "no score"
        elif index == choice.best:
            status = "best"
        elif choice.tied[index]:
            status = "tied with the best"
        else:
            status = "worse beyond noise"
        if index == choice.chosen:
            status += " · chosen"
        gap = score - choice.scores[choice.best] if choice.best is not None else math.nan
        rows.append(
            [
                _esc(format_lr(trial.lr)),
                _esc(_number(trial.train_loss)),
                _esc(_number(trial.val_loss)),
                _esc(_number(gap, 3) if index != choice.best else "0"),
                _esc(_number(error, 3) if index != choice.best else NO_VALUE),
                _esc(status),
            ]
        )
        classes.append("chosen" if index == choice.chosen else "")
    stage = "search" if refinement.stage == "search" else "refine"
    return [
        f"<h4>{_esc(stage)}: {len(choice.trials)} trials × {refinement.steps_per_trial} steps "
        f"({refinement.seconds:.1f} s), scored by {_esc(metric)}</h4>",
        "<p>The lowest LR whose score is within one standard error (of its paired difference) "
        "of the best trial's is chosen.</p>",
        _table(
            ["LR", "train loss", "val loss", "− best", "standard error", "status"], rows, classes
        ),
    ]


def _methods_table(result: RangeTestResult) -> list[str]:
    rows, classes = [], []
    picked = result.suggestion.method.split("+")[0]
    for name, suggestion in result.analysis.methods.items():
        answer = format_lr(suggestion.lr) if suggestion.lr is not None else NO_SUGGESTION
        rows.append([_esc(name), _esc(answer), _esc(suggestion.reason or "")])
        classes.append("chosen" if name == picked else "")
    if not rows:
        return []
    return [
        "<h4>Every method's answer on the same curve</h4>",
        _table(["method", "LR", "note"], rows, classes),
    ]


def _evidence(anchor: str, result: RangeTestResult) -> list[str]:
    parts = [f'<section id="{anchor}-evidence">', "<h3>Evidence</h3>"]
    if result.refinement is not None and result.refinement.trials:
        parts += _trials_table(result.refinement)
    else:
        parts.append("<p>No refine or search trials ran: the answer is the sweep's own.</p>")
    parts += _methods_table(result)
    parts.append("</section>")
    return parts


def _run_facts(anchor: str, entry: ReportEntry) -> list[str]:
    result, info = entry.result, entry.result.info
    rows = [(field, value) for field, value in summary_rows(result) if field != "confidence"]
    rows.append(("seed", NO_VALUE if info.seed is None else str(info.seed)))
    if entry.run_dir:
        rows.append(("run directory", entry.run_dir))
    if entry.finished:
        rows.append(("finished", entry.finished))
    timing = f"{info.seconds:.1f} s in all"
    if result.refinement is not None:
        timing += f" (trials {result.refinement.seconds:.1f} s)"
    rows.append(("time", timing))
    if info.versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in info.versions.items())))
    parts = [f'<section id="{anchor}-run">', "<h3>Run</h3>", "<table>"]
    parts += [
        f'<tr><th scope="row">{_esc(field)}</th><td>{_esc(value)}</td></tr>'
        for field, value in rows
    ]
    parts.append("</table>")
    if result.warnings:
        parts.append('<ul class="reasons">')
        parts += [f'<li class="warning">⚠ {_esc(warning)}</li>' for warning in result.warnings]
        parts.append("</ul>")
    parts.append("</section>")
    return parts


def _config(anchor: str, entry: ReportEntry) -> list[str]:
    parts = [f'<section id="{anchor}-config">']
    if entry.config_yaml:
        parts += [
            "<details>",
            "<summary>config.yaml (the resolved config, every default filled in)</summary>",
            f"<pre>{_esc(entry.config_yaml)}</pre>",
            "</details>",
        ]
    else:
        parts.append("<p>config.yaml: not available for this run.</p>")
    parts.append("</section>")
    return parts


def _run_section(anchor: str, entry: ReportEntry) -> list[str]:
    parts = [f'<section id="{anchor}" class="run">', f"<h2>{_esc(entry.name)}</h2>"]
    parts.append(f'<section id="{anchor}-plot">')
    if entry.png:
        data = base64.b64encode(entry.png).decode("ascii")
        parts.append(
            f'<figure><img alt="LR range test plot for {_esc(entry.name)}" '
            f'src="data:image/png;base64,{data}"></figure>'
        )
    else:
        parts.append("<p>No plot.</p>")
    parts.append("</section>")
    parts += _decision(anchor, entry)
    parts += _evidence(anchor, entry.result)
    parts += _run_facts(anchor, entry)
    parts += _config(anchor, entry)
    parts.append("</section>")
    return parts


def _overview(entries: Sequence[ReportEntry]) -> list[str]:
    rows = []
    for index, entry in enumerate(entries, start=1):
        result = entry.result
        suggested = (
            format_lr(result.suggestion.lr) if result.suggestion.lr is not None else NO_SUGGESTION
        )
        verify = _verify_badge(entry.verify) if entry.verify is not None else NO_VALUE
        rows.append(
            [
                f'<a href="#run-{index}">{_esc(entry.name)}</a>',
                _esc(suggested),
                _esc(format_range(result.lr_range)),
                _badge(result.confidence.level),
                verify,
                _esc(result.history.stop_reason),
            ]
        )
    return [_table(["run", "suggested LR", "range", "confidence", "verify", "stop reason"], rows)]


def _entry(item: ReportEntry | tuple[str, RangeTestResult, bytes]) -> ReportEntry:
    if isinstance(item, ReportEntry):
        return item
    name, result, png = item
    return ReportEntry(name, result, png)


def render_html(
    entries: Sequence[ReportEntry | tuple[str, RangeTestResult, bytes]],
    title: str,
    generated: str | None = None,
) -> str:
    """Return one self-contained HTML page (inline CSS, plots as base64 data URIs, no script).

    ``entries`` are ReportEntry values, or (name, result, PNG bytes) for a bare result; empty
    bytes leave that run without a picture. With several runs an overview table links to each
    run's section. ``generated`` (a timestamp) is shown under the title. All user text is
    escaped.
    """
    items = [_entry(item) for item in entries]
    meta = f"{len(items)} run(s) · lrfind {_esc(__version__)}"
    if generated:
        meta += f" · generated {_esc(generated)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="meta">{meta}</p>',
    ]
    if len(items) > 1:
        parts += _overview(items)
    for index, entry in enumerate(items, start=1):
        parts += _run_section(f"run-{index}", entry)
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
