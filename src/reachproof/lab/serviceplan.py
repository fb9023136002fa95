"""What the lab's supervisor listens on (pure): a `ServicePlan` derived from the topology."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from reachproof.lab.services.spec import Listener, ServiceKind, ServicePlan
from reachproof.lab.targets import FaultTargets
from reachproof.lab.tlscerts import PLAIN_HTTP_FAULT, cert_paths
from reachproof.lab.topology import (
    AGENT_PORTS,
    APP_PORT,
    COORDINATOR_PORT,
    MANAGER_API_PORT,
    MANAGER_INTERNAL_PORT,
    METADATA_PORT,
    SSH_PORT,
    TTYD_PORT,
    WEB_PORT,
    WORKER_API_PORT,
    WORKER_PORTS,
    Container,
    Topology,
)

_DB = ((2379, "etcd"), (6379, "redis"), (5432, "postgres"))


def container_identity(c: Container) -> str:
    return f"session={c.session} host={c.hostname}"


# The user-facing ports that speak TLS, per lab host.
_TLS_PORTS = {
    "webserver": frozenset({WEB_PORT}),
    "appproxy": frozenset({COORDINATOR_PORT, *WORKER_PORTS}),
}


def _with_tls(topo: Topology, tls_dir: Path | None, item: Listener) -> Listener:
    """`item` with the lab certificate of its host where it faces users (unchanged without a
    lab CA, and on the webserver under the plain-HTTP fault)."""
    if tls_dir is None:
        return item
    for host, ports in _TLS_PORTS.items():
        if item.netns != topo.mgmt(host).netns or item.port not in ports:
            continue
        if host == "webserver" and topo.has_fault(PLAIN_HTTP_FAULT):
            return item
        cert = cert_paths(tls_dir, host)
        return replace(item, tls_cert=str(cert.cert), tls_key=str(cert.key))
    return item


def service_plan(topo: Topology, targets: FaultTargets, tls_dir: Path | None = None) -> ServicePlan:
    """`tls_dir`: where lab_certificates() put the lab's certificates; the webserver and the
    AppProxy's user-facing ports (coordinator, worker slots) then speak TLS, as the shipped
    configs set them (`ssl-enabled`, `tls_listen`)."""
    web = topo.mgmt("webserver")
    manager = topo.mgmt("manager")
    proxy = topo.mgmt("appproxy")
    db = topo.mgmt("db")
    out: list[Listener] = [
        Listener(
            web.netns, WEB_PORT, ServiceKind.WEBSERVER, "webserver",
            ((str(manager.addr.v4.ip), MANAGER_API_PORT),),
        ),
        Listener(
            manager.netns, MANAGER_API_PORT, ServiceKind.MANAGER, "manager",
            tuple((str(a.node.addr.v4.ip), AGENT_PORTS[0]) for a in topo.agents),
        ),
        Listener(manager.netns, MANAGER_INTERNAL_PORT, ServiceKind.HTTP, "manager-internal"),
        Listener(proxy.netns, COORDINATOR_PORT, ServiceKind.HTTP, "appproxy-coordinator"),
        Listener(proxy.netns, WORKER_API_PORT, ServiceKind.HTTP, "appproxy-worker-api"),
    ]  # fmt: skip
    by_worker = {app.worker_port: app for app in topo.apps}
    for port in WORKER_PORTS:
        # Port mode binds the whole range at start; unassigned slots answer 400.
        app = by_worker.get(port)
        upstreams = (
            ((str(topo.agent(app.agent).node.addr.v4.ip), app.published_port),) if app else ()
        )
        out.append(
            Listener(proxy.netns, port, ServiceKind.APPPROXY_WORKER, "appproxy-worker", upstreams)
        )
    out += [Listener(db.netns, port, ServiceKind.BANNER, name) for port, name in _DB]
    down = targets.agent_down if topo.has_fault("agent-down") else None
    for agent in topo.agents:
        if agent.number == down:
            continue  # agent-down: none of its services run
        ns, name = agent.node.netns, agent.name
        out += [
            Listener(ns, AGENT_PORTS[0], ServiceKind.BANNER, f"{name} rpc"),
            Listener(ns, AGENT_PORTS[1], ServiceKind.BANNER, f"{name} internal"),
            Listener(ns, AGENT_PORTS[2], ServiceKind.HTTP, f"{name} watcher"),
            Listener(ns, METADATA_PORT, ServiceKind.HTTP, f"{name} metadata"),
        ]
    stray = targets.app_outside_main if topo.has_fault("app-outside-main") else None
    hidden = targets.app_outside_main if topo.has_fault("app-on-default-address") else None
    # On the docker runtime each container runs its own (dockerlab.container_plan).
    for c in () if topo.docker else topo.containers:
        identity = container_identity(c)
        out += [
            Listener(c.netns, SSH_PORT, ServiceKind.BANNER, f"SSH-2.0-dropbear {identity}"),
            Listener(c.netns, TTYD_PORT, ServiceKind.WS_ECHO, identity),
        ]
        if c.rank == 0 or c == stray:
            out.append(Listener(c.netns, APP_PORT, ServiceKind.HTTP, identity))
        elif c == hidden:  # on its default-network address only: its peers never reach it
            out.append(
                Listener(c.netns, APP_PORT, ServiceKind.HTTP, identity, bind=str(c.addr.v4.ip))
            )
    return ServicePlan(tuple(_with_tls(topo, tls_dir, item) for item in out))
