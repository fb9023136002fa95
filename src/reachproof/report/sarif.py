"""SARIF 2.1.0 for code-scanning views (GitHub, GitLab, IDEs).

One SARIF rule per policy rule; one result per rule that did not pass: FAIL at the level of the
rule's severity, WARN as a warning, INCONCLUSIVE as a note that says nothing was decided. Each
result points at the rule's line in the policy file, so an alert opens where the documented
property is written. A WAIVED rule is still a result at its severity's level, carrying one
external suppression per waiver (its justification, approver and expiry), so code-scanning
views show it as accepted instead of open; a waiver that expired suppresses nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import PurePath, PurePosixPath
from typing import Any
from urllib.parse import quote

from reachproof.policy.ast import Severity
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
    waiver_terms,
)
from reachproof.verdict import RuleVerdict, Verdict
from reachproof.waivers.model import Waiver

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# Evidence lines per result message; the JSON report keeps every one.
EVIDENCE_LINES = 5

LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning reads `security-severity` (0-10) to rank alerts.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}


def artifact_uri(path: str) -> str:
    """A relative policy path stays relative (resolved against the checkout); else a file URI."""
    pure = PurePath(path)
    if pure.is_absolute():
        return PurePosixPath(*pure.parts).as_uri()
    return quote(pure.as_posix())


def render_sarif(report: Report, information_uri: str | None = None) -> str:
    return json.dumps(sarif_log(report, information_uri), indent=2, ensure_ascii=False) + "\n"


def sarif_log(report: Report, information_uri: str | None = None) -> dict[str, Any]:
    driver: dict[str, Any] = {
        "name": "reachproof",
        "version": report.tool_version,
        "semanticVersion": report.tool_version,
        "rules": [_descriptor(report, r) for r in report.rules],
    }
    if information_uri:
        driver["informationUri"] = information_uri
    counts = report.counts()
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "invocations": [
            {
                "executionSuccessful": True,
                "exitCode": report.exit_code,
                "exitCodeDescription": report.exit_meaning(),
                "startTimeUtc": _utc(report.started.isoformat()),
                "endTimeUtc": _utc(report.finished.isoformat()),
            }
        ],
        "artifacts": [
            _artifact(report.policy.path, report.policy.sha256, "analysisTarget"),
            _artifact(report.inventory.path, report.inventory.sha256, "userSpecifiedConfiguration"),
            *(
                [
                    _artifact(
                        report.waivers.file.path,
                        report.waivers.file.sha256,
                        "userSpecifiedConfiguration",
                    )
                ]
                if report.waivers is not None
                else []
            ),
        ],
        "results": [
            _result(report, index, rule)
            for index, rule in enumerate(report.rules)
            if rule.verdict is not Verdict.PASS
        ],
        "properties": {
            "policy": report.policy_name,
            "probes": report.probes,
            **{str(v): n for v, n in counts.items()},
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _utc(iso: str) -> str:
    return iso.replace("+00:00", "Z")


def _artifact(path: str, sha256: str, role: str) -> dict[str, Any]:
    artifact: dict[str, Any] = {"location": {"uri": artifact_uri(path)}, "roles": [role]}
    if sha256:
        artifact["hashes"] = {"sha-256": sha256}
    return artifact


def _camel(title: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.findall(r"[A-Za-z0-9]+", title.lower()))


def _descriptor(report: Report, rule: RuleVerdict) -> dict[str, Any]:
    cited = "".join(f"\n- {s}" for s in rule.sources)
    full = f"{rule.title}. Policy rule {rule.rule_id} at {rule_location(report, rule)}."
    if cited:
        full += f" Encodes:{cited}"
    steps = "\n".join(f"- {h.label}" for h in rule.hops)
    help_text = (
        f"reachproof probes the network from the documented vantage points and checks every "
        f"statement of rule {rule.rule_id}:\n{steps}\n"
        "FAIL: the network contradicts the documentation; INCONCLUSIVE: a probe or vantage "
        "could not decide (fix the vantage and re-run); WARN: an advisory rule failed."
    )
    return {
        "id": rule.rule_id,
        "name": _camel(rule.title) or rule.rule_id,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": full},
        "help": {"text": help_text},
        "defaultConfiguration": {"level": "warning" if rule.advisory else LEVEL[rule.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "severity": str(rule.severity),
            "advisory": rule.advisory,
            "tags": ["security", "network", f"severity/{rule.severity}"],
        },
    }


def _result(report: Report, index: int, rule: RuleVerdict) -> dict[str, Any]:
    if rule.verdict is Verdict.FAIL:
        level = LEVEL[rule.severity]
        head = f"{rule.rule_id} FAILED: {rule.title}: {rule.reason}"
    elif rule.verdict is Verdict.WAIVED:
        level = LEVEL[rule.severity]
        head = (
            f"{rule.rule_id} WAIVED (a failure accepted by a waiver): {rule.title}: {rule.reason}"
        )
    elif rule.verdict is Verdict.WARN:
        level = "warning"
        head = f"{rule.rule_id} WARN (advisory): {rule.title}: {rule.reason}"
    else:
        level = "note"
        head = (
            f"{rule.rule_id} INCONCLUSIVE: {rule.title}: could not be decided, "
            f"so it is not known to hold: {rule.reason}"
        )
    lines = [head]
    for number, hop in enumerate(rule.hops, start=1):
        verdict = effective(rule, hop.verdict)
        if verdict is Verdict.PASS:
            continue
        shown = relevant(hop)
        lines.append(f"{verdict} {hop_title(number, hop)}: {hop.reason}")
        lines.extend(f"  {line}" for line in families_lines(hop))
        lines.extend(f"  {evidence_line(e)}" for e in shown[:EVIDENCE_LINES])
        if len(shown) > EVIDENCE_LINES:
            lines.append(f"  … {len(shown) - EVIDENCE_LINES} more (see report.json)")
        lines.extend(f"  {line}" for line in unwitnessed(hop)[:EVIDENCE_LINES])
        lines.extend(f"  {evidence_line(e)}" for e in waived_items(hop)[:EVIDENCE_LINES])
    location: dict[str, Any] = {
        "artifactLocation": {"uri": artifact_uri(report.policy.path), "index": 0}
    }
    if rule.line >= 1:
        location["region"] = {"startLine": rule.line}
    # Stable across runs while the same rule stays broken the same way, so an alert is tracked;
    # a waived failure keeps the FAIL's fingerprint: the same alert, now suppressed.
    tracked = Verdict.FAIL if rule.verdict is Verdict.WAIVED else rule.verdict
    fingerprint = hashlib.sha256(
        f"{report.policy_name}\0{rule.rule_id}\0{tracked}".encode()
    ).hexdigest()
    result: dict[str, Any] = {
        "ruleId": rule.rule_id,
        "ruleIndex": index,
        "level": level,
        "message": {"text": "\n".join(lines)},
        "locations": [{"physicalLocation": location}],
        "partialFingerprints": {"reachproofRuleVerdict/v1": fingerprint},
        "properties": {"verdict": str(rule.verdict), "severity": str(rule.severity)},
    }
    if rule.verdict is Verdict.WAIVED and report.waivers is not None:
        used = {w.ref: w for hop in rule.hops for w in hop_waivers(report, hop)}
        result["suppressions"] = [_suppression(report.waivers.file.path, w) for w in used.values()]
    return result


def _suppression(path: str, waiver: Waiver) -> dict[str, Any]:
    return {
        "kind": "external",
        "status": "accepted",
        "justification": waiver_terms(waiver),
        "location": {
            "physicalLocation": {
                "artifactLocation": {"uri": artifact_uri(path), "index": 2},
                "region": {"startLine": waiver.line},
            }
        },
        "properties": {
            "waiver": waiver.ref,
            "acceptedBy": waiver.accepted_by,
            "expires": waiver.expires.isoformat(),
        },
    }
