"""Pure parts of the raw path: incremental checksums, cookies, reply parsing, hop counts."""

from __future__ import annotations

import socket
import struct

import pytest

from reachproof.worker.hops import forged_by_hop, hops_of, trace_ttl
from reachproof.worker.packets import (
    MASK32,
    OFFSET_FLAGS,
    PATCH_V4,
    WINDOW,
    checksum,
    cookie,
    parse_v4_icmp,
    parse_v4_tcp,
    syn_template,
    v4_base_sum,
    v4_syn_checksum,
)

SRC = socket.inet_aton("203.0.113.10")
DST = socket.inet_aton("10.0.2.11")


@pytest.mark.parametrize("port", [0, 1, 80, 443, 6001, 65535])
def test_incremental_checksum_equals_a_full_one(port: int) -> None:
    key = 0xDEADBEEF
    base = v4_base_sum(SRC, DST, 40000)
    seq = cookie(key, port)
    packet = syn_template(40000)
    PATCH_V4.pack_into(packet, 2, port, seq, 0, OFFSET_FLAGS, WINDOW, 0)
    pseudo = SRC + DST + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(packet))
    assert v4_syn_checksum(base, port, seq) == checksum(pseudo + bytes(packet))
    PATCH_V4.pack_into(
        packet, 2, port, seq, 0, OFFSET_FLAGS, WINDOW, v4_syn_checksum(base, port, seq)
    )
    assert checksum(pseudo + bytes(packet)) == 0  # a valid segment sums to zero


def test_cookies_differ_per_port_and_key() -> None:
    assert len({cookie(7, p) for p in range(65536)}) == 65536
    assert cookie(7, 80) != cookie(8, 80)
    assert all(0 <= cookie(k, 443) <= MASK32 for k in (0, MASK32))


def ipv4(proto: int, src: bytes, dst: bytes, ttl: int, payload: bytes) -> bytes:
    return (
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, ttl, proto, 0, src, dst)
        + payload
    )


def test_parse_a_reset_and_a_quoted_syn() -> None:
    rst = struct.pack("!HHIIHHHH", 6001, 40000, 0, 1234, (5 << 12) | 0x14, 0, 0, 0)
    assert parse_v4_tcp(ipv4(6, DST, SRC, 63, rst)) == (DST, 6001, 40000, 0x14, 1234, 63)
    syn = struct.pack("!HHII", 40000, 6001, 99, 0) + bytes(12)
    quoted = ipv4(6, SRC, DST, 1, syn)[:28]
    fw = socket.inet_aton("10.0.2.1")
    icmp = struct.pack("!BBHI", 3, 13, 0, 0) + quoted
    kind, fields = parse_v4_icmp(ipv4(1, fw, SRC, 64, icmp)) or ("", ())
    assert kind == "error"
    assert fields == (fw, 3, 13, 6, DST, 40000, 6001, 99, 64)


def test_hop_counts_from_initial_ttls() -> None:
    assert [hops_of(t) for t in (64, 63, 128, 120, 255, 250, 1)] == [0, 1, 0, 8, 0, 5, 63]
    assert forged_by_hop(64, 63)  # a reset one router closer than the SYN-ACK
    assert not forged_by_hop(63, 63)
    assert trace_ttl(64) == 1 and trace_ttl(62) == 3
