"""A comparison of variants: outcomes, the compare.json document, a text table and CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lrfind.config.variants import Variant, variant_labels
from lrfind.format import NO_VALUE, format_lr
from lrfind.results import RangeTestResult

#: compare.json's ``schema_version``.
COMPARE_SCHEMA_VERSION = 1

TABLE_HEADERS = ("variant", "suggested LR", "min LR", "max LR", "best loss", "confidence", "note")


def _loss_text(value: float | None) -> str:
    return NO_VALUE if value is None or not math.isfinite(value) else f"{value:.4g}"


def _note(outcome: VariantOutcome) -> str:
    if outcome.error:
        return outcome.error
    result = outcome.result
    if result is None:
        return ""
    if outcome.status == "no_answer":
        return result.suggestion.reason or "; ".join(result.confidence.reasons[:1]) or "no answer"
    if outcome.status == "interrupted":
        return "interrupted (partial curve)"
    return ""


def table_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    """Return the human table's rows (``TABLE_HEADERS`` columns), one per variant."""
    labels = variant_labels([o.variant for o in comparison.outcomes])
    rows: list[tuple[str, ...]] = []
    for label, outcome in zip(labels, comparison.outcomes, strict=True):
        row = outcome.row()
        failed = outcome.status in ("failed", "skipped")
        rows.append(
            (
                label,
                outcome.status.upper() if failed else format_lr(row["suggested_lr"]),
                format_lr(row["min_lr"]),
                format_lr(row["max_lr"]),
                _loss_text(row["best_loss"]),
                row["confidence"] or NO_VALUE,
                _note(outcome),
            )
        )
    return rows


def format_text_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 60
) -> list[str]:
    """Return a plain-text table (header, rule, rows), columns left-aligned.

    Cells longer than ``max_width`` are cut with an ellipsis, so one long error message cannot
    push the other columns off the screen (the full text stays in compare.json).
    """

    def cut(cell: str) -> str:
        flat = " ".join(cell.split())
        return flat if len(flat) <= max_width else flat[: max_width - 1] + "…"

    cells = [[cut(str(cell)) for cell in row] for row in [list(headers), *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines: list[str] = []
    for number, row in enumerate(cells):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append(line.rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


CSV_COLUMNS = (
    "name",
    "status",
    "suggested_lr",
    "min_lr",
    "max_lr",
    "best_loss",
    "best_loss_lr",
    "confidence",
    "stop_reason",
    "steps",
    "run_dir",
    "error",
)


def comparison_csv(comparison: Comparison) -> str:
    """Return compare.csv: one row per variant, a column per varied key, then CSV_COLUMNS."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", *comparison.keys, *CSV_COLUMNS[1:]])
    for outcome in comparison.outcomes:
        row = outcome.row()
        raws = {key: raw for key, raw, _ in outcome.variant.settings}
        writer.writerow(
            [
                row["name"],
                *(raws[key] for key in comparison.keys),
                *("" if row[column] is None else row[column] for column in CSV_COLUMNS[1:]),
            ]
        )
    return buffer.getvalue()


VariantStatus = Literal["ok", "no_answer", "failed", "interrupted", "skipped"]

CompareStatus = Literal["ok", "failed", "no_answer", "interrupted"]


@dataclass(frozen=True)
class VariantOutcome:
    """What one variant's sweep gave: a result, or the error that stopped it."""

    variant: Variant
    status: VariantStatus
    run_dir: Path | None = None
    result: RangeTestResult | None = None
    error: str | None = None

    def row(self) -> dict[str, Any]:
        """Return this variant's row of compare.json (LRs and losses as numbers or None)."""
        result = self.result
        document = result.to_dict() if result is not None else {}
        return {
            "name": self.variant.name,
            "values": {key: _jsonable(value) for key, value in self.variant.values.items()},
            "status": self.status,
            "suggested_lr": document.get("suggestion", {}).get("lr"),
            "min_lr": document.get("range", {}).get("min_lr"),
            "max_lr": document.get("range", {}).get("max_lr"),
            "best_loss": document.get("best_loss"),
            "best_loss_lr": document.get("best_loss_lr"),
            "confidence": None if result is None else result.confidence.level,
            "stop_reason": None if result is None else result.history.stop_reason,
            "steps": None if result is None else result.history.steps,
            "run_dir": None if self.run_dir is None else str(self.run_dir),
            "error": self.error,
        }


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


@dataclass(frozen=True)
class Comparison:
    """A finished (or interrupted) compare: every variant's outcome and the files written."""

    name: str
    compare_dir: Path
    keys: tuple[str, ...]
    outcomes: tuple[VariantOutcome, ...]
    files: dict[str, Path] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def status(self) -> CompareStatus:
        """interrupted > failed (any variant) > no_answer (no variant gave a suggestion) > ok."""
        statuses = [outcome.status for outcome in self.outcomes]
        if "interrupted" in statuses or "skipped" in statuses:
            return "interrupted"
        if "failed" in statuses:
            return "failed"
        if "ok" not in statuses:
            return "no_answer"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        """Return the compare.json document."""
        vary: dict[str, list[Any]] = {key: [] for key in self.keys}
        for outcome in self.outcomes:
            for key, _, value in outcome.variant.settings:
                if _jsonable(value) not in vary[key]:
                    vary[key].append(_jsonable(value))
        overlay = self.files.get("overlay")
        return {
            "schema_version": COMPARE_SCHEMA_VERSION,
            "name": self.name,
            "status": self.status,
            "vary": vary,
            "overlay": None if overlay is None else overlay.name,
            "variants": [outcome.row() for outcome in self.outcomes],
            "warnings": list(self.warnings),
        }
