"""The real shipped worker at a `local` vantage, against loopback listeners only."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address

import pytest
from enginekit import local_inventory, tcp_spec

from reachproof.engine import EngineOptions, TcpEngine, run_specs
from reachproof.inventory.model import Host
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


def test_a_name_the_vantage_resolves_outside_the_inventory_is_never_probed() -> None:
    """`localhost` resolves to 127.0.0.1 here; an inventory whose host is 127.0.0.2 must not
    let the worker touch 127.0.0.1, and a listener there must see no connection."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        spec = replace(tcp_spec(str(port), address="127.0.0.2"), resolve="localhost")
        elsewhere = Host("self", "user", ipv4=(IPv4Address("127.0.0.2"),), vantage="here")
        inventory = replace(local_inventory(), hosts=(elsewhere,))
        options = EngineOptions(engine=TcpEngine.CONNECT, timeout=0.3)
        (refused,) = run_specs([spec], inventory, options)
        assert not select.select([sock], [], [], 0.2)[0]
        (allowed,) = run_specs([replace(spec, address="127.0.0.1")], local_inventory(), options)
        assert select.select([sock], [], [], 0.2)[0]  # the control: a probe in scope arrives
    assert refused.error == (
        "localhost resolved at the vantage to 127.0.0.1, outside the probe's scope "
        "(127.0.0.2): nothing sent"
    )
    assert allowed.error is None
    assert {r.state for r in allowed.results} == {PortState.OPEN}
