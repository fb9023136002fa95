"""Load the inventory's `families`: which address families carry which traffic.

A site says it once (top-level `families`) and overrides it per host (`families` of a host or
container) or per session network (`families` of a session). Each level maps a traffic class
(`service`, `container`, `cluster`, `apps`), policy service names (`services`) or everything
(`default`) to the families that carry it. The compiler (policy/families.py) applies them to
allow/reach hops only; deny hops go over every family an address exists for.
"""

from __future__ import annotations

from yaml.nodes import Node, ScalarNode, SequenceNode

from reachproof.inventory.model import TRAFFIC_CLASSES, Families, FamilyRule
from reachproof.inventory.yamlpos import NodeReader, describe, pos_of

_KEYS = ("default", *TRAFFIC_CLASSES, "services")


def read_families(reader: NodeReader, node: Node, owner: str) -> Families | None:
    """`families` of `owner` ("inventory", "host 'agent1'"), or None after reporting errors."""
    before = len(reader.diagnostics)
    fields = reader.fields(node, f"{owner}: families", node, (), _KEYS)
    if fields is None:
        return None
    services: list[tuple[str, FamilyRule]] = []
    if "services" in fields:
        named = reader.entries(fields.pop("services"), f"{owner}: families.services") or []
        for name, _name_node, value in named:
            rule = _rule(reader, value, owner, f"services.{name}")
            if rule is not None:
                services.append((name, rule))
    rules = {key: _rule(reader, value, owner, key) for key, value in fields.items()}
    if len(reader.diagnostics) > before:
        return None
    classes = tuple((k, r) for k, r in rules.items() if k != "default" and r is not None)
    return Families(rules.get("default"), classes, tuple(services))


def _rule(reader: NodeReader, node: Node, owner: str, key: str) -> FamilyRule | None:
    what = f"{owner}: families.{key}"
    items = node.value if isinstance(node, SequenceNode) else [node]
    if not items:
        reader.error(node, f"{what}: expected a list of 4 and/or 6, got an empty list")
        return None
    out: list[int] = []
    for item in items:
        if not isinstance(item, ScalarNode) or item.value not in ("4", "6"):
            reader.error(item, f"{what}: expected 4 or 6 (an address family), got {describe(item)}")
            return None
        family = int(item.value)
        if family in out:
            reader.error(item, f"{what}: family {family} is listed twice")
            return None
        out.append(family)
    pos = pos_of(node)
    where = f"families.{key} at {reader.path}:{pos.line}:{pos.column}"
    if owner != "inventory":
        where = f"{owner} {where}"
    return FamilyRule(tuple(sorted(out)), where)
