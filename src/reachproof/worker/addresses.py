"""Which addresses this vantage holds on a link that is up: the cheapest liveness witness.

A host that is itself a vantage can say it holds a deny target's address without a packet on
the wire. Only an address on an interface that is up and running (carrier) counts: a host
whose link is down holds nothing anyone could reach. Read over rtnetlink (RTM_GETADDR), the
one stdlib way to list IPv4 and IPv6 addresses with their interface.
"""

from __future__ import annotations

import fcntl
import socket
import struct

RTM_GETADDR = 22
RTM_NEWADDR = 20
NLMSG_DONE = 3
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
IFA_ADDRESS = 1
IFA_LOCAL = 2
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFF_RUNNING = 0x40

_NLMSG = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")


def _align(size: int) -> int:
    return (size + 3) & ~3


def parse_addresses(data: bytes) -> tuple[list[tuple[str, int]], bool]:
    """(address, interface index) pairs of one netlink reply buffer, and whether it ended."""
    found: list[tuple[str, int]] = []
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size:
            return found, True
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return found, True
        if kind == RTM_NEWADDR:
            body = offset + _NLMSG.size
            family, _plen, _flags2, _scope, index = _IFADDRMSG.unpack_from(data, body)
            attrs: dict[int, bytes] = {}
            at = body + _IFADDRMSG.size
            while at + _RTATTR.size <= offset + length:
                alen, atype = _RTATTR.unpack_from(data, at)
                if alen < _RTATTR.size:
                    break
                attrs[atype] = data[at + _RTATTR.size : at + alen]
                at += _align(alen)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is not None and family in (socket.AF_INET, socket.AF_INET6):
                found.append((socket.inet_ntop(family, raw), index))
        offset += _align(length)
    return found, False


def _dump() -> list[tuple[str, int]]:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        request = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        header = _NLMSG.pack(
            _NLMSG.size + len(request), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
        )
        sock.sendall(header + request)
        found: list[tuple[str, int]] = []
        done = False
        while not done:
            part, done = parse_addresses(sock.recv(65536))
            found.extend(part)
        return found
    finally:
        sock.close()


def _link_up(index: int) -> bool:
    try:
        name = socket.if_indextoname(index)
    except OSError:
        return False
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        raw = fcntl.ioctl(probe.fileno(), SIOCGIFFLAGS, struct.pack("16sH14x", name.encode(), 0))
    except OSError:
        return False
    finally:
        probe.close()
    flags = struct.unpack_from("16sH", raw)[1]
    return bool(flags & IFF_UP and flags & IFF_RUNNING)


def held_addresses() -> set[str]:
    """Every address of this network namespace on a link that is up and running."""
    up: dict[int, bool] = {}
    held: set[str] = set()
    for address, index in _dump():
        if index not in up:
            up[index] = _link_up(index)
        if up[index]:
            held.add(address)
    return held
