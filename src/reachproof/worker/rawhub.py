"""One raw TCP socket and one raw ICMP socket per address family, shared by all raw probes.

A raw socket receives a copy of every packet of its protocol, so one receiver thread per
family reads them, parses just enough to find the owner, and hands the tuple to the probe
that registered that key:
    ("tcp", local_port)   TCP answers to SYNs sent from local_port, and ICMP errors
                          quoting such a SYN (as ("icmp", reply) events)
    ("udp", local_port)   ICMP errors quoting a datagram sent from local_port
    ("echo", ident)       ICMP echo replies
Handlers run on the receiver thread and must only queue (a deque append).
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reachproof.worker.packets import (
    hop_limit,
    parse_v4_icmp,
    parse_v4_tcp,
    parse_v6_icmp,
    parse_v6_tcp,
)

SO_RCVBUFFORCE = 33  # root may exceed rmem_max: a sweep's answers arrive in bursts
RECEIVE_BUFFER = 32 * 1024 * 1024
IPV6_CHECKSUM_OFFSET = 16  # TCP checksum field: the kernel fills it for IPv6
_CMSG_SPACE = socket.CMSG_SPACE(4)

if TYPE_CHECKING:  # subscripted ABCs fail at runtime on Python 3.8
    Handler = Callable[[str, tuple[Any, ...]], None]


def _grow_receive_buffer(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)


class RawHub:
    """The shared raw sockets of one family and the thread that reads them."""

    def __init__(self, family: int) -> None:
        self.family = family
        icmp_proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
        self.tcp = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_TCP)
        try:
            self.icmp = socket.socket(family, socket.SOCK_RAW, icmp_proto)
        except OSError:
            self.tcp.close()
            raise
        for sock in (self.tcp, self.icmp):
            _grow_receive_buffer(sock)
            sock.setblocking(False)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        if family == socket.AF_INET6:
            self.tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, IPV6_CHECKSUM_OFFSET)
        self._handlers: dict[tuple[str, int], Handler] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"raw-{family}", daemon=True)
        self._thread.start()

    def register(self, key: tuple[str, int], handler: Handler) -> None:
        with self._lock:
            if key in self._handlers:
                raise RuntimeError(f"raw receiver key {key} is taken")
            self._handlers[key] = handler

    def unregister(self, key: tuple[str, int]) -> None:
        with self._lock:
            self._handlers.pop(key, None)

    def _deliver(self, key: tuple[str, int], kind: str, reply: tuple[Any, ...]) -> None:
        handler = self._handlers.get(key)
        if handler is not None:
            handler(kind, reply)

    def _run(self) -> None:
        sockets = [self.tcp, self.icmp]
        while True:
            try:
                readable, _, _ = select.select(sockets, [], [], 1.0)
            except OSError:
                return
            for sock in readable:
                # A packet the parsers trip over must not end this thread: a dead receiver
                # would turn every later answer into silence, i.e. into `filtered`.
                try:
                    self._drain(sock)
                except Exception:
                    continue

    def _drain(self, sock: socket.socket) -> None:
        v4 = self.family == socket.AF_INET
        is_tcp = sock is self.tcp
        for _ in range(4096):  # bounded so one busy socket cannot starve the other
            try:
                if v4:
                    packet = sock.recv(65535)
                    src, hops = b"", 0
                else:
                    packet, ancillary, _flags, addr = sock.recvmsg(65535, _CMSG_SPACE)
                    src = socket.inet_pton(socket.AF_INET6, addr[0].split("%")[0])
                    hops = hop_limit(ancillary)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ENOBUFS and the like: the next select() tries again
            if is_tcp:
                reply = parse_v4_tcp(packet) if v4 else parse_v6_tcp(packet, src, hops)
                if reply is not None:
                    self._deliver(("tcp", reply[2]), "tcp", reply)
                continue
            parsed = parse_v4_icmp(packet) if v4 else parse_v6_icmp(packet, src, hops)
            if parsed is None:
                continue
            kind, fields = parsed
            if kind == "echo":
                self._deliver(("echo", int(fields[1])), "echo", fields)  # type: ignore[call-overload]
            else:
                proto = "tcp" if fields[3] == socket.IPPROTO_TCP else "udp"
                self._deliver((proto, int(fields[5])), "icmp", fields)  # type: ignore[call-overload]


_hubs: dict[int, RawHub] = {}
_hubs_lock = threading.Lock()


def hub(family: int) -> RawHub:
    """The family's shared hub, opened on first use (PermissionError without privilege)."""
    with _hubs_lock:
        found = _hubs.get(family)
        if found is None:
            found = _hubs[family] = RawHub(family)
        return found


def sendmsg_with_ttl(sock: socket.socket, family: int, data: bytes, address: str, ttl: int) -> None:
    """Send one packet with its own IP TTL / hop limit (ancillary data: no shared socket state)."""
    if family == socket.AF_INET:
        cmsg = (socket.IPPROTO_IP, socket.IP_TTL, struct.pack("=i", ttl))
    else:
        cmsg = (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("=i", ttl))
    sock.sendmsg([data], [cmsg], 0, (address, 0))
