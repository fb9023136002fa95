"""How the engine probes: which TCP engine, how fast, how long, how many times.

The defaults are the ones the lab's loss test proves (docs/engine.md, "Defaults"): with 10 %
random loss on the path, a full-range sweep still finds every open port in 20 of 20 runs.
Silent ports get as many attempts as the loss measured on their path calls for
(worker/loss.py): 2 where none is seen, at most `attempts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reachproof.errors import UsageError
from reachproof.verdict import MIN_SILENT_ATTEMPTS

DEFAULT_TIMEOUT = 1.0  # seconds to wait for the answer to one attempt
# The most per silent port: 10 % loss each way (p ≈ 0.19 per attempt) needs 9 for 10⁻⁶.
DEFAULT_ATTEMPTS = 10
DEFAULT_PPS = 150_000  # packets per second over all vantages together
DEFAULT_VANTAGE_PPS = 150_000  # and per vantage
DEFAULT_IN_FLIGHT = 8  # probe requests outstanding per vantage
DEFAULT_START_TIMEOUT = 20.0  # from spawning a worker to its hello
DEFAULT_GRACE = 15.0  # slack on top of a probe's expected duration before the worker counts as hung


class TcpEngine(StrEnum):
    SYN = "syn"  # raw SYN where the vantage permits it, connect otherwise (and says so)
    CONNECT = "connect"  # connect() everywhere
    NMAP = "nmap"  # nmap -sS at the vantage, as a cross-check


@dataclass(frozen=True)
class EngineOptions:
    engine: TcpEngine = TcpEngine.SYN
    pps: int = DEFAULT_PPS
    vantage_pps: int = DEFAULT_VANTAGE_PPS
    timeout: float = DEFAULT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    in_flight: int = DEFAULT_IN_FLIGHT
    start_timeout: float = DEFAULT_START_TIMEOUT
    grace: float = DEFAULT_GRACE
    # The worker's source; None ships reachproof.worker.bundle.worker_source() (tests pass fakes).
    worker_source: str | None = None
    # Probe silent TCP ports again before they fail an allow/reach rule (engine/recheck.py);
    # `scan` judges no rule, so it does not.
    recheck: bool = True

    def __post_init__(self) -> None:
        if self.attempts < MIN_SILENT_ATTEMPTS:
            # Fewer attempts could never support a deny verdict on a silent port.
            raise UsageError(f"--attempts must be at least {MIN_SILENT_ATTEMPTS}")
        if self.pps < 1 or self.vantage_pps < 1:
            raise UsageError("--pps must be a positive number of packets per second")
        if not self.timeout > 0:
            raise UsageError("--timeout must be a positive number of seconds")
        if self.in_flight < 1:
            raise UsageError("at least one probe must be allowed in flight per vantage")
