"""The compute zone on real Docker (`lab up --runtime docker`): a dockerd per agent namespace,
sessions as containers on a per-session bridge or a swarm overlay, apps published by Docker.

What the lab makes, per agent N (paths findable from the prefix alone, so `lab down` after any
SIGKILL finds them):

    dockerd       in P-agentN (lab/dockerd.py), hostname agentN, --bip 172.17.N.1/24,
                  --ipv6 --fixed-cidr-v6 fd00:17:N::/64, --icc=false (ICC off on docker0)
    run dir       /run/reachproof/lab/P/docker/agentN   (socket, pidfile, log, exec root)
    data dir      /var/lib/reachproof/lab/P/agentN      (data root: images, swarm state)
    cgroups       <controller>/reachproof-P-agentN/<container>

Sessions, as Backend.AI makes them (backend-ai-facts.md): a single-node session on the bridge
`bai-singlenode-sK` of its agent, a multi-node one on the attachable swarm overlay
`bai-multinode-sK` created on agent 1 (the swarm manager; the other agents join it; VXLAN
udp/4789 between them); every container also on the agent's default bridge, named
`sK-<hostname>`, with `--hostname` and a network alias of its cluster hostname, the cluster
environment as `docker run -e`, the session keypair under /home/config/ssh, and main1's apps
published with `-p <agent address>:<pool port>:<app port>`.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from reachproof.errors import LabError, UsageError
from reachproof.inventory.model import SessionMode
from reachproof.lab import dockerd
from reachproof.lab.dockerd import Dockerd, docker
from reachproof.lab.image import PLAN_PATH, SSH_DIR, Image, ensure_image, load
from reachproof.lab.inventory import cluster_env, wrong_env
from reachproof.lab.services.spec import Listener, ServiceKind, ServicePlan
from reachproof.lab.targets import FaultTargets
from reachproof.lab.topology import (
    APP_PORT,
    TTYD_PORT,
    Agent,
    Container,
    DualStack,
    Session,
    Topology,
    check_prefix,
    docker_net,
)

RUN_ROOT = Path("/run/reachproof/lab")
DATA_ROOT = Path("/var/lib/reachproof/lab")
SWARM_PORT = 2377
MAX_OVERLAY_SIZE = 125  # fixed addresses .2-.126; the swarm's own endpoints take .128-.255


def network_name(session: Session) -> str:
    kind = "multinode" if session.mode is SessionMode.MULTI_NODE else "singlenode"
    return f"bai-{kind}-{session.id}"


def container_name(c: Container) -> str:
    return f"{c.session}-{c.hostname}"


def _daemon(prefix: str, number: int, icc_off: bool = True) -> Dockerd:
    check_prefix(prefix)
    v4, v6 = docker_net(number)
    return Dockerd(
        netns=f"{prefix}-agent{number}",
        hostname=f"agent{number}",
        run_dir=RUN_ROOT / prefix / "docker" / f"agent{number}",
        data_dir=DATA_ROOT / prefix / f"agent{number}",
        cgroup_parent=f"reachproof-{prefix}-agent{number}",
        args=(
            "--bip",
            f"{v4.rsplit('.', 1)[0]}.1/24",
            "--ipv6",
            "--fixed-cidr-v6",
            f"{v6}/64",
            *(("--icc=false",) if icc_off else ()),  # cross-session: left out on one agent
            # Docker 20.10 applies ICC and its other rules to IPv6 only with ip6tables, which
            # is still experimental there; without it docker0 is open between containers
            # over IPv6 (the checker finds that: R11 FAIL).
            "--experimental",
            "--ip6tables",
        ),
    )


def agent_daemon(topo: Topology, agent: Agent, targets: FaultTargets | None = None) -> Dockerd:
    icc_on = (
        targets is not None
        and topo.has_fault("cross-session")
        and targets.cross_session_agent == agent.number
    )
    return _daemon(topo.prefix, agent.number, icc_off=not icc_on)


def exec_command(topo: Topology, c: Container) -> tuple[str, ...]:
    """The vantage of a container, as a site has it: `docker exec -i` through its agent's
    daemon (the CLI talks to the daemon's socket; it needs no namespace of its own)."""
    daemon = _daemon(topo.prefix, c.agent)
    return ("docker", "-H", daemon.host, "exec", "-i", container_name(c))


def found_daemons(prefix: str) -> list[Dockerd]:
    """Every daemon of lab `prefix` that left a directory (for `lab down`, whatever crashed)."""
    check_prefix(prefix)
    numbers: set[int] = set()
    for root in (RUN_ROOT / prefix / "docker", DATA_ROOT / prefix):
        if root.is_dir():
            numbers.update(
                int(p.name[5:])
                for p in root.iterdir()
                if p.name.startswith("agent") and p.name[5:].isdigit()
            )
    return [_daemon(prefix, n) for n in sorted(numbers)]


def stop_compute(prefix: str) -> list[str]:
    """Remove every daemon, container, network, mount, cgroup and directory of lab `prefix`."""
    daemons = found_daemons(prefix)
    removed: list[str] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for result in pool.map(dockerd.stop, daemons):
            removed += result
    for root in (DATA_ROOT / prefix, RUN_ROOT / prefix / "docker"):
        with contextlib.suppress(OSError):
            root.rmdir()
    return removed


@dataclass(frozen=True)
class Placed:
    """A container as Docker addressed it (inventory addresses come from here)."""

    container: Container
    addr: DualStack
    cluster: DualStack


def container_plan(c: Container, with_app: bool) -> ServicePlan:
    """What the lab's service program listens on inside one container (dropbear does 2200)."""
    identity = f"session={c.session} host={c.hostname}"
    listeners = [Listener("", TTYD_PORT, ServiceKind.WS_ECHO, identity)]
    if with_app:
        listeners.append(Listener("", APP_PORT, ServiceKind.HTTP, identity))
    return ServicePlan(tuple(listeners))


def _keypair(directory: Path) -> tuple[bytes, bytes]:
    key = directory / "id_cluster"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "", "-f", str(key)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key.read_bytes(), key.with_suffix(".pub").read_bytes()


def _files_tar(files: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data, mode in files:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def start_compute(
    topo: Topology,
    targets: FaultTargets,
    say: Callable[[str], None],
    image: Image | None = None,
) -> Topology:
    """Start the compute zone of `topo` on Docker; returns `topo` with the containers'
    addresses as Docker gave them. On error the caller tears everything down."""
    say("building/loading the session image")
    image = image or ensure_image(log=RUN_ROOT / topo.prefix / "image.log")
    daemons = {a.number: agent_daemon(topo, a, targets) for a in topo.agents}
    with ThreadPoolExecutor(max_workers=min(8, len(daemons))) as pool:
        say(f"starting {len(daemons)} dockerd")
        list(pool.map(dockerd.start, daemons.values()))
        say(f"importing {image.name} into each")
        list(pool.map(lambda d: load(d, image), daemons.values()))
    multi = [s for s in topo.sessions if s.mode is SessionMode.MULTI_NODE]
    if any(len(s.containers) > MAX_OVERLAY_SIZE for s in multi):
        raise UsageError(
            f"--runtime docker: a multi-node session has at most {MAX_OVERLAY_SIZE} containers"
        )
    if multi:
        say("forming the swarm")
        _swarm(topo, daemons)
    try:
        for s in topo.sessions:
            _network(topo, s, daemons)
        placed = _containers(topo, targets, daemons, image)
    except LabError as exc:
        raise LabError(f"{exc}\n{_errors_logged(daemons)}") from exc
    by_key = {(p.container.session, p.container.hostname): p for p in placed}
    sessions = tuple(
        replace(
            s,
            containers=tuple(
                replace(c, addr=by_key[c.session, c.hostname].addr,
                        cluster=by_key[c.session, c.hostname].cluster,
                        cluster_v6=not _overlay(c))
                for c in s.containers
            ),
        )
        for s in topo.sessions
    )  # fmt: skip
    by_container = {(c.session, c.hostname): c for s in sessions for c in s.containers}
    apps = tuple(
        replace(a, container=by_container[a.container.session, a.container.hostname])
        for a in topo.apps
    )
    return replace(topo, sessions=sessions, apps=apps)


def _errors_logged(daemons: dict[int, Dockerd]) -> str:
    """The daemons' own error lines (their logs go with the lab's teardown)."""
    lines = []
    for number, daemon in sorted(daemons.items()):
        with contextlib.suppress(OSError):
            for line in daemon.log.read_text(errors="replace").splitlines():
                # (no IPVS in this kernel: its sysctl errors are not ours to fix)
                if ("level=error" in line or "level=fatal" in line) and "net.ipv4.vs." not in line:
                    lines.append(f"agent{number}: {line[:300]}")
    return "\n".join(lines[-12:])


def _swarm(topo: Topology, daemons: dict[int, Dockerd]) -> None:
    manager = daemons[1]
    addr = str(topo.agent(1).node.addr.v4.ip)
    docker(manager, "swarm", "init", "--advertise-addr", addr, "--listen-addr", f"{addr}:2377")
    token = docker(manager, "swarm", "join-token", "-q", "worker").strip()

    def join(agent: Agent) -> None:
        own = str(agent.node.addr.v4.ip)
        docker(
            daemons[agent.number],
            "swarm", "join", "--token", token, "--advertise-addr", own,
            "--listen-addr", f"{own}:2377", f"{addr}:{SWARM_PORT}",
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(join, topo.agents[1:]))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # attachments fail while a node is still joining
        states = docker(manager, "node", "ls", "--format", "{{.Status}}").split()
        if len(states) == len(topo.agents) and all(s == "Ready" for s in states):
            return
        time.sleep(0.2)
    raise LabError(f"the swarm of agent1 has not every agent Ready after 60s: {states}")


def _network(topo: Topology, s: Session, daemons: dict[int, Dockerd]) -> None:
    subnets = ["--subnet", str(s.v4_net.network), "--subnet", str(s.v6_net.network)]
    if s.mode is SessionMode.MULTI_NODE:
        # Docker 20.10's swarm allocator takes one subnet of an overlay: IPv4 only. Each
        # node's own endpoint on it gets an address from --ip-range, so the containers' fixed
        # addresses (.2 upwards) never collide with one.
        docker(
            daemons[1], "network", "create", "--driver", "overlay", "--attachable",
            "--subnet", str(s.v4_net.network), "--ip-range", _upper_half(s), network_name(s),
        )  # fmt: skip
    else:
        # Not --internal: Docker 20.10's isolation rules for an internal network drop every
        # packet whose source is outside its subnets, IPv6 neighbour probes from link-local
        # addresses too, so peers turn unreachable over IPv6 now and then.
        docker(
            daemons[s.containers[0].agent], "network", "create", "--driver", "bridge",
            "--ipv6", *subnets, network_name(s),
        )  # fmt: skip


def _upper_half(s: Session) -> str:
    base = s.v4_net.network.network_address
    return f"{base + 128}/25"


def _run_args(topo: Topology, targets: FaultTargets, c: Container, image: Image) -> list[str]:
    session = topo.session(c.session)
    env = cluster_env(session.containers, c)
    if topo.has_fault("cluster-env-wrong") and targets.env_wrong == c:
        env = wrong_env(env)  # overridden at `docker run`, as a launcher script might
    args = [
        "create", "--name", container_name(c), "--hostname", c.hostname,
        "--network", "bridge",
    ]  # fmt: skip
    for key, value in env:
        args += ["-e", f"{key}={value}"]
    agent_ip = topo.agent(c.agent).node.addr.v4.ip
    for app in topo.apps:
        if app.container == c:
            args += ["-p", f"{agent_ip}:{app.published_port}:{app.container_port}"]
    return [*args, image.name]


def _containers(
    topo: Topology, targets: FaultTargets, daemons: dict[int, Dockerd], image: Image
) -> list[Placed]:
    keys: dict[str, tuple[bytes, bytes]] = {}
    with tempfile.TemporaryDirectory(prefix="reachproof-keys-") as tmp:
        for s in topo.sessions:
            (Path(tmp) / s.id).mkdir()
            keys[s.id] = _keypair(Path(tmp) / s.id)

    overlay_lock = threading.Lock()

    def on_agent(number: int) -> list[Placed]:
        daemon = daemons[number]
        out = []
        for c in topo.containers_on(number):  # in order: docker0 addresses .2, .3, …
            name = container_name(c)
            docker(daemon, *_run_args(topo, targets, c, image))
            v6 = () if _overlay(c) else ("--ip6", str(c.cluster.v6.ip))
            docker(
                daemon, "network", "connect", "--alias", c.hostname,
                "--ip", str(c.cluster.v4.ip), *v6, network_name(topo.session(c.session)), name,
            )  # fmt: skip
            private, public = keys[c.session]
            plan = container_plan(c, with_app=c.rank == 0).to_json().encode()
            files = [
                (PLAN_PATH, plan, 0o644),
                (f"{SSH_DIR}/id_cluster", private, 0o600),
                (f"{SSH_DIR}/id_cluster.pub", public, 0o644),
            ]
            docker(daemon, "cp", "-", f"{name}:/", stdin=_files_tar(files))
            if _overlay(c):
                with overlay_lock:  # one attachment at a time
                    _start_attached(daemon, name)
            else:
                docker(daemon, "start", name)
            out.append(_placed(daemon, c, network_name(topo.session(c.session))))
        return out

    # The swarm manager's containers first: its overlay attachments time out when the
    # workers' come first (Docker 20.10).
    placed = on_agent(1)
    with ThreadPoolExecutor(max_workers=min(8, len(daemons))) as pool:
        for result in pool.map(on_agent, sorted(daemons)[1:]):
            placed += result
    return placed


def _start_attached(daemon: Dockerd, name: str, attempts: int = 3) -> None:
    """Start a container on a swarm overlay. Right after a network's creation the swarm
    allocator may not have it ready, and the attachment times out once: try again."""
    for attempt in range(attempts):
        try:
            docker(daemon, "start", name, timeout=60)
            return
        except LabError as exc:
            if "attaching to network failed" not in str(exc) or attempt == attempts - 1:
                raise


def _overlay(c: Container) -> bool:
    return c.mode is SessionMode.MULTI_NODE


def _placed(daemon: Dockerd, c: Container, cluster_net: str) -> Placed:
    info = json.loads(docker(daemon, "inspect", container_name(c)))[0]
    nets = info["NetworkSettings"]["Networks"]

    def pair(net: dict[str, object], v6_planned: DualStack | None) -> DualStack:
        if not net["IPAddress"] or (v6_planned is None and not net["GlobalIPv6Address"]):
            raise LabError(f"container {container_name(c)}: Docker gave no address pair: {net}")
        v4 = f"{net['IPAddress']}/{net['IPPrefixLen']}"
        if v6_planned is not None:  # none on the overlay: the inventory lists no IPv6 there
            return DualStack(DualStack.of(v4, "::1/128").v4, v6_planned.v6)
        return DualStack.of(v4, f"{net['GlobalIPv6Address']}/{net['GlobalIPv6PrefixLen']}")

    cluster = pair(nets[cluster_net], c.cluster if _overlay(c) else None)
    return Placed(c, pair(nets["bridge"], None), cluster)
