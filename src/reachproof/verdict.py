"""Observations × expectations → verdicts. Pure: no I/O, no clock.

The semantics (DESIGN.md, "Verdict semantics"):
- allow: every probed port open.
- reach: every probed port open or closed; filtered/prohibited/unreachable mean a filter.
- deny: every probed port filtered, prohibited or unreachable; closed fails unless closed-ok
  (packets reached the host); open always fails.
- Fail closed: an error, a missing vantage, a port nobody observed, UDP silence, or a port
  that stayed silent after fewer than two attempts decides nothing: INCONCLUSIVE.
- Liveness: a deny hop holds only for targets shown alive during the run (an open or closed
  answer from the address to any spec, or its own vantage holding it); a deny hop that would
  pass with any target address unwitnessed is INCONCLUSIVE, "target not shown alive".
- A FAIL anywhere in a rule outweighs INCONCLUSIVE elsewhere (the failure is certain);
  an empty target set is INCONCLUSIVE, except a selection the rule needs none of (`app *
  speaking P` on a site without such apps): that hop is "not applicable" and left out of the
  rule's verdict (a rule of nothing else is INCONCLUSIVE); fewer targets than the rule needs
  (`at least N`) make a PASS INCONCLUSIVE; an advisory rule reports WARN instead of FAIL, unless
  a check found variables that contradict each other (state `inconsistent`): no release
  explains a contradiction, so it FAILs whatever the rule says.
- Waivers (waivers/apply.py): a FAIL evidence item in an unexpired waiver's scope is WAIVED.
  A hop or rule whose failures are all waived is WAIVED, unless something else in it is
  undecided (INCONCLUSIVE outweighs WAIVED: a waiver never hides what was not observed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from reachproof.observation import Observation, PortResult, PortState
from reachproof.plan import HopFamilies, HopPlan, Plan, ProbeKind, ProbeSpec, RulePlan
from reachproof.policy.ast import Action, Severity
from reachproof.ports import PortSet

if TYPE_CHECKING:  # waivers/apply.py builds on the verdict types; here it is only called
    from reachproof.waivers.apply import Waiving

MIN_SILENT_ATTEMPTS = 2

_DENIED = frozenset({PortState.FILTERED, PortState.PROHIBITED, PortState.UNREACHABLE})
NOT_ALIVE = "not shown alive"
NOT_APPLICABLE = "not applicable"
# The state of a check whose findings contradict each other: no release explains it, so an
# advisory rule FAILs it all the same (it softens only what a release may lack).
INCONSISTENT = "inconsistent"


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    WAIVED = "WAIVED"
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
    waiver: str = ""  # the ref of the waiver that waived this FAIL (verdict WAIVED)


@dataclass(frozen=True)
class Sighting:
    """What showed a deny target address alive during the run, or that nothing did."""

    address: str
    target: str  # host name
    alive: bool
    spec_id: str  # the spec whose observation is the witness ("" when there is none)
    vantage: str | None
    kind: str
    ports: str
    state: str  # open, closed, holds; "not shown alive" when there is no witness
    reason: str  # syn-ack, rst, echo-reply, …; or why no witness was possible


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
    witnesses: tuple[Sighting, ...] = ()  # deny hops: one per target address
    families: tuple[HopFamilies, ...] = ()  # which families were judged, and why


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
    """FAIL if any FAIL, else INCONCLUSIVE, WARN, WAIVED if any, else PASS; nothing at all is
    INCONCLUSIVE."""
    seen = set(verdicts)
    if not seen:
        return Verdict.INCONCLUSIVE
    for verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.WARN, Verdict.WAIVED):
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
    if spec.kind is ProbeKind.TLS:
        return _judge_tls(spec, observation)
    return _judge_ports(spec, observation)


TLS_VERSIONS = frozenset({"TLSv1.2", "TLSv1.3"})  # "TLS/SSL encryption must be enabled", ≥ 1.2
NO_TLS = "no TLS"  # the state of an open port where no handshake completed


def _per_port(observation: Observation, key: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for value in observation.details(key):
        port, _, text = value.partition(" ")
        if port.isdigit():
            out.setdefault(int(port), text)
    return out


def _judge_tls(spec: ProbeSpec, observation: Observation) -> list[Evidence]:
    """Per open port: the handshake completed, verified for the inventory's name, at TLS 1.2
    or later. The negotiated version and cipher are the evidence's state, also on a FAIL."""
    version = _per_port(observation, "tls-version")
    cipher = _per_port(observation, "tls-cipher")
    error = _per_port(observation, "tls-error")
    not_after = _per_port(observation, "tls-not-after")
    name = spec.param("server-name") or spec.target
    out: list[Evidence] = []
    seen = PortSet()
    for result in observation.results:
        ports = result.ports.intersection(spec.ports)
        seen = seen.union(ports)
        if result.state is not PortState.OPEN:
            verdict, note = judge_port(Action.ALLOW, False, result)
            out.append(_evidence(spec, result, verdict, result.state, note, ports))
            continue
        for port in ports:
            negotiated = f"{version.get(port, NO_TLS)} {cipher.get(port, '')}".rstrip()
            one = PortSet.of([port])
            if port in error:
                verdict, note = Verdict.FAIL, f"{error[port]} (name {name})"
            elif port not in version:
                verdict, note = Verdict.INCONCLUSIVE, "no handshake recorded"
            elif version[port] not in TLS_VERSIONS:
                verdict, note = Verdict.FAIL, f"{version[port]} is older than TLS 1.2"
            else:
                verdict = Verdict.PASS
                note = f"certificate valid for {name} until {not_after.get(port, '?')}"
            out.append(_evidence(spec, result, verdict, negotiated, note, one))
    missing = spec.ports.difference(seen)
    if missing:
        out.append(
            _evidence(
                spec, None, Verdict.INCONCLUSIVE, "not observed", "no handshake recorded", missing
            )
        )
    return out


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
    contradictions = observation.details("contradiction")
    problems = observation.details("problem")
    if contradictions:
        return _evidence(
            spec, None, Verdict.FAIL, INCONSISTENT, "; ".join((*contradictions, *problems))
        )
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


_ANSWERED = frozenset({PortState.OPEN, PortState.CLOSED})


def sightings(plan: Plan, observations: Mapping[str, Observation]) -> dict[str, Sighting]:
    """Address → the first observation that shows it alive: an open or closed answer to a
    spec probing that address, or an `addresses` check whose host holds it."""
    seen: dict[str, Sighting] = {}
    for spec in plan.specs:
        observation = observations.get(spec.id)
        if observation is None or observation.error is not None:
            continue
        if spec.kind is ProbeKind.CHECK:
            if spec.param("check") != "addresses":
                continue
            asked = set((spec.param("addresses") or "").split(","))
            for address in observation.details("holds"):
                if address in asked:
                    seen.setdefault(
                        address,
                        Sighting(
                            address, spec.target, True, spec.id, spec.vantage, "check", "",
                            "holds", "its own vantage holds it on a link that is up",
                        ),
                    )  # fmt: skip
            continue
        if spec.address is None or spec.resolve or spec.address in seen:
            continue
        answer = next((r for r in observation.results if r.state in _ANSWERED), None)
        if answer is not None:
            seen[spec.address] = Sighting(
                spec.address, spec.target, True, spec.id, spec.vantage, str(spec.kind),
                str(answer.ports.intersection(spec.ports) or answer.ports), str(answer.state),
                answer.reason,
            )  # fmt: skip
    return seen


def _witnesses(
    plan: Plan, specs: Sequence[ProbeSpec], seen: Mapping[str, Sighting]
) -> tuple[Sighting, ...]:
    out: dict[str, Sighting] = {}
    for spec in specs:
        if spec.address is None or spec.address in out:
            continue
        found = seen.get(spec.address)
        if found is None:
            planned = plan.witness(spec.address)
            if planned is None:
                why = "no witness was planned"
            elif planned.spec_ids:
                why = f"no answer to the planned witness ({planned.how})"
            else:
                why = planned.how
            found = Sighting(spec.address, spec.target, False, "", None, "", "", NOT_ALIVE, why)
        out[spec.address] = found
    return tuple(out.values())


def judge_hop(
    hop: HopPlan,
    specs: Mapping[str, ProbeSpec],
    observations: Mapping[str, Observation],
    plan: Plan,
    seen: Mapping[str, Sighting],
    where: tuple[str, int],
    waiving: Waiving | None,
) -> HopVerdict:
    """`where`: the rule id and the hop's 1-based number across the rule, for waivers."""
    if not hop.spec_ids and not hop.applicable:
        return HopVerdict(
            statement=hop.statement,
            hop=hop.hop,
            label=hop.label,
            action=hop.action,
            verdict=Verdict.PASS,
            reason=f"{NOT_APPLICABLE}: {hop.empty_reason or 'nothing selected'}",
            probes=0,
            evidence=(),
        )
    evidence: list[Evidence] = []
    probes = 0
    for spec_id in hop.spec_ids:
        spec = specs[spec_id]
        probes += max(len(spec.ports), 1)
        evidence.extend(judge_spec(spec, observations.get(spec_id)))
    if waiving is not None:
        rule_id, number = where
        evidence = [waiving.waive(rule_id, number, hop.label, e) for e in evidence]
    verdict = combine(e.verdict for e in evidence)
    reason = _hop_reason(hop, verdict, evidence)
    if hop.shortfall is not None and verdict in (Verdict.PASS, Verdict.WAIVED):
        verdict, reason = Verdict.INCONCLUSIVE, hop.shortfall
    witnesses: tuple[Sighting, ...] = ()
    if hop.action is Action.DENY:
        hop_specs = [specs[i] for i in hop.spec_ids]
        witnesses = _witnesses(plan, hop_specs, seen)
        dead = [w.address for w in witnesses if not w.alive]
        if dead and verdict in (Verdict.PASS, Verdict.WAIVED):
            verdict = Verdict.INCONCLUSIVE
            shown = ", ".join(dead[:4]) + (f" (+{len(dead) - 4} more)" if len(dead) > 4 else "")
            reason = f"target not shown alive: {shown}"
    return HopVerdict(
        statement=hop.statement,
        hop=hop.hop,
        label=hop.label,
        action=hop.action,
        verdict=verdict,
        reason=reason,
        probes=probes,
        evidence=tuple(evidence),
        witnesses=witnesses,
        families=hop.families,
    )


def _hop_reason(hop: HopPlan, verdict: Verdict, evidence: list[Evidence]) -> str:
    if not evidence:
        return f"no targets: {hop.empty_reason or 'nothing to probe'}"
    count = sum(1 for e in evidence if e.verdict is verdict)
    notes = sorted({e.note for e in evidence if e.verdict is verdict})
    head = "; ".join(notes[:3]) + (f" (+{len(notes) - 3} more)" if len(notes) > 3 else "")
    if verdict is Verdict.PASS:
        return f"{len(evidence)} observation(s) as required"
    if verdict is Verdict.WAIVED:
        refs = ", ".join(sorted({e.waiver for e in evidence if e.waiver}))
        return f"{count} failing observation(s) waived by {refs}: {head}"
    return f"{count} observation(s): {head}"


def judge_rule(
    rule: RulePlan,
    specs: Mapping[str, ProbeSpec],
    observations: Mapping[str, Observation],
    plan: Plan,
    seen: Mapping[str, Sighting],
    waiving: Waiving | None = None,
) -> RuleVerdict:
    hops = tuple(
        judge_hop(h, specs, observations, plan, seen, (rule.rule_id, n), waiving)
        for n, h in enumerate(rule.hops, start=1)
    )
    # A hop that does not apply to this site (its selection is empty and the rule needs none)
    # has nothing to hold: it neither passes nor fails the rule.
    counted = [v for p, v in zip(rule.hops, hops, strict=True) if p.applicable or p.spec_ids]
    verdict = combine(h.verdict for h in counted)
    if not hops:
        reason = "the rule has nothing to observe"
    elif not counted:
        reason = "the rule has nothing to observe: " + "; ".join(h.reason for h in hops)
    else:
        worst = [h for h in counted if h.verdict is verdict]
        reason = worst[0].reason if verdict is not Verdict.PASS else "every hop as documented"
    if verdict is Verdict.FAIL and rule.advisory:
        hard = [e for h in hops for e in h.evidence if _contradiction(e)]
        if hard:
            reason = f"{hard[0].note} (a contradiction: advisory does not soften it)"
        else:
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


def _contradiction(evidence: Evidence) -> bool:
    return evidence.verdict is Verdict.FAIL and evidence.state == INCONSISTENT


def judge_plan(
    plan: Plan, observations: Iterable[Observation], waiving: Waiving | None = None
) -> tuple[RuleVerdict, ...]:
    specs = {s.id: s for s in plan.specs}
    by_spec = {o.spec_id: o for o in observations}
    seen = sightings(plan, by_spec)
    return tuple(judge_rule(rule, specs, by_spec, plan, seen, waiving) for rule in plan.rules)
