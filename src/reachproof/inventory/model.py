"""The inventory: where the vantage points are and what hosts, sessions and apps exist.

Every entity keeps the position it was loaded from, so a mismatch found later (for example a
role the policy does not declare) is reported at file:line:col.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from ipaddress import IPv4Address, IPv6Address
from pathlib import PurePath

from reachproof.errors import NOWHERE, Pos
from reachproof.ports import Ports

IPAddress = IPv4Address | IPv6Address

# The role every session container has for the policy; `cluster_role` is main/sub.
CONTAINER_ROLE = "container"
# What an app may speak (`speaks` in the inventory); `app * speaking P` selects by it.
APP_PROTOCOLS = ("http", "websocket")
DEFAULT_SPEAKS: tuple[str, ...] = ("http",)


class Transport(StrEnum):
    LOCAL = "local"  # this process's network namespace
    NETNS = "netns"  # a named Linux network namespace (the lab, or a site's test hosts)
    EXEC = "exec"  # a command prefix giving a pipe: ssh, docker exec -i, kubectl exec -i


class SessionMode(StrEnum):
    SINGLE_NODE = "single-node"
    MULTI_NODE = "multi-node"


@dataclass(frozen=True)
class Vantage:
    """A place probes run from.

    `command` (exec) is an argument list, never a shell string; the engine appends the
    interpreter invocation that reads the shipped worker from stdin. `remote_shell` says
    whether `command` hands that invocation to a shell at the far end as one string, as ssh
    does; None means "when the program is ssh". `env` is the environment the worker starts
    with (a lab container's vantage carries the container's environment).
    """

    name: str
    transport: Transport
    netns: str | None = None
    command: tuple[str, ...] = ()
    python: str = "python3"
    env: tuple[tuple[str, str], ...] = ()
    remote_shell: bool | None = None
    pos: Pos = field(default=NOWHERE, compare=False)

    def environment(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def through_remote_shell(self) -> bool:
        """True when the worker's invocation reaches a shell at the far end (the one place
        that decides it): ssh joins its remote arguments with spaces and runs them with the
        remote user's shell, `docker exec` / `kubectl exec` / `sh -c 'exec "$@"'` do not."""
        if self.transport is not Transport.EXEC:
            return False
        if self.remote_shell is not None:
            return self.remote_shell
        return bool(self.command) and PurePath(self.command[0]).name == "ssh"


# service: to a host's own addresses; container: to a container's default-network addresses;
# cluster: between the containers of a session on its bridge or overlay; apps: users to the
# AppProxy's apps (`expect http/websocket`).
TRAFFIC_CLASSES = ("service", "container", "cluster", "apps")
ALL_FAMILIES = (4, 6)


@dataclass(frozen=True)
class FamilyRule:
    """The families one entry of `families` names, and where it is written (for reports)."""

    families: tuple[int, ...]
    # "families.cluster at inv.yaml:4:12"; where, not what: an equal rule read elsewhere is equal
    where: str = field(default="", compare=False)


@dataclass(frozen=True)
class Families:
    """One level (the site, a host, a session) of the inventory's `families`."""

    default: FamilyRule | None = None
    classes: tuple[tuple[str, FamilyRule], ...] = ()
    services: tuple[tuple[str, FamilyRule], ...] = ()

    def lookup(self, traffic: str, services: tuple[str, ...]) -> FamilyRule | None:
        """The most specific entry for `traffic` over `services`: the named services (their
        union when several are named), else the class, else the level's default."""
        named = [rule for name, rule in self.services if name in services]
        if named:
            families = tuple(f for f in ALL_FAMILIES if any(f in r.families for r in named))
            return FamilyRule(families, "; ".join(r.where for r in named))
        rule = next((r for name, r in self.classes if name == traffic), None)
        return rule or self.default


NO_FAMILIES = Families()


@dataclass(frozen=True)
class ContainerInfo:
    """What makes a host a session container."""

    session: str
    hostname: str  # main1, sub1, …: the name peers resolve on the cluster network
    cluster_role: str  # main | sub
    index: int  # 1-based within its cluster role
    local_rank: int  # 0-based within the whole session, in kernel order
    agent: str  # host name of the agent that runs it
    cluster_ipv4: tuple[IPv4Address, ...] = ()  # on the session's private bridge / overlay
    cluster_ipv6: tuple[IPv6Address, ...] = ()


@dataclass(frozen=True)
class Host:
    """A machine or container. Containers are hosts with role `container` and `container` set.

    `services` overrides the policy's port sets for this host only (ports are defaults).
    """

    name: str
    role: str
    zone: str | None = None
    ipv4: tuple[IPv4Address, ...] = ()
    ipv6: tuple[IPv6Address, ...] = ()
    services: tuple[tuple[str, tuple[Ports, ...]], ...] = ()
    vantage: str | None = None
    container: ContainerInfo | None = None
    tls_name: str | None = None  # the name its TLS certificate must be valid for
    families: Families = NO_FAMILIES  # overrides of the site's `families` for this host
    pos: Pos = field(default=NOWHERE, compare=False)
    role_pos: Pos = field(default=NOWHERE, compare=False)

    def service_ports(self, name: str) -> tuple[Ports, ...] | None:
        return next((ports for svc, ports in self.services if svc == name), None)

    def primary_addresses(self) -> tuple[IPAddress, ...]:
        return (*self.ipv4, *self.ipv6)

    def cluster_addresses(self) -> tuple[IPAddress, ...]:
        if self.container is None:
            return ()
        return (*self.container.cluster_ipv4, *self.container.cluster_ipv6)

    def all_addresses(self) -> tuple[IPAddress, ...]:
        seen = dict.fromkeys((*self.primary_addresses(), *self.cluster_addresses()))
        return tuple(seen)


@dataclass(frozen=True)
class Session:
    id: str
    mode: SessionMode
    containers: tuple[str, ...]  # host names, in kernel order (main1, sub1, sub2, …)
    families: Families = NO_FAMILIES  # its network's families (between its containers)
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class App:
    """An interactive app published through the AppProxy.

    A user opens `address:port` (on the `proxy` host); the proxy must reach `container`'s
    `container_port` (through the agent's published host port `published_port`, when known) and
    the app answers with `identity`, which proves which container answered. `speaks` is what
    the app's protocol is (http; websocket for a terminal such as ttyd), as the inventory
    declares it: an expectation may select apps by it.
    """

    session: str
    name: str
    proxy: str  # host name of the AppProxy worker serving it
    address: IPAddress
    port: int
    container: str  # host name of the container
    container_port: int
    published_port: int | None = None
    identity: str | None = None
    path: str = "/"
    speaks: tuple[str, ...] = DEFAULT_SPEAKS
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Inventory:
    path: str
    sha256: str
    name: str = ""
    vantages: tuple[Vantage, ...] = ()
    hosts: tuple[Host, ...] = ()
    sessions: tuple[Session, ...] = ()
    apps: tuple[App, ...] = ()
    tls_ca: str | None = None  # PEM: the CA(s) the site's certificates chain to; None: system
    families: Families = NO_FAMILIES  # the site-wide default of which families carry what

    def vantage(self, name: str) -> Vantage | None:
        return self._vantage_index.get(name)

    def host(self, name: str) -> Host | None:
        return self._host_index.get(name)

    def session(self, session_id: str) -> Session | None:
        return next((s for s in self.sessions if s.id == session_id), None)

    def hosts_with_role(self, role: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.role == role)

    def declared_addresses(self) -> frozenset[IPAddress]:
        """Every address the inventory names: the only ones a probe may target."""
        return frozenset(a for h in self.hosts for a in h.all_addresses()) | frozenset(
            a.address for a in self.apps
        )

    @cached_property
    def _vantage_index(self) -> dict[str, Vantage]:
        return {v.name: v for v in self.vantages}

    @cached_property
    def _host_index(self) -> dict[str, Host]:
        return {h.name: h for h in self.hosts}
