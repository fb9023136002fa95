"""tcp-syn through the real bundle on loopback (raw sockets: root), and its fallback."""

from __future__ import annotations

import os
import socket
import time

import pytest
from workerkit import Worker, port_states, record_of

from prereq import require


def listener(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    sock.listen(16)
    return sock


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_syn_open_and_closed_with_ttl(host: str) -> None:
    require(root=True)  # raw sockets
    with listener(host) as sock, Worker() as worker:
        port = sock.getsockname()[1]
        result = worker.probe("tcp-syn", host, [(port - 2, port + 2)], timeout=0.5)
        states = port_states(result)
        assert states[port] == ("open", "syn-ack")
        assert states[port + 1] in {("closed", "rst"), ("open", "syn-ack")}
        record = record_of(result, port)
        assert record["ttl"] == 64 and record["attempts"] == 1 and record["rtt_ms"] is not None
        assert result["degraded"] is None


def test_syn_full_range_sweep_of_loopback() -> None:
    require(root=True)  # raw sockets
    with listener("127.0.0.1") as sock, Worker() as worker:
        port = sock.getsockname()[1]
        started = time.monotonic()
        result = worker.probe("tcp-syn", "127.0.0.1", [(1, 65535)], timeout=0.5, wait=60)
        took = time.monotonic() - started
    states = port_states(result)
    assert len(states) == 65535 and states[port] == ("open", "syn-ack")
    assert {s for s, _ in states.values()} <= {"open", "closed"}
    assert took < 30


def test_without_raw_sockets_syn_falls_back_to_connect() -> None:
    if os.geteuid() == 0:
        require(programs=["setpriv"])  # to run the worker unprivileged
    prefix = (
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    )
    with listener("127.0.0.1") as sock:
        port = sock.getsockname()[1]
        worker = Worker(prefix=prefix)
        try:
            assert worker.hello()["raw"] is False
            result = worker.probe("tcp-syn", "127.0.0.1", [(port, port)])
            assert port_states(result) == {port: ("open", "syn-ack")}
            assert result["degraded"] == "raw sockets not permitted: connect probes used"
        finally:
            assert worker.close() == 0
