"""`tcp-connect` probes: non-blocking connect(), hundreds in flight, no privilege needed.

A connect cannot see the TTL of the answer, so a reset is reported as `closed` with reason
`rst` whoever sent it; telling a firewall's reset from the target's is the SYN probe's job.
ICMP errors are read from the socket's error queue (IP_RECVERR) so admin-prohibited and host
unreachable stay apart, which errno alone cannot do.
"""

from __future__ import annotations

import contextlib
import errno
import select
import selectors
import socket
import struct
import time
from collections import deque

from reachproof.worker.icmp_errors import classify, enable_recverr, read_error_queue
from reachproof.worker.local import local_failure
from reachproof.worker.loss import MIN_ATTEMPTS, MUST_ANSWER, attempts_for, meter
from reachproof.worker.pacing import fd_budget, shared_pacer
from reachproof.worker.target import Target
from reachproof.worker.wire import Outcome, ProbeReport, Progress, Request

MAX_IN_FLIGHT = 256
_LINGER_RESET = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left per open port


def errno_name(code: int) -> str:
    return errno.errorcode.get(code, str(code)).lower()


def connect_outcome(
    sock: socket.socket, target: Target, code: int, attempt: int, rtt_ms: float | None
) -> Outcome:
    """The port state for connect()'s final status `code` (0 = connected)."""
    if code == 0:
        return Outcome("open", "syn-ack", attempt, rtt_ms)
    icmp = read_error_queue(sock)
    if icmp is not None:
        state, reason = classify(icmp, target.address, "tcp")
        return Outcome(state, reason, attempt, rtt_ms)
    if code == errno.ECONNREFUSED:
        return Outcome("closed", "rst", attempt, rtt_ms)
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return Outcome("unreachable", "icmp-unreachable", attempt, rtt_ms)
    if code in (errno.EACCES, errno.EPERM):
        return Outcome("prohibited", "icmp-prohibited", attempt, rtt_ms)
    if code == errno.ETIMEDOUT:
        return Outcome("filtered", "timeout", attempt)
    return Outcome("error", errno_name(code), attempt)


class _Attempt:
    __slots__ = ("attempt", "deadline", "port", "sock", "started")

    def __init__(self, sock: socket.socket, port: int, attempt: int, timeout: float) -> None:
        self.sock = sock
        self.port = port
        self.attempt = attempt
        self.started = time.monotonic()
        self.deadline = self.started + timeout


def _close(sock: socket.socket, reset: bool) -> None:
    if reset:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


def run_connect(request: Request, target: Target, report: ProbeReport, progress: Progress) -> None:
    limit = fd_budget(MAX_IN_FLIGHT)
    pacer = shared_pacer(request.pps)
    queue = deque((port, 1) for port in request.ports)
    in_flight: dict[int, _Attempt] = {}
    selector = selectors.DefaultSelector()
    outcomes = report.outcomes
    losses = meter()
    # Loss on the path as it shows (see `loss`): answers to first attempts, and ports that
    # answered only their second.
    tally = {1: 0, 2: 0}

    def finish(item: _Attempt, outcome: Outcome) -> None:
        selector.unregister(item.sock)
        del in_flight[item.sock.fileno()]
        _close(item.sock, outcome.state == "open")
        outcomes[item.port] = outcome
        if outcome.reason in MUST_ANSWER and item.attempt in tally:
            tally[item.attempt] += 1

    def allowed(attempt: int) -> int:
        if attempt < MIN_ATTEMPTS:
            return MIN_ATTEMPTS
        estimate = losses.estimate(target.address, tally[1], tally[2])
        return attempts_for(estimate.loss, request.attempts)

    try:
        while queue or in_flight:
            while queue and len(in_flight) < limit:
                port, attempt = queue.popleft()
                pacer.take()
                sock = socket.socket(target.family, socket.SOCK_STREAM)
                sock.setblocking(False)
                enable_recverr(sock, target.family)
                code = sock.connect_ex((target.address, port))
                if code in (errno.EINPROGRESS, errno.EAGAIN, 0):
                    item = _Attempt(sock, port, attempt, request.timeout)
                    in_flight[sock.fileno()] = item
                    selector.register(sock, selectors.EVENT_WRITE, item)
                    if code == 0:  # loopback can connect synchronously
                        finish(item, Outcome("open", "syn-ack", attempt, 0.0))
                else:
                    sock.close()
                    outcomes[port] = local_failure(code, attempt)
            if not in_flight:
                continue
            now = time.monotonic()
            wait = max(0.0, min(item.deadline for item in in_flight.values()) - now)
            for key, _events in selector.select(min(wait, 0.05) if queue else wait):
                item = key.data
                code = item.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                rtt = (time.monotonic() - item.started) * 1000.0
                finish(item, connect_outcome(item.sock, target, code, item.attempt, rtt))
            now = time.monotonic()
            for item in [i for i in in_flight.values() if i.deadline <= now]:
                selector.unregister(item.sock)
                del in_flight[item.sock.fileno()]
                item.sock.close()
                if item.attempt < min(request.attempts, allowed(item.attempt)):
                    queue.append((item.port, item.attempt + 1))
                else:
                    outcomes[item.port] = Outcome("filtered", "timeout", item.attempt)
            progress.update(len(outcomes))
        estimate = losses.estimate(target.address, tally[1], tally[2])
        losses.record(target.address, tally[1], tally[2])
        most = max((o.attempts for o in outcomes.values() if o.state == "filtered"), default=1)
        report.add_detail("loss", estimate.describe(most))
    finally:
        for item in list(in_flight.values()):
            item.sock.close()
        selector.close()


def connect_blocking(
    target: Target, port: int, timeout: float, attempts: int
) -> tuple[socket.socket | None, Outcome]:
    """One connection for a client probe (HTTP, WebSocket): the socket if it opened, and the
    port's outcome classified exactly as `tcp-connect` would."""
    outcome = Outcome("filtered", "timeout", attempts)
    for attempt in range(1, attempts + 1):
        sock = socket.socket(target.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        enable_recverr(sock, target.family)
        started = time.monotonic()
        code = sock.connect_ex((target.address, port))
        if code not in (0, errno.EINPROGRESS, errno.EAGAIN):
            sock.close()
            return None, local_failure(code, attempt)
        if code != 0:
            _, writable, _ = select.select([], [sock], [], timeout)
            if not writable:
                sock.close()
                continue
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        rtt = (time.monotonic() - started) * 1000.0
        outcome = connect_outcome(sock, target, code, attempt, rtt)
        if outcome.state == "open":
            sock.setblocking(True)
            return sock, outcome
        sock.close()
        return None, outcome
    return None, outcome
