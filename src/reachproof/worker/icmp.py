"""`icmp` probes: echo request over the shared raw ICMP socket, `open` on an echo reply.

Every requested "port" (a placeholder, normally [[0, 0]]) gets the same outcome. Without raw
sockets the probe is an error that says so: an unprivileged ping socket would depend on the
vantage's ping_group_range and could not see the reply's TTL.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
from collections import deque
from typing import Any

from reachproof.worker.local import local_failure
from reachproof.worker.packets import checksum
from reachproof.worker.rawhub import hub
from reachproof.worker.target import Target
from reachproof.worker.wire import Outcome, ProbeReport, Progress, Request

ECHO_REQUEST_V4 = 8
ECHO_REQUEST_V6 = 128
POLL = 0.01


def echo_request(family: int, ident: int, seq: int, payload: bytes) -> bytes:
    if family == socket.AF_INET:
        header = struct.pack("!BBHHH", ECHO_REQUEST_V4, 0, 0, ident, seq)
        csum = checksum(header + payload)
        return struct.pack("!BBHHH", ECHO_REQUEST_V4, 0, csum, ident, seq) + payload
    # The kernel computes ICMPv6 checksums on raw ICMPv6 sockets.
    return struct.pack("!BBHHH", ECHO_REQUEST_V6, 0, 0, ident, seq) + payload


def run_icmp(request: Request, target: Target, report: ProbeReport, progress: Progress) -> None:
    try:
        shared = hub(target.family)
    except PermissionError as exc:
        report.error = f"ICMP echo needs raw sockets, not permitted here: {exc}"
        return
    replies: deque[tuple[tuple[Any, ...], float]] = deque()
    for _ in range(16):
        ident = secrets.randbits(16)
        try:
            shared.register(("echo", ident), lambda _k, r: replies.append((r, time.monotonic())))
            break
        except RuntimeError:
            continue
    else:
        report.error = "no free ICMP echo identifier"
        return
    dst = socket.inet_pton(target.family, target.address)
    outcome = Outcome("filtered", "timeout", request.attempts)
    try:
        for attempt in range(1, request.attempts + 1):
            sent = time.monotonic()
            try:
                shared.icmp.sendto(
                    echo_request(target.family, ident, attempt, b"reachproof"),
                    (target.address, 0),
                )
            except OSError as exc:
                outcome = local_failure(exc.errno or 0, attempt)
                break
            deadline = sent + request.timeout
            found = None
            while found is None and time.monotonic() < deadline:
                time.sleep(POLL)
                while replies:
                    (src, _ident, _seq, ttl), at = replies.popleft()
                    if src == dst:
                        found = Outcome("open", "echo-reply", attempt, (at - sent) * 1000.0, ttl)
            if found is not None:
                outcome = found
                break
    finally:
        shared.unregister(("echo", ident))
    for port in request.ports:
        report.outcomes[port] = outcome
    progress.update(len(request.ports))
