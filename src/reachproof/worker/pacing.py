"""Packets-per-second pacing and file-descriptor budgets shared by the probes."""

from __future__ import annotations

import resource
import threading
import time

FD_RESERVE = 64  # descriptors kept free for pipes, raw sockets and other probes


class Pacer:
    """Spends `pps` packets per second; `take(n)` sleeps until n more packets may go out.

    Pacing per batch (not per packet) keeps the hot send loops free of clock reads.
    """

    def __init__(self, pps: int) -> None:
        self.interval = 1.0 / pps if pps > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def take(self, count: int = 1) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            # Never bank more than a short burst of unused budget after an idle spell.
            self._next = max(self._next, now - 0.01)
            self._next += count * self.interval
            delay = self._next - now
        if delay > 0:
            time.sleep(delay)


_shared: dict[int, Pacer] = {}
_shared_lock = threading.Lock()


def shared_pacer(pps: int) -> Pacer:
    """The one pacer of this worker for `pps`: every probe the engine gives the same budget
    draws from one bucket, so the vantage's rate holds however many probes run at once and a
    probe running alone gets all of it."""
    with _shared_lock:
        pacer = _shared.get(pps)
        if pacer is None:
            pacer = _shared[pps] = Pacer(pps)
        return pacer


def fd_budget(wanted: int) -> int:
    """How many sockets a probe may hold open, raising the soft limit toward the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft // 4 - FD_RESERVE))
