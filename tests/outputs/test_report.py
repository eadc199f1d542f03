"""Markdown, JUnit and HTML renderings: the same fields everywhere, hostile text escaped."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import pytest

from lrfind.format import NO_SUGGESTION, format_lr
from lrfind.outputs.report.html import render_html
from lrfind.outputs.report.junit import render_junit
from lrfind.outputs.report.markdown import render_markdown
from lrfind.outputs.report.summary import one_line_summary, summary_rows
from lrfind.results import CheckOutcome
from tests.fixtures.results import make_result

HOSTILE = "<script>alert(\"x\")</script> & 'quotes' | *bold* [link](javascript:x)"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PASSED = CheckOutcome(True, "3.16e-04 lies in the expected range", 1e-4, 1e-3)
FAILED = CheckOutcome(False, "3.16e-04 is above the expected maximum", 1e-5, 1e-4)


@pytest.mark.parametrize(
    ("lr", "digits", "expected"),
    [
        (0.0031622776, 3, "3.16e-03"),
        (1e-4, 3, "1.00e-04"),
        (12.5, 3, "1.25e+01"),
        (0.0031622776, 2, "3.2e-03"),
        (None, 3, "—"),
        (float("nan"), 3, "—"),
        (float("inf"), 3, "—"),
    ],
)
def test_format_lr(lr: float | None, digits: int, expected: str) -> None:
    assert format_lr(lr, digits) == expected


def test_summary_rows_show_the_fields_every_rendering_shares() -> None:
    rows = dict(summary_rows(make_result("clean", world_size=4, accumulation_steps=2)))
    assert rows["suggested LR"] == "3.16e-04"
    assert rows["min LR"] == "2.00e-05"
    assert rows["confidence"] == "high"
    assert rows["stop reason"] == "completed"
    assert rows["steps"] == "120 of 120"
    assert rows["seconds"] == "4.2"
    assert rows["device"] == "cpu (fp32)"
    assert rows["batch size"] == "64 (global 512: 4 processes, 2 accumulation steps)"
    flat = dict(summary_rows(make_result("flat")))
    assert flat["suggested LR"] == NO_SUGGESTION
    assert flat["min LR"] == flat["max LR"] == "—"


def test_summary_rows_mention_refinement_repeats_and_incomplete_runs() -> None:
    rows = dict(summary_rows(make_result("clean", with_refine=True, repeats=3, complete=False)))
    assert rows["refined LR"].startswith("1.00e-03 (7 trials × 50 steps, ")
    assert rows["refined LR"].endswith(" s, by val_loss)")
    assert rows["repeats"].startswith("3 (suggestion spread ×")
    assert rows["stop reason"] == "completed (incomplete run)"


def test_markdown_summary() -> None:
    result = make_result("diverged", confidence="medium", warnings=("loss is fp16-noisy",))
    text = render_markdown(result, "runs/my run/lr_finder.png", PASSED)
    assert text.startswith("## LR range test: synthetic\n")
    assert "| suggested LR | 3.16e-04 |" in text
    assert "| stop reason | diverged |" in text
    assert "**✅ check passed**: 3.16e-04 lies in the expected range" in text
    assert "(expected \\[1.00e-04, 1.00e-03\\])" in text
    assert "- the descent spans only 1.4 decades of LR" in text
    assert "- loss is fp16-noisy" in text
    assert text.rstrip().endswith("![LR range test plot](runs/my%20run/lr_finder.png)")
    assert "![" not in render_markdown(result, None)


def test_markdown_escapes_block_syntax_only_where_it_would_bite() -> None:
    warnings = ("# not a heading", "1. not a list", "-5 is fine", "lr 1.00e-04 (x+y)")
    text = render_markdown(make_result("clean", warnings=warnings), None)
    assert "- \\# not a heading" in text
    assert "- 1\\. not a list" in text
    assert "- -5 is fine" in text
    assert "- lr 1.00e-04 (x+y)" in text


def test_markdown_escapes_hostile_text() -> None:
    result = make_result("flat", name=HOSTILE, optimizer=HOSTILE, warnings=(HOSTILE,))
    text = render_markdown(result, None, CheckOutcome(False, HOSTILE, None, 1e-3))
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert "&amp;" in text
    assert "[link](javascript" not in text
    for line in text.splitlines():
        if line.startswith("| optimizer"):
            assert line.count(" | ") == 1  # the hostile "|" did not split the cell
    assert "**❌ check failed**" in text
    assert "Try sweeping 1.00e-03 to 1.00e+02 instead." in text


def test_junit_parses_and_counts_pass_failure_and_error() -> None:
    xml_text = render_junit(
        [
            ("passes", make_result("clean"), PASSED),
            ("fails", make_result("clean"), FAILED),
            ("no answer", make_result("flat"), PASSED),
            ("unchecked", make_result("clean"), None),
            ("interrupted", make_result("clean", complete=False), PASSED),
        ],
        seconds=12.5,
    )
    assert xml_text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(xml_text)
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.attrib["tests"] == "5"
    assert suite.attrib["failures"] == "1"
    assert suite.attrib["errors"] == "2"
    assert suite.attrib["skipped"] == "0"
    assert suite.attrib["time"] == "12.500"
    cases = {case.attrib["name"]: case for case in suite.iter("testcase")}
    assert cases["passes"].find("failure") is None and cases["passes"].find("error") is None
    failure = cases["fails"].find("failure")
    assert failure is not None and failure.attrib["type"] == "CheckFailed"
    assert "expected [1.00e-05, 1.00e-04]" in failure.attrib["message"]
    error = cases["no answer"].find("error")
    assert error is not None and error.attrib["type"] == "NoReliableSuggestion"
    assert error.attrib["message"].startswith(NO_SUGGESTION)
    interrupted = cases["interrupted"].find("error")
    assert interrupted is not None and interrupted.attrib["type"] == "Interrupted"
    properties = {p.attrib["name"]: p.attrib["value"] for p in cases["unchecked"].iter("property")}
    assert float(properties["suggested_lr"]) == pytest.approx(10**-3.5)
    assert properties["confidence"] == "high"
    out = cases["unchecked"].find("system-out")
    assert out is not None and "suggested LR: 3.16e-04" in (out.text or "")


def test_junit_escapes_hostile_names_and_strips_invalid_xml_characters() -> None:
    name = HOSTILE + "\x00\x1b[31m"
    xml_text = render_junit([(name, make_result("clean", name=name), FAILED)])
    assert "<script>" not in xml_text
    root = ET.fromstring(xml_text)  # would raise on an unescaped "<" or a raw control character
    case = root.find("testsuite/testcase")
    assert case is not None
    assert case.attrib["name"].startswith(HOSTILE)
    assert root.find("testsuite") is not None
    assert root.attrib["time"] == "4.250"  # default: the runs' own times


def test_html_is_self_contained_and_escaped() -> None:
    entries = [
        (HOSTILE, make_result("clean", name=HOSTILE, warnings=(HOSTILE,)), PNG),
        ("flat run", make_result("flat"), b""),
    ]
    page = render_html(entries, title=f"Compare {HOSTILE}")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert 'href="javascript' not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from outside
    assert "<link" not in page
    encoded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(encoded) == 1 and base64.b64decode(encoded[0]) == PNG
    assert page.count('class="run"') == 2  # one section per run (with its sub-sections)
    assert 'href="#run-1"' in page and 'id="run-2"' in page
    assert NO_SUGGESTION in page
    assert "<td>—</td>" in page  # the flat run has no range
    assert '<span class="badge conf-high">high</span>' in page


def test_html_single_run_has_no_overview_table() -> None:
    page = render_html([("one", make_result("clean"), PNG)], title="one run")
    assert 'href="#run-1"' not in page
    assert "<title>one run</title>" in page


def test_one_line_summary_says_the_answer_or_why_not_and_where() -> None:
    clean = make_result("clean")
    line = one_line_summary(clean, "runs/x/1")
    assert line.startswith(f"suggested LR {format_lr(clean.suggestion.lr)} (range ")
    assert line.endswith(f"confidence {clean.confidence.level}); results in runs/x/1")
    flat = one_line_summary(make_result("flat"))
    assert flat.startswith(NO_SUGGESTION + ": ")
    assert "\n" not in flat
    assert one_line_summary(make_result("clean", complete=False)).endswith("[incomplete run]")
