"""The semantic pass: does the policy mean something, before any inventory is involved?

It checks what the grammar cannot: references (roles, zones, services), port and status
ranges, and which modifiers make sense with which flows. Every problem is reported at the
token that causes it, and all of them are returned together.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from difflib import get_close_matches

from reachproof.errors import NOWHERE, Diagnostic, Pos
from reachproof.inventory.model import CONTAINER_ROLE
from reachproof.policy.ast import (
    APP_PROTOCOLS,
    CHECKS,
    LISTENERS,
    Action,
    CheckStmt,
    Endpoint,
    ExpectKind,
    ExpectStmt,
    FlowStmt,
    Name,
    Policy,
    PortItem,
    Rule,
    ScopeKind,
    ServiceRef,
)
from reachproof.ports import MAX_PORT, MIN_PORT

__all__ = ["check_policy"]

MIN_STATUS, MAX_STATUS = 100, 599
_SESSION_SCOPES = (ScopeKind.WITHIN_SESSION, ScopeKind.ACROSS_SESSIONS)


def check_policy(policy: Policy) -> list[Diagnostic]:
    """Every semantic problem of `policy`, in source order."""
    problems = list(_Checker(policy).run())
    return sorted(problems, key=lambda d: (d.line, d.column))


def _listing(names: Iterable[str]) -> str:
    listed = sorted(set(names))
    return ", ".join(listed) if listed else "none"


def _hint(name: str, candidates: Iterable[str]) -> str:
    close = get_close_matches(name, list(candidates), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def _at(pos: Pos, fallback: Pos) -> Pos:
    return pos if pos != NOWHERE else fallback


class _Checker:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.roles = policy.role_names()
        self.zones = {z.name.text: z for z in policy.zones}
        self.services = {s.name.text for s in policy.services}

    def _error(self, pos: Pos, message: str) -> Diagnostic:
        return Diagnostic.at(self.policy.path, pos, message)

    def run(self) -> Iterator[Diagnostic]:
        policy = self.policy
        if not policy.name.strip():
            yield self._error(policy.pos, "the policy name is empty")
        if not policy.rules:
            yield self._error(policy.pos, "the policy has no rules: add at least one `rule`")
        yield from self._declarations()
        seen: dict[str, Pos] = {}
        for rule in policy.rules:
            yield from self._duplicate("rule id", rule.id, seen)
            yield from self._rule(rule)

    # --- declarations ---------------------------------------------------------------------

    def _duplicate(self, what: str, name: Name, seen: dict[str, Pos]) -> Iterator[Diagnostic]:
        if name.text not in seen:
            seen[name.text] = name.pos
            return
        first = seen[name.text]
        yield self._error(
            name.pos, f"duplicate {what} '{name.text}' (first at {first.line}:{first.column})"
        )

    def _declarations(self) -> Iterator[Diagnostic]:
        policy = self.policy
        roles: dict[str, Pos] = {}
        for role in policy.roles:
            yield from self._duplicate("role", role, roles)
        zones: dict[str, Pos] = {}
        for zone in policy.zones:
            if zone.name.text in roles:
                first = roles[zone.name.text]
                yield self._error(
                    zone.name.pos,
                    f"zone '{zone.name.text}' has the name of a role (declared at "
                    f"{first.line}:{first.column}); an endpoint could mean either",
                )
            yield from self._duplicate("zone", zone.name, zones)
            for member in zone.roles:
                if member.text not in self.roles:
                    yield self._error(
                        member.pos,
                        f"zone '{zone.name.text}' lists unknown role '{member.text}' "
                        f"({_hint(member.text, self.roles)}declared roles: {_listing(self.roles)})",
                    )
        services: dict[str, Pos] = {}
        for service in policy.services:
            yield from self._duplicate("service", service.name, services)
            for item in service.items:
                yield from self._port_item(item)
            if service.sample is not None and service.sample < 1:
                yield self._error(
                    _at(service.sample_pos, service.pos),
                    f"sample must be at least 1, got {service.sample}",
                )
        yield from self._egress()

    def _egress(self) -> Iterator[Diagnostic]:
        seen: dict[str, Pos] = {}
        for egress in self.policy.egress:
            yield from self._duplicate("egress of zone", egress.zone, seen)
            if egress.zone.text not in self.zones:
                yield self._error(
                    egress.zone.pos,
                    f"'egress' is declared for a zone: '{egress.zone.text}' is not one "
                    f"({_hint(egress.zone.text, self.zones)}zones: {_listing(self.zones)})",
                )
            for to in egress.to:
                if to.text not in self.roles and to.text not in self.zones:
                    yield self._error(
                        to.pos,
                        f"zone '{egress.zone.text}' egresses as unknown role or zone "
                        f"'{to.text}' ({_hint(to.text, [*self.roles, *self.zones])}declared "
                        f"roles: {_listing(self.roles)}; zones: {_listing(self.zones)})",
                    )

    def _port_item(self, item: PortItem) -> Iterator[Diagnostic]:
        for port in dict.fromkeys((item.first, item.last)):
            if not MIN_PORT <= port <= MAX_PORT:
                yield self._error(
                    item.pos,
                    f"port {port} is out of range {MIN_PORT}-{MAX_PORT} in '{_item(item)}'",
                )
        if item.first > item.last:
            yield self._error(
                item.pos,
                f"reversed port range '{_item(item)}': write the lower port first "
                f"({item.protocol}/{item.last}-{item.first})",
            )

    # --- rules ----------------------------------------------------------------------------

    def _rule(self, rule: Rule) -> Iterator[Diagnostic]:
        if not rule.body:
            yield self._error(
                rule.id.pos,
                f"rule {rule.id.text} has no statements "
                "(expected allow, reach, deny, check or expect)",
            )
        for stmt in rule.body:
            if isinstance(stmt, FlowStmt):
                yield from self._flow(stmt)
            elif isinstance(stmt, CheckStmt):
                yield from self._check(stmt)
            else:
                yield from self._expect(stmt)

    def _endpoint(self, endpoint: Endpoint) -> Iterator[Diagnostic]:
        name = endpoint.name.text
        if name not in self.roles and name not in self.zones:
            yield self._error(
                endpoint.name.pos,
                f"unknown role or zone '{name}' ({_hint(name, [*self.roles, *self.zones])}"
                f"declared roles: {_listing(self.roles)}; zones: {_listing(self.zones)})",
            )
        for spec in endpoint.ports:
            if isinstance(spec, ServiceRef):
                if spec.name not in self.services:
                    yield self._error(
                        spec.pos,
                        f"unknown service '{spec.name}' ({_hint(spec.name, self.services)}"
                        f"declared services: {_listing(self.services)})",
                    )
            else:
                yield from self._port_item(spec)

    def _target(self, endpoint: Endpoint) -> Iterator[Diagnostic]:
        yield from self._endpoint(endpoint)
        if not endpoint.ports:
            name = endpoint.name.text
            yield self._error(
                endpoint.name.pos,
                f"'{name}' needs ports: write {name}:SERVICE or {name}:tcp/PORT",
            )

    def _flow(self, stmt: FlowStmt) -> Iterator[Diagnostic]:
        action = stmt.action.value
        if len(stmt.chain) < 2:
            yield self._error(stmt.pos, f"'{action}' needs a chain of at least two endpoints")
        for index, endpoint in enumerate(stmt.chain):
            if index == 0:
                yield from self._endpoint(endpoint)
                if endpoint.ports:
                    yield self._error(
                        endpoint.name.pos,
                        f"the source of a chain takes no ports: '{endpoint.name.text}' "
                        "is where the probe starts",
                    )
            else:
                yield from self._target(endpoint)
        for endpoint in stmt.excepts:
            yield from self._target(endpoint)
            if stmt.action is not Action.DENY:
                yield self._error(
                    endpoint.name.pos,
                    f"'except' narrows a deny rule; it cannot be used with '{action}'",
                )
        if stmt.closed_ok and stmt.action is not Action.DENY:
            yield self._error(
                _at(stmt.closed_ok_pos, stmt.pos),
                f"'closed-ok' relaxes a deny rule; it cannot be used with '{action}'",
            )
        yield from self._flow_scope(stmt)

    def _flow_scope(self, stmt: FlowStmt) -> Iterator[Diagnostic]:
        scope = stmt.scope
        if stmt.by_hostname and (scope is None or scope.kind is not ScopeKind.WITHIN_SESSION):
            yield self._error(
                _at(stmt.by_hostname_pos, stmt.pos),
                "'by hostname' needs 'within session': only peers of one session "
                "resolve each other's hostnames",
            )
        if scope is None:
            return
        where = _at(scope.pos, stmt.pos)
        if len(stmt.chain) != 2:
            yield self._error(
                where, f"'{scope.kind}' pairs the two ends of one hop: split the chain into hops"
            )
            return
        if scope.kind in _SESSION_SCOPES:
            for endpoint in stmt.chain:
                if not self._is_container(endpoint):
                    yield self._error(
                        endpoint.name.pos,
                        f"'{scope.kind}' pairs session containers, but '{endpoint.name.text}' "
                        f"is not the role '{CONTAINER_ROLE}' (or a zone of containers only)",
                    )
        elif not any(self._is_container(e) for e in stmt.chain):
            yield self._error(
                where,
                f"'{scope.kind}' pairs containers with agents: one end must be '{CONTAINER_ROLE}'",
            )

    def _is_container(self, endpoint: Endpoint) -> bool:
        name = endpoint.name.text
        if name in self.roles:
            return name == CONTAINER_ROLE
        zone = self.zones.get(name)
        return (
            zone is not None
            and bool(zone.roles)
            and all(r.text == CONTAINER_ROLE for r in zone.roles)
        )

    def _check(self, stmt: CheckStmt) -> Iterator[Diagnostic]:
        if stmt.name.text not in CHECKS:
            yield self._error(
                stmt.name.pos,
                f"unknown check '{stmt.name.text}' ({_hint(stmt.name.text, CHECKS)}"
                f"known checks: {', '.join(CHECKS)})",
            )
        target = stmt.target
        if stmt.name.text == LISTENERS and target is None:
            yield self._error(
                stmt.name.pos,
                "'check listeners' needs the containers and the ports that must have no "
                "listener there: check listeners in container[sub]:SERVICE",
            )
        if target is not None:
            if stmt.name.text != LISTENERS:
                yield self._error(
                    target.name.pos,
                    f"'in ENDPOINT:PORTS' belongs to 'check {LISTENERS}', not "
                    f"'check {stmt.name.text}'",
                )
            yield from self._target(target)
            if not self._is_container(target):
                yield self._error(
                    target.name.pos,
                    f"a check runs in session containers, but '{target.name.text}' is not the "
                    f"role '{CONTAINER_ROLE}' (or a zone of containers only)",
                )
        if stmt.scope is not None and stmt.scope.kind is not ScopeKind.WITHIN_SESSION:
            yield self._error(
                _at(stmt.scope.pos, stmt.pos),
                f"a check runs in session containers: only 'within session' narrows it, "
                f"not '{stmt.scope.kind}'",
            )

    def _expect(self, stmt: ExpectStmt) -> Iterator[Diagnostic]:
        if stmt.target is not None:
            yield from self._endpoint(stmt.source)
            yield from self._target(stmt.target)
            if stmt.kind is not ExpectKind.TLS:
                yield self._error(
                    stmt.target.name.pos,
                    f"'expect {stmt.kind}' reaches an app: write 'via ROLE app NAME' "
                    "('to ROLE:ports' is for tls)",
                )
            return
        if stmt.kind is ExpectKind.TLS and (stmt.path != "/" or stmt.status is not None):
            yield self._error(stmt.pos, "'expect tls' takes no path or status")
        for endpoint in (stmt.source, stmt.via):
            if endpoint is None:
                continue
            yield from self._endpoint(endpoint)
            if endpoint.ports:
                yield self._error(
                    endpoint.name.pos,
                    f"'{endpoint.name.text}' takes no ports in an expect statement",
                )
        if stmt.speaking is not None and stmt.speaking.text not in APP_PROTOCOLS:
            yield self._error(
                stmt.speaking.pos,
                f"unknown app protocol '{stmt.speaking.text}' "
                f"({_hint(stmt.speaking.text, APP_PROTOCOLS)}known: {', '.join(APP_PROTOCOLS)})",
            )
        if stmt.at_least is not None and stmt.app is not None:
            yield self._error(
                _at(stmt.at_least_pos, stmt.pos),
                f"'at least' counts the apps a selection finds; app {stmt.app!r} names one",
            )
        if stmt.status is not None and not MIN_STATUS <= stmt.status <= MAX_STATUS:
            yield self._error(
                _at(stmt.status_pos, stmt.pos),
                f"HTTP status must be between {MIN_STATUS} and {MAX_STATUS}, got {stmt.status}",
            )


def _item(item: PortItem) -> str:
    span = str(item.first) if item.first == item.last else f"{item.first}-{item.last}"
    return f"{item.protocol}/{span}"
