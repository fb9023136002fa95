"""Which TCP sockets listen in this network namespace, from `/proc/net/tcp` and `/proc/net/tcp6`.

Stdlib only: it is shipped to the vantage with the worker. `/proc/net/*` shows the sockets of
the reading process's network namespace, so a worker running in a container lists that
container's listeners, on every address and both families, whatever any probe can reach.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

TCP_LISTEN = "0A"  # the kernel's TCP_LISTEN state, in hex as /proc/net/tcp writes it
TABLES = (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6))


@dataclass(frozen=True)
class Listener:
    address: str  # as an address: 0.0.0.0 and :: mean every address of the family
    port: int
    table: str  # /proc/net/tcp or /proc/net/tcp6
    line: str  # the socket's line of that table, as the kernel wrote it

    @property
    def loopback_only(self) -> bool:
        """Bound to a loopback address: no other host can reach it."""
        parsed = ipaddress.ip_address(self.address)
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            return parsed.ipv4_mapped.is_loopback
        return parsed.is_loopback

    def shown(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def _address(hex_text: str, family: int) -> str:
    """The kernel writes each 32-bit word of the address in host byte order (little endian)."""
    raw = bytes.fromhex(hex_text)
    words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]
    packed = b"".join(words)
    if family == 4:
        return str(ipaddress.IPv4Address(packed))
    return str(ipaddress.IPv6Address(packed))


def parse_table(text: str, table: str, family: int) -> list[Listener]:
    """The listening sockets of one table; lines that are not socket lines are skipped."""
    out: list[Listener] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != TCP_LISTEN:
            continue
        local, _, port = fields[1].partition(":")
        try:
            out.append(Listener(_address(local, family), int(port, 16), table, line.strip()))
        except ValueError:
            continue
    return out


def parse_ports(text: str) -> frozenset[int]:
    """`6006,8080-8081` → the ports."""
    ports: set[int] = set()
    for item in filter(None, text.split(",")):
        first, _, last = item.partition("-")
        ports.update(range(int(first), int(last or first) + 1))
    return frozenset(ports)


def stray_listeners(listeners: Iterable[Listener], watched: frozenset[int]) -> list[str]:
    """A problem for every socket listening on a watched port where another host can reach it."""
    return [
        f"listening on {s.shown()} ({s.table}: {s.line})"
        for s in listeners
        if s.port in watched and not s.loopback_only
    ]
