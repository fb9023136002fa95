"""Warnings of `policy lint`: a valid policy that contradicts itself.

A `zone Z egress Y` declaration says that hosts of Z reach whatever hosts of Y reach (their
traffic leaves as Y's, as containers leave through their agent's masquerade to the
Internet). A deny from Z to a service that an allow or reach opens to Y then cannot hold on a
correct deployment: it FAILs where the site is right. Each such deny hop is one warning, at
its target. Pure: the policy alone, no inventory; ports are the services' full ranges.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from reachproof.errors import Diagnostic
from reachproof.policy.ast import Action, EgressDef, Endpoint, FlowStmt, Policy, PortItem
from reachproof.ports import Ports, PortSet, merge_ports

__all__ = ["WARNING", "lint_warnings"]

WARNING = "warning: "


@dataclass(frozen=True)
class _Hop:
    rule: str
    line: int
    action: Action
    source: Endpoint
    target: Endpoint
    excepts: tuple[Endpoint, ...]


def lint_warnings(policy: Policy) -> list[Diagnostic]:
    """Every deny hop that an egress declaration and an allow/reach contradict, in source order."""
    linter = _Linter(policy)
    found = list(linter.run())
    return sorted(found, key=lambda d: (d.line, d.column))


class _Linter:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.hops = [
            _Hop(rule.id.text, stmt.pos.line, stmt.action, a, b, stmt.excepts)
            for rule in policy.rules
            for stmt in rule.body
            if isinstance(stmt, FlowStmt)
            for a, b in zip(stmt.chain, stmt.chain[1:], strict=False)
        ]

    def roles(self, name: str) -> frozenset[str]:
        zone = self.policy.zone(name)
        return frozenset(r.text for r in zone.roles) if zone else frozenset({name})

    def ports(self, endpoint: Endpoint) -> dict[str, PortSet]:
        items: list[Ports] = []
        for spec in endpoint.ports:
            if isinstance(spec, PortItem):
                items.append(Ports(spec.protocol, PortSet.of([(spec.first, spec.last)])))
                continue
            service = self.policy.service(spec.name)
            for item in service.items if service is not None else ():
                items.append(Ports(item.protocol, PortSet.of([(item.first, item.last)])))
        return {str(p.protocol): p.ports for p in merge_ports(items)}

    def denied(self, hop: _Hop) -> dict[str, PortSet]:
        ports = self.ports(hop.target)
        targets = self.roles(hop.target.name.text)
        for exc in hop.excepts:
            if self.roles(exc.name.text) & targets and _compatible(exc, hop.target):
                for proto, cut in self.ports(exc).items():
                    if proto in ports:
                        ports[proto] = ports[proto].difference(cut)
        return {p: s for p, s in ports.items() if s}

    def run(self) -> Iterator[Diagnostic]:
        for deny in (h for h in self.hops if h.action is Action.DENY):
            sources = self.roles(deny.source.name.text)
            for egress in self.policy.egress:
                if not self.roles(egress.zone.text) & sources:
                    continue
                reached_as = frozenset(r for to in egress.to for r in self.roles(to.text))
                yield from self.contradictions(deny, egress, reached_as)

    def contradictions(
        self, deny: _Hop, egress: EgressDef, reached_as: frozenset[str]
    ) -> Iterator[Diagnostic]:
        denied = self.denied(deny)
        targets = self.roles(deny.target.name.text)
        for allow in self.hops:
            if allow.action is Action.DENY or not self.roles(allow.source.name.text) & reached_as:
                continue
            if not self.roles(allow.target.name.text) & targets:
                continue
            if not _compatible(allow.target, deny.target):
                continue
            opened = self.ports(allow.target)
            overlap = [
                f"{proto}/{denied[proto].intersection(ports)}"
                for proto, ports in opened.items()
                if proto in denied and denied[proto].intersection(ports)
            ]
            if not overlap:
                continue
            to = ", ".join(t.text for t in egress.to)
            yield Diagnostic.at(
                self.policy.path,
                deny.target.name.pos,
                f"{WARNING}rule {deny.rule} denies {deny.source.name.text} "
                f"{', '.join(overlap)} of '{_label(deny.target)}', which rule {allow.rule} "
                f"(line {allow.line}) opens to '{allow.source.name.text}'; zone "
                f"'{egress.zone.text}' egresses as {to} (line {egress.pos.line}), so its hosts "
                "reach it too and the deny FAILs on a correct site: narrow the deny or the egress",
            )


def _compatible(a: Endpoint, b: Endpoint) -> bool:
    """Two endpoints of overlapping roles may name the same hosts unless their selectors differ."""
    return a.selector is None or b.selector is None or a.selector.text == b.selector.text


def _label(endpoint: Endpoint) -> str:
    text = endpoint.name.text
    return text + (f"[{endpoint.selector.text}]" if endpoint.selector is not None else "")
