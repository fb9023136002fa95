"""Named network namespaces: create, enter (one thread only), remove; sockets inside them.

The caller's thread never changes namespace. Work that must happen inside namespace X runs in
a short-lived worker thread that enters X (setns affects only the calling thread), and a
socket created there belongs to X for its whole life, so the caller can use it afterwards from
any thread or event loop. Namespaces are the files /run/netns/<name>, as `ip netns` and
pyroute2 make them, so `ip netns list` shows the lab.

Public API (shared with the supervisor and the probe engine):

    run_in_netns(name, fn, *args)            -> fn(*args), run inside `name`
    socket_in_netns(name, family, type, proto=0) -> socket.socket living in `name`
    tcp_connect(name, address, port, timeout=2.0) -> ConnectResult (open/closed/timeout/…)
    resolve_in_netns(name, hostname)          -> addresses from /etc/netns/<name>/hosts
    list_netns(prefix)                        -> lab namespace names of that prefix
    netns_pids(names)                         -> processes living in those namespaces
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import ip_address
from pathlib import Path
from typing import TypeVar

from reachproof.errors import LabError

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2
NETNS_DIR = Path("/run/netns")
ETC_NETNS_DIR = Path("/etc/netns")

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> Path:
    if not name or "/" in name or name in {".", ".."}:
        raise LabError(f"invalid network namespace name {name!r}")
    return NETNS_DIR / name


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


class _Entered:
    """Context: the calling thread is inside namespace `name`; it returns on exit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.home = -1

    def __enter__(self) -> None:
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            fd = os.open(netns_path(self.name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            os.close(self.home)
            raise LabError(f"network namespace {self.name!r} does not exist") from exc
        try:
            _setns(fd)
        except OSError:
            os.close(self.home)
            raise
        finally:
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        try:
            _setns(self.home)
        finally:
            os.close(self.home)


def entered(name: str) -> _Entered:
    """`with entered(name):` runs the block inside `name` — only in a thread you own."""
    return _Entered(name)


def run_in_netns(name: str, fn: Callable[..., T], *args: object, timeout: float = 60.0) -> T:
    """Run `fn(*args)` in a fresh thread inside namespace `name`; return or raise its result."""
    box: list[T] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with entered(name):
                box.append(fn(*args))
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    thread = threading.Thread(target=worker, name=f"netns:{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise LabError(f"work inside namespace {name!r} did not finish within {timeout:g}s")
    if errors:
        raise errors[0]
    return box[0]


def socket_in_netns(
    name: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
) -> socket.socket:
    """A socket that lives in namespace `name`, usable from any thread."""
    return run_in_netns(name, socket.socket, family, type, proto)


class Connect(StrEnum):
    OPEN = "open"  # the handshake completed
    CLOSED = "closed"  # RST: a host answered, nothing listens
    TIMEOUT = "timeout"  # silence: dropped somewhere
    PROHIBITED = "prohibited"  # ICMP unreachable: a firewall or router refused
    ERROR = "error"


@dataclass(frozen=True)
class ConnectResult:
    state: Connect
    detail: str = ""
    banner: bytes = b""


_UNREACH = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM}


def tcp_connect(
    name: str, address: str, port: int, timeout: float = 2.0, read_banner: bool = False
) -> ConnectResult:
    """One TCP connect from inside `name` (plain sockets, for tests and readiness checks)."""
    family = socket.AF_INET6 if ip_address(address).version == 6 else socket.AF_INET
    sock = socket_in_netns(name, family)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except ConnectionRefusedError:
            return ConnectResult(Connect.CLOSED, "rst")
        except TimeoutError:
            return ConnectResult(Connect.TIMEOUT, "timeout")
        except OSError as exc:
            if exc.errno in _UNREACH:
                return ConnectResult(Connect.PROHIBITED, os.strerror(exc.errno or 0))
            return ConnectResult(Connect.ERROR, str(exc))
        banner = b""
        if read_banner:
            try:
                banner = sock.recv(256)
            except OSError:
                banner = b""
        return ConnectResult(Connect.OPEN, "syn-ack", banner)
    finally:
        sock.close()


def hosts_file(name: str) -> Path:
    return ETC_NETNS_DIR / name / "hosts"


def resolve_in_netns(name: str, hostname: str) -> tuple[str, ...]:
    """Addresses of `hostname` as a process in `name` resolves it: /etc/netns/<name>/hosts,
    which `ip netns exec` mounts over /etc/hosts. Empty when the name is not listed."""
    try:
        text = hosts_file(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    found: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and hostname in fields[1:]:
            found.append(fields[0])
    return tuple(found)


# --- creating and removing -------------------------------------------------------------------


def create_netns(name: str, sysctls: dict[str, str] | None = None) -> None:
    """Create namespace `name` (its /run/netns file), writing `sysctls` inside it first.

    Runs in a worker thread: unshare(CLONE_NEWNET) moves only that thread into the new
    namespace, so /proc/sys/net there is the new namespace's and the host's is never written.
    """
    path = netns_path(name)
    NETNS_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    _share_netns_dir()
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    except FileExistsError as exc:
        raise LabError(f"network namespace {name!r} already exists") from exc

    def worker() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare")
            _check(
                _libc.mount(b"/proc/thread-self/ns/net", bytes(path), b"none", MS_BIND, None),
                f"bind mount {path}",
            )
            for key, value in (sysctls or {}).items():
                Path("/proc/sys", key.replace(".", "/")).write_text(value)
        finally:
            _setns(home)
            os.close(home)

    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            worker()
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    thread = threading.Thread(target=guarded, name=f"netns-create:{name}", daemon=True)
    thread.start()
    thread.join()
    if errors:
        remove_netns(name)
        raise LabError(f"cannot create network namespace {name!r}: {errors[0]}") from errors[0]


def _share_netns_dir() -> None:
    """Make /run/netns a shared mount point, as `ip netns add` does before its first namespace.

    When /run/netns is a plain directory, the first `ip netns add` on the machine (a site's
    tool, a test) bind-mounts it over itself recursively: every namespace file that existed
    then is left with a copy of its mount hidden underneath, which nobody can unmount by path,
    so it can never be deleted (EBUSY) until a reboot. Doing it first, the same way, makes
    iproute2 find a mount point and leave it alone.
    """
    shared = MS_SHARED | MS_REC
    if _libc.mount(b"", bytes(NETNS_DIR), b"none", shared, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:  # EINVAL: not a mount point yet
        _check(-1, f"make {NETNS_DIR} shared")
    directory = bytes(NETNS_DIR)
    _check(_libc.mount(directory, directory, b"none", MS_BIND | MS_REC, None), "bind mount")
    _check(_libc.mount(b"", directory, b"none", shared, None), f"make {NETNS_DIR} shared")


def remove_netns(name: str) -> None:
    """Unmount and delete /run/netns/<name>; the kernel frees the namespace with its last user."""
    path = netns_path(name)
    _libc.umount2(bytes(path), MNT_DETACH)  # EINVAL when never mounted: nothing to undo
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        raise LabError(
            f"cannot remove {path}: a second mount of it is hidden under a later bind mount of "
            f"{NETNS_DIR} (made by an `ip netns add` while the namespace existed); `umount -l "
            f"{NETNS_DIR}` while no other namespace is in use, or a reboot, frees it"
        ) from exc


def list_netns(prefix: str) -> tuple[str, ...]:
    """Names under /run/netns that belong to a lab with `prefix` (`<prefix>-…`)."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return ()
    return tuple(sorted(n for n in names if n.startswith(f"{prefix}-")))


def netns_pids(names: Iterable[str]) -> set[int]:
    """Processes whose network namespace is one of `names` (as `ip netns pids` finds them:
    the same namespace inode), never this process."""
    wanted: set[tuple[int, int]] = set()
    for name in names:
        try:
            info = os.stat(netns_path(name))
        except OSError:
            continue
        wanted.add((info.st_dev, info.st_ino))
    found: set[int] = set()
    if not wanted:
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            info = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue  # gone meanwhile, or a kernel thread
        if (info.st_dev, info.st_ino) in wanted:
            found.add(int(entry))
    return found
