"""The listening sockets of /proc/net/tcp{,6}: what a stray app leaves for `check listeners`."""

from __future__ import annotations

import ipaddress

import pytest

from reachproof.checks.listeners import parse_ports, parse_table, stray_listeners

HEAD4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
HEAD6 = "  sl  local_address                         remote_address                        st\n"
TAIL = " 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0"


def v4(local: str, state: str = "0A") -> str:
    return f"   0: {local} 00000000:0000 {state}{TAIL}"


def v6(local: str, state: str = "0A") -> str:
    return f"   0: {local} 00000000000000000000000000000000:0000 {state}{TAIL}"


MAPPED = ipaddress.IPv6Address("::ffff:192.168.1.5")  # written dotted or not by the Python
WATCHED = parse_ports("6006,8080-8081,8090,8180")

# (case, table, a socket line, the address:port reported, or None when it is not a stray)
CASES = [
    ("v4-wildcard", 4, v4("00000000:1F90"), "0.0.0.0:8080"),
    ("v4-default-network-only", 4, v4("0501A8C0:1F91"), "192.168.1.5:8081"),
    ("v4-loopback", 4, v4("0100007F:1F90"), None),
    ("v4-loopback-net", 4, v4("0500007F:1F90"), None),
    ("v4-established", 4, v4("0501A8C0:1F90", state="01"), None),
    ("v4-unwatched-port", 4, v4("00000000:0898"), None),
    ("v6-wildcard", 6, v6("00000000000000000000000000000000:1F9A"), "[::]:8090"),
    ("v6-only-address", 6, v6("000000FD000000000000000005000000:1FF4"), "[fd00::5]:8180"),
    ("v6-loopback", 6, v6("00000000000000000000000001000000:1776"), None),
    ("v6-mapped-loopback", 6, v6("0000000000000000FFFF00000100007F:1F90"), None),
    ("v6-mapped", 6, v6("0000000000000000FFFF00000501A8C0:1F90"), f"[{MAPPED}]:8080"),
]


@pytest.mark.parametrize(
    ("family", "line", "shown"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_stray_listeners(family: int, line: str, shown: str | None) -> None:
    table = "/proc/net/tcp" if family == 4 else "/proc/net/tcp6"
    text = (HEAD4 if family == 4 else HEAD6) + line + "\n"
    found = stray_listeners(parse_table(text, table, family), WATCHED)
    if shown is None:
        assert found == []
    else:
        assert found == [f"listening on {shown} ({table}: {line.strip()})"]


def test_lines_that_are_not_sockets_are_skipped() -> None:
    text = HEAD4 + "garbage\n" + "   0: nothex:1F90 00000000:0000 0A\n" + v4("00000000:1F90") + "\n"
    assert [s.port for s in parse_table(text, "/proc/net/tcp", 4)] == [8080]


def test_parse_ports() -> None:
    assert parse_ports("") == frozenset()
    assert parse_ports("22,8080-8082") == {22, 8080, 8081, 8082}
