"""What a waiver covers, and what became of it in a run. Pure: no I/O, no clock (`today` is
always passed in).

A waiver covers one FAIL evidence item when the rule matches and every scope it names does: the
hop (its 1-based number across the rule, as reports show it, or its label), the target (host
name or address) and the ports (each of the item's ports inside the waiver's set, same
protocol). It never covers anything but a FAIL: an undecided probe stays INCONCLUSIVE. A waiver
is valid through its `expires` date; from the next day on it waives nothing and is reported as
expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from reachproof.ports import Ports, PortSet


class WaiverStatus(StrEnum):
    APPLIED = "applied"  # waived at least one FAIL evidence item
    UNUSED = "unused"  # valid, but matched no FAIL in this run
    EXPIRED = "expired"  # past its date: waives nothing
    NOT_CHECKED = "not-checked"  # valid, but its rule was left out of this run (`--rule`)


@dataclass(frozen=True)
class Waiver:
    ref: str  # `waivers.yaml:3`: where the waiver starts, its identity in every report
    line: int
    rule: str
    hop: int | str | None
    target: str | None
    ports: tuple[Ports, ...] | None
    justification: str
    accepted_by: str
    expires: date

    def expired(self, today: date) -> bool:
        return today > self.expires

    def covers(
        self,
        rule: str,
        hop_number: int,
        hop_label: str,
        target: str,
        address: str | None,
        kind: str,
        ports: str,
    ) -> bool:
        """Whether this waiver's scope holds the evidence item described (expiry aside)."""
        if rule != self.rule:
            return False
        if isinstance(self.hop, int) and self.hop != hop_number:
            return False
        if isinstance(self.hop, str) and _arrows(self.hop) != _arrows(hop_label):
            return False
        if self.target is not None and self.target not in (target, address):
            return False
        if self.ports is None:
            return True
        if not ports:  # an app fetch or a check has no ports a port waiver could name
            return False
        wanted = PortSet.parse(ports)
        allowed = PortSet.of(
            r for p in self.ports if str(p.protocol) == kind for r in p.ports.ranges
        )
        return not wanted.difference(allowed)

    def scope(self) -> str:
        """`R3 hop 1 agent1 tcp/6001`: what the waiver names, for report lines."""
        parts = [self.rule]
        if self.hop is not None:
            parts.append(f"hop {self.hop}")
        if self.target is not None:
            parts.append(self.target)
        if self.ports is not None:
            parts.append(", ".join(map(str, self.ports)))
        return " ".join(parts)


def _arrows(label: str) -> str:
    return " ".join(label.replace("->", "→").split())


@dataclass(frozen=True)
class WaiverOutcome:
    waiver: Waiver
    status: WaiverStatus
    matched: int  # FAIL evidence items in its scope (waived, or still failing once expired)


@dataclass(frozen=True)
class WaiverFile:
    path: str
    sha256: str
    waivers: tuple[Waiver, ...]
