"""Progress events: what the terminal shows while probes run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProbeProgress:
    """`done` of `total` ports (or app/check probes) of one spec at one vantage are decided."""

    vantage: str
    spec_id: str
    done: int
    total: int

    @property
    def finished(self) -> bool:
        return self.done >= self.total


ProgressSink = Callable[[ProbeProgress], None]
