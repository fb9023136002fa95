"""Diff of two JSON reports: what changed, worse first, and whether anything got worse."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from formats import BACKEND_AI, check_golden, report
from rich.console import Console

from reachproof.errors import InputError
from reachproof.report.diff import (
    diff_reports,
    render_diff_json,
    render_diff_markdown,
    render_diff_terminal,
)
from reachproof.report.json_report import render_json, report_to_dict
from reachproof.report.load import load_report
from reachproof.verdict import Verdict


def _doc(scenario: str) -> dict[str, Any]:
    return report_to_dict(report(BACKEND_AI, scenario))


def _terminal_text(old: dict[str, Any], new: dict[str, Any]) -> str:
    with open(os.devnull, "w") as sink:
        console = Console(record=True, width=140, color_system=None, file=sink)
        render_diff_terminal(diff_reports(old, new), console)
        return console.export_text()


def test_diff_goldens() -> None:
    old, new = _doc("clean"), _doc("faulty")
    check_golden("diff-clean-faulty.txt", _terminal_text(old, new))
    check_golden("diff-clean-faulty.md", render_diff_markdown(diff_reports(old, new)))
    check_golden("diff-clean-faulty.json", render_diff_json(diff_reports(old, new)))


def test_a_fault_is_worse_and_listed_first() -> None:
    diff = diff_reports(_doc("clean"), _doc("faulty"))
    assert diff.worse and diff.exit_code == 1
    assert diff.rules[0].rule_id == "R3"
    assert (diff.rules[0].old, diff.rules[0].new) == (Verdict.PASS, Verdict.FAIL)
    # R4: s2/sub3's own vantage was the only witness of its default address (liveness)
    assert {r.rule_id for r in diff.rules} == {
        "R3", "R4", "R6", "R10", "R11", "R12", "R13", "R14", "R15"
    }  # fmt: skip
    opened = [s for s in diff.states if s.newly_open]
    assert diff.states[: len(opened)] == tuple(opened)
    assert sorted((s.address, s.ports, s.old_state) for s in opened) == [
        ("10.0.2.11", "6001", "filtered"),
        ("fd00:2::11", "6001", "filtered"),
    ]
    assert all(s.worse for s in opened)


def test_repair_is_not_worse_and_no_change_is_empty() -> None:
    repaired = diff_reports(_doc("faulty"), _doc("clean"))
    assert not repaired.worse and repaired.exit_code == 0
    assert len(repaired.rules) == 9
    same = diff_reports(_doc("faulty"), _doc("faulty"))
    assert same.rules == () and same.states == () and same.unchanged_rules == 16


def test_a_new_failing_rule_is_worse_a_removed_one_is_not() -> None:
    clean, faulty = _doc("clean"), _doc("faulty")
    without_r3 = dict(clean, rules=[r for r in clean["rules"] if r["id"] != "R3"])
    added = diff_reports(without_r3, faulty)
    r3 = next(r for r in added.rules if r.rule_id == "R3")
    assert r3.old is None and r3.worse
    removed = diff_reports(clean, without_r3)
    assert [(r.rule_id, r.new, r.worse) for r in removed.rules] == [("R3", None, False)]
    assert removed.removed_specs > 0 and not removed.worse


def test_load_report_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(render_json(report(BACKEND_AI, "faulty")), encoding="utf-8")
    assert load_report(path) == json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema": "reachproof.report/0", "rules": []}', "report schema 'reachproof.report/0'"),
        ('{"rules": []}', "no 'schema' field"),
        ("[1, 2]", "a JSON object is expected"),
        ('{"schema": ', "not a JSON report"),
        ('{"schema": "reachproof.report/1", "rules": [{"id": "R1"}]}', "malformed report"),
    ],
)
def test_load_report_rejects_what_it_cannot_compare(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "old.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as caught:
        load_report(path)
    assert str(path) in str(caught.value)


def test_load_report_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such report file"):
        load_report(tmp_path / "absent.json")


def test_blocked_to_blocked_is_not_a_change_but_blocked_to_open_is() -> None:
    import copy
    import json
    from pathlib import Path

    from reachproof.report.diff import diff_reports

    golden = Path(__file__).parent / "golden" / "compact-clean.json"
    old = json.loads(golden.read_text(encoding="utf-8"))
    blocked = [
        e
        for r in old["rules"]
        for h in r["hops"]
        for e in h["evidence"]
        if e["state"] == "filtered"
    ]
    assert blocked
    new = copy.deepcopy(old)
    same = [
        e
        for r in new["rules"]
        for h in r["hops"]
        for e in h["evidence"]
        if e["state"] == "filtered"
    ]
    same[0]["state"] = "unreachable"  # a drop that answered with ICMP this time
    assert diff_reports(old, new).states == ()
    same[0]["state"] = "open"
    same[0]["verdict"] = "FAIL"
    changes = diff_reports(old, new).states
    assert [(c.old_state, c.new_state, c.worse) for c in changes] == [("filtered", "open", True)]


def test_a_version_1_report_is_still_read_against_a_version_2_one(tmp_path: Path) -> None:
    """Version 2 only added WAIVED and the waivers: a baseline from before still compares."""
    old = _doc("faulty")
    old["schema"] = "reachproof.report/1"
    del old["waivers"], old["summary"]["WAIVED"]
    for rule in old["rules"]:
        for hop in rule["hops"]:
            for item in hop["evidence"]:
                del item["waiver"]
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    diff = diff_reports(load_report(path), _doc("faulty"))
    assert not diff.worse and not diff.rules and not diff.states
