"""The HTML report: one self-contained file that parses, escapes what it shows, and carries
every rule and the evidence of what failed."""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser

import pytest
from formats import BACKEND_AI, COMPACT, SCENARIO_NAMES, check_golden, matrix, report

from reachproof.report.html import render_html


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action", "xlink:href", "data") and value:
                self.refs.append(value)
            if name == "id" and value:
                self.ids.add(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(text: str) -> _Collect:
    parser = _Collect()
    parser.feed(text)
    parser.close()
    return parser


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_html_golden(scenario: str) -> None:
    html = render_html(report(COMPACT, scenario), matrix(COMPACT, scenario))
    check_golden(f"compact-{scenario}.html", html)


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_self_contained_with_every_rule(scenario: str) -> None:
    case = report(BACKEND_AI, scenario)
    html = render_html(case, matrix(BACKEND_AI, scenario))
    parsed = _parse(html)
    assert html.startswith("<!DOCTYPE html>")
    assert "script" not in parsed.tags and "link" not in parsed.tags
    assert all(ref.startswith("#") for ref in parsed.refs), parsed.refs
    assert "http://" not in html.replace('"http://www.w3.org', "")
    assert "https://" not in html
    for rule in case.rules:
        assert f"rule-{rule.rule_id}" in parsed.ids
        assert f"#rule-{rule.rule_id}" in parsed.refs  # the diagram links to the evidence
    assert "Zone reachability" in "".join(parsed.text)
    assert "svg" in parsed.tags


def test_the_failing_hop_and_its_evidence_are_shown() -> None:
    html = render_html(report(BACKEND_AI, "faulty"), matrix(BACKEND_AI, "faulty"))
    text = "".join(_parse(html).text)
    assert "✗ FAIL hop 1: deny user → agent:any-tcp" in text
    assert "agent1 10.0.2.11" in text and "agent1 [fd00:2::11]" in text
    assert "open: reachable although the rule denies it" in text
    assert "exit 1: at least one rule FAILED" in text
    assert report(BACKEND_AI, "faulty").policy.sha256 in text
    # The diagram's red arrow says what got through.
    assert "✗ deny any-tcp" in text and "open: agent1 tcp/6001 +1" in text


def test_everything_shown_is_escaped() -> None:
    faulty = report(COMPACT, "faulty")
    evil = '<script>alert("x")</script><img src="https://evil.example/x.png">'
    rule = replace(faulty.rules[0], title=evil, sources=(evil,))
    html = render_html(replace(faulty, policy_name=evil, rules=(rule, *faulty.rules[1:])))
    parsed = _parse(html)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert parsed.refs == [f"#rule-{r.rule_id}" for r in faulty.rules]
    assert evil in "".join(parsed.text)


def test_without_zones_the_matrix_says_so() -> None:
    bare = replace(report(COMPACT, "clean"), host_zones=())
    assert "No zone matrix" in render_html(bare)


def test_the_report_carries_its_zone_matrix() -> None:
    html = render_html(report(COMPACT, "clean"))
    assert "No zone matrix" not in html
    assert "internet" in html and "compute" in html
