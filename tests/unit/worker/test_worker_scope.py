"""The worker's scope guard: nothing leaves for an address outside the request's `scope`,
whether the request named it or the vantage's resolver returned it for a hostname.

Each case has a witness at the address the probe would reach (a listener, a bound UDP socket,
a raw sniffer) and a positive control: the same probe with that address in scope is seen by
the same witness, so "the witness saw nothing" means nothing was sent.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from workerkit import Worker, port_states

from prereq import require

# (hostname the worker resolves, the address it resolves to, an address that is not it)
NAMES = [("localhost", "127.0.0.1", "127.0.0.2"), ("127.0.0.2", "127.0.0.2", "127.0.0.1")]
KINDS = ["tcp-connect", "tcp-syn", "udp", "http"]


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with Worker() as running:
        yield running


class Witness:
    """Whatever reaches `address`:`port` for one probe kind."""

    def __init__(self, kind: str, address: str) -> None:
        self.kind = kind
        self.address = address
        stream = kind in ("tcp-connect", "http", "tcp-syn")
        self.sock = socket.socket(
            socket.AF_INET, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM
        )
        self.sock.bind((address, 0))
        if stream:
            self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        # A SYN probe never completes a connection: watch the wire for its SYN instead.
        self.sniffer = (
            socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
            if kind == "tcp-syn"
            else None
        )
        # An HTTP probe waits for an answer: give it one at once, and note that it came.
        self.answered = threading.Event()
        if kind == "http":
            threading.Thread(target=self._answer, daemon=True).start()

    def _answer(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return  # closed: the test is over
        self.answered.set()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 204 No Content\r\nContent-Length: 0\r\n\r\n")

    def saw_anything(self) -> bool:
        if self.kind == "http":
            return self.answered.wait(0.2)
        if self.sniffer is None:
            return bool(select.select([self.sock], [], [], 0.2)[0])
        while select.select([self.sniffer], [], [], 0.2)[0]:
            packet = self.sniffer.recv(65535)
            header = (packet[0] & 0x0F) * 4
            destination = socket.inet_ntoa(packet[16:20])
            (port,) = struct.unpack("!H", packet[header + 2 : header + 4])
            if destination == self.address and port == self.port:
                return True
        return False

    def close(self) -> None:
        self.sock.close()
        if self.sniffer is not None:
            self.sniffer.close()


@contextmanager
def witness(kind: str, address: str) -> Iterator[Witness]:
    if kind == "tcp-syn":
        require(root=True)  # raw sockets
    seen = Witness(kind, address)
    try:
        yield seen
    finally:
        seen.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "resolved", "other"), NAMES)
def test_a_name_resolved_outside_the_scope_sends_nothing(
    worker: Worker, kind: str, name: str, resolved: str, other: str
) -> None:
    with witness(kind, resolved) as seen:
        ports = [(seen.port, seen.port)]
        refused = worker.probe(
            kind, None, ports, timeout=0.3, resolve=name, family=4, scope=[other]
        )
        assert not seen.saw_anything()
        allowed = worker.probe(
            kind, None, ports, timeout=0.3, resolve=name, family=4, scope=[resolved]
        )
        assert seen.saw_anything()  # the control: this witness does see such a probe
    assert refused["error"] == (
        f"{name} resolved at the vantage to {resolved}, outside the probe's scope ({other}): "
        "nothing sent"
    )
    assert port_states(refused) == {seen.port: ("error", "probe-failed")}
    assert allowed["error"] is None
    assert ["resolved", resolved] in allowed["detail"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_address_outside_the_scope_sends_nothing(worker: Worker, kind: str) -> None:
    with witness(kind, "127.0.0.1") as seen:
        ports = [(seen.port, seen.port)]
        for scope in (["127.0.0.2"], []):
            result = worker.probe(kind, "127.0.0.1", ports, timeout=0.3, scope=scope)
            assert "outside the probe's scope" in result["error"]
        assert not seen.saw_anything()
        worker.probe(kind, "127.0.0.1", ports, timeout=0.3, scope=["127.0.0.1"])
        assert seen.saw_anything()


def test_spellings_of_one_address_are_one_address(worker: Worker) -> None:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        result = worker.probe("tcp-connect", "0:0::1", [(port, port)], scope=["0::0:1"])
    assert port_states(result) == {port: ("open", "syn-ack")}


def test_a_malformed_scope_is_a_bad_request(worker: Worker) -> None:
    result = worker.probe("tcp-connect", "127.0.0.1", [(9, 9)], scope=["not-an-address"])
    assert result["error"].startswith("bad request: scope:")
