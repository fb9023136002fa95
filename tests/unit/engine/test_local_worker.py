"""The real shipped worker at a `local` vantage, against loopback listeners only."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from enginekit import local_inventory, tcp_spec

from reachproof.engine import EngineOptions, TcpEngine, run_specs
from reachproof.observation import PortState


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("engine", [TcpEngine.CONNECT, TcpEngine.SYN])
def test_loopback_listener_is_open_and_neighbours_closed(listener: int, engine: TcpEngine) -> None:
    spec = tcp_spec(f"{listener - 3}-{listener + 3}")
    (obs,) = run_specs([spec], local_inventory(), EngineOptions(engine=engine, timeout=0.5))
    assert obs.error is None, obs.error
    states = {p: r.state for r in obs.results for p in r.ports}
    assert states.pop(listener) is PortState.OPEN
    assert set(states.values()) == {PortState.CLOSED}
