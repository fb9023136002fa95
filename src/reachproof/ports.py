"""Port sets that stay ranges: `tcp/1-65535` is one pair of integers, never 65,535 objects."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

MIN_PORT = 1
MAX_PORT = 65535


class Protocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"


@dataclass(frozen=True, order=True)
class PortRange:
    """An inclusive range of ports, `first` ≤ `last`."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not MIN_PORT <= self.first <= self.last <= MAX_PORT:
            raise ValueError(f"invalid port range {self.first}-{self.last}")

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True)
class PortSet:
    """A normalised set of ports: sorted, disjoint, non-adjacent ranges."""

    ranges: tuple[PortRange, ...] = ()

    @classmethod
    def of(cls, items: Iterable[PortRange | int | tuple[int, int]]) -> PortSet:
        spans: list[tuple[int, int]] = []
        for item in items:
            if isinstance(item, PortRange):
                spans.append((item.first, item.last))
            elif isinstance(item, int):
                spans.append((item, item))
            else:
                spans.append(item)
        spans.sort()
        merged: list[list[int]] = []
        for first, last in spans:
            PortRange(first, last)  # validates bounds
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        return cls(tuple(PortRange(a, b) for a, b in merged))

    @classmethod
    def parse(cls, text: str) -> PortSet:
        """Parse `22`, `1-1024` or `22,80,8000-8100`; raises ValueError with what is wrong."""
        items: list[tuple[int, int]] = []
        for part in text.split(","):
            part = part.strip()
            if not part:
                raise ValueError(f"empty port in {text!r}")
            first_s, dash, last_s = part.partition("-")
            try:
                first = int(first_s)
                last = int(last_s) if dash else first
            except ValueError as exc:
                raise ValueError(f"not a port or range: {part!r}") from exc
            if first > last:
                raise ValueError(f"reversed port range {part!r}")
            if not (first >= MIN_PORT and last <= MAX_PORT):
                raise ValueError(f"port out of range {MIN_PORT}-{MAX_PORT}: {part!r}")
            items.append((first, last))
        return cls.of(items)

    def __len__(self) -> int:
        return sum(len(r) for r in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __iter__(self) -> Iterator[int]:
        for r in self.ranges:
            yield from range(r.first, r.last + 1)

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and any(r.first <= port <= r.last for r in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)

    def union(self, other: PortSet) -> PortSet:
        return PortSet.of((*self.ranges, *other.ranges))

    def difference(self, other: PortSet) -> PortSet:
        """Ports in self but not in other: one linear sweep over both sorted range lists."""
        out: list[PortRange] = []
        cuts = other.ranges
        j = 0
        for r in self.ranges:
            first = r.first
            while j < len(cuts) and cuts[j].last < first:
                j += 1
            k = j
            while k < len(cuts) and cuts[k].first <= r.last:
                if cuts[k].first > first:
                    out.append(PortRange(first, cuts[k].first - 1))
                first = max(first, cuts[k].last + 1)
                if first > r.last:
                    break
                k += 1
            if first <= r.last:
                out.append(PortRange(first, r.last))
        return PortSet(tuple(out))

    def intersection(self, other: PortSet) -> PortSet:
        """Ports in both: one linear sweep over both sorted range lists."""
        out: list[PortRange] = []
        a, b = self.ranges, other.ranges
        i = j = 0
        while i < len(a) and j < len(b):
            first, last = max(a[i].first, b[j].first), min(a[i].last, b[j].last)
            if first <= last:
                out.append(PortRange(first, last))
            if a[i].last < b[j].last:
                i += 1
            else:
                j += 1
        return PortSet(tuple(out))

    def sample(self, count: int, seed: int) -> PortSet:
        """A seeded random subset of `count` ports (all ports when the set is not larger)."""
        size = len(self)
        if count >= size:
            return self
        rng = random.Random(seed)
        picks = rng.sample(range(size), count)
        return PortSet.of(self._nth(i) for i in picks)

    def _nth(self, index: int) -> int:
        for r in self.ranges:
            if index < len(r):
                return r.first + index
            index -= len(r)
        raise IndexError(index)


@dataclass(frozen=True)
class Ports:
    """Ports of one protocol, as a named service or an inline set in a policy hop."""

    protocol: Protocol
    ports: PortSet

    def __str__(self) -> str:
        return f"{self.protocol}/{self.ports}"


def merge_ports(items: Iterable[Ports]) -> tuple[Ports, ...]:
    """Union per protocol, in a stable order (tcp first)."""
    by_proto: dict[Protocol, PortSet] = {}
    for item in items:
        by_proto[item.protocol] = by_proto.get(item.protocol, PortSet()).union(item.ports)
    return tuple(Ports(p, by_proto[p]) for p in Protocol if by_proto.get(p))


def parse_ports(text: str) -> tuple[Ports, ...]:
    """Parse `tcp/443,10205-10300, udp/4789` (a bare item continues the protocol before it)."""
    items: list[Ports] = []
    proto: Protocol | None = None
    for chunk in text.split(","):
        chunk = chunk.strip()
        proto_s, sep, rest = chunk.partition("/")
        if sep:
            try:
                proto = Protocol(proto_s.strip().lower())
            except ValueError as exc:
                raise ValueError(f"unknown protocol {proto_s!r} (expected tcp or udp)") from exc
        elif proto is None:
            raise ValueError(f"expected protocol/ports such as tcp/443, got {chunk!r}")
        else:
            rest = chunk
        items.append(Ports(proto, PortSet.parse(rest)))
    return merge_ports(items)
