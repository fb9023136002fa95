"""Shared helpers of the lab tests: prerequisites, building labs that always come down, and
plain-socket probes that run inside lab namespaces (never in the host's namespace)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import ssl
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prereq import require
from reachproof.lab.build import LabHandle, build_lab
from reachproof.lab.netns import Connect, socket_in_netns, tcp_connect
from reachproof.lab.state import teardown
from reachproof.lab.topology import LabOptions

DENY_TIMEOUT = 0.7  # a blocked connect: silence for this long counts as dropped
ALLOW_TIMEOUT = 3.0


HOST_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv6/conf/default/accept_dad",
    "net/bridge/bridge-nf-call-iptables",
    "net/ipv4/conf/all/send_redirects",
)


@dataclass(frozen=True)
class HostSnapshot:
    links: frozenset[str]
    sysctls: tuple[tuple[str, str], ...]


def host_snapshot() -> HostSnapshot:
    """Read-only look at the host's namespace: interface names and a few sysctls."""
    links = frozenset(p.name for p in Path("/sys/class/net").iterdir())
    values = []
    for key in HOST_SYSCTLS:
        path = Path("/proc/sys") / key
        values.append((key, path.read_text().strip() if path.exists() else "-"))
    return HostSnapshot(links, tuple(values))


@dataclass(frozen=True)
class CleanLab:
    handle: LabHandle
    host_before: HostSnapshot


# What every lab test needs: root for namespaces, nft for the firewalls, nsenter (util-linux).
LAB_PROGRAMS = ("nft", "nsenter")
SERVICES_MODULE = "reachproof.lab.services.__main__"
# What `lab up --ssh` needs besides (Debian's openssh-server and openssh-client).
SSH_PROGRAMS = ("sshd", "ssh", "ssh-keygen")


def require_lab(*programs: str) -> None:
    """Skip (under CI: fail) unless root, the lab's programs, `programs` (e.g. "sshd") and the
    lab's service supervisor are all here."""
    require(root=True, programs=(*LAB_PROGRAMS, *programs), modules=(SERVICES_MODULE,))


def unique_prefix(tag: str) -> str:
    """A prefix no other test (or a developer's own `rp` lab) uses: letter + 7 chars."""
    return (tag[:3] + uuid.uuid4().hex)[:8]


@contextlib.contextmanager
def lab(
    tmp: Path,
    tag: str,
    agents: int = 2,
    sessions: str = "single-node:2,multi-node:2",
    faults: tuple[str, ...] = (),
    perimeter: str = "drop",
    services: bool = True,
    ssh: bool = False,
    container_families: str = "4,6",
) -> Iterator[LabHandle]:
    """A lab that is torn down whatever happens in the block (also on KeyboardInterrupt)."""
    prefix = unique_prefix(tag)
    options = LabOptions.create(
        agents, sessions, faults, prefix, perimeter, ssh, container_families=container_families
    )
    try:
        handle = build_lab(
            options, tmp / f"{prefix}.yaml", **({} if services else {"supervisor": None})
        )
        yield handle
    finally:
        teardown(prefix)


def state(netns: str, address: object, port: int, timeout: float | None = None) -> Connect:
    """open / closed / timeout / prohibited of one TCP connect from inside `netns`."""
    wait = timeout if timeout is not None else ALLOW_TIMEOUT
    return tcp_connect(netns, str(address), port, timeout=wait).state


def blocked(netns: str, address: object, port: int) -> bool:
    return state(netns, address, port, DENY_TIMEOUT) in (Connect.TIMEOUT, Connect.PROHIBITED)


def banner(netns: str, address: object, port: int) -> bytes:
    result = tcp_connect(netns, str(address), port, timeout=ALLOW_TIMEOUT, read_banner=True)
    assert result.state is Connect.OPEN, f"{netns} → {address}:{port}: {result}"
    return result.banner


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _client(netns: str, address: object, port: int, tls: bool) -> socket.socket:
    """A connected socket from inside `netns`; with `tls` after an (unverified) handshake:
    these helpers test paths, `expect tls` and tests/lab/test_lab_tls.py test certificates."""
    sock = socket_in_netns(netns, _family(str(address)))
    sock.settimeout(10)
    try:
        sock.connect((str(address), port))
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context.wrap_socket(sock)
    except BaseException:
        sock.close()
        raise
    return sock


def tls_verdict(netns: str, address: object, port: int, ca: str, name: str) -> str:
    """ "ok <version>" when a handshake from inside `netns` verifies against `ca` for `name`,
    else what went wrong (the verification message, or the handshake error)."""
    context = ssl.create_default_context(cadata=ca)
    sock = socket_in_netns(netns, _family(str(address)))
    sock.settimeout(10)
    try:
        sock.connect((str(address), port))
        with context.wrap_socket(sock, server_hostname=name) as tls:
            return f"ok {tls.version()}"
    except ssl.SSLCertVerificationError as exc:
        return str(exc.verify_message)
    except ssl.SSLError as exc:
        return str(exc.reason)
    finally:
        sock.close()


def http_get(
    netns: str, address: object, port: int, path: str = "/", tls: bool = False
) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 GET sent from inside `netns` (over TLS with `tls`)."""
    with _client(netns, address, port, tls) as sock:
        host = f"[{address}]" if ":" in str(address) else str(address)
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def websocket_echo(
    netns: str, address: object, port: int, message: bytes, tls: bool = False
) -> tuple[int, bytes]:
    """Open a WebSocket from inside `netns`, send one text frame; (status, echoed payload)."""
    key = base64.b64encode(os.urandom(16)).decode()
    with _client(netns, address, port, tls) as sock:
        sock.sendall(
            (
                f"GET / HTTP/1.1\r\nHost: {address}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        if status != 101:
            return status, b""
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        )
        assert accept in head, "Sec-WebSocket-Accept does not match the key"
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(message))
        sock.sendall(bytes([0x81, 0x80 | len(message)]) + mask + masked)
        deadline = time.monotonic() + 10
        while len(rest) < 2 + len(message) and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            rest += chunk
        length = rest[1] & 0x7F
        return status, rest[2 : 2 + length]


def vxlan_frame(
    vni: int, dst_mac: bytes, src_ip: str, dst_ip: str, port: int, payload: bytes
) -> bytes:
    """A VXLAN packet carrying Ethernet/IPv4/UDP: what an outsider could inject into an overlay."""
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
        socket.inet_aton(src_ip), socket.inet_aton(dst_ip),
    )  # fmt: skip
    words = struct.unpack("!10H", header)
    total = sum(words)
    total = (total & 0xFFFF) + (total >> 16)
    checksum = ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF
    ip = header[:10] + struct.pack("!H", checksum) + header[12:]
    ether = dst_mac + bytes.fromhex("02aabbccddee") + b"\x08\x00"
    return struct.pack("!II", 0x08000000, vni << 8) + ether + ip + udp


def poll(predicate: object, timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll a zero-argument callable until it is truthy or `timeout` passes."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def overlay_injection_arrives(handle: LabHandle, timeout: float = 1.0) -> bool:
    """From the user, send a VXLAN packet to main1's agent that carries a UDP datagram for
    main1 of the first multi-node session; True when main1 receives it (a two-ended probe)."""
    from pyroute2 import IPRoute

    from reachproof.lab.netns import run_in_netns

    topo = handle.topology
    session = next(s for s in topo.sessions if s.mode == "multi-node")
    main = session.containers[0]

    def mac() -> bytes:
        with IPRoute() as ipr:
            link = ipr.get_links(ifname=main.cluster_ifname)[0]
            return bytes.fromhex(link.get_attr("IFLA_ADDRESS").replace(":", ""))

    receiver = socket_in_netns(main.netns, socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket_in_netns(topo.user.netns, socket.AF_INET, socket.SOCK_DGRAM)
    with receiver, sender:
        receiver.bind((str(main.cluster.v4.ip), 5555))
        receiver.settimeout(timeout)
        token = uuid.uuid4().bytes
        spoofed = str(session.v4_net.network.network_address + 250)
        frame = vxlan_frame(
            session.vni,
            run_in_netns(main.netns, mac),
            spoofed,
            str(main.cluster.v4.ip),
            5555,
            token,
        )
        agent = topo.agent(main.agent).node.addr.v4.ip
        for _ in range(3):  # bounded: three packets, one second each
            sender.sendto(frame, (str(agent), 4789))
            try:
                if receiver.recv(256) == token:
                    return True
            except TimeoutError:
                continue
    return False


def reply_ttls(
    handle: LabHandle, address: str, ports: tuple[int, ...]
) -> dict[int, tuple[int, str]]:
    """TTL and TCP flags of the first reply the user gets from `address` on each port."""
    user = handle.topology.user.netns
    raw = socket_in_netns(user, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    found: dict[int, tuple[int, str]] = {}
    with raw:
        raw.settimeout(0.2)
        for port in ports:
            state(user, address, port, DENY_TIMEOUT)
            deadline = time.monotonic() + 2
            while port not in found and time.monotonic() < deadline:
                try:
                    packet = raw.recv(65535)
                except TimeoutError:
                    continue
                ihl = (packet[0] & 0x0F) * 4
                src = socket.inet_ntoa(packet[12:16])
                sport = struct.unpack("!H", packet[ihl : ihl + 2])[0]
                flags = packet[ihl + 13]
                if src == address and sport == port:
                    found[port] = (packet[8], "rst" if flags & 0x04 else "syn-ack")
    return found
