"""What a Backend.AI manager knows, as an inventory document (pure).

The manager's GraphQL API (`/admin/gql`, the legacy graphene schema of 26.x) gives agents
(id, status, `addr` = `tcp://HOST:PORT` of their RPC), compute sessions (cluster mode and
size, service ports) and their containers (kernels: cluster hostname, role, index, local
rank, agent, container id), and the scaling groups' AppProxy address (`wsproxy_addr`). An
AppProxy coordinator lists its workers' circuits (port, app, session, published host port).
This module turns those answers into the plain mapping of an inventory file (schema 1); the
loader validates it as it validates a hand-written one.

What the API does not know (the user's vantage, the webserver's public address, container
addresses, overrides) comes from a site file merged over the result (`merge_site`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from reachproof.discover.templates import Template
from reachproof.errors import DiscoveryError

PAGE = 100
# Every session not finished: one still pending has containers without an agent, which is an
# error unless --skip-pending leaves it out (an inventory is never silently incomplete).
LIVE_STATUSES = (
    "PENDING,SCHEDULED,PREPARING,PULLING,PREPARED,CREATING,RUNNING,RESTARTING,RUNNING_DEGRADED"
)
AGENT_STATUSES = "ALIVE,LOST,RESTARTING"

AGENTS_QUERY = """
query($limit: Int!, $offset: Int!, $status: String) {
  agent_list(limit: $limit, offset: $offset, status: $status) {
    total_count
    items { id status addr scaling_group }
  }
}"""

SESSIONS_QUERY = """
query($limit: Int!, $offset: Int!, $status: String) {
  compute_session_list(limit: $limit, offset: $offset, status: $status) {
    total_count
    items {
      session_id name status cluster_mode cluster_size scaling_group service_ports
      containers {
        kernel_id cluster_hostname cluster_role cluster_idx local_rank
        agent agent_addr container_id status
      }
    }
  }
}"""

SCALING_GROUPS_QUERY = """
query { scaling_groups(is_active: true) { name wsproxy_addr use_host_network } }"""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
DEFAULT_PORTS = {"manager-api": 8081, "agent-rpc": 6001, "appproxy-coordinator": 10200}


@dataclass(frozen=True)
class Agent:
    id: str
    status: str
    host: str | None  # of `addr`: an IP literal or a DNS name
    port: int | None
    scaling_group: str | None


@dataclass(frozen=True)
class Kernel:
    kernel_id: str
    hostname: str
    role: str
    index: int
    local_rank: int | None
    agent: str | None
    agent_host: str | None
    container_id: str | None


@dataclass(frozen=True)
class ComputeSession:
    id: str
    name: str
    status: str
    mode: str
    size: int
    kernels: tuple[Kernel, ...]
    service_ports: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ScalingGroup:
    name: str
    appproxy_host: str | None
    appproxy_port: int | None


@dataclass(frozen=True)
class Circuit:
    app: str
    port: int | None
    session_id: str
    kernel_host: str
    kernel_port: int
    worker_host: str | None
    open_to_public: bool
    allowed_client_ips: str | None


@dataclass(frozen=True)
class Snapshot:
    """One discovery's view of the cluster, as the APIs gave it."""

    agents: tuple[Agent, ...]
    sessions: tuple[ComputeSession, ...]
    scaling_groups: tuple[ScalingGroup, ...]
    circuits: tuple[Circuit, ...] = ()


@dataclass(frozen=True)
class Options:
    name: str = ""
    manager_host: str | None = None  # the endpoint's host, when it is the manager itself
    manager_port: int | None = None
    agent_vantage: Template | None = None
    container_vantage: Template | None = None
    skip_pending: bool = False  # leave out sessions whose containers have no agent yet
    skipped: list[str] = field(default_factory=list)  # filled in: what was left out, and why


def split_addr(addr: object, what: str) -> tuple[str | None, int | None]:
    """`tcp://10.0.2.11:6001` (or `http://…`, `[fd00::1]:6001`, a bare host) → host, port."""
    if addr is None or addr == "":
        return None, None
    if not isinstance(addr, str):
        raise DiscoveryError(f"{what}: address {addr!r} is not a string")
    text = addr if "://" in addr else f"tcp://{addr}"
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise DiscoveryError(f"{what}: address {addr!r}: {exc}") from exc
    if not host:
        raise DiscoveryError(f"{what}: address {addr!r} has no host")
    return host, port


def _items(data: Mapping[str, Any], key: str) -> tuple[list[Any], int]:
    block = data.get(key)
    if not isinstance(block, dict) or not isinstance(block.get("items"), list):
        raise DiscoveryError(f"GraphQL answer has no {key}.items")
    total = block.get("total_count")
    return block["items"], total if isinstance(total, int) else len(block["items"])


def _str(row: Mapping[str, Any], key: str, what: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value:
        raise DiscoveryError(f"{what}: the API gave no {key}")
    return value


def parse_agent(row: Mapping[str, Any]) -> Agent:
    agent_id = _str(row, "id", "agent")
    host, port = split_addr(row.get("addr"), f"agent {agent_id!r}")
    status = str(row.get("status") or "")
    group = row.get("scaling_group")
    return Agent(agent_id, status, host, port, group if isinstance(group, str) else None)


def parse_session(row: Mapping[str, Any]) -> ComputeSession:
    session_id = _str(row, "session_id", "session")
    what = f"session {session_id}"
    containers = row.get("containers")
    if not isinstance(containers, list):
        raise DiscoveryError(f"{what}: the API gave no containers")
    kernels = []
    for c in containers:
        if not isinstance(c, dict):
            raise DiscoveryError(f"{what}: a container that is not an object")
        kernel_id = _str(c, "kernel_id", f"{what}: container")
        kwhat = f"{what} kernel {kernel_id}"
        index = c.get("cluster_idx")
        if not isinstance(index, int):
            raise DiscoveryError(f"{kwhat}: the API gave no cluster_idx")
        rank = c.get("local_rank")
        agent_host, _port = split_addr(c.get("agent_addr"), kwhat)
        agent = c.get("agent")
        cid = c.get("container_id")
        kernels.append(
            Kernel(
                kernel_id=kernel_id,
                hostname=_str(c, "cluster_hostname", kwhat),
                role=_str(c, "cluster_role", kwhat),
                index=index,
                local_rank=rank if isinstance(rank, int) else None,
                agent=agent if isinstance(agent, str) and agent else None,
                agent_host=agent_host,
                container_id=cid if isinstance(cid, str) and cid else None,
            )
        )
    size = row.get("cluster_size")
    ports = _json_list(row.get("service_ports"))
    return ComputeSession(
        id=session_id,
        name=str(row.get("name") or ""),
        status=str(row.get("status") or ""),
        mode=_str(row, "cluster_mode", what),
        size=size if isinstance(size, int) else len(kernels),
        kernels=tuple(kernels),
        service_ports=tuple(p for p in ports if isinstance(p, dict)),
    )


def _json_list(value: object) -> list[Any]:
    """A JSONString field: graphene sends it as a string holding JSON."""
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return value if isinstance(value, list) else []


def parse_scaling_groups(data: Mapping[str, Any]) -> tuple[ScalingGroup, ...]:
    rows = data.get("scaling_groups")
    if not isinstance(rows, list):
        raise DiscoveryError("GraphQL answer has no scaling_groups")
    groups = []
    for row in rows:
        name = _str(row, "name", "scaling group")
        host, port = split_addr(row.get("wsproxy_addr"), f"scaling group {name!r}")
        groups.append(ScalingGroup(name, host, port))
    return tuple(groups)


def parse_circuits(
    workers: Sequence[Mapping[str, Any]], circuits: Mapping[str, Sequence[Mapping[str, Any]]]
) -> tuple[Circuit, ...]:
    """Port-mode interactive circuits of the coordinator's workers (`/api/worker`,
    `/api/worker/{id}/circuits`); inference and wildcard-domain circuits have no port to
    probe and are left out."""
    hosts = {str(w.get("id")): w.get("hostname") for w in workers}
    out = []
    for worker_id, rows in circuits.items():
        for row in rows:
            if row.get("app_mode") != "interactive" or row.get("frontend_mode") != "port":
                continue
            for route in row.get("route_info") or ():
                host = hosts.get(worker_id)
                out.append(
                    Circuit(
                        app=str(row.get("app") or ""),
                        port=row.get("port") if isinstance(row.get("port"), int) else None,
                        session_id=str(route.get("session_id")),
                        kernel_host=str(route.get("kernel_host")),
                        kernel_port=int(route.get("kernel_port")),
                        worker_host=host if isinstance(host, str) else None,
                        open_to_public=bool(row.get("open_to_public")),
                        allowed_client_ips=row.get("allowed_client_ips"),
                    )
                )
    return tuple(out)


def _ip(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if host is None:
        return None
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _addresses(host: str | None, what: str, notes: list[str]) -> dict[str, str]:
    ip = _ip(host)
    if ip is None:
        if host is not None:
            notes.append(f"{what}: {host!r} is a name, not an address: add it in the site file")
        return {}
    return {"ipv4" if ip.version == 4 else "ipv6": str(ip)}


def _services(service: str, port: int | None) -> dict[str, Any]:
    if port is None or port == DEFAULT_PORTS[service]:
        return {}
    return {"services": {service: f"tcp/{port}"}}


def _name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise DiscoveryError(f"{what} {value!r} cannot be an inventory name")
    return value


def build_document(snapshot: Snapshot, options: Options) -> dict[str, Any]:
    """The inventory document (a plain mapping, schema 1) for `snapshot`."""
    notes = options.skipped
    vantages: dict[str, Any] = {}
    hosts: dict[str, Any] = {}
    if options.manager_host is not None:
        manager = {"role": "manager", "zone": "management"}
        manager |= _addresses(options.manager_host, "manager endpoint", notes)
        manager |= _services("manager-api", options.manager_port)
        hosts["manager"] = manager
    agents = {a.id: a for a in snapshot.agents}
    for agent in snapshot.agents:
        name = _name(agent.id, "agent id")
        host: dict[str, Any] = {"role": "agent", "zone": "compute"}
        host |= _addresses(agent.host, f"agent {name}", notes)
        host |= _services("agent-rpc", agent.port)
        if options.agent_vantage is not None:
            values = {"agent_id": agent.id, "agent_addr": agent.host}
            command = options.agent_vantage.render(values, f"agent {name}")
            vantages[name] = {"transport": "exec", "command": list(command)}
            host["vantage"] = name
        hosts[name] = host
    proxies: dict[str, str] = {}  # AppProxy address → host name
    for group in snapshot.scaling_groups:
        if group.appproxy_host is None:
            continue
        key = f"{group.appproxy_host}:{group.appproxy_port}"
        if key in proxies:
            continue
        name = _name(f"appproxy-{group.name}", "scaling group")
        proxy: dict[str, Any] = {"role": "appproxy", "zone": "management"}
        proxy |= _addresses(group.appproxy_host, f"AppProxy of {group.name}", notes)
        proxy |= _services("appproxy-coordinator", group.appproxy_port)
        proxies[key] = name
        hosts[name] = proxy
    sessions: dict[str, Any] = {}
    for session in snapshot.sessions:
        entry = _session(session, agents, options, vantages)
        if entry is not None:
            sessions[session.id] = entry
    doc: dict[str, Any] = {"version": 1}
    if options.name:
        doc["name"] = options.name
    for key, value in (("vantages", vantages), ("hosts", hosts), ("sessions", sessions)):
        if value:
            doc[key] = value
    apps = _apps(snapshot, sessions, hosts, notes)
    if apps:
        doc["apps"] = apps
    return doc


def _session(
    session: ComputeSession,
    agents: Mapping[str, Agent],
    options: Options,
    vantages: dict[str, Any],
) -> dict[str, Any] | None:
    what = f"session {session.id} ({session.name or 'unnamed'}, {session.status})"
    waiting = [k.hostname for k in session.kernels if k.agent is None]
    if waiting or not session.kernels:
        if options.skip_pending:
            options.skipped.append(f"{what}: left out, its containers have no agent yet")
            return None
        hosts = ", ".join(waiting) or "all (no container yet)"
        raise DiscoveryError(
            f"{what}: containers {hosts} have no agent yet, so the inventory would be "
            "incomplete; run again once it is scheduled, or pass --skip-pending"
        )
    if session.mode not in ("single-node", "multi-node"):
        raise DiscoveryError(f"{what}: unknown cluster_mode {session.mode!r}")
    containers = []
    for kernel in sorted(session.kernels, key=lambda k: (k.role != "main", k.role, k.index)):
        assert kernel.agent is not None
        if kernel.agent not in agents:
            raise DiscoveryError(
                f"{what}: container {kernel.hostname} runs on agent {kernel.agent!r}, which "
                "the agent list does not have (a key without superadmin rights, or "
                "hide-agents: discovery needs a key that sees every agent)"
            )
        if not _HOSTNAME.fullmatch(kernel.hostname):
            raise DiscoveryError(f"{what}: cluster hostname {kernel.hostname!r} is no DNS label")
        entry: dict[str, Any] = {
            "hostname": kernel.hostname,
            "role": kernel.role,
            "index": kernel.index,
            "agent": kernel.agent,
        }
        if options.container_vantage is not None:
            agent = agents[kernel.agent]
            values = {
                "agent_id": kernel.agent,
                "agent_addr": kernel.agent_host or agent.host,
                "session_id": session.id,
                "kernel_id": kernel.kernel_id,
                "container_id": kernel.container_id,
                "cluster_hostname": kernel.hostname,
            }
            name = f"{session.id}-{kernel.hostname}"
            command = options.container_vantage.render(values, f"{what} {kernel.hostname}")
            vantages[name] = {"transport": "exec", "command": list(command)}
            entry["vantage"] = name
        containers.append(entry)
    return {"mode": session.mode, "containers": containers}


def _apps(
    snapshot: Snapshot, sessions: Mapping[str, Any], hosts: Mapping[str, Any], notes: list[str]
) -> list[dict[str, Any]]:
    by_id = {s.id: s for s in snapshot.sessions}
    proxy_by_ip = {
        addr: name
        for name, h in hosts.items()
        if h.get("role") == "appproxy"
        for addr in (h.get("ipv4"), h.get("ipv6"))
        if addr
    }
    apps = []
    for circuit in snapshot.circuits:
        session = by_id.get(circuit.session_id)
        what = f"circuit {circuit.app} of session {circuit.session_id}"
        if session is None or circuit.session_id not in sessions:
            notes.append(f"{what}: left out, the session is not in the inventory")
            continue
        ip = _ip(circuit.worker_host)
        proxy = proxy_by_ip.get(str(ip)) if ip is not None else None
        if proxy is None or circuit.port is None:
            notes.append(f"{what}: left out, its worker {circuit.worker_host!r} is no known host")
            continue
        port = next(
            (
                p
                for p in session.service_ports
                if p.get("name") == circuit.app and circuit.kernel_port in p.get("host_ports", ())
            ),
            None,
        )
        if port is None:
            notes.append(f"{what}: left out, no service port publishes {circuit.kernel_port}")
            continue
        index = list(port["host_ports"]).index(circuit.kernel_port)
        apps.append(
            {
                "session": session.id,
                "name": circuit.app,
                "proxy": proxy,
                "address": str(ip),
                "port": circuit.port,
                "container": _main_hostname(session),
                "container_port": int(port["container_ports"][index]),
                "published_port": circuit.kernel_port,
            }
        )
    return apps


def _main_hostname(session: ComputeSession) -> str:
    """Interactive apps run in the main container (main1)."""
    mains = sorted((k for k in session.kernels if k.role == "main"), key=lambda k: k.index)
    return mains[0].hostname if mains else "main1"


def merge_site(discovered: Mapping[str, Any], site: Mapping[str, Any]) -> dict[str, Any]:
    """`site` over `discovered`: `name` from the site when it has one; vantages, hosts and
    sessions merged by name, a key of the site's entry replacing the discovered one; the
    site's apps appended."""
    out: dict[str, Any] = dict(discovered)
    if site.get("name"):
        out["name"] = site["name"]
    for section in ("vantages", "hosts", "sessions"):
        ours = dict(out.get(section) or {})
        for key, value in (site.get(section) or {}).items():
            base = ours.get(key)
            if isinstance(base, dict) and isinstance(value, dict):
                ours[key] = base | value
            else:
                ours[key] = value
        if ours:
            out[section] = ours
    apps = list(out.get("apps") or []) + list(site.get("apps") or [])
    if apps:
        out["apps"] = apps
    return out
