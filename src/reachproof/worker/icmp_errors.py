"""ICMP errors: what a type/code means for a probed port, and reading them off a socket.

Two ways an ICMP error reaches the worker: a raw ICMP socket (SYN probes, parsed in `packets`)
or the error queue of an ordinary socket with IP_RECVERR set (connect and UDP probes): the
kernel then keeps the ICMP type, code and the offender's address, which errno alone loses
(Linux maps admin-prohibited and host-unreachable both to EHOSTUNREACH).
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

# Not exported by the socket module on every Python version.
IP_RECVERR = 11
IPV6_RECVERR = 25
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3

ICMP_UNREACH = 3
ICMP_TIME_EXCEEDED = 11
ICMP6_UNREACH = 1
ICMP6_TIME_EXCEEDED = 3

# Destination-unreachable codes that say "there is no way there" rather than "refused".
_V4_UNREACHABLE = frozenset({0, 1, 5, 6, 7, 8, 11, 12})
_V6_UNREACHABLE = frozenset({0, 2, 3})
V4_PORT_UNREACH = 3
V6_PORT_UNREACH = 4


class IcmpError(NamedTuple):
    version: int  # 4 or 6
    type: int
    code: int
    offender: str | None  # the address that sent the ICMP message


def reason_of(version: int, icmp_type: int, code: int) -> str:
    return f"{'icmp' if version == 4 else 'icmp6'}-{icmp_type}-{code}"


def is_time_exceeded(version: int, icmp_type: int) -> bool:
    return icmp_type == (ICMP_TIME_EXCEEDED if version == 4 else ICMP6_TIME_EXCEEDED)


def classify(error: IcmpError, target: str, protocol: str) -> tuple[str, str]:
    """(state, reason) of a port that drew this ICMP error (DESIGN.md, verdict semantics).

    Port unreachable from the target itself is how a closed UDP port answers; from anyone else
    (a router's REJECT) or for TCP (whose closed ports answer with RST) it is a firewall.
    """
    reason = reason_of(error.version, error.type, error.code)
    unreach = ICMP_UNREACH if error.version == 4 else ICMP6_UNREACH
    if error.type != unreach:
        # Time exceeded and the like: the probe died on the way.
        return "unreachable", reason
    port_unreach = V4_PORT_UNREACH if error.version == 4 else V6_PORT_UNREACH
    if error.code == port_unreach:
        from_target = error.offender is None or same_address(error.offender, target)
        if protocol == "udp" and from_target:
            return "closed", reason
        return "prohibited", reason
    codes = _V4_UNREACHABLE if error.version == 4 else _V6_UNREACHABLE
    if error.code in codes:
        return "unreachable", reason
    return "prohibited", reason


def same_address(a: str, b: str) -> bool:
    try:
        fa = socket.AF_INET6 if ":" in a else socket.AF_INET
        fb = socket.AF_INET6 if ":" in b else socket.AF_INET
        return fa == fb and socket.inet_pton(fa, a) == socket.inet_pton(fb, b)
    except OSError:
        return a == b


def enable_recverr(sock: socket.socket, family: int) -> None:
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)


def _offender(raw: bytes) -> str | None:
    if len(raw) < 8:
        return None
    family = struct.unpack_from("=H", raw)[0]
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None


def read_error_queue(sock: socket.socket) -> IcmpError | None:
    """The first ICMP error queued on `sock` (IP_RECVERR), or None."""
    for _ in range(8):  # skip non-ICMP entries (local errors), bounded
        try:
            _data, ancillary, _flags, _addr = sock.recvmsg(256, 512, socket.MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return None
        for level, kind, cdata in ancillary:
            if (level, kind) not in (
                (socket.IPPROTO_IP, IP_RECVERR),
                (socket.IPPROTO_IPV6, IPV6_RECVERR),
            ):
                continue
            if len(cdata) < 16:
                continue
            _errno, origin, icmp_type, code = struct.unpack_from("=IBBB", cdata)
            if origin == SO_EE_ORIGIN_ICMP:
                return IcmpError(4, icmp_type, code, _offender(cdata[16:]))
            if origin == SO_EE_ORIGIN_ICMP6:
                return IcmpError(6, icmp_type, code, _offender(cdata[16:]))
    return None
