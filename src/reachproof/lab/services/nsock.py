"""Sockets inside named network namespaces, without moving the caller's thread.

A socket belongs to the network namespace of the thread that created it, for its whole life.
So a socket for namespace X is created in a short-lived thread that entered X and then exits;
the caller (an asyncio loop, a probe, a test) never changes namespace itself, and a thread left
in the wrong namespace can never leak into a thread pool.

`netns` is a name under /run/netns (as `ip netns add` and pyroute2 make them), an absolute path
to a namespace file (`/proc/<pid>/ns/net`), or "" for "the caller's own namespace".
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from reachproof.errors import LabError

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = Path("/run/netns")


def netns_path(netns: str) -> Path:
    """The file that names `netns`: /run/netns/<name>, or the path itself when absolute."""
    if netns.startswith("/"):
        return Path(netns)
    if not netns or "/" in netns or netns in {".", ".."}:
        raise LabError(f"invalid network namespace name {netns!r}")
    return NETNS_RUN_DIR / netns


def open_netns(netns: str) -> int:
    """An O_RDONLY fd of the namespace; LabError naming it when it does not exist."""
    path = netns_path(netns)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise LabError(f"network namespace {netns!r} does not exist ({path})") from exc
    except OSError as exc:
        raise LabError(f"network namespace {netns!r}: cannot open {path}: {exc.strerror}") from exc


def _libc_setns() -> Callable[[int, int], int]:
    libc = ctypes.CDLL(None, use_errno=True)
    fn: Callable[[int, int], int] = libc.setns
    return fn


def setns_thread(fd: int, netns: str = "") -> None:
    """Move the calling thread into the namespace of `fd` (only ever call in a throwaway thread)."""
    # os.setns exists from Python 3.12; 3.11 goes through libc.
    setns = getattr(os, "setns", None)
    try:
        if setns is not None:
            setns(fd, CLONE_NEWNET)
            return
        if _libc_setns()(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    except OSError as exc:
        raise LabError(f"cannot enter network namespace {netns or fd!r}: {exc.strerror}") from exc


class NetnsFds:
    """One open fd per namespace name, kept for the life of a long-running user (the supervisor).

    Ad-hoc callers should not keep one: a cached fd outlives a namespace deleted and re-created
    under the same name, and keeps the old one alive.
    """

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def fd(self, netns: str) -> int:
        with self._lock:
            fd = self._fds.get(netns)
            if fd is None:
                fd = self._fds[netns] = open_netns(netns)
            return fd

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def enter_netns(netns: str, fds: NetnsFds | None = None) -> None:
    """Move the calling (throwaway) thread into `netns`; "" leaves it where it is."""
    if not netns:
        return
    if fds is not None:
        setns_thread(fds.fd(netns), netns)
        return
    fd = open_netns(netns)
    try:
        setns_thread(fd, netns)
    finally:
        os.close(fd)


def _spawn(fn: Callable[[], T], done: Callable[[T | None, BaseException | None], None]) -> None:
    def body() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the caller, who re-raises it
            done(None, exc)
        else:
            done(result, None)

    threading.Thread(target=body, name="netns", daemon=True).start()


def run_in_thread(fn: Callable[[], T]) -> T:
    """Run `fn` in a new thread and return its result (the thread may change namespace)."""
    box: list[tuple[T | None, BaseException | None]] = []
    finished = threading.Event()

    def done(result: T | None, exc: BaseException | None) -> None:
        box.append((result, exc))
        finished.set()

    _spawn(fn, done)
    finished.wait()
    result, exc = box[0]
    if exc is not None:
        raise exc
    return result  # type: ignore[return-value]  # fn's own result, None only if T allows it


async def arun_in_thread(fn: Callable[[], T]) -> T:
    """`run_in_thread` for asyncio: the loop keeps running while `fn` runs."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def done(result: T | None, exc: BaseException | None) -> None:
        loop.call_soon_threadsafe(settle, result, exc)

    _spawn(fn, done)
    return await future


def run_in_netns(netns: str, fn: Callable[[], T], *, fds: NetnsFds | None = None) -> T:
    """Run `fn` inside `netns` (in a throwaway thread); "" runs it right here."""
    if not netns:
        return fn()

    def inside() -> T:
        enter_netns(netns, fds)
        return fn()

    return run_in_thread(inside)


async def arun_in_netns(netns: str, fn: Callable[[], T], *, fds: NetnsFds | None = None) -> T:
    """`run_in_netns` for asyncio."""
    if not netns:
        return fn()

    def inside() -> T:
        enter_netns(netns, fds)
        return fn()

    return await arun_in_thread(inside)


def socket_in_netns(
    netns: str,
    family: socket.AddressFamily | int = socket.AF_INET,
    type: socket.SocketKind | int = socket.SOCK_STREAM,  # mirrors socket.socket
    proto: int = 0,
    *,
    fds: NetnsFds | None = None,
) -> socket.socket:
    """A new socket that lives in `netns`; use it from any thread (connect, bind, asyncio)."""
    return run_in_netns(netns, lambda: socket.socket(family, type, proto), fds=fds)
