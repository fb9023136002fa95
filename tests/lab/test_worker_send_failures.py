"""The vantage's own failure to send is `error`, never a port state (root, a bare namespace).

A namespace of the test's own making, with no route to the target, or an output firewall that
drops everything: the worker must say the vantage could not send, not `unreachable` or
`prohibited` (which a deny rule would count as blocked). Nothing here leaves the namespace.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import require_lab, unique_prefix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "worker"))
from workerkit import Worker, port_states

pytestmark = pytest.mark.lab
require_lab()

KINDS = ("tcp-syn", "tcp-connect", "udp", "icmp")


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture()
def bare_netns() -> Iterator[str]:
    """Only loopback, no routes; a veth pair of its own (both ends inside) for 10.9.9.0/24."""
    name = f"{unique_prefix('lcl')}-vantage"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        _run("ip", "-n", name, "addr", "add", "10.9.9.1/24", "dev", "v0")
        _run("ip", "-n", name, "addr", "add", "fd00:9::1/64", "dev", "v0", "nodad")
        _run("ip", "-n", name, "link", "set", "v0", "up")
        _run("ip", "-n", name, "link", "set", "v1", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def _states(netns: str, kind: str, address: str) -> set[tuple[str, str]]:
    ports = [(0, 0)] if kind == "icmp" else [(80, 81)]
    with Worker(prefix=["ip", "netns", "exec", netns]) as worker:
        result = worker.probe(kind, address, ports, timeout=0.3, attempts=2)
    return set(port_states(result).values())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("address", ["10.8.8.8", "fd00:8::8"])
def test_no_route_at_the_vantage_is_an_error(bare_netns: str, kind: str, address: str) -> None:
    assert _states(bare_netns, kind, address) == {("error", "local: no route (ENETUNREACH)")}


# tcp-connect is left out: the kernel swallows a SYN's EPERM from the output hook and retries
# until the connect times out (docs/engine.md); a vantage with raw sockets uses tcp-syn.
@pytest.mark.parametrize("kind", ["tcp-syn", "udp", "icmp"])
@pytest.mark.parametrize("address", ["10.9.9.9", "fd00:9::9"])
def test_the_vantages_own_firewall_is_an_error(bare_netns: str, kind: str, address: str) -> None:
    nft = ["ip", "netns", "exec", bare_netns, "nft"]
    _run(*nft, "add", "table", "inet", "rplocal")
    _run(*nft, "add", "chain", "inet", "rplocal", "out",
         "{ type filter hook output priority 0; policy accept; }")  # fmt: skip
    _run(*nft, "add", "rule", "inet", "rplocal", "out", "oifname", "v0", "drop")
    assert _states(bare_netns, kind, address) == {
        ("error", "local: refused by the vantage's own firewall (EPERM)")
    }
