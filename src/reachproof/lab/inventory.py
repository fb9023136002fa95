"""The inventory of a lab (pure): what `lab up` writes so the checker can audit it.

Same shape as examples/lab-small.yaml: vantages are netns vantages named after their
namespace without the lab prefix (`s1-main1` runs in `rp-s1-main1`); each container's
vantage carries the cluster environment Backend.AI injects (backend-ai-facts.md).

`ssh_inventory` is the same lab seen as a real site is: every vantage an `exec` over ssh to
the lab's own sshd (lab/sshd.py). A container is reached as at a site, through its agent:
ssh to the agent, then `ip netns exec` into the container's namespace, where `docker exec -i`
would enter the container; `env -i` gives the worker the container's environment there.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import replace

from reachproof.inventory.model import (
    CONTAINER_ROLE,
    NO_FAMILIES,
    App,
    ContainerInfo,
    Families,
    FamilyRule,
    Host,
    Inventory,
    Session,
    Transport,
    Vantage,
)
from reachproof.lab.sshd import SshFiles, SshHost
from reachproof.lab.targets import FaultTargets
from reachproof.lab.tlscerts import TLS_HOSTS, tls_name
from reachproof.lab.topology import APP_PORT, Container, Node, Topology
from reachproof.ports import Ports, PortSet, Protocol

DIST_MASTER_PORT = 29500


def cluster_env(members: tuple[Container, ...], me: Container) -> tuple[tuple[str, str], ...]:
    """The environment Backend.AI gives `me`, a member of a session of `members` (kernel order)."""
    hosts = [c.hostname for c in members]
    subs = sum(1 for c in members if c.cluster_role == "sub")
    replicas = "main:1" + (f",sub:{subs}" if subs else "")
    env = [
        ("BACKENDAI_CLUSTER_SIZE", str(len(members))),
        ("BACKENDAI_CLUSTER_HOSTS", ",".join(hosts)),
        ("BACKENDAI_CLUSTER_REPLICAS", replicas),
        ("BACKENDAI_CLUSTER_HOST", me.hostname),
        ("BACKENDAI_CLUSTER_IDX", str(me.index)),
        ("BACKENDAI_CLUSTER_ROLE", me.cluster_role),
        ("BACKENDAI_CLUSTER_LOCAL_RANK", str(me.rank)),
    ]
    if len(members) > 1:  # derived variables only for sessions of more than one container
        workers = [f"{h}:{DIST_MASTER_PORT + i}" for i, h in enumerate(hosts)]
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": me.rank}}
        env += [
            ("MASTER_ADDR", hosts[0]),
            ("MASTER_PORT", str(DIST_MASTER_PORT)),
            ("TF_CONFIG", json.dumps(tf_config)),
        ]
    return tuple(env)


def wrong_env(env: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """One sub container claims one replica too many: only the cluster contract breaks."""
    out = []
    for key, value in env:
        if key == "BACKENDAI_CLUSTER_REPLICAS":
            role, _, count = value.rpartition(":")
            value = f"{role}:{int(count) + 1}"
        out.append((key, value))
    return tuple(out)


def contradicting_env(env: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """TF_CONFIG names task index 0 (main1's) in a sub container: only R15 breaks."""
    out = []
    for key, value in env:
        if key == "TF_CONFIG":
            config = json.loads(value)
            config["task"]["index"] = 0
            value = json.dumps(config)
        out.append((key, value))
    return tuple(out)


def _vantage_name(topo: Topology, netns: str) -> str:
    return netns.removeprefix(f"{topo.prefix}-")


def _node_host(
    topo: Topology,
    node: Node,
    services: tuple[tuple[str, tuple[Ports, ...]], ...] = (),
    tls: bool = False,
) -> Host:
    return Host(
        name=node.name,
        role=node.role,
        zone=node.zone,
        ipv4=(node.addr.v4.ip,),
        ipv6=(node.addr.v6.ip,),
        services=services,
        vantage=_vantage_name(topo, node.netns),
        tls_name=tls_name(topo, node.name) if tls and node.name in TLS_HOSTS else None,
    )


def lab_inventory(
    topo: Topology,
    targets: FaultTargets,
    path: str = "",
    exec_command: Callable[[Container], tuple[str, ...]] | None = None,
    tls_ca: str | None = None,
) -> Inventory:
    """The lab's inventory; with `exec_command` (the docker runtime) each container's vantage is
    an exec of that command, and its environment is the container's own (`docker run -e`).
    `tls_ca`: the lab CA's PEM when the lab serves TLS; its TLS hosts then get a tls_name
    (also where a fault serves plain HTTP: the site says TLS, the fault breaks it)."""
    vantages: list[Vantage] = []
    hosts: list[Host] = []
    nodes = (topo.user, *topo.management, *(a.node for a in topo.agents))
    for node in nodes:
        vantages.append(Vantage(_vantage_name(topo, node.netns), Transport.NETNS, netns=node.netns))
    hosts.append(_node_host(topo, topo.user))
    hosts += [_node_host(topo, n, tls=tls_ca is not None) for n in topo.management]
    for agent in topo.agents:
        published = [app.published_port for app in topo.apps if app.agent == agent.number]
        services: tuple[tuple[str, tuple[Ports, ...]], ...] = ()
        if published:
            # The proxy → agent hop probes the ports that really carry apps.
            services = (("host-port-pool", (Ports(Protocol.TCP, PortSet.of(published)),)),)
        hosts.append(_node_host(topo, agent.node, services))

    wrong = targets.env_wrong if topo.has_fault("cluster-env-wrong") else None
    contradicting = targets.env_wrong if topo.has_fault("training-env-inconsistent") else None
    sessions: list[Session] = []
    for session in topo.sessions:
        for c in session.containers:
            env = cluster_env(session.containers, c)
            if c == wrong:
                env = wrong_env(env)
            if c == contradicting:
                env = contradicting_env(env)
            if exec_command is not None:
                vantages.append(Vantage(c.vantage, Transport.EXEC, command=exec_command(c)))
            else:
                vantages.append(Vantage(c.vantage, Transport.NETNS, netns=c.netns, env=env))
            hosts.append(
                Host(
                    name=c.host_name,
                    role=CONTAINER_ROLE,
                    ipv4=(c.addr.v4.ip,),
                    ipv6=(c.addr.v6.ip,),
                    services=(("app", (Ports(Protocol.TCP, PortSet.of([APP_PORT])),)),)
                    if c.rank == 0
                    else (),
                    vantage=c.vantage,
                    container=ContainerInfo(
                        session=c.session,
                        hostname=c.hostname,
                        cluster_role=c.cluster_role,
                        index=c.index,
                        local_rank=c.rank,
                        agent=f"agent{c.agent}",
                        cluster_ipv4=(c.cluster.v4.ip,),
                        cluster_ipv6=(c.cluster.v6.ip,) if c.cluster_v6 else (),
                    ),
                )
            )
        sessions.append(
            Session(session.id, session.mode, tuple(c.host_name for c in session.containers))
        )
    proxy = topo.mgmt("appproxy")
    apps = tuple(
        App(
            session=app.session,
            name=app.name,
            proxy=proxy.name,
            address=proxy.addr.v4.ip,
            port=app.worker_port,
            container=app.container.host_name,
            container_port=app.container_port,
            published_port=app.published_port,
            identity=app.identity,
            speaks=app.speaks,
        )
        for app in topo.apps
    )
    return Inventory(
        path=path,
        sha256="",
        name=f"reachproof-lab-{topo.prefix}",
        vantages=tuple(vantages),
        hosts=tuple(hosts),
        sessions=tuple(sessions),
        apps=apps,
        tls_ca=tls_ca,
        families=NO_FAMILIES if topo.containers_v6 else V4_CONTAINERS,
    )


# `lab up --container-families 4`: what such a site's inventory says (docs/inventory.md).
V4_CONTAINERS = Families(
    default=FamilyRule((4, 6)),
    classes=(("container", FamilyRule((4,))), ("cluster", FamilyRule((4,)))),
    services=(("host-port-pool", FamilyRule((4,))), ("vxlan", FamilyRule((4,)))),
)


# The container's PATH: where its interpreter is found once `env -i` has cleared the rest.
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def ssh_hosts(topo: Topology) -> tuple[SshHost, ...]:
    """The hosts that get an sshd: every one but the containers (reached through their agent)."""
    nodes = (topo.user, *topo.management, *(a.node for a in topo.agents))
    return tuple(SshHost(n.name, n.netns, n.addr.v4.ip) for n in nodes)


def ssh_inventory(topo: Topology, inventory: Inventory, files: SshFiles, path: str) -> Inventory:
    """`inventory` (the lab's netns one) with every vantage an exec over ssh."""
    by_netns = {h.netns: h for h in ssh_hosts(topo)}
    containers = {c.netns: c for c in topo.containers}
    vantages: list[Vantage] = []
    for vantage in inventory.vantages:
        netns = vantage.netns or ""
        if netns in by_netns:
            command = files.client_command(by_netns[netns])
        else:
            c = containers[netns]
            agent = by_netns[topo.agent(c.agent).node.netns]
            # Everything after the destination reaches the agent's shell: quote it for that.
            env = (f"{k}={v}" for k, v in (("PATH", CONTAINER_PATH), *vantage.env))
            inside = ("ip", "netns", "exec", c.netns, "env", "-i", *env)
            command = files.client_command(agent, tuple(shlex.quote(w) for w in inside))
        # The program is `ip` (the client runs in the host's own namespace), so say it.
        vantages.append(Vantage(vantage.name, Transport.EXEC, command=command, remote_shell=True))
    return replace(inventory, path=path, name=f"{inventory.name}-ssh", vantages=tuple(vantages))


def hosts_file_text(topo: Topology, c: Container) -> str:
    """/etc/netns/<ns>/hosts of a container: its session's hostnames on the cluster network."""
    session = topo.session(c.session)
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    for peer in session.containers:
        lines.append(f"{peer.cluster.v4.ip}\t{peer.hostname}")
        if topo.containers_v6:
            lines.append(f"{peer.cluster.v6.ip}\t{peer.hostname}")
    return "\n".join(lines) + "\n"
