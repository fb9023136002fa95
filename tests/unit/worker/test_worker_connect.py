"""tcp-connect probes through the real bundle against loopback listeners (no root)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from workerkit import Worker, port_states, record_of


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with Worker() as running:
        yield running


def listening(host: str, count: int) -> list[socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = []
    for _ in range(count):
        sock = socket.socket(family)
        sock.bind((host, 0))
        sock.listen(64)
        sockets.append(sock)
    return sockets


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_open_and_closed_ports(worker: Worker, host: str) -> None:
    socks = listening(host, 2)
    try:
        ports = sorted(s.getsockname()[1] for s in socks)
        result = worker.probe(
            "tcp-connect", host, [(ports[0] - 1, ports[0] + 1), (ports[1], ports[1])]
        )
        states = port_states(result)
        assert states[ports[0]] == ("open", "syn-ack")
        assert states[ports[1]] == ("open", "syn-ack")
        for port in (ports[0] - 1, ports[0] + 1):
            if port != ports[1]:
                assert states[port] == ("closed", "rst")
        record = record_of(result, ports[0])
        assert record["attempts"] == 1 and record["rtt_ms"] is not None and record["ttl"] is None
    finally:
        for sock in socks:
            sock.close()


def test_a_thousand_ports_group_into_few_records(worker: Worker) -> None:
    socks = listening("127.0.0.1", 1)
    port = socks[0].getsockname()[1]
    first = max(1, port - 500)
    try:
        result = worker.probe("tcp-connect", "127.0.0.1", [(first, first + 999)], pps=0)
    finally:
        socks[0].close()
    states = port_states(result)
    assert len(states) == 1000
    assert states[port] == ("open", "syn-ack")
    assert len(result["results"]) <= 10
    progress = [m for m in worker.messages if m["op"] == "progress" and m["id"] == result["id"]]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 1000


def test_pps_paces_connects(worker: Worker) -> None:
    import time

    started = time.monotonic()
    worker.probe("tcp-connect", "127.0.0.1", [(1, 40)], pps=100)
    assert time.monotonic() - started >= 0.3


def test_resolve_localhost_and_report_the_address(worker: Worker) -> None:
    socks = listening("127.0.0.1", 1)
    port = socks[0].getsockname()[1]
    try:
        result = worker.probe(
            "tcp-connect", None, [(port, port)], resolve="localhost", family=4, scope=["127.0.0.1"]
        )
    finally:
        socks[0].close()
    assert port_states(result) == {port: ("open", "syn-ack")}
    assert ["resolved", "127.0.0.1"] in result["detail"]
