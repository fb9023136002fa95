"""The lab as pure data: every namespace, link, address and app, computed before anything is built.

Nothing here touches the system, so the whole address plan is unit-testable without root.
`build.py` applies a `Topology`; `nft.py`, `plan.py` and `inventory.py` derive rulesets,
the service plan and the inventory from it.

Address plan (docs/lab.md, "Lab address plan"):

    user (Internet)        203.0.113.10/24          2001:db8:ff::10/64   gw .1 / ::1 (perimeter)
    management LAN         10.0.1.0/24              fd00:1::/64          webserver .10, manager .11,
                                                                         appproxy .12, db .13
    compute LAN (agents)   10.0.2.0/24              fd00:2::/64          agent N: .(10+N)
    default container net  172.17.N.0/24 on agent N fd00:17:N::/64       agent .1, containers .2 …
    cluster net session k  10.200.k.0/24            fd00:200:k::/64      main1 .2, sub1 .3, …

IPv6 host parts repeat the IPv4 decimal digits (agent 12 → 10.0.2.22 and fd00:2::22), so both
families read alike; the digits are valid hex, so every address is well formed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_interface

from reachproof.errors import UsageError
from reachproof.inventory.model import SessionMode
from reachproof.lab.faults import FAULTS, Fault

DEFAULT_PREFIX = "rp"
DEFAULT_AGENTS = 3
DEFAULT_SESSIONS = "single-node:3,multi-node:4,single-node:1"

MAX_AGENTS = 200  # agent N owns 10.0.2.(10+N) and 172.17.N.0/24
MAX_SESSIONS = 255  # session k owns 10.200.k.0/24
MAX_CONTAINERS_PER_AGENT = 250  # .2 … .251 of the agent's default network
MAX_SESSION_SIZE = 250  # .2 … .251 of the session's cluster network

# Ports of the documented posture (backend-ai-facts.md).
WEB_PORT = 443
MANAGER_API_PORT = 8081
MANAGER_INTERNAL_PORT = 18080
AGENT_RPC_PORT = 6001
AGENT_PORTS = (6001, 6003, 6009)
METADATA_PORT = 40128
COORDINATOR_PORT = 10200
WORKER_API_PORT = 10201
WORKER_PORTS = range(10205, 10301)
HOST_PORT_POOL = (30000, 31000)
DB_PORTS = (2379, 6379, 5432)
AGENT_TO_DB_PORTS = (2379, 6379)
VXLAN_PORT = 4789
SSH_PORT = 2200
TTYD_PORT = 7681
APP_PORT = 8080
VNI_BASE = 1000

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")


class Perimeter(StrEnum):
    """How the perimeter firewall blocks what the posture does not allow."""

    DROP = "drop"  # silence: the prober sees `filtered`
    REJECT = "reject"  # ICMP admin-prohibited: `prohibited`
    RESET = "reset"  # TCP RST from the firewall itself (its TTL gives it away); ICMP otherwise
    RESET6 = "reset6"  # RESET over IPv6, DROP over IPv4: a perimeter whose families differ


class Runtime(StrEnum):
    """What runs the compute zone's containers."""

    NETNS = "netns"  # namespaces, veths and nft standing in for Docker (fast, no dependency)
    DOCKER = "docker"  # a real dockerd per agent, real containers, bridges and swarm overlays


@dataclass(frozen=True)
class SessionRequest:
    mode: SessionMode
    size: int


@dataclass(frozen=True)
class LabOptions:
    agents: int = DEFAULT_AGENTS
    sessions: tuple[SessionRequest, ...] = ()
    faults: tuple[Fault, ...] = ()
    prefix: str = DEFAULT_PREFIX
    perimeter: Perimeter = Perimeter.DROP
    ssh: bool = False  # an sshd per host and a second inventory of ssh vantages (lab/sshd.py)
    runtime: Runtime = Runtime.NETNS
    # The families the container networks (default bridges, session bridges, overlay), the
    # published ports and VXLAN carry; (4,) is Docker's default on dual-stack hosts.
    container_families: tuple[int, ...] = (4, 6)

    @classmethod
    def create(
        cls,
        agents: int = DEFAULT_AGENTS,
        sessions: str = DEFAULT_SESSIONS,
        faults: tuple[str, ...] | list[str] = (),
        prefix: str = DEFAULT_PREFIX,
        perimeter: str = "drop",
        ssh: bool = False,
        runtime: str = "netns",
        container_families: str = "4,6",
    ) -> LabOptions:
        """Options from command-line style values; UsageError says what does not fit."""
        check_prefix(prefix)
        try:
            mode = Perimeter(perimeter)
        except ValueError as exc:
            raise UsageError(
                f"--perimeter must be drop, reject, reset or reset6, not {perimeter!r}"
            ) from exc
        try:
            kind = Runtime(runtime)
        except ValueError as exc:
            raise UsageError(f"--runtime must be netns or docker, not {runtime!r}") from exc
        families = _families(container_families)
        if kind is not Runtime.NETNS and families != (4, 6):
            # The docker runtime's networks are Docker's own; only the netns runtime has the
            # IPv4-only variant built and tested (tests/lab/test_check_matrix.py).
            raise UsageError("--container-families 4 exists for --runtime netns only")
        known = {f.name: f for f in FAULTS}
        chosen: list[Fault] = []
        for name in faults:
            if name not in known:
                raise UsageError(
                    f"unknown fault {name!r}; `reachproof lab faults` lists: "
                    + ", ".join(sorted(known))
                )
            if kind.value not in known[name].runtimes:
                raise UsageError(
                    f"fault {name!r} does not exist on --runtime {kind.value} "
                    f"(it does on: {', '.join(known[name].runtimes)})"
                )
            if known[name] not in chosen:
                chosen.append(known[name])
        return cls(
            agents, parse_sessions(sessions), tuple(chosen), prefix, mode, ssh, kind, families
        )

    @property
    def fault_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.faults)


def _families(text: str) -> tuple[int, ...]:
    """`4` or `4,6` → (4,) / (4, 6): the container networks always carry IPv4."""
    parts = {p.strip() for p in text.split(",") if p.strip()}
    if parts == {"4"}:
        return (4,)
    if parts == {"4", "6"}:
        return (4, 6)
    raise UsageError(f"--container-families must be 4 or 4,6, not {text!r}")


def check_prefix(prefix: str) -> None:
    """The one check of a lab prefix (every `lab` command and every path built from it).

    The prefix names paths the lab removes as root (/run/netns/P-*, /etc/netns/P-*,
    /run/reachproof/lab/P), so nothing but letters and digits: no '/', '..' or glob character,
    and no '-', so that `rp-user` is never mistaken for a namespace of prefix `rp-x`.
    """
    if not _PREFIX_RE.match(prefix):
        raise UsageError(
            f"lab prefix {prefix!r}: use 1-8 lowercase letters and digits, starting with a letter"
        )


def parse_sessions(spec: str) -> tuple[SessionRequest, ...]:
    """`single-node:3,multi-node:4` → session requests, in order."""
    out: list[SessionRequest] = []
    for part in spec.split(","):
        part = part.strip()
        mode_s, sep, size_s = part.partition(":")
        try:
            mode = SessionMode(mode_s.strip())
        except ValueError as exc:
            raise UsageError(
                f"--sessions: {part!r}: expected single-node:N or multi-node:N"
            ) from exc
        if not sep or not size_s.strip().isdigit() or int(size_s) < 1:
            raise UsageError(f"--sessions: {part!r}: the size must be a positive integer")
        if int(size_s) > MAX_SESSION_SIZE:
            raise UsageError(f"--sessions: {part!r}: at most {MAX_SESSION_SIZE} containers")
        out.append(SessionRequest(mode, int(size_s)))
    if not out:
        raise UsageError("--sessions: at least one session")
    if len(out) > MAX_SESSIONS:
        raise UsageError(f"--sessions: at most {MAX_SESSIONS} sessions")
    return tuple(out)


def _v4(text: str) -> IPv4Interface:
    iface = ip_interface(text)
    assert isinstance(iface, IPv4Interface)
    return iface


def _v6(text: str) -> IPv6Interface:
    iface = ip_interface(text)
    assert isinstance(iface, IPv6Interface)
    return iface


@dataclass(frozen=True)
class DualStack:
    """An interface's two addresses, each with its prefix length."""

    v4: IPv4Interface
    v6: IPv6Interface

    @classmethod
    def of(cls, v4: str, v6: str) -> DualStack:
        return cls(_v4(v4), _v6(v6))


@dataclass(frozen=True)
class Node:
    """A namespace with one uplink `eth0` (user, management hosts, agents)."""

    name: str  # inventory host name: user, webserver, agent3, …
    role: str
    zone: str
    netns: str
    addr: DualStack
    gateway: DualStack  # addresses only, the router on the uplink


@dataclass(frozen=True)
class Agent:
    node: Node
    number: int  # N of agentN
    docker: DualStack  # the agent's own address on docker0 (the containers' gateway)

    @property
    def name(self) -> str:
        return self.node.name


@dataclass(frozen=True)
class Container:
    session: str  # s1, s2, …
    session_number: int
    mode: SessionMode
    hostname: str  # main1, sub1, …
    cluster_role: str  # main | sub
    index: int  # 1-based within its cluster role
    rank: int  # 0-based within the session
    agent: int  # number of its agent
    netns: str
    addr: DualStack  # default network (docker0 of its agent)
    cluster: DualStack  # the session's private bridge or overlay
    default_port: str  # its veth's agent end on docker0
    cluster_port: str  # its veth's agent end on the session bridge
    cluster_ifname: (
        str  # eth1 on a private bridge, baimulti0 on an overlay (as Backend.AI names it)
    )
    cluster_v6: bool = True  # False: Docker's swarm overlay gave it no IPv6 address

    @property
    def host_name(self) -> str:
        """The inventory name: `s1/main1`."""
        return f"{self.session}/{self.hostname}"

    @property
    def vantage(self) -> str:
        return f"{self.session}-{self.hostname}"


@dataclass(frozen=True)
class Session:
    id: str
    number: int
    mode: SessionMode
    containers: tuple[Container, ...]
    v4_net: IPv4Interface  # .1 unused: the network has no gateway, as Docker's are internal
    v6_net: IPv6Interface

    @property
    def vni(self) -> int:
        return VNI_BASE + self.number

    @property
    def bridge(self) -> str:
        return f"{'bm' if self.mode is SessionMode.MULTI_NODE else 'bs'}{self.number}"

    @property
    def vxlan(self) -> str:
        return f"vx{self.number}"

    @property
    def port_glob(self) -> str:
        """An nft wildcard matching exactly this session's bridge ports (s12p* ≠ s1p*)."""
        return f"s{self.number}p*"

    def agents(self) -> tuple[int, ...]:
        return tuple(sorted({c.agent for c in self.containers}))


@dataclass(frozen=True)
class App:
    session: str
    name: str  # jupyter | ttyd
    worker_port: int  # on the AppProxy
    agent: int
    published_port: int  # on the agent, DNAT to the container
    container: Container
    container_port: int

    @property
    def identity(self) -> str:
        return f"session={self.session} host={self.container.hostname}"

    @property
    def speaks(self) -> tuple[str, ...]:
        """The lab's ttyd answers HTTP and the WebSocket upgrade; its jupyter, HTTP only."""
        return ("http", "websocket") if self.name == "ttyd" else ("http",)


@dataclass(frozen=True)
class Topology:
    options: LabOptions
    user: Node
    management: tuple[Node, ...]  # webserver, manager, appproxy, db
    agents: tuple[Agent, ...]
    sessions: tuple[Session, ...]
    apps: tuple[App, ...]

    @property
    def prefix(self) -> str:
        return self.options.prefix

    @property
    def fw_netns(self) -> str:
        return f"{self.prefix}-fw"

    @cached_property
    def containers(self) -> tuple[Container, ...]:
        return tuple(c for s in self.sessions for c in s.containers)

    def mgmt(self, name: str) -> Node:
        return next(n for n in self.management if n.name == name)

    def agent(self, number: int) -> Agent:
        return self.agents[number - 1]

    def session(self, session_id: str) -> Session:
        return next(s for s in self.sessions if s.id == session_id)

    def containers_on(self, number: int) -> tuple[Container, ...]:
        return tuple(c for c in self.containers if c.agent == number)

    @property
    def docker(self) -> bool:
        return self.options.runtime is Runtime.DOCKER

    def namespaces(self) -> tuple[str, ...]:
        """Every namespace the lab names, routers first (on the docker runtime the containers'
        namespaces are dockerd's own, not the lab's)."""
        return (
            self.fw_netns,
            self.user.netns,
            *(n.netns for n in self.management),
            *(a.node.netns for a in self.agents),
            *(() if self.docker else (c.netns for c in self.containers)),
        )

    @property
    def containers_v6(self) -> bool:
        """Whether the container networks, published ports and VXLAN carry IPv6."""
        return 6 in self.options.container_families

    def has_fault(self, name: str) -> bool:
        return name in self.options.fault_names


# --- the plan ---------------------------------------------------------------------------------

FW_EXT = DualStack.of("203.0.113.1/24", "2001:db8:ff::1/64")
FW_MGMT = DualStack.of("10.0.1.1/24", "fd00:1::1/64")
FW_COMP = DualStack.of("10.0.2.1/24", "fd00:2::1/64")
EXT_NET = DualStack.of("203.0.113.0/24", "2001:db8:ff::/64")
MGMT_NET = DualStack.of("10.0.1.0/24", "fd00:1::/64")
COMP_NET = DualStack.of("10.0.2.0/24", "fd00:2::/64")
CONTAINER_NETS = DualStack.of("172.16.0.0/12", "fd00:17::/32")
CLUSTER_NETS = DualStack.of("10.200.0.0/16", "fd00:200::/32")

_MANAGEMENT: tuple[tuple[str, str, int], ...] = (
    ("webserver", "webserver", 10),
    ("manager", "manager", 11),
    ("appproxy", "appproxy", 12),
    ("db", "database", 13),
)


def _host_addr(v4_net: str, v6_net: str, host: int, v4_len: int = 24) -> DualStack:
    """Host `host` of a /24 and its /64 twin, the IPv6 host part spelled with the same digits."""
    base4 = v4_net.rsplit(".", 1)[0]
    return DualStack.of(f"{base4}.{host}/{v4_len}", f"{v6_net}{host}/64")


def agent_addr(number: int) -> DualStack:
    return _host_addr("10.0.2.0", "fd00:2::", 10 + number)


def docker_net(number: int) -> tuple[str, str]:
    return f"172.17.{number}.0", f"fd00:17:{number}::"


def cluster_net(session_number: int) -> tuple[str, str]:
    return f"10.200.{session_number}.0", f"fd00:200:{session_number}::"


def build_topology(options: LabOptions) -> Topology:
    """The whole lab for `options`, or UsageError when it cannot be laid out."""
    if not 1 <= options.agents <= MAX_AGENTS:
        raise UsageError(f"--agents must be between 1 and {MAX_AGENTS}")
    p = options.prefix
    user = Node(
        "user", "user", "internet", f"{p}-user",
        DualStack.of("203.0.113.10/24", "2001:db8:ff::10/64"), FW_EXT,
    )  # fmt: skip
    management = tuple(
        Node(
            name, role, "management", f"{p}-{name}", _host_addr("10.0.1.0", "fd00:1::", h), FW_MGMT
        )
        for name, role, h in _MANAGEMENT
    )
    agents = tuple(
        Agent(
            Node(f"agent{n}", "agent", "compute", f"{p}-agent{n}", agent_addr(n), FW_COMP),
            n,
            _host_addr(*docker_net(n), 1),
        )
        for n in range(1, options.agents + 1)
    )
    sessions = _place_sessions(options)
    return Topology(options, user, management, agents, sessions, _apps(sessions))


def _place_sessions(options: LabOptions) -> tuple[Session, ...]:
    """Sessions in order; containers get default-network addresses in creation order per agent.

    Placement (as examples/lab-small.yaml): the i-th single-node session runs on agent
    (i mod A)+1; container j of the m-th multi-node session on agent ((m+j) mod A)+1.
    """
    count = options.agents
    next_host = dict.fromkeys(range(1, count + 1), 2)
    singles = multis = 0
    sessions: list[Session] = []
    for k, req in enumerate(options.sessions, start=1):
        if req.mode is SessionMode.MULTI_NODE:
            if count < 2:
                raise UsageError(f"session s{k} is multi-node: it needs --agents 2 or more")
            placement = [(multis + j) % count + 1 for j in range(req.size)]
            multis += 1
        else:
            placement = [singles % count + 1] * req.size
            singles += 1
        c4, c6 = cluster_net(k)
        containers: list[Container] = []
        for rank, agent in enumerate(placement):
            role, index = ("main", 1) if rank == 0 else ("sub", rank)
            hostname = f"{role}{index}"
            host = next_host[agent]
            if host - 1 > MAX_CONTAINERS_PER_AGENT:
                raise UsageError(
                    f"agent{agent} would run more than {MAX_CONTAINERS_PER_AGENT} containers"
                )
            next_host[agent] = host + 1
            containers.append(
                Container(
                    session=f"s{k}",
                    session_number=k,
                    mode=req.mode,
                    hostname=hostname,
                    cluster_role=role,
                    index=index,
                    rank=rank,
                    agent=agent,
                    netns=f"{options.prefix}-s{k}-{hostname}",
                    addr=_host_addr(*docker_net(agent), host),
                    cluster=_host_addr(c4, c6, 2 + rank),
                    default_port=f"vd{host}",
                    cluster_port=f"s{k}p{rank}",
                    cluster_ifname="baimulti0" if req.mode is SessionMode.MULTI_NODE else "eth1",
                )
            )
        sessions.append(
            Session(f"s{k}", k, req.mode, tuple(containers), _v4(f"{c4}/24"), _v6(f"{c6}/64"))
        )
    return tuple(sessions)


def _apps(sessions: tuple[Session, ...]) -> tuple[App, ...]:
    """jupyter and ttyd of every main1, while AppProxy worker ports last (96 slots: 48 sessions).

    Worker ports count up from 10205 and published host ports from 30000, lab-wide, so every
    published port is unique and says which app it carries.
    """
    apps: list[App] = []
    workers = iter(WORKER_PORTS)
    published = iter(range(HOST_PORT_POOL[0], HOST_PORT_POOL[1] + 1))
    for session in sessions:
        main = session.containers[0]
        for name, port in (("jupyter", APP_PORT), ("ttyd", TTYD_PORT)):
            worker = next(workers, None)
            if worker is None:
                return tuple(apps)
            apps.append(App(session.id, name, worker, main.agent, next(published), main, port))
    return tuple(apps)


def address_list(items: tuple[DualStack, ...]) -> tuple[IPv4Address | IPv6Address, ...]:
    return tuple(a for d in items for a in (d.v4.ip, d.v6.ip))
