"""Observations: the raw facts a probe saw, before any judgement.

Port results are grouped into runs of ports that ended alike, so a full-range sweep is a few
records, not 65,535.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reachproof.ports import PortSet


class PortState(StrEnum):
    OPEN = "open"  # SYN-ACK, connect succeeded, UDP answer, echo reply, HTTP answer
    CLOSED = "closed"  # RST from the target itself: reached a host, nothing listens
    FILTERED = "filtered"  # silence after every attempt
    PROHIBITED = "prohibited"  # ICMP admin/host/net-prohibited, or a reset sent by a firewall
    UNREACHABLE = "unreachable"  # ICMP host/net unreachable, no route
    OPEN_FILTERED = "open|filtered"  # UDP silence with no way to confirm delivery
    ERROR = "error"  # the probe itself failed: vantage down, permission, timeout of the worker


@dataclass(frozen=True)
class PortResult:
    """A run of ports of one spec that ended in the same state for the same reason."""

    ports: PortSet
    state: PortState
    reason: str  # syn-ack, rst, reset-by-firewall, icmp-3-13, timeout, …
    attempts: int
    rtt_ms: float | None = None
    ttl: int | None = None


@dataclass(frozen=True)
class Observation:
    spec_id: str
    results: tuple[PortResult, ...] = ()
    # http/websocket: status, identity, handshake; checks: one `problem` entry per finding
    detail: tuple[tuple[str, str], ...] = ()
    error: str | None = None  # the probe or its vantage failed; the spec decides nothing
    degraded: str | None = None  # e.g. "raw sockets not permitted: connect probes used"

    def details(self, key: str) -> tuple[str, ...]:
        return tuple(v for k, v in self.detail if k == key)
