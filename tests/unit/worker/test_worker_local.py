"""The vantage's own send failures and the address list the liveness check reads (no root)."""

from __future__ import annotations

import errno
import socket
import struct

from reachproof.worker.addresses import (
    _IFADDRMSG,
    _NLMSG,
    IFA_ADDRESS,
    IFA_LOCAL,
    NLMSG_DONE,
    RTM_NEWADDR,
    held_addresses,
    parse_addresses,
)
from reachproof.worker.checks import held_of
from reachproof.worker.local import local_failure, route_failure


def test_a_local_refusal_is_an_error_that_names_its_cause() -> None:
    assert local_failure(errno.ENETUNREACH, 2)[:3] == ("error", "local: no route (ENETUNREACH)", 2)
    assert local_failure(errno.EPERM, 1).reason == (
        "local: refused by the vantage's own firewall (EPERM)"
    )
    assert local_failure(errno.ENODEV, 1).reason == "local: no such interface (ENODEV)"


def test_loopback_has_a_route() -> None:
    assert route_failure("127.0.0.1", socket.AF_INET) is None


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def _message(family: int, index: int, *attrs: bytes) -> bytes:
    body = _IFADDRMSG.pack(family, 24, 0, 0, index) + b"".join(attrs)
    return _NLMSG.pack(_NLMSG.size + len(body), RTM_NEWADDR, 0, 1, 0) + body


def test_netlink_addresses_prefer_the_local_address() -> None:
    v4 = _message(
        socket.AF_INET,
        3,
        _attr(IFA_ADDRESS, socket.inet_aton("10.0.0.9")),  # a point-to-point peer
        _attr(IFA_LOCAL, socket.inet_aton("10.0.0.1")),
    )
    v6 = _message(
        socket.AF_INET6, 4, _attr(IFA_ADDRESS, socket.inet_pton(socket.AF_INET6, "fd00::1"))
    )
    done = _NLMSG.pack(_NLMSG.size, NLMSG_DONE, 0, 1, 0)
    assert parse_addresses(v4 + v6) == ([("10.0.0.1", 3), ("fd00::1", 4)], False)
    assert parse_addresses(v4 + done) == ([("10.0.0.1", 3)], True)


def test_this_namespace_holds_loopback() -> None:
    assert "127.0.0.1" in held_addresses()


def test_only_asked_addresses_are_reported_compared_as_addresses() -> None:
    held = {"fd00:0:0::1", "10.0.0.1", "10.0.0.7"}
    assert held_of("10.0.0.1,fd00::1,10.0.0.2", held) == ["10.0.0.1", "fd00::1"]
    assert held_of("", held) == []
