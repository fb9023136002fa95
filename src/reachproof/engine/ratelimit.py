"""Packets-per-second budgets (pure): the global limit and each vantage's share of it.

The split is static, so the sum of what is sent never exceeds the global limit (plus the small
floor that keeps every vantage moving): each vantage gets a share of the global limit in
proportion to the packets it has to send, capped by the per-vantage limit. A vantage's worker
paces all its probes from one bucket of that size (worker/pacing.py, `shared_pacer`), so a big
sweep left running alone gets the vantage's whole budget. `probe_budget` — the budget divided
by the probes in flight — is the slowest a probe can go, which is what its deadline allows for.
"""

from __future__ import annotations

import math

MIN_VANTAGE_PPS = 1_000  # a vantage with little to send still sends at this rate


def vantage_budgets(global_pps: int, vantage_pps: int, packets: dict[str, int]) -> dict[str, int]:
    """Each vantage's packets per second, in proportion to the packets it has to send."""
    total = sum(max(1, n) for n in packets.values())
    floor = min(MIN_VANTAGE_PPS, vantage_pps, max(1, global_pps // max(1, len(packets))))
    return {
        name: max(floor, min(vantage_pps, global_pps * max(1, n) // total))
        for name, n in packets.items()
    }


def probe_budget(budget: int, in_flight: int, requests: int) -> int:
    """Packets per second one probe request may send, when at most min(in_flight, requests)
    requests of the vantage run at once."""
    return max(1, budget // max(1, min(in_flight, requests)))


def expected_seconds(ports: int, attempts: int, timeout: float, pps: int) -> float:
    """How long a probe of `ports` ports should take at worst: every port silent, every
    attempt sent at `pps` and waited for."""
    sending = math.ceil(ports * attempts / max(1, pps))
    return sending + attempts * timeout
