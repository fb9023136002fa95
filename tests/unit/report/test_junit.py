"""JUnit XML: valid against the Jenkins xUnit JUnit schema, a case per hop, and no undecided
hop that a CI view could show as passed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
import xmlschema
from formats import BACKEND_AI, COMPACT, SCENARIO_NAMES, check_golden, report

from reachproof.report.junit import render_junit
from reachproof.verdict import Verdict

XSD = xmlschema.XMLSchema(Path(__file__).parent / "schemas" / "junit-10.xsd")


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_junit_golden(scenario: str) -> None:
    check_golden(f"compact-{scenario}.junit.xml", render_junit(report(COMPACT, scenario)))


@pytest.mark.parametrize("policy", [BACKEND_AI, COMPACT])
@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_junit_matches_schema(policy: str, scenario: str) -> None:
    XSD.validate(render_junit(report(policy, scenario)))


def test_the_schema_rejects_what_ci_would_reject() -> None:
    root = ET.fromstring(render_junit(report(COMPACT, "faulty")))
    case = root.find("testsuite/testcase")
    assert case is not None
    del case.attrib["name"]
    assert not XSD.is_valid(ET.tostring(root, encoding="unicode"))


def test_a_case_per_hop_and_the_counts_add_up() -> None:
    faulty = report(BACKEND_AI, "faulty")
    root = ET.fromstring(render_junit(faulty))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == sum(len(r.hops) for r in faulty.rules)
    assert suite.get("tests") == str(len(cases))
    assert suite.get("failures") == str(len(suite.findall("testcase/failure")))
    assert suite.get("errors") == str(len(suite.findall("testcase/error")))
    names = [c.get("name", "") for c in cases]
    assert (
        "R3 User → Agent (direct access) MUST BE BLOCKED / hop 1: "
        "deny user → agent:any-tcp except agent:direct-access" in names
    )
    assert {c.get("classname") for c in cases if c.get("name", "").startswith("R3 ")} == {
        "backend-ai.R3"
    }


def test_failure_carries_the_evidence_and_undecided_is_an_error() -> None:
    root = ET.fromstring(render_junit(report(BACKEND_AI, "faulty")))
    failures = root.findall(".//testcase/failure")
    assert len(failures) == 1
    assert (failures[0].get("message") or "").startswith("FAIL: ")
    assert "agent1 10.0.2.11 tcp/6001: open, syn-ack" in (failures[0].text or "")
    errors = root.findall(".//testcase/error")
    assert errors
    assert all((e.get("message") or "").startswith("INCONCLUSIVE: ") for e in errors)
    # Each undecided rule says why: the vantage that could not start, or (R4) the target
    # address only that vantage could have shown alive.
    assert all(
        "vantage 's2-sub3' could not start" in (e.text or "")
        or "not shown alive: s2/sub3 172.17.1.6" in (e.text or "")
        for e in errors
    )
    assert any("not shown alive" in (e.text or "") for e in errors)
    assert root.findall(".//testcase/skipped") == []


def test_an_advisory_failure_passes_with_a_note() -> None:
    faulty = report(BACKEND_AI, "faulty")
    r15 = next(r for r in faulty.rules if r.rule_id == "R15")
    hop = replace(r15.hops[0], verdict=Verdict.FAIL, reason="MASTER_ADDR missing")
    warned = replace(faulty, rules=(replace(r15, verdict=Verdict.WARN, hops=(hop,)),))
    root = ET.fromstring(render_junit(warned))
    case = root.find(".//testcase")
    assert case is not None
    assert case.find("failure") is None and case.find("error") is None
    assert (case.findtext("system-out") or "").startswith("WARN (advisory): MASTER_ADDR missing")


def test_text_xml_cannot_carry_is_replaced() -> None:
    faulty = report(COMPACT, "faulty")
    rule = replace(faulty.rules[0], title="banner \x00\x1b[31m")
    text = render_junit(replace(faulty, rules=(rule, *faulty.rules[1:])))
    XSD.validate(text)
    assert "banner \ufffd\ufffd[31m" in text
