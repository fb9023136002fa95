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

3. When the trace stays silent, an ICMP echo is a second witness of the target's distance:
   a reset that crossed fewer routers than the echo reply is a firewall's, as in rule 1.
4. Still undecided: the ports are `error` / `attribution-undecided` (INCONCLUSIVE), never
   `closed` — a reset nobody could place proves no hole.

IPv4 TTL and IPv6 hop limit are the same number for all of this (the raw receiver reads the
hop limit from IPV6_HOPLIMIT ancillary data).

Routers rate-limit the ICMP errors the trace needs (Linux: `icmp_ratelimit` /
`net.ipv6.icmp.ratelimit`, 1000 ms per destination with a burst of 6, and
`icmp_msgs_per_sec` per host), and a check that sweeps many addresses through one router
spends that budget. So the trace retries (TRACE_WAITS) and every hop-limited SYN of a worker
draws from one bucket (`IcmpBudget`) that stays under the default budget.

The method's limits, said plainly: a responder that answers before decrementing the TTL
(rejecting in prerouting) and suppresses time-exceeded is indistinguishable from the host;
asymmetric return paths skew `hops`; a firewall that also answers echo requests on the
target's behalf makes rule 3 say `closed`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

INITIAL_TTLS = (64, 128, 255)
# Seconds to wait for each try of a trace: 4 tries over 5.5 s see a router whose ICMP budget
# was spent regain at least 4 tokens at Linux's default rate.
TRACE_WAITS = (0.5, 1.0, 2.0, 2.0)
# Linux's default per-destination ICMP error budget: a burst of 6, then one per second.
ICMP_BURST = 6
ICMP_PER_SECOND = 1.0
UNDECIDED = "attribution-undecided"


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


class IcmpBudget:
    """A token bucket under a router's ICMP error budget: `take()` waits for a token."""

    def __init__(
        self,
        burst: int = ICMP_BURST,
        per_second: float = ICMP_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.burst = float(burst)
        self.per_second = per_second
        self.clock = clock
        self.sleep = sleep
        self.tokens = float(burst)
        self.stamp = clock()
        self.lock = threading.Lock()

    def take(self) -> float:
        """Spend one token, waiting until there is one; returns the seconds waited."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.per_second)
            self.stamp = now
            self.tokens -= 1.0
            delay = -self.tokens / self.per_second if self.tokens < 0 else 0.0
        if delay > 0:
            self.sleep(delay)
        return delay


TRACE_BUDGET = IcmpBudget()  # every hop-limited SYN of this worker
