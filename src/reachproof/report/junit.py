"""JUnit XML for CI test views: a test suite per policy, a test case per hop of every rule.

Each case is named `R3 <title> / hop 1: deny user → agent:any-tcp` and classed
`<policy file stem>.<rule id>`, so CI UIs group a rule's hops together. A FAIL hop is a
`<failure>` carrying its evidence; an INCONCLUSIVE hop is an `<error>` (it must never look like
a pass); a WARN (an advisory rule's failure) passes with the evidence in `<system-out>`; a
WAIVED hop (every failure covered by a waiver) is `<skipped>` with the waivers' justification.
A rule with nothing to observe is one `<error>` case of its own. Built with xml.etree.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import PurePath

from reachproof.report.model import Report
from reachproof.report.text import (
    effective,
    evidence_line,
    families_lines,
    hop_title,
    hop_waivers,
    relevant,
    rule_location,
    unwitnessed,
    waived_items,
    waiver_line,
    waiver_terms,
)
from reachproof.verdict import HopVerdict, RuleVerdict, Verdict

# Evidence lines per case; the JSON report keeps every one.
EVIDENCE_LINES = 50

# Characters XML 1.0 cannot carry at all (a probe may record a raw banner).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def render_junit(report: Report) -> str:
    counts = report.counts()
    suite_name = _clean(report.policy_name)
    cases = [case for rule in report.rules for case in _rule_cases(report, rule)]
    failures = sum(1 for c in cases if c.find("failure") is not None)
    errors = sum(1 for c in cases if c.find("error") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    seconds = f"{max((report.finished - report.started).total_seconds(), 0.0):.3f}"

    root = ET.Element(
        "testsuites",
        name="reachproof",
        tests=str(len(cases)),
        failures=str(failures),
        errors=str(errors),
        time=seconds,
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=suite_name,
        tests=str(len(cases)),
        failures=str(failures),
        errors=str(errors),
        skipped=str(skipped),
        time=seconds,
        timestamp=report.started.isoformat(),
        file=_clean(report.policy.path),
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("policy", report.policy.path),
        ("policy.sha256", report.policy.sha256),
        ("inventory", report.inventory.path),
        ("inventory.sha256", report.inventory.sha256),
        ("reachproof.version", report.tool_version),
        ("rules", str(len(report.rules))),
        *((f"rules.{v}", str(n)) for v, n in counts.items()),
        ("probes", str(report.probes)),
        ("exit_code", str(report.exit_code)),
        *(
            (("waivers", report.waivers.file.path), ("waivers.sha256", report.waivers.file.sha256))
            if report.waivers is not None
            else ()
        ),
    ):
        ET.SubElement(properties, "property", name=name, value=_clean(value))
    suite.extend(cases)
    ET.SubElement(suite, "system-out").text = _clean(
        f"{len(report.rules)} rules, {report.probes} probes: "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
        + f"\nexit {report.exit_code}: {report.exit_meaning()}\n"
        + "".join(
            f"waiver {waiver_line(o)}\n"
            for o in (report.waivers.outcomes if report.waivers is not None else ())
        )
    )
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _rule_cases(report: Report, rule: RuleVerdict) -> list[ET.Element]:
    classname = f"{PurePath(report.policy.path).stem}.{rule.rule_id}"
    head = f"{rule.rule_id} {rule.title}"
    if not rule.hops:
        case = ET.Element("testcase", name=_clean(head), classname=_clean(classname))
        _outcome(case, rule.verdict, rule.reason, _context(report, rule, None))
        return [case]
    cases = []
    for index, hop in enumerate(rule.hops, start=1):
        case = ET.Element(
            "testcase",
            name=_clean(f"{head} / {hop_title(index, hop)}"),
            classname=_clean(classname),
        )
        verdict = effective(rule, hop.verdict)
        reason = hop.reason
        if verdict is Verdict.WAIVED:
            reason = "; ".join(waiver_terms(w) for w in hop_waivers(report, hop)) or reason
        _outcome(case, verdict, reason, _context(report, rule, hop))
        cases.append(case)
    return cases


def _outcome(case: ET.Element, verdict: Verdict, reason: str, context: str) -> None:
    if verdict is Verdict.FAIL:
        failure = ET.SubElement(case, "failure", type="FAIL", message=_clean(f"FAIL: {reason}"))
        failure.text = _clean(context)
    elif verdict is Verdict.INCONCLUSIVE:
        error = ET.SubElement(
            case, "error", type="INCONCLUSIVE", message=_clean(f"INCONCLUSIVE: {reason}")
        )
        error.text = _clean(context)
    elif verdict is Verdict.WAIVED:
        skipped = ET.SubElement(case, "skipped", message=_clean(f"WAIVED: {reason}"))
        skipped.text = _clean(context)
    elif verdict is Verdict.WARN:
        ET.SubElement(case, "system-out").text = _clean(f"WARN (advisory): {reason}\n{context}")
    else:
        ET.SubElement(case, "system-out").text = _clean(f"PASS: {reason}\n{context}")


def _context(report: Report, rule: RuleVerdict, hop: HopVerdict | None) -> str:
    lines = [f"rule {rule.rule_id} [{rule.severity}] at {rule_location(report, rule)}"]
    lines.extend(f"source: {s}" for s in rule.sources)
    if hop is not None and hop.verdict is not Verdict.PASS:
        shown = relevant(hop)
        lines.extend(families_lines(hop))
        lines.append(f"evidence ({len(shown)} of {len(hop.evidence)} observations):")
        lines.extend(f"  {evidence_line(e)}" for e in shown[:EVIDENCE_LINES])
        if len(shown) > EVIDENCE_LINES:
            lines.append(f"  … {len(shown) - EVIDENCE_LINES} more (see report.json)")
        lines.extend(f"  {line}" for line in unwitnessed(hop)[:EVIDENCE_LINES])
        lines.extend(f"  {evidence_line(e)}" for e in waived_items(hop)[:EVIDENCE_LINES])
    return "\n".join(lines) + "\n"
