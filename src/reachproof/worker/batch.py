"""Many packets per system call: sendmmsg(2) through ctypes, for the raw SYN sweeps.

One Python `sendto` per packet spends most of its time getting into and out of the kernel;
`sendmmsg` hands the kernel a batch. The batch lives in one bytearray, a slot per packet,
each slot a copy of the probe's template, so a packet costs only its patch (destination port,
cookie, checksum: see `packets`). The mmsghdr/iovec arrays point into that bytearray once and
for all: every packet of a probe goes to the same address.

Where libc has no sendmmsg (or ctypes cannot load it) `open_batch` says why, and the caller
sends packet by packet as before. Stdlib only, Python 3.8+; Linux structure layouts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import struct
from typing import TYPE_CHECKING, Any

from reachproof.worker.packets import TCP_HEADER

SLOTS = 256  # packets per sendmmsg call
MAX_WAITS = 20  # a full socket buffer is waited out this often per batch before giving up


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


if TYPE_CHECKING:  # subscripted ABCs fail at runtime on Python 3.8
    from collections.abc import Callable

_sendmmsg: Callable[..., int] | None = None
_why_not: str | None = None


def _load() -> None:
    global _sendmmsg, _why_not
    if _sendmmsg is not None or _why_not is not None:
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        call = libc.sendmmsg
    except (OSError, AttributeError) as exc:
        _why_not = f"sendmmsg unavailable ({exc})"
        return
    call.argtypes = [ctypes.c_int, ctypes.POINTER(_MMsgHdr), ctypes.c_uint, ctypes.c_int]
    call.restype = ctypes.c_int
    _sendmmsg = call


def _sockaddr(family: int, address: str) -> bytes:
    packed = socket.inet_pton(family, address)
    if family == socket.AF_INET:
        return struct.pack("=H", family) + b"\0\0" + packed + b"\0" * 8
    return struct.pack("=H", family) + b"\0\0" + b"\0" * 4 + packed + b"\0" * 4


class BatchSender:
    """SLOTS packet slots for one probe's socket and destination, sent with one call."""

    def __init__(self, sock: socket.socket, family: int, address: str, template: bytes) -> None:
        assert _sendmmsg is not None
        self.call = _sendmmsg
        self.fd = sock.fileno()
        self.buffer = bytearray(bytes(template) * SLOTS)  # patched in place by the caller
        self._view = (ctypes.c_char * len(self.buffer)).from_buffer(self.buffer)
        base = ctypes.addressof(self._view)
        name = _sockaddr(family, address)
        self._name = ctypes.create_string_buffer(name, len(name))
        self._iov = (_IoVec * SLOTS)()
        self._msgs = (_MMsgHdr * SLOTS)()
        for i in range(SLOTS):
            self._iov[i].iov_base = base + i * TCP_HEADER
            self._iov[i].iov_len = TCP_HEADER
            header = self._msgs[i].msg_hdr
            header.msg_name = ctypes.addressof(self._name)
            header.msg_namelen = len(name)
            header.msg_iov = ctypes.pointer(self._iov[i])
            header.msg_iovlen = 1

    def send(self, count: int, wait: Callable[[], None]) -> dict[int, int]:
        """Send slots 0..count-1; slots the kernel refused map to their errno. A full socket
        buffer (EAGAIN/ENOBUFS) is waited out once with `wait`; what still does not fit is
        left unsent (the next round resends it), as in the packet-by-packet loop."""
        refused: dict[int, int] = {}
        start = 0
        waits = 0
        msgs: Any = self._msgs
        while start < count:
            sent = self.call(self.fd, ctypes.byref(msgs[start]), count - start, 0)
            if sent > 0:
                start += sent
                continue
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            if code in (errno.EAGAIN, errno.ENOBUFS):
                if waits < MAX_WAITS:
                    waits += 1
                    wait()
                    continue
                return refused  # the rest stays silent this round; the next resends it
            refused[start] = code
            start += 1  # one packet the kernel will not send (route, local firewall)
        return refused


def open_batch(
    sock: socket.socket, family: int, address: str, template: bytes
) -> tuple[BatchSender | None, str]:
    """A batch sender and a note saying how packets leave, or None and why not."""
    _load()
    if _sendmmsg is None:
        return None, f"one sendto per packet: {_why_not}"
    return BatchSender(sock, family, address, template), f"sendmmsg, {SLOTS} packets per call"
