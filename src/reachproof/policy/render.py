"""AST → canonical policy text.

The output parses back to an equal AST (positions aside), which is what `policy fmt` needs and
what the property-based tests check. Canonical means: declarations grouped in a fixed order,
one `role` statement, `=` aligned within a block, one statement per line, the severity always
written, defaults of `expect` (`path "/"`, no status) left out. Strings cannot hold line
breaks in the DSL, so a title or citation must not contain one.
"""

from __future__ import annotations

from reachproof.policy.ast import (
    CheckStmt,
    Endpoint,
    ExpectStmt,
    FlowStmt,
    Policy,
    PortItem,
    Rule,
    Scope,
    ServiceRef,
    Statement,
)

__all__ = ["render_policy"]

_INDENT = "    "


def render_policy(policy: Policy) -> str:
    blocks: list[list[str]] = [
        [f"policy {_quote(policy.name)}", *(f"source {_quote(s)}" for s in policy.sources)]
    ]
    if policy.strict_advisory:
        blocks.append(["strict advisory"])
    if policy.roles:
        blocks.append(["role " + ", ".join(r.text for r in policy.roles)])
    if policy.zones:
        width = max(len(z.name.text) for z in policy.zones)
        blocks.append(
            [
                f"zone {z.name.text:<{width}} = " + ", ".join(r.text for r in z.roles)
                for z in policy.zones
            ]
        )
    if policy.egress:
        blocks.append(
            [f"zone {e.zone.text} egress " + ", ".join(t.text for t in e.to) for e in policy.egress]
        )
    if policy.services:
        width = max(len(s.name.text) for s in policy.services)
        lines = []
        for service in policy.services:
            items = ", ".join(_port_item(i) for i in service.items) or "none"
            sample = f" sample {service.sample}" if service.sample is not None else ""
            lines.append(f"service {service.name.text:<{width}} = {items}{sample}")
        blocks.append(lines)
    blocks.extend(_rule(rule) for rule in policy.rules)
    return "\n\n".join("\n".join(block) for block in blocks) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _port_item(item: PortItem) -> str:
    span = str(item.first) if item.first == item.last else f"{item.first}-{item.last}"
    return f"{item.protocol}/{span}"


def _endpoint(endpoint: Endpoint) -> str:
    text = endpoint.name.text
    if endpoint.selector is not None:
        text += f"[{endpoint.selector.text}]"
    if endpoint.ports:
        specs = (s.name if isinstance(s, ServiceRef) else _port_item(s) for s in endpoint.ports)
        text += ":" + ", ".join(specs)
    return text


def _scope(scope: Scope) -> str:
    return f"{scope.kind} {scope.mode}" if scope.mode is not None else str(scope.kind)


def _rule(rule: Rule) -> list[str]:
    header = f"rule {rule.id.text} {_quote(rule.title)} severity {rule.severity}"
    if rule.advisory:
        header += " advisory"
    lines = [header + ":"]
    lines.extend(f"{_INDENT}source {_quote(s)}" for s in rule.sources)
    lines.extend(_INDENT + _statement(stmt) for stmt in rule.body)
    return lines


def _statement(stmt: Statement) -> str:
    if isinstance(stmt, FlowStmt):
        return _flow(stmt)
    if isinstance(stmt, CheckStmt):
        target = f" in {_endpoint(stmt.target)}" if stmt.target is not None else ""
        scope = f" {_scope(stmt.scope)}" if stmt.scope is not None else ""
        return f"check {stmt.name.text}{target}{scope}"
    return _expect(stmt)


def _flow(stmt: FlowStmt) -> str:
    parts = [str(stmt.action), " -> ".join(_endpoint(e) for e in stmt.chain)]
    parts.extend(f"except {_endpoint(e)}" for e in stmt.excepts)
    if stmt.closed_ok:
        parts.append("closed-ok")
    if stmt.scope is not None:
        parts.append(_scope(stmt.scope))
    if stmt.by_hostname:
        parts.append("by hostname")
    return " ".join(parts)


def _expect(stmt: ExpectStmt) -> str:
    head = f"expect {stmt.kind} from {_endpoint(stmt.source)}"
    if stmt.via is None:
        return f"{head} to {_endpoint(stmt.target)}" if stmt.target is not None else head
    app = "*" if stmt.app is None else _quote(stmt.app)
    if stmt.speaking is not None:
        app += f" speaking {stmt.speaking.text}"
    text = f"{head} via {_endpoint(stmt.via)} app {app}"
    if stmt.path != "/":
        text += f" path {_quote(stmt.path)}"
    if stmt.status is not None:
        text += f" status {stmt.status}"
    if stmt.at_least is not None:
        text += f" at least {stmt.at_least}"
    return text
