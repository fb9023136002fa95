"""The supervisor daemon in real network namespaces (root only; `-m lab`).

Each test makes its own throwaway namespaces (`rpsvc-<random>-…`), joined by a veth pair with
10.254.x/24 and fd00:254::/64 addresses that exist only inside them, and always deletes them.
Every client socket is created inside a test namespace, so no traffic touches the host's network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from prereq import require
from reachproof.lab.services.control import (
    LOG_FILE,
    PID_FILE,
    PLAN_FILE,
    READY_FILE,
    Ready,
    process_alive,
    start_supervisor,
    stop_supervisor,
)
from reachproof.lab.services.nsock import socket_in_netns
from reachproof.lab.services.spec import Listener, ServiceKind, ServicePlan

pytestmark = pytest.mark.lab

DEADLINE = 10.0
IO_TIMEOUT = 5.0
NODAD = 0x02  # IFA_F_NODAD: the v6 address is usable at once, no duplicate-address wait


require(root=True, modules=("pyroute2",))

from pyroute2 import NetNS, netns  # noqa: E402  # only importable where the skip did not fire


@dataclass(frozen=True)
class Pair:
    """Two namespaces on one veth: `server` runs listeners, `client` connects to them."""

    server: str
    client: str
    server_v4: str
    client_v4: str
    server_v6: str
    client_v6: str


def _configure(name: str, ifname: str, v4: str, v6: str) -> None:
    with NetNS(name) as ns:
        (index,) = ns.link_lookup(ifname=ifname)
        ns.addr("add", index=index, address=v4, prefixlen=24)
        ns.addr("add", index=index, address=v6, prefixlen=64, flags=NODAD)
        ns.link("set", index=index, state="up")
        (lo,) = ns.link_lookup(ifname="lo")
        ns.link("set", index=lo, state="up")


def _unique(prefix: str = "rpsvc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pair() -> Iterator[Pair]:
    base = _unique()
    subnet = int(uuid.uuid4().hex[:2], 16) % 250 + 1
    made: list[str] = []
    try:
        for name in (f"{base}-s", f"{base}-c"):
            netns.create(name)
            made.append(name)
        server, client = made
        with NetNS(server) as ns:
            ns.link(
                "add", ifname="rpsvc0", kind="veth", peer={"ifname": "rpsvc1", "net_ns_fd": client}
            )
        found = Pair(
            server,
            client,
            f"10.254.{subnet}.1",
            f"10.254.{subnet}.2",
            f"fd00:254::{subnet:x}:1",
            f"fd00:254::{subnet:x}:2",
        )
        _configure(server, "rpsvc0", found.server_v4, found.server_v6)
        _configure(client, "rpsvc1", found.client_v4, found.client_v6)
        yield found
    finally:
        for name in made:
            netns.remove(name)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop_supervisor(tmp_path, timeout=DEADLINE)


def connect_from(namespace: str, host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket_in_netns(namespace, family, socket.SOCK_STREAM)
    sock.settimeout(IO_TIMEOUT)
    try:
        sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def read_to_eof(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        data = sock.recv(65536)
        if not data:
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


def http_get(namespace: str, host: str, port: int, path: str) -> tuple[int, bytes]:
    with connect_from(namespace, host, port) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: lab\r\n\r\n".encode())
        raw = read_to_eof(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def websocket_echo(namespace: str, host: str, port: int, message: bytes) -> bytes:
    """Handshake (accept key checked), one masked text frame out, its echo back."""
    key = base64.b64encode(os.urandom(16)).decode()
    magic = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    accept = base64.b64encode(hashlib.sha1(key.encode() + magic).digest()).decode()
    with connect_from(namespace, host, port) as sock:
        sock.sendall(
            (
                "GET /ws HTTP/1.1\r\nHost: lab\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 4096:
            head += recv_exactly(sock, 1)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert f"Sec-WebSocket-Accept: {accept}".encode() in head
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(message))
        sock.sendall(bytes([0x81, 0x80 | len(message)]) + mask + masked)
        first, second = recv_exactly(sock, 2)
        assert first == 0x81
        return recv_exactly(sock, second & 0x7F)


def test_services_answer_across_namespaces_over_v4_and_v6(pair: Pair, state_dir: Path) -> None:
    server, client = pair.server, pair.client
    plan = ServicePlan(
        (
            Listener(server, 2200, ServiceKind.BANNER, "SSH-2.0-dropbear_2022.83"),
            Listener(server, 8080, ServiceKind.HTTP, "session=s1 host=main1"),
            Listener(server, 7681, ServiceKind.WS_ECHO, "ttyd main1"),
            Listener(client, 6001, ServiceKind.BANNER, "agent-rpc"),
            Listener(client, 30001, ServiceKind.HTTP, "session=s9 host=main1 via-published-port"),
            Listener(
                server,
                8081,
                ServiceKind.MANAGER,
                "manager",
                ((pair.client_v4, 6001), (pair.client_v6, 6001), (pair.client_v4, 6002)),
            ),
            Listener(
                server, 10205, ServiceKind.APPPROXY_WORKER, "worker", ((pair.client_v4, 30001),)
            ),
        )
    )
    ready = start_supervisor(plan, state_dir, timeout=DEADLINE)
    assert (ready.listeners, ready.namespaces) == (7, 2)
    own = os.readlink("/proc/thread-self/ns/net")
    for address in (pair.server_v4, pair.server_v6):
        with connect_from(client, address, 2200) as sock:
            assert sock.makefile("rb").readline() == b"SSH-2.0-dropbear_2022.83\r\n"
        status, body = http_get(client, address, 8080, "/hello")
        assert status == 200 and b"session=s1 host=main1" in body and b"/hello" in body
        assert websocket_echo(client, address, 7681, b"over the veth") == b"over the veth"
        # The worker's upstream hop starts in the server namespace and crosses the veth back.
        status, body = http_get(client, address, 10205, "/app")
        assert status == 200 and b"via-published-port" in body
    status, body = http_get(client, pair.server_v4, 8081, "/api/agents")
    agents = json.loads(body)["agents"]
    assert agents[f"{pair.client_v4}:6001"] == "ok"
    assert agents[f"[{pair.client_v6}]:6001"] == "ok"
    assert agents[f"{pair.client_v4}:6002"].startswith("error:")
    assert os.readlink("/proc/thread-self/ns/net") == own, "socket_in_netns moved our thread"
    # Nothing of it listens in the host namespace.
    with socket.socket() as probe:
        probe.settimeout(IO_TIMEOUT)
        assert probe.connect_ex(("127.0.0.1", 2200)) != 0
    os.kill(ready.pid, signal.SIGTERM)
    _wait_gone(ready.pid)
    assert not (state_dir / PID_FILE).exists()


def test_sigkill_leaves_only_files_and_frees_the_ports(pair: Pair, state_dir: Path) -> None:
    plan = ServicePlan((Listener(pair.server, 2200, ServiceKind.BANNER, "SSH-2.0-x"),))
    ready = start_supervisor(plan, state_dir, timeout=DEADLINE)
    os.kill(ready.pid, signal.SIGKILL)
    _wait_gone(ready.pid)
    assert {path.name for path in state_dir.iterdir()} <= {
        PLAN_FILE,
        PID_FILE,
        READY_FILE,
        LOG_FILE,
    }
    with pytest.raises(ConnectionRefusedError):
        connect_from(pair.client, pair.server_v4, 2200)
    # A new supervisor can take the same ports at once.
    again = start_supervisor(plan, state_dir, timeout=DEADLINE)
    assert again.listeners == 1


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while process_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still alive"
        time.sleep(0.02)


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


SCALE_NAMESPACES = 100
SCALE_PORTS = 20


@pytest.fixture
def many_namespaces() -> Iterator[list[str]]:
    base = _unique()
    made: list[str] = []
    try:
        for index in range(SCALE_NAMESPACES):
            name = f"{base}-{index}"
            netns.create(name)
            made.append(name)
            with NetNS(name) as ns:
                (lo,) = ns.link_lookup(ifname="lo")
                ns.link("set", index=lo, state="up")
        yield made
    finally:
        for name in made:
            netns.remove(name)


def test_two_thousand_listeners_in_a_hundred_namespaces(
    many_namespaces: list[str], state_dir: Path, record_property: Callable[[str, object], None]
) -> None:
    listeners = tuple(
        Listener(name, 10205 + offset, ServiceKind.APPPROXY_WORKER, f"worker {name}")
        for name in many_namespaces
        for offset in range(SCALE_PORTS)
    )
    begun = time.monotonic()
    ready: Ready = start_supervisor(ServicePlan(listeners), state_dir, timeout=60)
    wall = time.monotonic() - begun
    rss = _peak_rss_kib(ready.pid)
    record_property("supervisor_start_seconds", round(wall, 3))
    record_property("supervisor_peak_rss_kib", rss)
    print(f"\n{len(listeners)} listeners: ready in {wall:.2f} s, peak RSS {rss / 1024:.1f} MiB")
    assert ready.listeners == SCALE_NAMESPACES * SCALE_PORTS
    for name in many_namespaces[:: SCALE_NAMESPACES // 5]:
        status, body = http_get(name, "127.0.0.1", 10205 + SCALE_PORTS - 1, "/")
        assert status == 400 and b"unregistered" in body
    assert wall < 30
    assert rss < 200 * 1024
