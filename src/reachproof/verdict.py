"""Observations × expectations → verdicts. Pure: no I/O, no clock.

The semantics (DESIGN.md, "Verdict semantics"):
- allow: every probed port open.
- reach: every probed port open or closed; filtered/prohibited/unreachable mean a filter.
- deny: every probed port filtered, prohibited or unreachable; closed fails unless closed-ok
  (packets reached the host); open always fails.
- Fail closed: an error, a missing vantage, a port nobody observed, UDP silence, or a port
  that stayed silent after fewer than two attempts decides nothing: INCONCLUSIVE.
- A FAIL anywhere in a rule outweighs INCONCLUSIVE elsewhere (the failure is certain);
  an empty target set is INCONCLUSIVE; an advisory rule reports WARN instead of FAIL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from reachproof.observation import Observation, PortResult, PortState
from reachproof.plan import HopPlan, Plan, ProbeKind, ProbeSpec, RulePlan
from reachproof.policy.ast import Action, Severity
from reachproof.ports import PortSet

MIN_SILENT_ATTEMPTS = 2

_DENIED = frozenset({PortState.FILTERED, PortState.PROHIBITED, PortState.UNREACHABLE})


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class Evidence:
    """One run of ports of one spec, or one app/check result, with what it means for the rule."""

    spec_id: str
    vantage: str | None
    source: str
    target: str
    address: str | None
    family: int | None
    kind: str
    ports: str
    state: str
    reason: str
    attempts: int
    rtt_ms: float | None
    ttl: int | None
    verdict: Verdict
    note: str


@dataclass(frozen=True)
class HopVerdict:
    statement: int
    hop: int
    label: str
    action: Action
    verdict: Verdict
    reason: str
    probes: int  # ports (or app/check probes) this hop covered
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True)
class RuleVerdict:
    rule_id: str
    title: str
    severity: Severity
    advisory: bool
    line: int
    sources: tuple[str, ...]
    verdict: Verdict
    reason: str
    hops: tuple[HopVerdict, ...]


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """FAIL if any FAIL, else INCONCLUSIVE if any, else PASS; nothing at all is INCONCLUSIVE."""
    seen = set(verdicts)
    if not seen:
        return Verdict.INCONCLUSIVE
    for verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.WARN):
        if verdict in seen:
            return verdict
    return Verdict.PASS


def judge_port(action: Action, closed_ok: bool, result: PortResult) -> tuple[Verdict, str]:
    """The verdict of one run of ports under one expectation, and a note saying why."""
    state = result.state
    if state is PortState.ERROR:
        return Verdict.INCONCLUSIVE, f"probe failed: {result.reason}"
    if state is PortState.OPEN_FILTERED:
        return Verdict.INCONCLUSIVE, "UDP silence: delivery could not be confirmed"
    if state is PortState.FILTERED and result.attempts < MIN_SILENT_ATTEMPTS:
        return (
            Verdict.INCONCLUSIVE,
            f"silent after {result.attempts} attempt(s); {MIN_SILENT_ATTEMPTS} needed",
        )
    if action is Action.ALLOW:
        if state is PortState.OPEN:
            return Verdict.PASS, "open as required"
        return Verdict.FAIL, f"{state}: the service must answer"
    if action is Action.REACH:
        if state in (PortState.OPEN, PortState.CLOSED):
            return Verdict.PASS, f"{state}: nothing filters the path"
        return Verdict.FAIL, f"{state}: something filters the path"
    if state in _DENIED:
        return Verdict.PASS, f"{state}: blocked"
    if state is PortState.CLOSED:
        if closed_ok:
            return Verdict.PASS, "closed (closed-ok)"
        return Verdict.FAIL, "closed: packets reached the host, no firewall stopped them"
    return Verdict.FAIL, "open: reachable although the rule denies it"


def judge_spec(spec: ProbeSpec, observation: Observation | None) -> list[Evidence]:
    """Evidence for one spec; never empty, so every spec leaves a trace in the report."""
    if spec.vantage is None:
        return [_evidence(spec, None, Verdict.INCONCLUSIVE, "no vantage", "no vantage")]
    if observation is None:
        return [_evidence(spec, None, Verdict.INCONCLUSIVE, "not observed", "not observed")]
    if observation.error is not None:
        return [_evidence(spec, None, Verdict.INCONCLUSIVE, "error", observation.error)]
    if spec.kind is ProbeKind.CHECK:
        return [_judge_check(spec, observation)]
    if spec.kind in (ProbeKind.HTTP, ProbeKind.WEBSOCKET):
        return [_judge_app(spec, observation)]
    return _judge_ports(spec, observation)


def _judge_ports(spec: ProbeSpec, observation: Observation) -> list[Evidence]:
    out: list[Evidence] = []
    seen = PortSet()
    for result in observation.results:
        ports = result.ports.intersection(spec.ports)
        if not ports:
            continue
        seen = seen.union(ports)
        verdict, note = judge_port(spec.expect.action, spec.expect.closed_ok, result)
        out.append(_evidence(spec, result, verdict, result.state, note, ports))
    missing = spec.ports.difference(seen)
    if missing:
        out.append(
            _evidence(
                spec,
                None,
                Verdict.INCONCLUSIVE,
                "not observed",
                "these ports have no observation",
                missing,
            )
        )
    return out


def _judge_app(spec: ProbeSpec, observation: Observation) -> Evidence:
    result = observation.results[0] if observation.results else None
    if result is None:
        return _evidence(spec, None, Verdict.INCONCLUSIVE, "not observed", "no answer recorded")
    if result.state is not PortState.OPEN:
        verdict, note = judge_port(Action.ALLOW, False, result)
        return _evidence(spec, result, verdict, result.state, note)
    detail = dict(observation.detail)
    status_text = detail.get("status", "")
    problems: list[str] = []
    status = int(status_text) if status_text.isdigit() else None
    if status is None:
        problems.append("no HTTP status recorded")
    elif spec.expect.status is not None and status != spec.expect.status:
        problems.append(f"status {status}, expected {spec.expect.status}")
    elif spec.expect.status is None and spec.kind is ProbeKind.HTTP and not 200 <= status < 300:
        problems.append(f"status {status}, expected 2xx")
    if spec.kind is ProbeKind.WEBSOCKET and detail.get("websocket") != "ok":
        problems.append(f"websocket: {detail.get('websocket', 'no handshake recorded')}")
    identity = spec.expect.identity
    if identity is not None and identity not in detail.get("identity", ""):
        problems.append(f"answer does not carry identity {identity!r}")
    verdict = Verdict.FAIL if problems else Verdict.PASS
    note = "; ".join(problems) or f"status {status}" + (
        f", identity {identity!r}" if identity else ""
    )
    return _evidence(spec, result, verdict, f"status {status_text or '?'}", note)


def _judge_check(spec: ProbeSpec, observation: Observation) -> Evidence:
    if spec.param("check") not in observation.details("ran"):
        return _evidence(
            spec, None, Verdict.INCONCLUSIVE, "not run", "the check did not report running"
        )
    problems = observation.details("problem")
    if problems:
        return _evidence(spec, None, Verdict.FAIL, "violated", "; ".join(problems))
    return _evidence(spec, None, Verdict.PASS, "holds", "contract holds")


def _evidence(
    spec: ProbeSpec,
    result: PortResult | None,
    verdict: Verdict,
    state: str,
    note: str,
    ports: PortSet | None = None,
) -> Evidence:
    shown = ports if ports is not None else (result.ports if result is not None else spec.ports)
    return Evidence(
        spec_id=spec.id,
        vantage=spec.vantage,
        source=spec.source,
        target=spec.target,
        address=spec.address,
        family=spec.family,
        kind=str(spec.kind),
        ports=str(shown),
        state=str(state),
        reason=result.reason if result is not None else "",
        attempts=result.attempts if result is not None else 0,
        rtt_ms=result.rtt_ms if result is not None else None,
        ttl=result.ttl if result is not None else None,
        verdict=verdict,
        note=note,
    )


def judge_hop(
    hop: HopPlan, specs: Mapping[str, ProbeSpec], observations: Mapping[str, Observation]
) -> HopVerdict:
    evidence: list[Evidence] = []
    probes = 0
    for spec_id in hop.spec_ids:
        spec = specs[spec_id]
        probes += max(len(spec.ports), 1)
        evidence.extend(judge_spec(spec, observations.get(spec_id)))
    verdict = combine(e.verdict for e in evidence)
    return HopVerdict(
        statement=hop.statement,
        hop=hop.hop,
        label=hop.label,
        action=hop.action,
        verdict=verdict,
        reason=_hop_reason(hop, verdict, evidence),
        probes=probes,
        evidence=tuple(evidence),
    )


def _hop_reason(hop: HopPlan, verdict: Verdict, evidence: list[Evidence]) -> str:
    if not evidence:
        return f"no targets: {hop.empty_reason or 'nothing to probe'}"
    count = sum(1 for e in evidence if e.verdict is verdict)
    notes = sorted({e.note for e in evidence if e.verdict is verdict})
    head = "; ".join(notes[:3]) + (f" (+{len(notes) - 3} more)" if len(notes) > 3 else "")
    if verdict is Verdict.PASS:
        return f"{len(evidence)} observation(s) as required"
    return f"{count} observation(s): {head}"


def judge_rule(
    rule: RulePlan, specs: Mapping[str, ProbeSpec], observations: Mapping[str, Observation]
) -> RuleVerdict:
    hops = tuple(judge_hop(h, specs, observations) for h in rule.hops)
    verdict = combine(h.verdict for h in hops)
    if not hops:
        reason = "the rule has nothing to observe"
    else:
        worst = [h for h in hops if h.verdict is verdict]
        reason = worst[0].reason if verdict is not Verdict.PASS else "every hop as documented"
    if verdict is Verdict.FAIL and rule.advisory:
        verdict = Verdict.WARN
    return RuleVerdict(
        rule_id=rule.rule_id,
        title=rule.title,
        severity=rule.severity,
        advisory=rule.advisory,
        line=rule.line,
        sources=rule.sources,
        verdict=verdict,
        reason=reason,
        hops=hops,
    )


def judge_plan(plan: Plan, observations: Iterable[Observation]) -> tuple[RuleVerdict, ...]:
    specs = {s.id: s for s in plan.specs}
    by_spec = {o.spec_id: o for o in observations}
    return tuple(judge_rule(rule, specs, by_spec) for rule in plan.rules)
