"""`udp-sense`: the far end of a two-ended UDP probe (DESIGN.md, "Two-ended probes").

UDP silence decides nothing: a datagram may have been delivered to a port that stays quiet, or
dropped on the way. A sensor at the target's own vantage settles it. A raw IPPROTO_UDP socket
gets a copy of every UDP datagram the host's stack delivers locally — after the host's input
firewall, whether or not anything listens on the port, also for ports the kernel itself owns
(the VXLAN endpoint). The sensor records the payload token and destination port of every
reachproof datagram (`b"reachproof <16 hex digits>\\n"`, see udp.py) until the engine sends
`{"op": "sense-stop", "id": …}` or `timeout` seconds pass, then answers with one detail
`seen` = "<token> <port>" per datagram seen. Its first progress line says it is listening.
"""

from __future__ import annotations

import select
import socket
import threading
import time

from reachproof.worker.wire import ProbeReport, Progress, Request

MARKER = b"reachproof "
TOKEN_LENGTH = 16
POLL_SECONDS = 0.1
MAX_SEEN = 100_000  # distinct (token, port) pairs kept; a sensor is bounded like every sweep

_stops: dict[str, threading.Event] = {}
_lock = threading.Lock()


def stop_sensor(sensor_id: str) -> bool:
    """Ask a running sensor to finish; False if there is none by that id."""
    with _lock:
        event = _stops.get(sensor_id)
    if event is None:
        return False
    event.set()
    return True


def _open() -> list[tuple[int, socket.socket]]:
    sockets: list[tuple[int, socket.socket]] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_UDP)
        except OSError:
            continue
        sock.setblocking(False)
        sockets.append((family, sock))
    return sockets


def _parse(family: int, packet: bytes) -> tuple[str, int] | None:
    """(token, destination port) of a reachproof datagram, else None.

    IPv4 raw sockets deliver the IP header; IPv6 raw sockets start at the UDP header.
    """
    offset = (packet[0] & 0x0F) * 4 if family == socket.AF_INET and packet else 0
    udp = packet[offset:]
    if len(udp) < 8 + len(MARKER) + TOKEN_LENGTH:
        return None
    payload = udp[8:]
    if not payload.startswith(MARKER):
        return None
    token = payload[len(MARKER) : len(MARKER) + TOKEN_LENGTH]
    try:
        text = token.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text, int.from_bytes(udp[2:4], "big")


def run_sense(request: Request, report: ProbeReport, progress: Progress) -> None:
    sockets = _open()
    if not sockets:
        report.error = "raw sockets not permitted: cannot sense UDP delivery here"
        return
    stop = threading.Event()
    with _lock:
        _stops[request.id] = stop
    seen: set[tuple[str, int]] = set()
    deadline = time.monotonic() + request.timeout
    try:
        report.add_detail(
            "sensing", ",".join("v4" if f == socket.AF_INET else "v6" for f, _ in sockets)
        )
        progress.update(0, force=True)  # listening: the engine may start the probes now
        by_fd = {sock.fileno(): (family, sock) for family, sock in sockets}
        while not stop.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select(list(by_fd), [], [], POLL_SECONDS)
            for fd in ready:
                family, sock = by_fd[fd]
                while len(seen) < MAX_SEEN:
                    try:
                        packet = sock.recv(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    found = _parse(family, packet)
                    if found is not None:
                        seen.add(found)
        # Datagrams already in the socket buffers when the stop came still count.
        for family, sock in sockets:
            while len(seen) < MAX_SEEN:
                try:
                    found = _parse(family, sock.recv(65535))
                except (BlockingIOError, InterruptedError):
                    break
                if found is not None:
                    seen.add(found)
        if not stop.is_set():
            report.add_detail("sense-timeout", f"stopped after {request.timeout:g}s")
    finally:
        with _lock:
            _stops.pop(request.id, None)
        for _, sock in sockets:
            sock.close()
    for token, port in sorted(seen):
        report.add_detail("seen", f"{token} {port}")
