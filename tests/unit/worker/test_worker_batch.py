"""The batched SYN sender: slots patched exactly like single packets, and the same answers
whether packets leave in sendmmsg batches or one sendto at a time (loopback, root)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from workerkit import KeyTable

from prereq import require
from reachproof.worker import batch
from reachproof.worker.loss import LossMeter
from reachproof.worker.packets import TCP_HEADER
from reachproof.worker.rawhub import hub
from reachproof.worker.syn import Sweep, SynSession
from reachproof.worker.target import Target
from reachproof.worker.wire import Output, Progress, Request


@pytest.mark.parametrize(("source", "target"), [("127.0.0.1", "192.0.2.7"), ("::1", "2001:db8::7")])
def test_every_slot_is_the_packet_a_single_send_would_be(source: str, target: str) -> None:
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    session = SynSession(KeyTable(), Target(target, family, None), source)
    carrier = socket.socket(family, socket.SOCK_DGRAM)  # only its descriptor is held
    try:
        sender, _how = batch.open_batch(carrier, family, target, bytes(session.template))
        assert sender is not None, _how
        session.batch = sender
        ports = [1, 22, 443, 8080, 65535, *range(30000, 30200)]
        session.fill(ports)
        slots = sender.buffer
        for slot, port in enumerate(ports):
            start = slot * TCP_HEADER
            assert bytes(slots[start : start + TCP_HEADER]) == session.packet(port), port
    finally:
        carrier.close()
        session.close()


def test_without_sendmmsg_the_sender_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "_sendmmsg", None)
    monkeypatch.setattr(batch, "_why_not", "sendmmsg unavailable (test)")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender, note = batch.open_batch(sock, socket.AF_INET, "127.0.0.1", b"\0" * TCP_HEADER)
    finally:
        sock.close()
    assert sender is None and note == "one sendto per packet: sendmmsg unavailable (test)"


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def _sweep(first: int, last: int) -> tuple[dict[int, tuple[str, str]], str]:
    target = Target("127.0.0.1", socket.AF_INET, None)
    session = SynSession(hub(socket.AF_INET), target, "127.0.0.1")
    try:
        request = Request("b", "tcp-syn", "127.0.0.1", 4, None, list(range(first, last + 1)),
                          0.3, 2, 0, {}, frozenset({"127.0.0.1"}))  # fmt: skip
        sweep = Sweep(session, request, LossMeter())
        sweep.run(Progress(Output(lambda _line: None, lambda: None), "b", len(request.ports)))
        return {p: (o.state, o.reason) for p, o in sweep.answers.items()}, session.sender()
    finally:
        session.close()


def test_batched_and_single_sends_see_the_same_ports(
    listening: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(root=True)  # raw sockets
    first, last = max(1, listening - 1500), min(65535, listening + 1500)
    batched, how = _sweep(first, last)
    assert how == f"sendmmsg, {batch.SLOTS} packets per call"
    monkeypatch.setattr(batch, "_sendmmsg", None)
    monkeypatch.setattr(batch, "_why_not", "sendmmsg unavailable (test)")
    single, fallback = _sweep(first, last)
    assert fallback.startswith("one sendto per packet")
    assert batched[listening] == single[listening] == ("open", "syn-ack")
    assert len(batched) == len(single) == last - first + 1
    # Loopback: every other port resets (another test's listener may come and go meanwhile).
    assert {s for s in batched.values()} <= {("open", "syn-ack"), ("closed", "rst")}
    assert {s for s in single.values()} <= {("open", "syn-ack"), ("closed", "rst")}
