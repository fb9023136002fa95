"""Raw packets: SYN templates patched in place, and parsers for what comes back.

Sending: the kernel adds the IP header (no IP_HDRINCL), so a probe is a 20-byte TCP header.
IPv4 needs our own checksum over the pseudo-header; it is computed incrementally: the sum of
the pseudo-header and the template (varying fields zero) is fixed per probe, and each packet
adds only its destination port and sequence number. IPv6 lets the kernel fill the checksum
(IPV6_CHECKSUM offset 16).

The sequence number is a cookie: a keyed function of the destination port, so an answer is
ours only if it acknowledges cookie + 1 (strays and other scanners' replies are ignored).

Receiving (parsed into plain tuples; the receiver thread must keep up with a full sweep):
    TcpReply  = (src_packed, sport, dport, flags, ack, ttl)
    IcmpReply = (offender_packed, type, code, quoted_proto, quoted_dst_packed,
                 quoted_sport, quoted_dport, quoted_seq, ttl)
    EchoReply = (src_packed, ident, seq, ttl)
"""

from __future__ import annotations

import socket
import struct

TCP_HEADER = 20
SYN = 0x02
RST = 0x04
ACK = 0x10
MASK32 = 0xFFFFFFFF
COOKIE_MIX = 0x9E3779B1  # odd: port → cookie is a bijection for a fixed key

_TCP_PREFIX = struct.Struct("!HHII")
_TEMPLATE = struct.Struct("!HHIIHHHH")
# dport, seq, ack, offset+flags, window, checksum: patched in one call from offset 2.
PATCH_V4 = struct.Struct("!HIIHHH")
PATCH_V6 = struct.Struct("!HI")
WINDOW = 1024
OFFSET_FLAGS = (5 << 12) | SYN

ICMP_ECHO_REPLY = 0
ICMP6_ECHO_REPLY = 129
_V4_ERRORS = frozenset({3, 11, 12})
_V6_ERRORS = frozenset({1, 3, 4})


def cookie(key: int, port: int) -> int:
    return ((port * COOKIE_MIX) ^ key) & MASK32


def fold(total: int) -> int:
    total = (total & 0xFFFF) + (total >> 16)
    return (total & 0xFFFF) + (total >> 16)


def words_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def checksum(data: bytes) -> int:
    return ~fold(words_sum(data)) & 0xFFFF


def syn_template(sport: int) -> bytearray:
    return bytearray(_TEMPLATE.pack(sport, 0, 0, 0, OFFSET_FLAGS, WINDOW, 0, 0))


def v4_base_sum(src: bytes, dst: bytes, sport: int) -> int:
    """Pseudo-header + template with dport, seq and checksum zero (unfolded)."""
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, TCP_HEADER)
    return words_sum(pseudo) + words_sum(bytes(syn_template(sport)))


def v4_syn_checksum(base: int, dport: int, seq: int) -> int:
    return ~fold(base + dport + (seq >> 16) + (seq & 0xFFFF)) & 0xFFFF


def parse_v4_tcp(packet: bytes) -> tuple[bytes, int, int, int, int, int] | None:
    if len(packet) < 20:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + TCP_HEADER:
        return None
    sport, dport, _seq, ack = _TCP_PREFIX.unpack_from(packet, ihl)
    return (packet[12:16], sport, dport, packet[ihl + 13], ack, packet[8])


def parse_v6_tcp(
    segment: bytes, src: bytes, hops: int
) -> tuple[bytes, int, int, int, int, int] | None:
    if len(segment) < TCP_HEADER:
        return None
    sport, dport, _seq, ack = _TCP_PREFIX.unpack_from(segment)
    return (src, sport, dport, segment[13], ack, hops)


def _quoted(
    data: bytes, offset: int, proto: int, dst: bytes
) -> tuple[int, bytes, int, int, int] | None:
    if len(data) < offset + 8:
        return None
    sport, dport = struct.unpack_from("!HH", data, offset)
    seq = struct.unpack_from("!I", data, offset + 4)[0] if proto == socket.IPPROTO_TCP else 0
    return (proto, dst, sport, dport, seq)


def parse_v4_icmp(
    packet: bytes,
) -> tuple[str, tuple[object, ...]] | None:
    """("error", IcmpReply) or ("echo", EchoReply) or None."""
    if len(packet) < 20:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 8:
        return None
    icmp_type, code = packet[ihl], packet[ihl + 1]
    ttl = packet[8]
    if icmp_type == ICMP_ECHO_REPLY:
        ident, seq = struct.unpack_from("!HH", packet, ihl + 4)
        return ("echo", (packet[12:16], ident, seq, ttl))
    if icmp_type not in _V4_ERRORS:
        return None
    inner = ihl + 8
    if len(packet) < inner + 20:
        return None
    inner_ihl = (packet[inner] & 0x0F) * 4
    quoted = _quoted(packet, inner + inner_ihl, packet[inner + 9], packet[inner + 16 : inner + 20])
    if quoted is None:
        return None
    return ("error", (packet[12:16], icmp_type, code, *quoted, ttl))


def parse_v6_icmp(message: bytes, src: bytes, hops: int) -> tuple[str, tuple[object, ...]] | None:
    if len(message) < 8:
        return None
    icmp_type, code = message[0], message[1]
    if icmp_type == ICMP6_ECHO_REPLY:
        ident, seq = struct.unpack_from("!HH", message, 4)
        return ("echo", (src, ident, seq, hops))
    if icmp_type not in _V6_ERRORS or len(message) < 8 + 40:
        return None
    # The quoted IPv6 header; probes carry no extension headers, so the next header is L4.
    quoted = _quoted(message, 48, message[8 + 6], message[8 + 24 : 8 + 40])
    if quoted is None:
        return None
    return ("error", (src, icmp_type, code, *quoted, hops))


def hop_limit(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(data) >= 4:
            return int(struct.unpack("=i", data[:4])[0])
    return 0
