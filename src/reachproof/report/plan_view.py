"""How `reachproof plan` shows a plan: a rich summary table, or the whole plan as JSON."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reachproof.plan import LIVENESS_RULE, HopPlan, Plan, ProbeKind, ProbeSpec

PLAN_SCHEMA = "reachproof.plan/1"


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    families = Counter(s.family for s in plan.specs if s.family is not None)
    return {
        "schema": PLAN_SCHEMA,
        "policy": plan.policy_name,
        "summary": {
            "rules": len(plan.rules),
            "specs": len(plan.specs),
            "probes": sum(_probes(s) for s in plan.specs),
            "ipv4_specs": families.get(4, 0),
            "ipv6_specs": families.get(6, 0),
        },
        "rules": [
            {
                "id": r.rule_id,
                "title": r.title,
                "severity": str(r.severity),
                "advisory": r.advisory,
                "line": r.line,
                "sources": list(r.sources),
                "hops": [_hop(h) for h in r.hops],
            }
            for r in plan.rules
        ],
        "specs": [_spec(s) for s in plan.specs],
        "witnesses": [
            {"address": w.address, "target": w.target, "how": w.how, "specs": list(w.spec_ids)}
            for w in plan.witnesses
        ],
    }


def render_plan_json(plan: Plan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2, ensure_ascii=False) + "\n"


def _hop(hop: HopPlan) -> dict[str, Any]:
    return {
        "statement": hop.statement,
        "hop": hop.hop,
        "label": hop.label,
        "action": str(hop.action),
        "specs": list(hop.spec_ids),
        "empty_reason": hop.empty_reason,
        "families": [f.text() for f in hop.families],
    }


def _spec(spec: ProbeSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "rule": spec.rule_id,
        "statement": spec.statement,
        "hop": spec.hop,
        "vantage": spec.vantage,
        "source": spec.source,
        "target": spec.target,
        "address": spec.address,
        "family": spec.family,
        "kind": str(spec.kind),
        "ports": str(spec.ports),
        "port_count": len(spec.ports),
        "expect": {
            "action": str(spec.expect.action),
            "closed_ok": spec.expect.closed_ok,
            "status": spec.expect.status,
            "identity": spec.expect.identity,
        },
        "resolve": spec.resolve,
        "params": dict(spec.params),
    }


def _probes(spec: ProbeSpec) -> int:
    return max(len(spec.ports), 1)


def render_plan_summary(plan: Plan, console: Console) -> None:
    specs = {s.id: s for s in plan.specs}
    table = Table(title=f"Plan for {plan.policy_name}", title_justify="left")
    table.add_column("rule", style="bold")
    table.add_column("hop")
    table.add_column("specs", justify="right")
    table.add_column("v4/v6", justify="right")
    table.add_column("probes", justify="right")
    table.add_column("no vantage", justify="right")
    for rule in plan.rules:
        for index, hop in enumerate(rule.hops):
            hop_specs = [specs[i] for i in hop.spec_ids]
            fams = Counter(s.family for s in hop_specs)  # None: by hostname, any family
            narrowed = [f.text() for f in hop.families if f.skipped]
            label = escape(hop.label) + "".join(f"\n[dim]{escape(n)}[/]" for n in narrowed)
            blind = sum(1 for s in hop_specs if s.vantage is None)
            table.add_row(
                rule.rule_id if index == 0 else "",
                label if hop.spec_ids else f"{label}\n[magenta]{escape(hop.empty_reason or '')}[/]",
                str(len(hop_specs)),
                f"{fams.get(4, 0)}/{fams.get(6, 0)}",
                f"{sum(_probes(s) for s in hop_specs):,}",
                f"[magenta]{blind}[/]" if blind else "0",
            )
    console.print(table)
    total = sum(_probes(s) for s in plan.specs)
    console.print(
        f"{len(plan.rules)} rules, {len(plan.specs):,} specs, {total:,} probes", highlight=False
    )
    if plan.witnesses:
        console.print(_liveness_line(plan), highlight=False)


def _liveness_line(plan: Plan) -> str:
    """How the deny targets will be shown alive, and what that adds to the plan."""
    hows = Counter(w.how for w in plan.witnesses)
    added = [s for s in plan.specs if s.rule_id == LIVENESS_RULE]
    packets = sum(1 for s in added if s.kind is not ProbeKind.CHECK)
    parts = ", ".join(f"{n} {how}" for how, n in sorted(hows.items(), key=lambda i: -i[1]))
    return (
        f"liveness: {len(plan.witnesses)} deny target addresses ({parts}); "
        f"adds {len(added)} spec(s), {packets} probe packet(s)"
    )
