"""Hop attribution: was a TCP reset sent by the target, or by a firewall on its behalf?

A firewall that answers with `reject with tcp reset` forges the target's address and ports,
so the packet itself says "closed". What it cannot forge cheaply is where it sits: its reset
starts with a full TTL at the firewall, so it arrives having crossed fewer routers than a
reset from the target would.

Positions on the path: the vantage is 0, the first router 1, …, the target D. A reply sent
from position k crosses k - 1 routers, so it arrives with `initial - (k - 1)`; initial TTLs
are 64, 128 or 255, so `hops = initial - ttl` (the smallest initial ≥ ttl) places the
responder at position `hops + 1` (assuming the return path is as long as the way out).

1. When the same probe also got SYN-ACKs, those came from the target itself: a reset that
   crossed fewer routers than the SYN-ACKs is a firewall's (`reset-by-firewall`).
2. When only resets came back, one TTL-limited SYN tells: send a SYN with TTL = hops + 1 to a
   reset port. If position hops + 1 is the target, the SYN arrives and draws a reset again.
   If it is a router, the TTL expires there and an ICMP time-exceeded comes back: the target
   lies beyond the responder, so the reset was forged by a hop before the target. One such
   test per distinct reset TTL covers a sweep (a firewall answers every port alike).

The method's limits, said plainly: a responder that answers before decrementing the TTL
(rejecting in prerouting) and suppresses time-exceeded is indistinguishable from the host;
asymmetric return paths skew `hops`; routers that rate-limit or drop time-exceeded leave
the trace silent, and then the reset stays `closed` with a `hop-attribution` detail saying
the test was inconclusive.
"""

from __future__ import annotations

INITIAL_TTLS = (64, 128, 255)


def hops_of(ttl: int) -> int:
    """Routers crossed by a reply that arrived with `ttl` (0: sent by a neighbour)."""
    for initial in INITIAL_TTLS:
        if ttl <= initial:
            return initial - ttl
    return 0


def forged_by_hop(reset_ttl: int, target_ttl: int) -> bool:
    """Rule 1: a reset that crossed fewer routers than the target's own SYN-ACK."""
    return hops_of(reset_ttl) < hops_of(target_ttl)


def trace_ttl(reset_ttl: int) -> int:
    """Rule 2: the TTL that reaches exactly the responder's claimed position."""
    return hops_of(reset_ttl) + 1
