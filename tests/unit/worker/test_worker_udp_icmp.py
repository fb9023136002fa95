"""udp and icmp probes through the real bundle on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from workerkit import Worker, port_states, record_of

from prereq import require


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with Worker() as running:
        yield running


def udp_echo(host: str) -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))

    def echo() -> None:
        while True:
            try:
                data, peer = sock.recvfrom(2048)
                sock.sendto(data, peer)
            except OSError:
                return

    threading.Thread(target=echo, daemon=True).start()
    return sock, sock.getsockname()[1]


def silent_udp(host: str) -> tuple[socket.socket, int]:
    """A bound socket that never answers: the datagram arrives, nothing comes back."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock, sock.getsockname()[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_udp_open_closed_and_open_filtered(worker: Worker, host: str) -> None:
    echo, open_port = udp_echo(host)
    quiet, quiet_port = silent_udp(host)
    closed = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind((host, 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    with echo, quiet:
        ports = [(p, p) for p in (open_port, quiet_port, closed_port)]
        result = worker.probe("udp", host, ports, timeout=0.3, attempts=2)
    states = port_states(result)
    assert states[open_port] == ("open", "udp-response")
    assert states[closed_port] == ("closed", "icmp-3-3" if ":" not in host else "icmp6-1-4")
    assert states[quiet_port] == ("open|filtered", "no-response")
    assert record_of(result, quiet_port)["attempts"] == 2
    payload = [v for k, v in result["detail"] if k == "payload"]
    assert payload and payload[0].startswith("reachproof ")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_icmp_echo(worker: Worker, host: str) -> None:
    require(root=True)  # raw sockets
    result = worker.probe("icmp", host, [(0, 0)], timeout=0.5)
    assert port_states(result) == {0: ("open", "echo-reply")}
    assert record_of(result, 0)["ttl"] == 64
