"""Which address families an allow/reach hop is judged over, and why (pure).

Deny hops go over every family an address exists for: any family that gets through is a hole.
Allow and reach hops go over the families the site uses for that path, which the inventory
states (inventory/families.py): the target host's own `families`, then its session's, then
the site's; within each, the hop's named services, then its traffic class, then `default`.
An inventory that says nothing judges every family, as before families existed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reachproof.inventory.model import ALL_FAMILIES, FamilyRule, Host, Inventory, IPAddress
from reachproof.plan import HopFamilies
from reachproof.policy.ast import Action, Endpoint, Scope, ScopeKind, ServiceRef

EVERY_FAMILY = FamilyRule(ALL_FAMILIES, "the inventory states no families for this path")
DENY_WHY = "deny: every family an address exists for"
HOSTNAME_WHY = "by hostname: the families the name resolves to, tried in order as clients do"


@dataclass(frozen=True)
class FamilyChoice:
    """One target of a hop: the families judged over, and the rule that chose them."""

    rule: FamilyRule
    present: tuple[int, ...]  # families the target has an address of, on this path

    @property
    def judged(self) -> tuple[int, ...]:
        return tuple(f for f in self.present if f in self.rule.families)

    def keep(self, addresses: Sequence[IPAddress]) -> tuple[IPAddress, ...]:
        return tuple(a for a in addresses if a.version in self.rule.families)


def traffic_class(target: Host, scope: Scope | None) -> str:
    if scope is not None and scope.kind is ScopeKind.WITHIN_SESSION:
        return "cluster"
    return "container" if target.container is not None else "service"


def rule_for(
    inventory: Inventory, target: Host, traffic: str, services: tuple[str, ...]
) -> FamilyRule:
    """The most specific `families` entry for `traffic` to `target` over `services`."""
    levels = [target.families]
    if target.container is not None:
        session = inventory.session(target.container.session)
        if session is not None:
            levels.append(session.families)
    levels.append(inventory.families)
    for level in levels:
        rule = level.lookup(traffic, services)
        if rule is not None:
            return rule
    return EVERY_FAMILY


def choose(
    inventory: Inventory,
    action: Action,
    target: Host,
    endpoint: Endpoint,
    scope: Scope | None,
    addresses: Sequence[IPAddress],
) -> FamilyChoice:
    present = tuple(f for f in ALL_FAMILIES if any(a.version == f for a in addresses))
    if action is Action.DENY:
        return FamilyChoice(FamilyRule(ALL_FAMILIES, DENY_WHY), present)
    services = tuple(p.name for p in endpoint.ports if isinstance(p, ServiceRef))
    rule = rule_for(inventory, target, traffic_class(target, scope), services)
    return FamilyChoice(rule, present)


def summarize(choices: Iterable[FamilyChoice]) -> tuple[HopFamilies, ...]:
    """One line per distinct (judged, not judged, why) over a hop's targets, in first-seen order."""
    counts: dict[tuple[tuple[int, ...], tuple[int, ...], str], int] = {}
    for choice in choices:
        skipped = tuple(f for f in choice.present if f not in choice.judged)
        key = (choice.judged, skipped, choice.rule.where)
        counts[key] = counts.get(key, 0) + 1
    return tuple(
        HopFamilies(judged, skipped, why, targets)
        for (judged, skipped, why), targets in counts.items()
    )
