"""Plain-text pieces shared by the file formats: marks, evidence lines, hop titles, locations.

The terminal report styles the same facts with rich; these are the unstyled forms that JUnit,
SARIF, Markdown and HTML embed.
"""

from __future__ import annotations

from reachproof.report.model import Report
from reachproof.verdict import Evidence, HopVerdict, RuleVerdict, Sighting, Verdict
from reachproof.waivers.model import Waiver, WaiverOutcome

MARK = {
    Verdict.PASS: "✓",
    Verdict.FAIL: "✗",
    Verdict.WAIVED: "~",
    Verdict.WARN: "!",
    Verdict.INCONCLUSIVE: "?",
}

# A sampled port set can be a thousand ranges; the terminal shows its start and its size.
PORTS_WIDTH = 40


def short_ports(text: str, width: int = PORTS_WIDTH) -> str:
    if len(text) <= width:
        return text
    count = sum(
        int(b) - int(a) + 1 if sep else 1
        for a, sep, b in (item.partition("-") for item in text.split(","))
    )
    head = text[:width].rsplit(",", 1)[0]
    return f"{head},… ({count:,} ports)"


# Worse verdicts rank higher; a diff that moves a rule up this scale got worse. WAIVED is an
# accepted failure: FAIL → WAIVED is no worse, PASS → WAIVED is (the network changed).
RANK = {
    Verdict.PASS: 0,
    Verdict.WAIVED: 1,
    Verdict.WARN: 1,
    Verdict.INCONCLUSIVE: 2,
    Verdict.FAIL: 3,
}


def where(item: Evidence) -> str:
    """`agent1 10.0.2.11`, `agent1 [fd00:2::11]`, or the bare host name for checks."""
    if not item.address:
        return item.target
    address = f"[{item.address}]" if item.family == 6 else item.address
    return f"{item.target} {address}"


def evidence_facts(item: Evidence) -> list[str]:
    """What a probe saw, in reading order: state, reason, attempts, rtt, ttl."""
    facts = [item.state]
    if item.reason:
        facts.append(item.reason)
    if item.attempts:
        facts.append(f"{item.attempts} attempt{'s' if item.attempts != 1 else ''}")
    if item.rtt_ms is not None:
        facts.append(f"{item.rtt_ms:.1f} ms")
    if item.ttl is not None:
        facts.append(f"ttl {item.ttl}")
    return facts


def evidence_line(item: Evidence, full_ports: bool = False) -> str:
    """`user (user) → agent1 10.0.2.11 tcp/6001: open, syn-ack, 1 attempt, ttl 64 — why`."""
    ports = item.ports if full_ports else short_ports(item.ports)
    probe = f"{item.kind}/{ports}" if item.ports else item.kind
    facts = ", ".join(evidence_facts(item))
    vantage = item.vantage or "no vantage"
    waived = f" [waived by {item.waiver}]" if item.waiver else ""
    return f"{item.source} ({vantage}) → {where(item)} {probe}: {facts} — {item.note}{waived}"


def waived_items(hop: HopVerdict) -> list[Evidence]:
    """The waived items of a hop that still fails or is undecided: what a waiver already covers."""
    if hop.verdict is Verdict.WAIVED:
        return []
    return [e for e in hop.evidence if e.verdict is Verdict.WAIVED]


def hop_waivers(report: Report, hop: HopVerdict) -> list[Waiver]:
    """The waivers that waived something in this hop, in file order."""
    refs = {e.waiver for e in hop.evidence if e.waiver}
    if report.waivers is None or not refs:
        return []
    return [o.waiver for o in report.waivers.outcomes if o.waiver.ref in refs]


def waiver_terms(waiver: Waiver) -> str:
    """`legacy monitoring (accepted by J. Doe, expires 2027-03-31)`."""
    return f"{waiver.justification} (accepted by {waiver.accepted_by}, expires {waiver.expires})"


def waiver_line(outcome: WaiverOutcome) -> str:
    """`expired  waivers.yaml:3  R3 agent1 tcp/6001 — why (accepted by …, expires …); 1 match`."""
    waiver = outcome.waiver
    matches = f"{outcome.matched} failing item{'s' if outcome.matched != 1 else ''} in scope"
    return (
        f"{outcome.status:<11} {waiver.ref}  {waiver.scope()} — {waiver_terms(waiver)}; {matches}"
    )


def witness_line(item: Sighting) -> str:
    """`alive: agent1 10.0.2.11 — open, syn-ack to tcp/6001 from manager (R1/0/2/…)`."""
    address = f"[{item.address}]" if ":" in item.address else item.address
    if not item.alive:
        return f"not shown alive: {item.target} {address} — {item.reason}"
    if item.state == "holds":
        return f"alive: {item.target} {address} — held, says its own vantage {item.vantage}"
    probe = f"{item.kind}/{short_ports(item.ports)}" if item.ports else item.kind
    return (
        f"alive: {item.target} {address} — {item.state}, {item.reason} to {probe} "
        f"from {item.vantage} ({item.spec_id})"
    )


def unwitnessed(hop: HopVerdict) -> list[str]:
    """Lines for the target addresses that kept an undecided deny hop from passing."""
    if hop.verdict is not Verdict.INCONCLUSIVE:
        return []
    return [witness_line(w) for w in hop.witnesses if not w.alive]


def families_lines(hop: HopVerdict) -> list[str]:
    """`families: IPv4 (8 targets; IPv6 not judged): families.cluster at inv.yaml:3:3`."""
    return [f"families: {f.text()}" for f in hop.families]


def narrowed(hop: HopVerdict) -> bool:
    """Whether the hop left out a family its targets have addresses of."""
    return any(f.skipped for f in hop.families)


def relevant(hop: HopVerdict) -> list[Evidence]:
    """The evidence that decided the hop: the items whose verdict is the hop's."""
    return [e for e in hop.evidence if e.verdict is hop.verdict]


def hop_title(index: int, hop: HopVerdict) -> str:
    """`hop 1: deny user → agent:any-tcp` (1-based across the rule's statements)."""
    return f"hop {index}: {hop.label}"


def rule_location(report: Report, rule: RuleVerdict) -> str:
    return f"{report.policy.path}:{rule.line}"


def effective(rule: RuleVerdict, verdict: Verdict) -> Verdict:
    """A hop or evidence verdict as the rule reports it: an advisory rule's FAIL is a WARN."""
    if rule.advisory and verdict is Verdict.FAIL:
        return Verdict.WARN
    return verdict


def port_count(ports: str) -> int:
    """How many ports `1-442,444-65535` names; an empty text (checks) counts as one probe."""
    if not ports:
        return 1
    total = 0
    for item in ports.split(","):
        first, sep, last = item.partition("-")
        total += int(last) - int(first) + 1 if sep else 1
    return total


def compact_count(n: int) -> str:
    """`393k`, `2.1M`: a probe count fit for a matrix cell."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"
