"""The HTML report is one page a reviewer can judge alone: every section, the verify verdict."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import lrfind
from lrfind.outputs.report.html import SECTIONS, ReportEntry, render_html
from tests.fixtures.results import make_result

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

CONFIG_YAML = "name: demo\nmodel:\n  target: mlp\n"

NOT_CONFIRMED: dict[str, Any] = {
    "schema_version": 1,
    "status": "not_confirmed",
    "complete": True,
    "suggested_lr": 0.01,
    "best_lr": 0.003,
    "message": "3.00e-03 did better: val loss 0.41 vs 0.52 at the suggested 1.00e-02",
    "metric": "val_loss",
    "steps_per_trial": 200,
    "trials": [
        {"lr": 0.003, "train_loss": 0.4, "val_loss": 0.41, "diverged": False, "steps": 200},
        {"lr": 0.01, "train_loss": 0.5, "val_loss": 0.52, "diverged": False, "steps": 200},
    ],
}


def full_entry(**changes: Any) -> ReportEntry:
    values: dict[str, Any] = {
        "name": "demo",
        "result": make_result("clean", with_refine=True, with_val=True, name="demo"),
        "png": PNG,
        "run_dir": "/runs/demo/20260101-120000",
        "finished": "2026-01-01T12:00:00+00:00",
        "config_yaml": CONFIG_YAML,
        "verify": NOT_CONFIRMED,
    }
    values.update(changes)
    return ReportEntry(**values)


def test_every_section_is_present() -> None:
    page = render_html([full_entry()], "demo")
    for section in SECTIONS:
        assert f'id="run-1-{section}"' in page, section
    assert page.count('class="run"') == 1


def test_the_decision_shows_a_not_confirmed_verify_next_to_the_confidence() -> None:
    """Bug: a run whose verify said NOT CONFIRMED showed only "confidence high"."""
    page = render_html([full_entry()], "demo")
    decision = page[page.index('id="run-1-decision"') : page.index('id="run-1-evidence"')]
    assert "verify: NOT CONFIRMED" in decision
    assert "3.00e-03 did better" in decision
    assert 'class="verdict not_confirmed"' in decision


def test_evidence_lists_each_trial_and_every_method() -> None:
    result = full_entry().result
    assert result.refinement is not None
    page = render_html([full_entry()], "demo")
    evidence = page[page.index('id="run-1-evidence"') : page.index('id="run-1-run"')]
    trial_rows = re.findall(r"<tr( class=\"chosen\")?><td>\d\.\d\de-\d\d</td>", evidence)
    assert len(trial_rows) >= len(result.refinement.trials)
    assert evidence.count('class="chosen"') >= 1
    for method in result.analysis.methods:
        assert f"<td>{method}</td>" in evidence


def test_run_facts_config_and_versions() -> None:
    page = render_html([full_entry()], "demo", generated="2026-01-02T00:00:00+00:00")
    facts = page[page.index('id="run-1-run"') : page.index('id="run-1-config"')]
    for text in ("seed", "/runs/demo/20260101-120000", "2026-01-01T12:00:00+00:00", "time"):
        assert text in facts
    config = page[page.index('id="run-1-config"') :]
    assert "<details>" in config and "<pre>name: demo" in config
    assert "generated 2026-01-02T00:00:00+00:00" in page


def test_plot_is_full_width() -> None:
    page = render_html([full_entry()], "demo")
    assert "figure img { display: block; width: 100%;" in page
    assert ".run figure { flex" not in page  # no side-by-side half-width plot


def test_a_bare_result_still_renders_without_the_run_dir_parts() -> None:
    page = render_html([("bare", make_result("flat"), b"")], "bare")
    for section in SECTIONS:
        assert f'id="run-1-{section}"' in page
    assert "config.yaml: not available" in page
    assert "verify:" not in page


def run_with_verify(tmp_path: Path, tiny_config: Path) -> Path:
    run = lrfind.sweep(tiny_config, out=tmp_path / "run")
    assert run.run_dir is not None
    (run.run_dir / "verify").mkdir()
    (run.run_dir / "verify" / "verify.json").write_text(json.dumps(NOT_CONFIRMED))
    return run.run_dir


def test_report_finds_verify_json_and_config_in_the_run_dir(
    tmp_path: Path, tiny_config: Path
) -> None:
    run_dir = run_with_verify(tmp_path, tiny_config)
    page_path = tmp_path / "report.html"
    lrfind.report([run_dir], html=page_path)
    page = page_path.read_text(encoding="utf-8")
    assert "verify: NOT CONFIRMED" in page
    assert "name: tiny" in page  # the saved config.yaml
    assert str(run_dir.resolve()) in page
    assert re.search(r"<th scope=\"row\">finished</th><td>\d{4}-\d\d-\d\dT", page)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium)")
def test_a_real_browser_renders_every_section(tmp_path: Path, tiny_config: Path) -> None:
    run_dir = run_with_verify(tmp_path, tiny_config)
    page_path = tmp_path / "report.html"
    lrfind.report([run_dir], html=page_path)
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,2400"]
    dom = subprocess.run(
        [*command, "--dump-dom", page_path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for section in SECTIONS:
        assert f'id="run-1-{section}"' in dom
    assert "verify: NOT CONFIRMED" in dom
    shot = tmp_path / "page.png"
    subprocess.run(
        [*command, f"--screenshot={shot}", page_path.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000
