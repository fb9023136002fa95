"""The JSON report: a documented, versioned schema (`report.schema.json` beside this module)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from reachproof.observation import Observation
from reachproof.report.model import SCHEMA, Report, WaiverReport
from reachproof.verdict import Evidence, HopVerdict, RuleVerdict
from reachproof.waivers.model import WaiverOutcome


def schema() -> dict[str, Any]:
    text = resources.files("reachproof.report").joinpath("report.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def report_to_dict(report: Report) -> dict[str, Any]:
    counts = report.counts()
    out = {
        "schema": SCHEMA,
        "tool": {"name": "reachproof", "version": report.tool_version},
        "policy": {
            "name": report.policy_name,
            "path": report.policy.path,
            "sha256": report.policy.sha256,
        },
        "inventory": {"path": report.inventory.path, "sha256": report.inventory.sha256},
        "started": report.started.isoformat(),
        "finished": report.finished.isoformat(),
        "duration_s": round((report.finished - report.started).total_seconds(), 3),
        "summary": {
            "rules": len(report.rules),
            **{str(v): n for v, n in counts.items()},
            "probes": report.probes,
            "exit_code": report.exit_code,
        },
        "rules": [_rule(r, report.policy.path) for r in report.rules],
        "observations": [_observation(o) for o in report.observations],
        "evidence": [
            {
                "vantage": c.vantage,
                "pcap": c.path or None,
                "sha256": c.sha256 or None,
                "packets": c.packets,
                "truncated": c.truncated,
                "note": c.note,
            }
            for c in report.evidence
        ],
        "waivers": _waivers(report.waivers),
    }
    if report.discovery is not None:
        d = report.discovery
        out["discovery"] = {
            "source": d.source,
            "endpoint": d.endpoint,
            "manager_version": d.manager_version,
            "api_version": d.api_version,
            "at": d.at.isoformat(),
            "sha256": d.sha256,
            "notes": list(d.notes),
            "inventory": d.inventory,
        }
    return out


def _waivers(waivers: WaiverReport | None) -> dict[str, Any] | None:
    if waivers is None:
        return None
    return {
        "path": waivers.file.path,
        "sha256": waivers.file.sha256,
        "waivers": [_waiver(o) for o in waivers.outcomes],
    }


def _waiver(outcome: WaiverOutcome) -> dict[str, Any]:
    waiver = outcome.waiver
    return {
        "ref": waiver.ref,
        "rule": waiver.rule,
        "hop": waiver.hop,
        "target": waiver.target,
        "ports": ", ".join(map(str, waiver.ports)) if waiver.ports is not None else None,
        "justification": waiver.justification,
        "accepted_by": waiver.accepted_by,
        "expires": waiver.expires.isoformat(),
        "status": str(outcome.status),
        "matched": outcome.matched,
    }


def render_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=False) + "\n"


def _rule(rule: RuleVerdict, policy_path: str) -> dict[str, Any]:
    return {
        "id": rule.rule_id,
        "title": rule.title,
        "severity": str(rule.severity),
        "advisory": rule.advisory,
        "location": f"{policy_path}:{rule.line}",
        "sources": list(rule.sources),
        "verdict": str(rule.verdict),
        "reason": rule.reason,
        "hops": [_hop(h) for h in rule.hops],
    }


def _hop(hop: HopVerdict) -> dict[str, Any]:
    return {
        "statement": hop.statement,
        "hop": hop.hop,
        "label": hop.label,
        "action": str(hop.action),
        "verdict": str(hop.verdict),
        "reason": hop.reason,
        "probes": hop.probes,
        "evidence": [_evidence(e) for e in hop.evidence],
        "witnesses": [
            {
                "address": w.address,
                "target": w.target,
                "alive": w.alive,
                "spec": w.spec_id or None,
                "vantage": w.vantage,
                "kind": w.kind or None,
                "ports": w.ports,
                "state": w.state,
                "reason": w.reason,
            }
            for w in hop.witnesses
        ],
        "families": [
            {
                "judged": list(f.judged),
                "not_judged": list(f.skipped),
                "why": f.why,
                "targets": f.targets,
            }
            for f in hop.families
        ],
    }


def _evidence(item: Evidence) -> dict[str, Any]:
    return {
        "spec": item.spec_id,
        "vantage": item.vantage,
        "source": item.source,
        "target": item.target,
        "address": item.address,
        "family": item.family,
        "kind": item.kind,
        "ports": item.ports,
        "state": item.state,
        "reason": item.reason,
        "attempts": item.attempts,
        "rtt_ms": item.rtt_ms,
        "ttl": item.ttl,
        "verdict": str(item.verdict),
        "note": item.note,
        "waiver": item.waiver or None,
    }


def _observation(obs: Observation) -> dict[str, Any]:
    return {
        "spec": obs.spec_id,
        "results": [
            {
                "ports": str(r.ports),
                "state": str(r.state),
                "reason": r.reason,
                "attempts": r.attempts,
                "rtt_ms": r.rtt_ms,
                "ttl": r.ttl,
            }
            for r in obs.results
        ],
        "detail": [[k, v] for k, v in obs.detail],
        "error": obs.error,
        "degraded": obs.degraded,
    }
