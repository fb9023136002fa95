"""Liveness witnesses for deny targets (DESIGN.md, Round 2): plan the cheapest per address.

A deny PASS says "alive, and not reachable from here"; silence from a host that is down says
nothing. So every address a deny hop probes needs a witness that it was up during the run.
Planned per address, cheapest first, without adding probe packets where possible:
1. specs other rules already make that expect an answer (allow/reach over TCP, HTTP,
   WebSocket): an open or closed answer from the address is the witness, at no extra cost;
2. and, where the host is itself a vantage, its own report that it holds the address on a
   link that is up (one `addresses` check per host, no packet on the wire; a host whose
   uplink is down holds nothing);
3. only where neither exists: one ICMP echo from a vantage that a rule says reaches the host
   (allow/reach of any kind).
An address none of these can cover gets a Witness with no specs: its deny hops stay
INCONCLUSIVE ("target not shown alive"). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from reachproof.inventory.model import Inventory
from reachproof.plan import LIVENESS_RULE, Expectation, ProbeKind, ProbeSpec, Witness
from reachproof.policy.ast import Action
from reachproof.ports import PortSet

# Kinds whose answer carries an open or closed state from the target itself.
_ANSWERING = frozenset(
    {ProbeKind.TCP, ProbeKind.HTTP, ProbeKind.WEBSOCKET, ProbeKind.TLS, ProbeKind.ICMP}
)
HOLDS_CHECK = "addresses"


def plan_witnesses(
    specs: Sequence[ProbeSpec], inventory: Inventory
) -> tuple[tuple[ProbeSpec, ...], tuple[Witness, ...]]:
    """(the specs to add, one Witness per deny target address in plan order)."""
    targets: dict[str, str] = {}
    for spec in specs:
        if spec.expect.action is Action.DENY and spec.address is not None and not spec.resolve:
            targets.setdefault(spec.address, spec.target)
    answering: dict[str, list[str]] = {}
    reached_by: dict[str, ProbeSpec] = {}  # host → an allow/reach spec toward it
    for spec in specs:
        if (
            spec.expect.action is Action.DENY
            or spec.vantage is None
            or spec.address is None
            or spec.resolve
        ):
            continue
        reached_by.setdefault(spec.target, spec)
        if spec.kind in _ANSWERING:
            answering.setdefault(spec.address, []).append(spec.id)
    held: dict[str, list[str]] = {}  # host → its addresses its own vantage is asked about
    added: list[ProbeSpec] = []
    witnesses: list[Witness] = []
    for address, target in targets.items():
        ids = list(answering.get(address, ()))
        hows = ["answers to other rules' probes"] if ids else []
        host = inventory.host(target)
        if host is not None and host.vantage is not None:
            # Free (no packet) and independent of any path: asked for every address it has.
            held.setdefault(target, []).append(address)
            ids.append(_holds_id(target))
            hows.append("its own vantage's address list")
        if ids:
            witnesses.append(Witness(address, target, tuple(ids), " or ".join(hows)))
            continue
        via = reached_by.get(target)
        if via is None:
            witnesses.append(
                Witness(address, target, (), "no vantage on the host and none that reaches it")
            )
            continue
        echo = _echo(via, address)
        added.append(echo)
        witnesses.append(Witness(address, target, (echo.id,), f"ICMP echo from {via.source}"))
    for target, addresses in held.items():
        host = inventory.host(target)
        assert host is not None and host.vantage is not None
        added.append(
            ProbeSpec(
                id=_holds_id(target),
                rule_id=LIVENESS_RULE,
                statement=0,
                hop=0,
                vantage=host.vantage,
                source=target,
                target=target,
                address=None,
                family=None,
                kind=ProbeKind.CHECK,
                ports=PortSet(),
                expect=Expectation(Action.ALLOW),
                params=(("check", HOLDS_CHECK), ("addresses", ",".join(addresses))),
            )
        )
    return tuple(added), tuple(witnesses)


def _holds_id(target: str) -> str:
    return f"{LIVENESS_RULE}/holds/{target}"


def _echo(via: ProbeSpec, address: str) -> ProbeSpec:
    return ProbeSpec(
        id=f"{LIVENESS_RULE}/echo/{via.source}>{via.target}/{address}",
        rule_id=LIVENESS_RULE,
        statement=0,
        hop=0,
        vantage=via.vantage,
        source=via.source,
        target=via.target,
        address=address,
        family=6 if ":" in address else 4,
        kind=ProbeKind.ICMP,
        ports=PortSet(),
        expect=Expectation(Action.ALLOW),
    )
