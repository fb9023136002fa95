"""The kernel's own choice of SYN source ports (root, a namespace of the test's own).

With the ephemeral range narrowed to two ports, bind(port 0) hands out the same port to two
sockets bound on different local addresses: the race a container on two bridges ran into
(`raw receiver key ('tcp', N) is taken`). Sessions must get distinct ports regardless.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import require_lab, unique_prefix

from reachproof.lab.netns import create_netns, remove_netns, run_in_netns
from reachproof.worker.syn import SynSession
from reachproof.worker.target import Target

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "worker"))
from workerkit import KeyTable

pytestmark = pytest.mark.lab
require_lab()

RANGE = (40000, 40001)


@pytest.fixture
def narrow_netns() -> Iterator[str]:
    name = f"{unique_prefix('prt')}-ports"
    create_netns(name, {"net.ipv4.ip_local_port_range": f"{RANGE[0]} {RANGE[1]}"})
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        remove_netns(name)


def _two_sessions() -> list[int]:
    table = KeyTable()
    target = Target("127.0.0.9", socket.AF_INET, None)
    first = SynSession(table, target, "127.0.0.1")
    try:
        second = SynSession(table, target, "127.0.0.2")
        try:
            return [first.sport, second.sport]
        finally:
            second.close()
    finally:
        first.close()


def test_sessions_on_two_local_addresses_get_two_ports(narrow_netns: str) -> None:
    ports = run_in_netns(narrow_netns, _two_sessions)
    assert sorted(ports) == list(RANGE)
