"""Source ports of raw SYN sessions: one port, one session, whatever local address it sends from.

The raw receiver knows answers by ("tcp", port) alone, so a port must never belong to two
live sessions of one worker, not even when they send from different local addresses (a
container on two bridges sweeps from both). No root needed: the hub here keeps only the
real key table, without raw sockets.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest
from workerkit import KeyTable

from reachproof.worker.syn import SynSession
from reachproof.worker.target import Target


@pytest.fixture
def table() -> KeyTable:
    return KeyTable()


@pytest.fixture
def session(table: KeyTable) -> Iterator[SynSession]:
    opened = SynSession(table, Target("127.0.0.1", socket.AF_INET, None), "127.0.0.1")
    yield opened
    opened.close()


def test_a_sessions_port_cannot_be_taken_from_another_local_address(session: SynSession) -> None:
    # What the kernel's bind(port 0) would do for a second session sending from 127.0.0.2:
    # hand it the same port if that port is only held on 127.0.0.1.
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError) as refused:
            other.bind(("127.0.0.2", session.sport))
        assert refused.value.errno == errno.EADDRINUSE
    finally:
        other.close()


def test_the_key_goes_before_the_port(table: KeyTable, session: SynSession) -> None:
    key = ("tcp", session.sport)
    seen: list[bool] = []
    reservation = session.reservation

    class Watched:
        def close(self) -> None:
            seen.append(key in table._handlers)
            reservation.close()

    session.reservation = Watched()  # type: ignore[assignment]
    session.close()
    assert seen == [False]
    rebound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        rebound.bind(("127.0.0.2", session.sport))  # the port is free again once both are gone
    finally:
        rebound.close()


def test_a_refused_key_does_not_keep_the_port(table: KeyTable) -> None:
    taken: list[int] = []

    def refuse(key: tuple[str, int], _handler: object) -> None:
        taken.append(key[1])
        raise RuntimeError(f"raw receiver key {key} is taken")

    table.register = refuse  # type: ignore[method-assign,assignment]
    # The traceback keeps the half-built session alive: only an explicit close frees the port.
    with pytest.raises(RuntimeError) as refused:
        SynSession(table, Target("127.0.0.1", socket.AF_INET, None), "127.0.0.1")
    assert refused.traceback
    free = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        free.bind(("0.0.0.0", taken[0]))
    finally:
        free.close()
