"""Packets-per-second budgets (pure): the global limit, each vantage's share, each probe's share.

The split is static, so the sum of what is in flight never exceeds a limit: a vantage gets
min(per-vantage limit, global limit / vantages probing at once), and each probe request of a
vantage gets that budget divided by the number of requests the vantage can have in flight.
"""

from __future__ import annotations

import math


def vantage_budget(global_pps: int, vantage_pps: int, vantages: int) -> int:
    """Packets per second one of `vantages` concurrently probing vantages may send."""
    return max(1, min(vantage_pps, global_pps // max(1, vantages)))


def probe_budget(budget: int, in_flight: int, requests: int) -> int:
    """Packets per second one probe request may send, when at most min(in_flight, requests)
    requests of the vantage run at once."""
    return max(1, budget // max(1, min(in_flight, requests)))


def expected_seconds(ports: int, attempts: int, timeout: float, pps: int) -> float:
    """How long a probe of `ports` ports should take at worst: every port silent, every
    attempt sent at `pps` and waited for."""
    sending = math.ceil(ports * attempts / max(1, pps))
    return sending + attempts * timeout
