"""An in-repo fake observation source: a declarative network for unit tests of the pure core.

`FakeNetwork` answers every spec of a plan from a list of facts (first match wins) and a
default state, the way the engine would answer from real probes; checks read the vantage's
environment from the inventory (the real worker reads its own process environment).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from reachproof.checks.cluster_env import cluster_env_problems, training_env_findings
from reachproof.inventory.model import Inventory
from reachproof.observation import Observation, PortResult, PortState
from reachproof.plan import Plan, ProbeKind, ProbeSpec
from reachproof.ports import PortSet

_REASONS = {
    PortState.OPEN: "syn-ack",
    PortState.CLOSED: "rst",
    PortState.FILTERED: "timeout",
    PortState.PROHIBITED: "icmp-admin-prohibited",
    PortState.UNREACHABLE: "icmp-host-unreachable",
    PortState.OPEN_FILTERED: "timeout",
    PortState.ERROR: "worker died",
}


@dataclass(frozen=True)
class Fact:
    """Ports `ports` of `target` (host name, or "*") seen from `source` ("*": any) are `state`.

    `kind` narrows the fact to one probe kind ("*": any); for http/websocket facts,
    `status`, `identity` and `websocket` describe the answer.
    """

    source: str
    target: str
    state: PortState
    ports: PortSet = field(default_factory=lambda: PortSet.parse("1-65535"))
    kind: str = "*"
    status: int = 200
    identity: str | None = None
    websocket: str = "ok"
    tls_version: str = "TLSv1.3"
    tls_error: str | None = None  # tls: the handshake or verification failed with this

    def matches(self, spec: ProbeSpec) -> bool:
        return (
            self.source in ("*", spec.source)
            and self.target in ("*", spec.target)
            and self.kind in ("*", str(spec.kind))
        )


@dataclass
class FakeNetwork:
    inventory: Inventory
    facts: list[Fact] = field(default_factory=list)
    default: PortState = PortState.FILTERED
    attempts: int = 2
    broken_vantages: frozenset[str] = frozenset()
    down: frozenset[str] = frozenset()  # hosts that are off: silent, and holding no address

    def observe(self, plan: Plan) -> tuple[Observation, ...]:
        return tuple(self.observe_spec(s) for s in plan.specs if s.vantage is not None)

    def observe_spec(self, spec: ProbeSpec) -> Observation:
        if spec.vantage in self.broken_vantages:
            return Observation(spec.id, error=f"vantage {spec.vantage!r} could not start")
        if spec.kind is ProbeKind.CHECK:
            return self._check(spec)
        if spec.target in self.down:
            return Observation(spec.id, (self._result(spec.ports, self.default),))
        if spec.kind in (ProbeKind.HTTP, ProbeKind.WEBSOCKET):
            return self._app(spec)
        results = tuple(self._ports(spec))
        if spec.kind is ProbeKind.TLS:
            return Observation(spec.id, results, tuple(self._tls(spec, results)))
        return Observation(spec.id, results)

    def _tls(self, spec: ProbeSpec, results: Iterable[PortResult]) -> Iterable[tuple[str, str]]:
        for result in results:
            if result.state is not PortState.OPEN:
                continue
            for port in result.ports:
                fact = next(f for f in self.facts if f.matches(spec) and port in f.ports)
                yield "tls-version", f"{port} {fact.tls_version}"
                yield "tls-cipher", f"{port} TLS_AES_256_GCM_SHA384"
                if fact.tls_error is not None:
                    yield "tls-error", f"{port} {fact.tls_error}"
                else:
                    yield "tls-not-after", f"{port} Jan  1 00:00:00 2036 GMT"

    def _ports(self, spec: ProbeSpec) -> Iterable[PortResult]:
        if spec.kind is ProbeKind.ICMP:  # no ports: the first fact for the pair decides
            fact = next((f for f in self.facts if f.matches(spec)), None)
            yield self._result(spec.ports, fact.state if fact else self.default)
            return
        remaining = spec.ports
        for fact in self.facts:
            if not fact.matches(spec):
                continue
            hit = remaining.intersection(fact.ports)
            if hit:
                yield self._result(hit, fact.state)
                remaining = remaining.difference(hit)
        if remaining:
            yield self._result(remaining, self.default)

    def _result(self, ports: PortSet, state: PortState) -> PortResult:
        silent = state in (PortState.FILTERED, PortState.OPEN_FILTERED)
        return PortResult(
            ports=ports,
            state=state,
            reason=_REASONS[state],
            attempts=self.attempts if silent else 1,
            rtt_ms=None if silent else 0.5,
            ttl=None if silent else 64,
        )

    def _app(self, spec: ProbeSpec) -> Observation:
        fact = next(
            (f for f in self.facts if f.matches(spec) and spec.ports.ranges[0].first in f.ports),
            None,
        )
        state = fact.state if fact else self.default
        result = self._result(spec.ports, state)
        if state is not PortState.OPEN or fact is None:
            return Observation(spec.id, (result,))
        detail = [("status", str(fact.status)), ("identity", fact.identity or "")]
        if spec.kind is ProbeKind.WEBSOCKET:
            detail.append(("websocket", fact.websocket))
        return Observation(spec.id, (result,), tuple(detail))

    def _check(self, spec: ProbeSpec) -> Observation:
        vantage = self.inventory.vantage(spec.vantage or "")
        env = vantage.environment() if vantage else {}
        name = spec.param("check") or ""
        expected = {k.removeprefix("expect."): v for k, v in spec.params if k.startswith("expect.")}
        contradictions: tuple[str, ...] = ()
        if name == "cluster-env":
            problems = cluster_env_problems(env, expected)
        elif name == "training-env":
            findings = training_env_findings(env)
            problems, contradictions = list(findings.problems), findings.contradictions
        elif name == "addresses":
            held = () if spec.target in self.down else (spec.param("addresses") or "").split(",")
            return Observation(spec.id, detail=(("ran", name), *(("holds", a) for a in held)))
        else:
            problems = []
        detail = (
            ("ran", name),
            *(("problem", p) for p in problems),
            *(("contradiction", c) for c in contradictions),
        )
        return Observation(spec.id, detail=detail)
