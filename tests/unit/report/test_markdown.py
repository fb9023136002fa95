"""The Markdown summary: short, with the verdicts, the table of rules and the failures."""

from __future__ import annotations

from dataclasses import replace

import pytest
from formats import BACKEND_AI, SCENARIO_NAMES, check_golden, report

from reachproof.report.markdown import render_markdown


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_markdown_golden(scenario: str) -> None:
    check_golden(f"{scenario}.md", render_markdown(report(BACKEND_AI, scenario)))


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_short_enough_for_a_pr_comment(scenario: str) -> None:
    assert len(render_markdown(report(BACKEND_AI, scenario)).splitlines()) <= 60


def test_headline_table_and_failure_evidence() -> None:
    faulty = report(BACKEND_AI, "faulty")
    text = render_markdown(faulty)
    first = text.splitlines()[0]
    assert first.startswith("## ✗ reachproof: 7 PASS · 1 FAIL · 8 INCONCLUSIVE — exit 1")
    for rule in faulty.rules:
        assert f"| {rule.rule_id} |" in text
    assert "| ✗ | R3 | User → Agent (direct access) MUST BE BLOCKED | critical |" in text
    assert "`user (user) → agent1 10.0.2.11 tcp/6001: open, syn-ack" in text
    assert "### Inconclusive (not known to hold)" in text


def test_clean_headline() -> None:
    text = render_markdown(report(BACKEND_AI, "clean"))
    assert text.startswith("## ✓ reachproof: 16 PASS — exit 0: every rule holds")
    assert "### Failures" not in text


def test_table_cells_cannot_break_the_table() -> None:
    faulty = report(BACKEND_AI, "faulty")
    rule = replace(faulty.rules[0], title="a | b\nc")
    text = render_markdown(replace(faulty, rules=(rule,)))
    assert "| ✓ | R1 | a \\| b c | high |" in text
