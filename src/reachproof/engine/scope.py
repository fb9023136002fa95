"""The scope guard: nothing is sent to an address the inventory does not declare.

Two guards, one set of addresses: `check_scope` refuses the plan before anything starts, and
`probe_scope` is the set each request carries, which the worker enforces where the packets
leave (after resolving a hostname at the vantage, which the engine cannot see in advance).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address

from reachproof.errors import InputError
from reachproof.inventory.model import Inventory, IPAddress
from reachproof.plan import ProbeKind, ProbeSpec


class OutOfScopeError(InputError):
    """A probe would target an address the inventory does not declare."""


def check_scope(specs: Iterable[ProbeSpec], inventory: Inventory) -> None:
    """Raise OutOfScopeError for the first spec whose target the inventory does not declare.

    In-container checks have no target address; every other spec must carry one, so a probe
    that only names a host to resolve at the vantage cannot escape the guard.
    """
    declared = inventory.declared_addresses()
    for spec in specs:
        if spec.kind is ProbeKind.CHECK and spec.address is None:
            continue
        if spec.address is None:
            raise OutOfScopeError(f"spec {spec.id!r}: no target address to check against scope")
        try:
            address = ip_address(spec.address)
        except ValueError as exc:
            raise OutOfScopeError(
                f"spec {spec.id!r}: target {spec.address!r} is not an IP address"
            ) from exc
        if address not in declared:
            raise OutOfScopeError(
                f"spec {spec.id!r}: target address {address} is not declared in the inventory "
                f"{inventory.path or '(unnamed)'}; refusing to probe it"
            )


def probe_scope(spec: ProbeSpec, inventory: Inventory) -> frozenset[IPAddress]:
    """The addresses `spec`'s probe may touch: its target address, and for a probe by hostname
    every address the inventory gives the target host (what a correct resolver may return).
    Empty for in-container checks, which send no probe."""
    if spec.address is None:
        return frozenset()
    allowed = {ip_address(spec.address)}
    if spec.resolve is not None:
        host = inventory.host(spec.target)
        if host is not None:
            allowed.update(host.all_addresses())
    return frozenset(allowed)
