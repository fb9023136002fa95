"""The scope guard: nothing is sent to an address the inventory does not declare."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address

from reachproof.errors import InputError
from reachproof.inventory.model import Inventory
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
