"""Waivers meet verdicts: a covered FAIL is WAIVED (exit 0), an expired waiver waives nothing,
a partial one says which items it covered, and nothing undecided is ever waived."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from formats import BACKEND_AI, prepared
from test_golden import FINISHED, STARTED, _breached, _faulty

from reachproof.api import Prepared, build_report
from reachproof.fake import Fact, FakeNetwork
from reachproof.observation import PortState
from reachproof.ports import PortSet
from reachproof.report.diff import diff_reports
from reachproof.report.json_report import report_to_dict
from reachproof.report.junit import render_junit
from reachproof.report.model import Report
from reachproof.report.sarif import sarif_log
from reachproof.verdict import RuleVerdict, Verdict
from reachproof.waivers.load import parse_waivers
from reachproof.waivers.model import WaiverFile, WaiverStatus

R3_AGENT1 = """\
waivers:
  - rule: R3
    target: {target}
    ports: tcp/6001
    justification: agent RPC monitored from outside until the bastion ships
    accepted_by: A. Auditor
    expires: 2026-11-22
"""


def _run(
    world: Callable[[Prepared], FakeNetwork], text: str, finished: datetime = FINISHED
) -> Report:
    case = prepared(BACKEND_AI)
    rules = [r.id.text for r in case.policy.rules]
    waivers = WaiverFile("w.yaml", "0" * 64, parse_waivers(text, "w.yaml", rules))
    observed = world(case).observe(case.plan)
    return build_report(replace(case, waivers=waivers), observed, STARTED, finished)


def _rule(report: Report, rule_id: str) -> RuleVerdict:
    return next(r for r in report.rules if r.rule_id == rule_id)


def test_a_covered_fail_is_waived_and_exits_0() -> None:
    report = _run(_breached, R3_AGENT1.format(target="agent1"))
    r3 = _rule(report, "R3")
    assert r3.verdict is Verdict.WAIVED
    assert [h.verdict for h in r3.hops] == [Verdict.WAIVED]
    assert {e.waiver for h in r3.hops for e in h.evidence if e.verdict is Verdict.WAIVED} == {
        "w.yaml:2"
    }
    assert report.exit_code == 0
    assert report.exit_meaning() == "every rule holds or is waived"
    [outcome] = report.waivers.outcomes if report.waivers else ()
    assert (outcome.status, outcome.matched) == (WaiverStatus.APPLIED, 2)


def test_the_same_waiver_once_expired_waives_nothing_and_says_so() -> None:
    next_day = datetime(2026, 11, 23, 0, 0, 1, tzinfo=UTC)
    report = _run(_breached, R3_AGENT1.format(target="agent1"), next_day)
    r3 = _rule(report, "R3")
    assert r3.verdict is Verdict.FAIL
    assert report.exit_code == 1
    failing = [e for h in r3.hops for e in h.evidence if e.verdict is Verdict.FAIL]
    assert len(failing) == 2
    assert all("waiver w.yaml:2 expired on 2026-11-22" in e.note for e in failing)
    [outcome] = report.waivers.outcomes if report.waivers else ()
    assert (outcome.status, outcome.matched) == (WaiverStatus.EXPIRED, 2)
    assert report_to_dict(report)["waivers"]["waivers"][0]["status"] == "expired"


def test_a_partial_waiver_keeps_the_fail_and_marks_what_it_covered() -> None:
    report = _run(_breached, R3_AGENT1.format(target="10.0.2.11"))
    r3 = _rule(report, "R3")
    assert r3.verdict is Verdict.FAIL
    assert report.exit_code == 1
    marked = sorted(
        (e.address, e.verdict, e.waiver)
        for h in r3.hops
        for e in h.evidence
        if e.verdict is not Verdict.PASS
    )
    assert marked == [
        ("10.0.2.11", Verdict.WAIVED, "w.yaml:2"),
        ("fd00:2::11", Verdict.FAIL, ""),
    ]


def _blind_and_leaking(case: Prepared) -> FakeNetwork:
    """s2/sub3's vantage down (R6 undecided there) and s1/main1 reaching the manager API."""
    world = _faulty(case)
    world.facts.insert(0, Fact("s1/main1", "manager", PortState.OPEN, PortSet.parse("8081")))
    return world


def test_a_waiver_never_waives_what_was_not_decided() -> None:
    text = """\
waivers:
  - {rule: R6, justification: j, accepted_by: a, expires: 2027-01-01}
  - {rule: R14, justification: j, accepted_by: a, expires: 2027-01-01}
"""
    report = _run(_blind_and_leaking, text)
    assert _rule(_run(_blind_and_leaking, "waivers: []\n"), "R6").verdict is Verdict.FAIL
    # R6's failures are waived, but s2/sub3 could not probe: undecided, not waived.
    assert _rule(report, "R6").verdict is Verdict.INCONCLUSIVE
    # R14 only has an undecided item: the waiver matches nothing and is reported unused.
    assert _rule(report, "R14").verdict is Verdict.INCONCLUSIVE
    statuses = [o.status for o in report.waivers.outcomes] if report.waivers else []
    assert statuses == [WaiverStatus.APPLIED, WaiverStatus.UNUSED]
    assert report.exit_code == 1  # R3 still fails: nothing waives it


def test_an_unused_waiver_is_listed_and_changes_nothing() -> None:
    text = "waivers:\n  - {rule: R1, justification: j, accepted_by: a, expires: 2027-01-01}\n"
    report = _run(_breached, text)
    assert _rule(report, "R3").verdict is Verdict.FAIL
    assert report.waivers is not None
    assert [o.status for o in report.waivers.outcomes] == [WaiverStatus.UNUSED]
    assert report_to_dict(report)["waivers"]["waivers"][0]["matched"] == 0


def test_fail_to_waived_is_not_worse_in_a_diff() -> None:
    failed = report_to_dict(_run(_breached, "waivers: []\n"))
    waived = report_to_dict(_run(_breached, R3_AGENT1.format(target="agent1")))
    diff = diff_reports(failed, waived)
    [change] = diff.rules
    assert (change.rule_id, change.old, change.new, change.worse) == (
        "R3",
        Verdict.FAIL,
        Verdict.WAIVED,
        False,
    )
    assert not diff.worse and diff.exit_code == 0


def test_junit_skips_and_sarif_suppresses_with_the_justification() -> None:
    report = _run(_breached, R3_AGENT1.format(target="agent1"))
    root = ET.fromstring(render_junit(report))
    skipped = [c for c in root.iter("testcase") if c.find("skipped") is not None]
    assert [c.get("name", "").split(" ")[0] for c in skipped] == ["R3"]
    message = skipped[0].find("skipped")
    assert message is not None
    assert "agent RPC monitored from outside" in message.get("message", "")
    [result] = sarif_log(report)["runs"][0]["results"]
    [suppression] = result["suppressions"]
    assert suppression["kind"] == "external"
    assert suppression["justification"].startswith("agent RPC monitored from outside")
    failed = sarif_log(_run(_breached, "waivers: []\n"))["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in failed] == [result["partialFingerprints"]]
    location = suppression["location"]["physicalLocation"]
    assert (location["artifactLocation"]["uri"], location["region"]["startLine"]) == ("w.yaml", 2)


def test_a_waiver_of_a_rule_left_out_by_rule_is_not_called_unused() -> None:
    case = prepared(BACKEND_AI)
    text = (
        "waivers:\n"
        "  - {rule: R1, justification: j, accepted_by: a, expires: 2027-01-01}\n"
        "  - {rule: R3, justification: j, accepted_by: a, expires: 2027-01-01}\n"
    )
    rules = [r.id.text for r in case.policy.rules]
    waivers = WaiverFile("w.yaml", "0" * 64, parse_waivers(text, "w.yaml", rules))
    only_r3 = replace(case, plan=replace(case.plan, rules=case.plan.rules[2:3]), waivers=waivers)
    report = build_report(only_r3, _breached(case).observe(case.plan), STARTED, FINISHED)
    assert [r.rule_id for r in report.rules] == ["R3"]
    assert report.waivers is not None
    assert [o.status for o in report.waivers.outcomes] == [
        WaiverStatus.NOT_CHECKED,
        WaiverStatus.APPLIED,
    ]
