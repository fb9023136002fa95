"""The worker's side of the protocol: parsed requests, the reply writer, result grouping.

Stdlib only and Python 3.8+ (this module runs at the far end of an ssh pipe).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any, NamedTuple

from reachproof.worker.protocol import STATES

PROGRESS_INTERVAL = 0.2  # seconds: at most ~5 progress lines per second per probe


class BadRequest(ValueError):
    """A request line that does not follow the protocol."""


class Request(NamedTuple):
    id: str
    kind: str
    address: str | None
    family: int | None
    resolve: str | None
    ports: list[int]
    timeout: float
    attempts: int
    pps: int
    params: dict[str, str]
    scope: frozenset[str]  # the only addresses this probe may send to (normalised text)


class Outcome(NamedTuple):
    """What one port ended as."""

    state: str
    reason: str
    attempts: int
    rtt_ms: float | None = None
    ttl: int | None = None


def expand_ports(ranges: object) -> list[int]:
    """[[first, last], ...] → sorted distinct ports; rejects anything malformed."""
    if not isinstance(ranges, list):
        raise BadRequest("ports must be a list of [first, last] ranges")
    ports: set[int] = set()
    for item in ranges:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in item)
        ):
            raise BadRequest("each port range must be [first, last] of integers")
        first, last = item
        if not 0 <= first <= last <= 65535:
            raise BadRequest(f"port range {item!r} is outside 0..65535 or reversed")
        ports.update(range(first, last + 1))
    return sorted(ports)


def _opt_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def parse_scope(value: object) -> frozenset[str]:
    """The request's `scope`: a list of IP addresses, each normalised so that spellings of
    one address compare equal. A request without one may touch nothing."""
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise BadRequest("scope must be a list of IP address strings")
    try:
        return frozenset(str(ip_address(a)) for a in value)
    except ValueError as exc:
        raise BadRequest(f"scope: {exc}") from exc


def parse_probe(raw: dict[str, Any]) -> Request:
    probe_id = raw.get("id")
    kind = raw.get("kind")
    if not isinstance(probe_id, str) or not isinstance(kind, str):
        raise BadRequest("a probe needs a string id and kind")
    family = raw.get("family")
    if family not in (None, 4, 6):
        raise BadRequest("family must be 4, 6 or null")
    params = raw.get("params") or {}
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in params.items()
    ):
        raise BadRequest("params must map strings to strings")
    try:
        timeout = float(raw.get("timeout", 1.0))
        attempts = int(raw.get("attempts", 2))
        pps = int(raw.get("pps", 0))
    except (TypeError, ValueError) as exc:
        raise BadRequest("timeout, attempts and pps must be numbers") from exc
    if not 0 < timeout <= 600 or not 1 <= attempts <= 20 or pps < 0:
        raise BadRequest("timeout must be in (0, 600], attempts in 1..20, pps >= 0")
    return Request(
        id=probe_id,
        kind=kind,
        address=_opt_str(raw, "address"),
        family=family,
        resolve=_opt_str(raw, "resolve"),
        ports=expand_ports(raw.get("ports", [])),
        timeout=timeout,
        attempts=attempts,
        pps=pps,
        params=dict(params),
        scope=parse_scope(raw.get("scope")),
    )


def _ranges(ports: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for port in ports:
        if runs and runs[-1][1] == port - 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return runs


def group_results(outcomes: dict[int, Outcome]) -> list[dict[str, Any]]:
    """One result record per (state, reason, attempts, ttl), holding all its port ranges.

    The rtt of a record is its first port's: ports that ended alike answered alike, and a
    per-port rtt would defeat the grouping that keeps a full sweep small.
    """
    groups: dict[tuple[str, str, int, int | None], list[int]] = {}
    first: dict[tuple[str, str, int, int | None], Outcome] = {}
    for port in sorted(outcomes):
        outcome = outcomes[port]
        if outcome.state not in STATES:
            raise ValueError(f"unknown state {outcome.state!r}")
        key = (outcome.state, outcome.reason, outcome.attempts, outcome.ttl)
        groups.setdefault(key, []).append(port)
        first.setdefault(key, outcome)
    records: list[dict[str, Any]] = []
    for key, ports in groups.items():
        rtt = first[key].rtt_ms
        records.append(
            {
                "ports": _ranges(ports),
                "state": key[0],
                "reason": key[1],
                "attempts": key[2],
                "rtt_ms": None if rtt is None else round(rtt, 3),
                "ttl": key[3],
            }
        )
    records.sort(key=lambda r: r["ports"][0][0])
    return records


class Output:
    """Replies as single JSON lines; one lock so concurrent probes never interleave bytes."""

    def __init__(self, write: Callable[[str], object], flush: Callable[[], object]) -> None:
        self._write = write
        self._flush = flush
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":")) + "\n"
        with self._lock:
            self._write(line)
            self._flush()

    def log(self, text: str) -> None:
        self.send({"op": "log", "message": text})


class Progress:
    """Throttled `progress` lines for one probe."""

    def __init__(self, output: Output, probe_id: str, total: int) -> None:
        self.output = output
        self.probe_id = probe_id
        self.total = total
        self._last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self.output.send(
                {"op": "progress", "id": self.probe_id, "done": done, "total": self.total}
            )


class ProbeReport:
    """What a probe hands back: per-port outcomes, detail pairs, error, degradation note."""

    def __init__(self) -> None:
        self.outcomes: dict[int, Outcome] = {}
        self.detail: list[list[str]] = []
        self.error: str | None = None
        self.degraded: str | None = None

    def add_detail(self, key: str, value: str) -> None:
        self.detail.append([key, value])

    def message(self, probe_id: str) -> dict[str, Any]:
        return {
            "op": "result",
            "id": probe_id,
            "results": group_results(self.outcomes),
            "detail": self.detail,
            "error": self.error,
            "degraded": self.degraded,
        }
