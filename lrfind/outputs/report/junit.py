"""A check as JUnit XML for CI test reporters."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from lrfind.format import NO_SUGGESTION
from lrfind.outputs.report.summary import format_expected, summary_rows
from lrfind.results import CheckOutcome, RangeTestResult

# XML 1.0 forbids most C0 control characters even when escaped; ElementTree does not strip them.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


def _float_attr(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def render_junit(
    results: Sequence[tuple[str, RangeTestResult, CheckOutcome | None]],
    seconds: float | None = None,
) -> str:
    """Return a JUnit XML report with one testcase per (name, result, check).

    A failed check is a ``<failure>``; no reliable suggestion (or less confidence than the check
    requires) or an interrupted run is an ``<error>`` (see the module docstring); ``seconds`` is
    the suite's wall time (default: the sum of the runs' times).
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
        no_answer = check.message if check is not None and check.no_answer else None
        if result.suggestion.lr is None or not result.complete or no_answer:
            errors += 1
            if no_answer and result.complete:
                kind, message = "NoReliableSuggestion", no_answer
            elif result.suggestion.lr is None:
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
