"""The clean reference lab, built once per test session (root only), and a host snapshot.

The snapshot of the host's own namespace (links, the sysctls the lab sets inside its
namespaces) is taken before the lab exists, so a test can prove the lab left the host alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from labkit import lab, services_available, skip_reason

from reachproof.lab.build import LabHandle

HOST_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv6/conf/default/accept_dad",
    "net/bridge/bridge-nf-call-iptables",
    "net/ipv4/conf/all/send_redirects",
)


@dataclass(frozen=True)
class HostSnapshot:
    links: frozenset[str]
    sysctls: tuple[tuple[str, str], ...]


def host_snapshot() -> HostSnapshot:
    """Read-only look at the host's namespace: interface names and a few sysctls."""
    links = frozenset(p.name for p in Path("/sys/class/net").iterdir())
    values = []
    for key in HOST_SYSCTLS:
        path = Path("/proc/sys") / key
        values.append((key, path.read_text().strip() if path.exists() else "-"))
    return HostSnapshot(links, tuple(values))


@dataclass(frozen=True)
class CleanLab:
    handle: LabHandle
    host_before: HostSnapshot


@pytest.fixture(scope="session")
def clean_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CleanLab]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    if not services_available():
        pytest.skip("the lab's service supervisor (reachproof.lab.services) is not installed")
    before = host_snapshot()
    # The default lab of `reachproof lab up`, under a prefix of its own.
    with lab(
        tmp_path_factory.mktemp("lab"),
        "cln",
        agents=3,
        sessions="single-node:3,multi-node:4,single-node:1",
    ) as handle:
        yield CleanLab(handle, before)
