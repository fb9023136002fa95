"""Loss per path, measured from answers that must come, and the attempts it calls for.

In the manner of nmap's and masscan's timing models, silence is only retried as often as the
path's measured loss warrants. A port that answered once (SYN-ACK or reset) answers every
SYN, so two kinds of observation measure the chance `p` that one attempt goes unanswered:
  - a port silent in the first round that answers the second was lost once: of A first-round
    answers, R such recoveries estimate p as R / A (the lost-twice ports stay unseen, the
    answers that came first are A = N(1 - p), the recoveries R = N p (1 - p));
  - a SYN re-sent to a port that already answered must answer again: unanswered re-sends
    are losses, counted directly.
A silent port then gets n = ceil(log(1e-6) / log p) attempts, so an open port is missed with
a chance below 10⁻⁶, at least 2 (the verdict rules' minimum for `filtered`) and at most what
the request allows. No measured loss: 2 attempts.

The tally is kept per destination address (the path from this vantage) for the worker's
lifetime; a path with too few measurements of its own borrows the vantage's whole tally when
that is worse, so a sweep that draws no answer at all still benefits from its neighbours'.
Stdlib only, Python 3.8+.
"""

from __future__ import annotations

import math
import threading
from typing import NamedTuple

MISS_TARGET = 1e-6  # per open port: the chance that every attempt went unanswered
MIN_ATTEMPTS = 2
MIN_PATH_TRIALS = 30  # below this a path's own ratio is too coarse to stand alone
MUST_ANSWER = ("syn-ack", "rst")  # a TCP port that answered so answers every SYN


def attempts_for(loss: float, most: int) -> int:
    """Attempts that bring an open port's miss chance below MISS_TARGET at `loss`, bounded."""
    floor = min(MIN_ATTEMPTS, most)
    if loss <= 0.0:
        return floor
    if loss >= 1.0:
        return most
    need = math.ceil(math.log(MISS_TARGET) / math.log(loss))
    return max(floor, min(most, need))


class Estimate(NamedTuple):
    loss: float
    lost: int
    trials: int
    basis: str  # "path", "vantage" or "none"

    def describe(self, attempts: int) -> str:
        if self.basis == "none":
            return f"no probe that must answer was seen yet: {attempts} attempts"
        where = "this path" if self.basis == "path" else "this vantage (too few on this path)"
        return (
            f"{self.loss:.3f} on {where}: {self.lost} of {self.trials} probes that must answer "
            f"went unanswered; {attempts} attempts at most"
        )


class LossMeter:
    """Must-answer trials and losses per destination address, shared by a worker's probes."""

    def __init__(self) -> None:
        self._paths: dict[str, tuple[int, int]] = {}  # address -> (trials, lost)
        self._lock = threading.Lock()

    def record(self, path: str, trials: int, lost: int) -> None:
        if trials <= 0:
            return
        with self._lock:
            had_trials, had_lost = self._paths.get(path, (0, 0))
            self._paths[path] = (had_trials + trials, had_lost + lost)

    def estimate(self, path: str, trials: int = 0, lost: int = 0) -> Estimate:
        """The loss to plan with on `path`, counting a probe's own not yet recorded tally."""
        with self._lock:
            had_trials, had_lost = self._paths.get(path, (0, 0))
            all_trials = sum(t for t, _ in self._paths.values()) + trials
            all_lost = sum(n for _, n in self._paths.values()) + lost
        path_trials, path_lost = had_trials + trials, had_lost + lost
        ratio = path_lost / path_trials if path_trials else 0.0
        own = Estimate(ratio, path_lost, path_trials, "path")
        if path_trials >= MIN_PATH_TRIALS:
            return own
        if all_trials == 0:
            return Estimate(0.0, 0, 0, "none")
        wide = Estimate(all_lost / all_trials, all_lost, all_trials, "vantage")
        if path_trials and own.loss >= wide.loss:
            return own
        return wide


_meter = LossMeter()


def meter() -> LossMeter:
    """This worker's one meter: every probe of a vantage reads and feeds the same tally."""
    return _meter
