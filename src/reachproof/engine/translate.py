"""Probe specs → worker requests, worker results → Observations (pure).

The worker is trusted with nothing it cannot prove: a port it did not report, or reported
twice, stays unobserved (the verdict then says INCONCLUSIVE, never PASS); a port it reported
that was not asked for is ignored; a state it should not use fails the whole observation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from ipaddress import ip_address
from typing import Any

from reachproof.inventory.model import IPAddress
from reachproof.observation import Observation, PortResult, PortState
from reachproof.plan import ProbeKind, ProbeSpec
from reachproof.ports import PortRange, PortSet
from reachproof.worker import protocol

JSON = dict[str, Any]

# The port placeholder of probes that have no port (ICMP echo).
NO_PORT: list[list[int]] = [[0, 0]]


class ResultError(ValueError):
    """A worker result that does not follow the protocol."""


def worker_kind(kind: ProbeKind, raw: bool, syn: bool) -> str:
    """The worker's probe kind for a spec's kind (TCP: SYN only where raw sockets work)."""
    if kind is ProbeKind.TCP:
        return protocol.KIND_TCP_SYN if raw and syn else protocol.KIND_TCP_CONNECT
    return {
        ProbeKind.UDP: protocol.KIND_UDP,
        ProbeKind.ICMP: protocol.KIND_ICMP,
        ProbeKind.HTTP: protocol.KIND_HTTP,
        ProbeKind.WEBSOCKET: protocol.KIND_WEBSOCKET,
        ProbeKind.TLS: protocol.KIND_TLS,
        ProbeKind.CHECK: protocol.KIND_CHECK,
    }[kind]


def probe_request(
    spec: ProbeSpec,
    kind: str,
    timeout: float,
    attempts: int,
    pps: int,
    probe_id: str,
    scope: Collection[IPAddress],
) -> JSON:
    """The request for `spec`; `scope` (engine/scope.py probe_scope) is all it may touch."""
    if spec.kind is ProbeKind.ICMP:
        ports: list[list[int]] = NO_PORT
    else:
        ports = [[r.first, r.last] for r in spec.ports.ranges]
    return {
        "id": probe_id,
        "kind": kind,
        "address": spec.address,
        "family": spec.family,
        "resolve": spec.resolve,
        "ports": ports,
        "timeout": timeout,
        "attempts": attempts,
        "pps": pps,
        "params": dict(spec.params),
        "scope": sorted(str(a) for a in scope),
    }


def observation_from_result(
    spec: ProbeSpec,
    message: JSON,
    degraded: str | None = None,
    scope: Collection[IPAddress] | None = None,
) -> Observation:
    """The Observation of one `result` message; a malformed one becomes an error observation.

    A spec probed by hostname is resolved at the vantage. The worker refuses a resolution
    outside the request's `scope`; should a result still name one (a worker that did not),
    the observation is an error: nothing it saw is evidence.
    """
    try:
        observation = _observation(spec, message, degraded)
    except ResultError as exc:
        return Observation(spec.id, error=f"worker result rejected: {exc}", degraded=degraded)
    if scope is not None and spec.resolve is not None and spec.kind is not ProbeKind.CHECK:
        for resolved in observation.details("resolved"):
            if not _in_scope(resolved, scope):
                return Observation(
                    spec.id,
                    error=f"{spec.resolve} resolved to {resolved} at the "
                    "vantage, outside the probe's scope",
                    degraded=degraded,
                )
    return observation


def _in_scope(text: str, scope: Collection[IPAddress]) -> bool:
    try:
        return ip_address(text) in scope
    except ValueError:
        return False


def _observation(spec: ProbeSpec, message: JSON, degraded: str | None) -> Observation:
    worker_degraded = message.get("degraded")
    notes = [d for d in (degraded, worker_degraded) if d]
    joined = "; ".join(dict.fromkeys(str(n) for n in notes)) or None
    error = message.get("error")
    if error:
        return Observation(spec.id, error=str(error), degraded=joined)
    detail = tuple(_detail(message.get("detail") or []))
    results = tuple(_results(spec, message.get("results") or []))
    covered = PortSet.of(r for res in results for r in res.ports.ranges)
    missing = spec.ports.difference(covered)
    if missing:
        detail += (("unobserved", str(missing)),)
    return Observation(spec.id, results, detail, degraded=joined)


def _detail(items: Iterable[Any]) -> Iterable[tuple[str, str]]:
    for item in items:
        if not (isinstance(item, list | tuple) and len(item) == 2):
            raise ResultError(f"detail entry {item!r} is not a [key, value] pair")
        yield str(item[0]), str(item[1])


def _results(spec: ProbeSpec, entries: Iterable[Any]) -> Iterable[PortResult]:
    parsed: list[tuple[PortSet, JSON]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ResultError(f"result entry {entry!r} is not an object")
        parsed.append((_ports(spec, entry.get("ports")), entry))
    # A port claimed by two entries has no trustworthy state: leave it out of both.
    seen = PortSet()
    twice = PortSet()
    for ports, _ in parsed:
        twice = twice.union(seen.intersection(ports))
        seen = seen.union(ports)
    for ports, entry in parsed:
        kept = ports.intersection(spec.ports).difference(twice)
        if kept or (spec.kind is ProbeKind.ICMP and ports == spec.ports):
            yield _port_result(kept, entry)


def _ports(spec: ProbeSpec, value: Any) -> PortSet:
    if spec.kind is ProbeKind.ICMP:
        return spec.ports  # the placeholder [[0, 0]] stands for the spec's ports
    if not isinstance(value, list):
        raise ResultError(f"ports {value!r} is not a list of ranges")
    ranges: list[PortRange] = []
    for item in value:
        try:
            first, last = (int(x) for x in item)
            ranges.append(PortRange(first, last))
        except (TypeError, ValueError) as exc:
            raise ResultError(f"bad port range {item!r}") from exc
    return PortSet.of(ranges)


def _port_result(ports: PortSet, entry: JSON) -> PortResult:
    try:
        state = PortState(str(entry.get("state")))
    except ValueError as exc:
        raise ResultError(f"unknown state {entry.get('state')!r}") from exc
    try:
        attempts = int(entry.get("attempts", 0))
        rtt = entry.get("rtt_ms")
        ttl = entry.get("ttl")
        return PortResult(
            ports=ports,
            state=state,
            reason=str(entry.get("reason", "")),
            attempts=attempts,
            rtt_ms=None if rtt is None else float(rtt),
            ttl=None if ttl is None else int(ttl),
        )
    except (TypeError, ValueError) as exc:
        raise ResultError(f"malformed result entry {entry!r}") from exc
