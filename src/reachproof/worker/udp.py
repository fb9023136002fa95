"""`udp` probes: a small datagram with a unique payload per port, one connected socket each.

A connected UDP socket with IP_RECVERR receives the ICMP error its datagram drew, with type,
code and sender, so no privilege is needed. Any UDP reply is `open`; port unreachable from
the target is `closed`, from anyone else `prohibited`; admin-prohibited is `prohibited`;
host/net unreachable is `unreachable`; silence after every attempt is `open|filtered` and
never `open` (DESIGN.md). Targets rate-limit port-unreachable messages (Linux: a burst of
about 6, then 1/s per source), so a wide sweep of closed ports mostly comes back silent.
"""

from __future__ import annotations

import errno
import secrets
import selectors
import socket
import time

from reachproof.worker.icmp_errors import classify, enable_recverr, read_error_queue
from reachproof.worker.local import local_failure
from reachproof.worker.pacing import Pacer, fd_budget, shared_pacer
from reachproof.worker.target import Target
from reachproof.worker.wire import Outcome, ProbeReport, Progress, Request

MAX_IN_FLIGHT = 256


def _received(sock: socket.socket, target: Target, attempt: int, rtt: float) -> Outcome | None:
    """The outcome for a socket the selector reported, or None if nothing decisive arrived."""
    icmp = read_error_queue(sock)
    if icmp is not None:
        state, reason = classify(icmp, target.address, "udp")
        return Outcome(state, reason, attempt, rtt)
    try:
        sock.recv(2048)
    except (BlockingIOError, InterruptedError):
        return None
    except ConnectionRefusedError:
        return Outcome("closed", "port-unreachable", attempt, rtt)
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return Outcome("unreachable", "icmp-unreachable", attempt, rtt)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return Outcome("prohibited", "icmp-prohibited", attempt, rtt)
        return Outcome("error", errno.errorcode.get(exc.errno or 0, "oserror").lower(), attempt)
    return Outcome("open", "udp-response", attempt, rtt)


def _probe_chunk(
    ports: list[int],
    request: Request,
    target: Target,
    payload: bytes,
    pacer: Pacer,
    outcomes: dict[int, Outcome],
) -> None:
    selector = selectors.DefaultSelector()
    sockets: dict[int, socket.socket] = {}
    try:
        for port in ports:
            sock = socket.socket(target.family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            enable_recverr(sock, target.family)
            try:
                sock.connect((target.address, port))
            except OSError as exc:
                sock.close()
                outcomes[port] = local_failure(exc.errno or 0, 1)
                continue
            sockets[port] = sock
            selector.register(sock, selectors.EVENT_READ, port)
        silent = [p for p in ports if p in sockets]
        sent_at: dict[int, float] = {}
        for attempt in range(1, request.attempts + 1):
            if not silent:
                break
            for port in silent:
                pacer.take()
                sent_at[port] = time.monotonic()
                try:
                    sockets[port].send(payload)
                except OSError as exc:
                    outcomes[port] = local_failure(exc.errno or 0, attempt)
            deadline = time.monotonic() + request.timeout
            while time.monotonic() < deadline and any(p not in outcomes for p in silent):
                for key, _events in selector.select(max(0.0, deadline - time.monotonic())):
                    port = key.data
                    if port in outcomes:
                        continue
                    rtt = (time.monotonic() - sent_at[port]) * 1000.0
                    outcome = _received(sockets[port], target, attempt, rtt)
                    if outcome is not None:
                        outcomes[port] = outcome
                        selector.unregister(sockets[port])
            silent = [p for p in silent if p not in outcomes]
        for port in silent:
            outcomes[port] = Outcome("open|filtered", "no-response", request.attempts)
    finally:
        selector.close()
        for sock in sockets.values():
            sock.close()


def run_udp(request: Request, target: Target, report: ProbeReport, progress: Progress) -> None:
    chunk = fd_budget(MAX_IN_FLIGHT)
    pacer = shared_pacer(request.pps)
    # Unique per probe, so a two-ended check (a sensor at the target) can recognise it.
    payload = b"reachproof " + secrets.token_hex(8).encode() + b"\n"
    report.add_detail("payload", payload.decode().strip())
    for start in range(0, len(request.ports), chunk):
        _probe_chunk(
            request.ports[start : start + chunk], request, target, payload, pacer, report.outcomes
        )
        progress.update(len(report.outcomes))
