"""Apply a Topology: namespaces, links, addresses, routes (pyroute2), firewalls (nft), hosts
files, inventory, the service supervisor and, with `ssh`, the lab's sshd (lab/sshd.py) and
its ssh inventory. `build_lab` is what `reachproof lab up` runs.

Speed: all netlink work runs in one worker thread that steps from namespace to namespace
(one IPRoute socket per namespace, veths created straight into their peer namespace), since
the GIL would serialise parallel netlink calls anyway; the nft loads, one per router
namespace, run as parallel subprocesses. Any failure — or KeyboardInterrupt — tears the
half-built lab down before the error propagates.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from reachproof.errors import LabError, ReachproofError
from reachproof.inventory.dump import dump_inventory
from reachproof.inventory.model import Inventory, SessionMode
from reachproof.lab import dockerlab, sshd
from reachproof.lab.inventory import hosts_file_text, lab_inventory, ssh_hosts, ssh_inventory
from reachproof.lab.netns import (
    ETC_NETNS_DIR,
    Connect,
    create_netns,
    entered,
    list_netns,
    netns_path,
    tcp_connect,
)
from reachproof.lab.nft import (
    agent_ruleset,
    apply_ruleset,
    docker_agent_ruleset,
    perimeter_ruleset,
    ssh_broken_ruleset,
)
from reachproof.lab.preflight import preflight
from reachproof.lab.serviceplan import service_plan
from reachproof.lab.state import (
    FAILED_FILE,
    PLAN_FILE,
    READY_FILE,
    SUPERVISOR_MODULE,
    TLS_DIR,
    LabState,
    digest,
    state_dir,
    supervisor_pid,
    teardown,
)
from reachproof.lab.targets import FaultTargets, fault_targets
from reachproof.lab.tlscerts import lab_certificates
from reachproof.lab.topology import (
    AGENT_RPC_PORT,
    FW_COMP,
    FW_EXT,
    FW_MGMT,
    TTYD_PORT,
    VXLAN_PORT,
    WEB_PORT,
    Container,
    DualStack,
    LabOptions,
    Topology,
    build_topology,
)

OVERLAY_MTU = 1450  # VXLAN adds 50 bytes to frames crossing a 1500-byte underlay

_HOST_SYSCTLS = {
    # No duplicate address detection: IPv6 addresses are usable at once, no waiting.
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
    "net.ipv6.conf.default.accept_ra": "0",
}
_ROUTER_SYSCTLS = {
    **_HOST_SYSCTLS,
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    # Bridged frames skip the inet hooks: only explicit `bridge` tables filter them.
    "net.bridge.bridge-nf-call-iptables": "0",
    "net.bridge.bridge-nf-call-ip6tables": "0",
    "net.bridge.bridge-nf-call-arptables": "0",
}

Command = Sequence[str]


def default_inventory_path(prefix: str) -> Path:
    if prefix == "rp":
        return Path(".reachproof/lab/inventory.yaml")
    return Path(f".reachproof/lab/{prefix}/inventory.yaml")


def ssh_inventory_path(inventory: Path) -> Path:
    """Where `lab up --ssh` writes the ssh inventory: next to the netns one."""
    return inventory.with_name(f"{inventory.stem}-ssh{inventory.suffix}")


def supervisor_command(plan: Path, directory: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        SUPERVISOR_MODULE,
        "--plan",
        str(plan),
        "--state-dir",
        str(directory),
    ]


@dataclass(frozen=True)
class LabHandle:
    """A running lab. `down()` removes it (same as `teardown(prefix)`)."""

    topology: Topology
    targets: FaultTargets
    state_dir: Path
    inventory_path: Path
    supervisor_pid: int | None
    build_seconds: float
    ssh_inventory_path: Path | None = None  # with LabOptions.ssh

    @property
    def prefix(self) -> str:
        return self.topology.prefix

    def down(self) -> None:
        teardown(self.prefix)


def build_lab(
    options: LabOptions,
    inventory_path: Path | None = None,
    supervisor: Callable[[Path, Path], Command] | None = supervisor_command,
    ready_timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> LabHandle:
    """Build and start the lab; return once its services answer.

    `supervisor(plan_path, state_dir)` gives the command that starts the services (tests may
    pass a stand-in; None starts none). On any error everything built so far is removed.
    """
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    topo = build_topology(options)
    targets = fault_targets(topo)
    prefix = options.prefix
    directory = state_dir(prefix)
    if list_netns(prefix) or directory.exists() or dockerlab.found_daemons(prefix):
        raise LabError(
            f"a lab with prefix {prefix!r} already exists; "
            f"run `reachproof lab down --prefix {prefix}` first"
        )
    inventory = (inventory_path or default_inventory_path(prefix)).absolute()
    ssh_path = ssh_inventory_path(inventory) if options.ssh else None
    try:
        preflight(prefix)
        if options.ssh:
            if topo.docker:
                raise LabError("--ssh is not available with --runtime docker yet")
            sshd.sshd_program()  # missing: say so before building anything
        directory.mkdir(parents=True)
        state = LabState(
            prefix=prefix,
            agents=options.agents,
            sessions=",".join(f"{s.mode}:{s.size}" for s in options.sessions),
            faults=tuple(f.name for f in options.faults),
            perimeter=str(options.perimeter),
            container_families=",".join(map(str, options.container_families)),
            inventory=str(inventory),
            namespaces=len(topo.namespaces()),
            ssh_inventory=str(ssh_path or ""),
            runtime=str(options.runtime),
        )
        state.write()  # first, so `lab down` finds the inventory even after a crash below
        say(f"creating {len(topo.namespaces())} namespaces, wiring links, addresses, routes")
        _in_worker(topo)
        say("loading firewalls")
        _firewalls(topo, targets)
        if topo.docker:
            topo = dockerlab.start_compute(topo, targets, say)
        else:
            _hosts_files(topo)
        say("making the lab CA and the TLS certificates")
        tls_dir = directory / TLS_DIR
        ca = lab_certificates(topo, tls_dir)
        exec_command = partial(dockerlab.exec_command, topo) if topo.docker else None
        netns_inventory = lab_inventory(topo, targets, str(inventory), exec_command, tls_ca=ca)
        state = _write_inventory(state, inventory, netns_inventory, ssh=False)
        plan = service_plan(topo, targets, tls_dir)
        (directory / PLAN_FILE).write_text(plan.to_json(), encoding="utf-8")
        state = replace(state, services=len(plan.listeners))
        state.write()
        pid = None
        if supervisor is not None:
            say(f"starting {len(plan.listeners)} services")
            timeout = ready_timeout or 30.0 + len(plan.listeners) / 50
            pid = _start_supervisor(
                supervisor(directory / PLAN_FILE, directory), directory, timeout
            )
            _verify(topo)
        if ssh_path is not None:
            files, hosts = sshd.ssh_files(directory), ssh_hosts(topo)
            say(f"starting {len(hosts)} sshd")
            sshd.prepare(files, hosts)
            sshd.start(files, hosts)
            ssh = ssh_inventory(topo, netns_inventory, files, str(ssh_path))
            state = _write_inventory(state, ssh_path, ssh, ssh=True)
    except BaseException as exc:
        with contextlib.suppress(ReachproofError):  # the first error is the one to report
            teardown(prefix)
        if isinstance(exc, ReachproofError | KeyboardInterrupt):
            raise
        raise LabError(f"building the lab failed: {exc}") from exc
    elapsed = time.monotonic() - started
    return LabHandle(topo, targets, directory, inventory, pid, elapsed, ssh_path)


def _write_inventory(state: LabState, path: Path, inventory: Inventory, ssh: bool) -> LabState:
    """Write `inventory` (the ssh one, or the netns one) to `path`; when the lab creates the
    file, its digest is recorded first, so a crash in between still finds it ours. A file that
    was there before is never the lab's to delete."""
    text = dump_inventory(inventory).encode("utf-8")
    if not path.exists():
        sha256 = digest(text)
        if ssh:
            state = replace(state, ssh_inventory_sha256=sha256)
        else:
            state = replace(state, inventory_sha256=sha256)
        state.write()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return state


# --- namespaces and links ----------------------------------------------------------------------


def _router_namespaces(topo: Topology) -> set[str]:
    return {topo.fw_netns, *(a.node.netns for a in topo.agents)}


class _Cancelled(Exception):
    """The caller gave up (KeyboardInterrupt): stop before the next namespace."""


def _create_namespaces(topo: Topology, cancel: threading.Event) -> None:
    routers = _router_namespaces(topo)
    for name in topo.namespaces():
        if cancel.is_set():
            raise _Cancelled
        create_netns(name, _ROUTER_SYSCTLS if name in routers else _HOST_SYSCTLS)


def _in_worker(topo: Topology) -> None:
    """Create and wire every namespace in one thread of its own (it enters namespaces; the
    caller's thread never does).

    If the caller is interrupted, the worker is told to stop and awaited before the error
    propagates, so teardown never races a worker still creating namespaces.
    """
    errors: list[BaseException] = []
    cancel = threading.Event()

    def run() -> None:
        try:
            _create_namespaces(topo, cancel)
            _wire(topo, cancel)
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    thread = threading.Thread(target=run, name="lab-wire", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except BaseException:
        cancel.set()
        thread.join(60)
        raise
    if errors:
        raise errors[0]


class _Links:
    """One namespace's netlink socket with an ifname → index cache."""

    def __init__(self, ipr: Any) -> None:
        self.ipr = ipr
        self.index: dict[str, int] = {}

    def refresh(self) -> None:
        self.index = {link.get_attr("IFLA_IFNAME"): link["index"] for link in self.ipr.get_links()}

    def idx(self, name: str) -> int:
        if name not in self.index:
            self.refresh()
        return self.index[name]

    def veth(self, name: str, peer: str, peer_netns: str, mtu: int | None = None) -> None:
        extra: dict[str, Any] = {"mtu": mtu} if mtu else {}
        peer_spec: dict[str, Any] = {"ifname": peer, "net_ns_fd": str(netns_path(peer_netns))}
        self.ipr.link("add", ifname=name, kind="veth", peer=peer_spec | extra, **extra)

    def bridge(self, name: str, mtu: int | None = None) -> None:
        extra: dict[str, Any] = {"mtu": mtu} if mtu else {}
        self.ipr.link("add", ifname=name, kind="bridge", **extra)

    def up(self, name: str, master: str | None = None) -> None:
        extra: dict[str, Any] = {"master": self.idx(master)} if master else {}
        self.ipr.link("set", index=self.idx(name), state="up", **extra)

    def address(self, name: str, addr: DualStack) -> None:
        index = self.idx(name)
        self.ipr.addr(
            "add", index=index, address=str(addr.v4.ip), prefixlen=addr.v4.network.prefixlen
        )
        self.ipr.addr(
            "add", index=index, address=str(addr.v6.ip), prefixlen=64, family=socket.AF_INET6
        )

    def default_route(self, via: DualStack) -> None:
        self.ipr.route("add", dst="0.0.0.0/0", gateway=str(via.v4.ip))
        self.ipr.route("add", dst="::/0", gateway=str(via.v6.ip), family=socket.AF_INET6)

    def route(self, dst: DualStack, via: DualStack) -> None:
        self.ipr.route("add", dst=str(dst.v4.network), gateway=str(via.v4.ip))
        self.ipr.route(
            "add", dst=str(dst.v6.network), gateway=str(via.v6.ip), family=socket.AF_INET6
        )


def _in_netns(name: str, fn: Callable[[_Links], None]) -> None:
    with entered(name), IPRoute() as ipr:
        links = _Links(ipr)
        try:
            fn(links)
        except ReachproofError:
            raise
        except Exception as exc:
            raise LabError(f"namespace {name}: {exc}") from exc


def _wire(topo: Topology, cancel: threading.Event) -> None:
    # Link owners first (their veths create the peers' interfaces), then the leaves.
    steps: list[tuple[str, Callable[[_Links], None]]] = [(topo.fw_netns, partial(_wire_fw, topo))]
    steps += [(a.node.netns, partial(_wire_agent, topo, a.number)) for a in topo.agents]
    # user-no-route: the user vantage reaches the management LAN only, nothing else.
    only = FW_MGMT if topo.has_fault("user-no-route") else None
    steps.append(
        (
            topo.user.netns,
            partial(_wire_leaf, addr=topo.user.addr, gateway=topo.user.gateway, only=only),
        )
    )
    steps += [
        (n.netns, partial(_wire_leaf, addr=n.addr, gateway=n.gateway)) for n in topo.management
    ]
    if not topo.docker:
        steps += [(c.netns, partial(_wire_container, topo, c)) for c in topo.containers]
    for netns, step in steps:
        if cancel.is_set():
            raise _Cancelled
        _in_netns(netns, step)


def _wire_fw(topo: Topology, links: _Links) -> None:
    links.up("lo")
    links.veth("ext", "eth0", topo.user.netns)
    links.bridge("mgmt")
    links.bridge("comp")
    for node in topo.management:
        links.veth(f"m-{node.name}", "eth0", node.netns)
    for agent in topo.agents:
        links.veth(f"a{agent.number}", "eth0", agent.node.netns)
    links.refresh()
    for name, addr in (("ext", FW_EXT), ("mgmt", FW_MGMT), ("comp", FW_COMP)):
        links.up(name)
        links.address(name, addr)
    for node in topo.management:
        links.up(f"m-{node.name}", master="mgmt")
    for agent in topo.agents:
        links.up(f"a{agent.number}", master="comp")
    for agent in topo.agents:
        links.route(agent.docker, agent.node.addr)
    # Everything else goes to the Internet side, so the perimeter chain (not a missing
    # route) decides what happens to users' packets for unknown inside addresses.
    links.default_route(topo.user.addr)


def _wire_agent(topo: Topology, number: int, links: _Links) -> None:
    agent = topo.agent(number)
    ipr = links.ipr
    links.up("lo")
    if topo.docker:  # dockerd makes docker0, the session bridges and the overlays itself
        links.up("eth0")
        links.address("eth0", agent.node.addr)
        links.default_route(agent.node.gateway)
        return
    links.bridge("docker0")
    containers = topo.containers_on(number)
    for c in containers:
        links.veth(c.default_port, "eth0", c.netns)
    sessions = [s for s in topo.sessions if any(c.agent == number for c in s.containers)]
    for s in sessions:
        multi = s.mode is SessionMode.MULTI_NODE
        links.bridge(s.bridge, OVERLAY_MTU if multi else None)
        if multi:
            ipr.link(
                "add",
                ifname=s.vxlan,
                kind="vxlan",
                vxlan_id=s.vni,
                vxlan_local=str(agent.node.addr.v4.ip),
                vxlan_port=VXLAN_PORT,
                vxlan_learning=1,
                mtu=OVERLAY_MTU,
            )
        for c in s.containers:
            if c.agent == number:
                links.veth(
                    c.cluster_port, c.cluster_ifname, c.netns, OVERLAY_MTU if multi else None
                )
    links.refresh()
    links.up("eth0")
    links.address("eth0", agent.node.addr)
    links.default_route(agent.node.gateway)
    links.up("docker0")
    links.address("docker0", agent.docker)
    for c in containers:
        links.up(c.default_port, master="docker0")
    for s in sessions:
        links.up(s.bridge)
        if s.mode is SessionMode.MULTI_NODE:
            links.up(s.vxlan, master=s.bridge)
            vx = links.idx(s.vxlan)
            for peer in s.agents():
                if peer != number:
                    dst = str(topo.agent(peer).node.addr.v4.ip)
                    # Head-end replication: flood unknown and broadcast frames to each peer.
                    ipr.fdb("append", ifindex=vx, lladdr="00:00:00:00:00:00", dst=dst)
        for c in s.containers:
            if c.agent == number:
                links.up(c.cluster_port, master=s.bridge)
    if topo.has_fault("agent-down") and fault_targets(topo).agent_down == number:
        # The agent is off the network: no carrier, no routes; its containers live on.
        ipr.link("set", index=links.idx("eth0"), state="down")


def _wire_leaf(
    links: _Links, addr: DualStack, gateway: DualStack, only: DualStack | None = None
) -> None:
    """A host with one uplink: a default route, or a route to the network of `only`."""
    links.up("lo")
    links.up("eth0")
    links.address("eth0", addr)
    if only is None:
        links.default_route(gateway)
    else:
        links.route(only, gateway)


def _wire_container(topo: Topology, c: Container, links: _Links) -> None:
    agent = topo.agent(c.agent)
    _wire_leaf(links, c.addr, agent.docker)
    links.up(c.cluster_ifname)
    links.address(c.cluster_ifname, c.cluster)


# --- firewalls, hosts files, services -------------------------------------------------------------


def _firewalls(topo: Topology, targets: FaultTargets) -> None:
    jobs = [(topo.fw_netns, perimeter_ruleset(topo))]
    if topo.docker:
        jobs += [(a.node.netns, docker_agent_ruleset(topo, a)) for a in topo.agents]
    else:
        jobs += [(a.node.netns, agent_ruleset(topo, a, targets)) for a in topo.agents]
    extra = None if topo.docker else ssh_broken_ruleset(topo, targets)
    if extra is not None:
        jobs.append(extra)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for future in [pool.submit(apply_ruleset, ns, text) for ns, text in jobs]:
            future.result()


def _hosts_files(topo: Topology) -> None:
    for c in topo.containers:
        directory = ETC_NETNS_DIR / c.netns
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts").write_text(hosts_file_text(topo, c), encoding="utf-8")


def _start_supervisor(command: Command, directory: Path, timeout: float) -> int | None:
    """Start the supervisor and poll for its verdict file (ready | failed) until `timeout`."""
    log = (directory / "launcher.log").open("wb")
    try:
        proc = subprocess.Popen(
            list(command), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    except OSError as exc:
        raise LabError(f"cannot start the service supervisor: {exc}") from exc
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    prefix = directory.name
    while time.monotonic() < deadline:
        if (directory / FAILED_FILE).exists():
            reason = (directory / FAILED_FILE).read_text(errors="replace").strip()
            raise LabError(f"the service supervisor failed: {reason}")
        if (directory / READY_FILE).exists():
            proc.poll()
            return supervisor_pid(prefix)
        code = proc.poll()
        if code not in (None, 0):
            tail = (directory / "launcher.log").read_text(errors="replace")[-2000:]
            raise LabError(f"the service supervisor exited with status {code}:\n{tail}")
        time.sleep(0.05)
    raise LabError(f"the service supervisor was not ready after {timeout:.0f}s")


def _verify(topo: Topology) -> None:
    """A few services answer, from inside the lab (never from the host's namespace)."""
    checks: list[tuple[str, IPv4Address | IPv6Address, int]] = [
        (topo.user.netns, topo.mgmt("webserver").addr.v4.ip, WEB_PORT),
        (topo.mgmt("manager").netns, topo.agents[0].node.addr.v4.ip, AGENT_RPC_PORT),
    ]
    if topo.containers:
        c = topo.containers[0]
        address = c.addr.v6.ip if topo.containers_v6 else c.addr.v4.ip
        checks.append((topo.agent(c.agent).node.netns, address, TTYD_PORT))
    for netns, address, port in checks:
        deadline = time.monotonic() + 10
        result = tcp_connect(netns, str(address), port, timeout=2.0)
        while result.state is not Connect.OPEN and time.monotonic() < deadline:
            time.sleep(0.1)
            result = tcp_connect(netns, str(address), port, timeout=2.0)
        if result.state is not Connect.OPEN:
            raise LabError(
                f"lab service check failed: {netns} → {address}:{port} is {result.state} "
                f"({result.detail})"
            )
