"""nftables rulesets of the lab (pure text), and loading one into a namespace in one batch.

Two firewalls exist, as in a real site: the perimeter router (`fw`), between the Internet, the
management LAN and the compute LAN; and each agent's host firewall, which also does what
Docker does (DNAT of published ports, masquerade, ICC off on the default bridge).

Bridge filtering: every namespace with bridges turns br_netfilter off (sysctl, per namespace),
so the `inet` forward chains see routed traffic only, and anything bridged is filtered only
where a `bridge` table says so explicitly (ICC, and the bridge faults).

Deny paths DROP or REJECT; they never let a packet reach a closed port, because a probe that
sees `closed` proves the firewall let it through.
"""

from __future__ import annotations

import subprocess

from reachproof.errors import LabError
from reachproof.lab.netns import netns_path
from reachproof.lab.targets import FaultTargets
from reachproof.lab.topology import (
    AGENT_RPC_PORT,
    AGENT_TO_DB_PORTS,
    APP_PORT,
    CLUSTER_NETS,
    COMP_NET,
    CONTAINER_NETS,
    COORDINATOR_PORT,
    DB_PORTS,
    EXT_NET,
    HOST_PORT_POOL,
    MANAGER_API_PORT,
    MANAGER_INTERNAL_PORT,
    MGMT_NET,
    SSH_PORT,
    TTYD_PORT,
    VXLAN_PORT,
    WEB_PORT,
    WORKER_PORTS,
    Agent,
    DualStack,
    Perimeter,
    Topology,
)

TABLE = "reachproof"
BRIDGE_FILTERED_PORTS = f"{TTYD_PORT}, 10000-19999"


def _both(match: str, node: DualStack, rest: str, field: str = "daddr") -> list[str]:
    """The same rule for the IPv4 and the IPv6 address of `node`: both families, always."""
    return [
        f"{match}ip {field} {node.v4.ip} {rest}".strip(),
        f"{match}ip6 {field} {node.v6.ip} {rest}".strip(),
    ]


def _both_net(match: str, net: DualStack, rest: str, field: str = "daddr") -> list[str]:
    return [
        f"{match}ip {field} {net.v4.network} {rest}".strip(),
        f"{match}ip6 {field} {net.v6.network} {rest}".strip(),
    ]


def _chain(name: str, rules: list[str], hook: str = "") -> str:
    body = "".join(f"\t\t{r}\n" for r in ([hook] if hook else []) + rules)
    return f"\tchain {name} {{\n{body}\t}}\n"


def _block(mode: Perimeter) -> list[str]:
    if mode is Perimeter.DROP:
        return ["drop"]
    if mode is Perimeter.REJECT:
        return ["reject with icmpx admin-prohibited"]
    if mode is Perimeter.RESET6:
        return [
            "meta nfproto ipv6 meta l4proto tcp reject with tcp reset",
            "meta nfproto ipv6 reject with icmpx admin-prohibited",
            "drop",
        ]
    # The reset comes from the firewall itself, so its TTL is the firewall's, not the target's.
    return ["meta l4proto tcp reject with tcp reset", "reject with icmpx admin-prohibited"]


_STATEFUL = ["ct state established,related accept", "ct state invalid drop"]


def perimeter_ruleset(topo: Topology) -> str:
    web = topo.mgmt("webserver").addr
    manager = topo.mgmt("manager").addr
    proxy = topo.mgmt("appproxy").addr
    db = topo.mgmt("db").addr
    workers = f"{WORKER_PORTS.start}-{WORKER_PORTS.stop - 1}"
    pool = f"{HOST_PORT_POOL[0]}-{HOST_PORT_POOL[1]}"

    internet = [
        *_both("", web, f"tcp dport {WEB_PORT} accept"),
        *_both("", proxy, f"tcp dport {{ {COORDINATOR_PORT}, {workers} }} accept"),
    ]
    if topo.has_fault("ipv6-open"):
        internet.insert(0, "meta nfproto ipv6 accept")
    if topo.has_fault("perimeter-open"):
        internet += _both_net("", COMP_NET, "accept")
    if topo.has_fault("agent-rpc-exposed"):
        internet += _both_net("", COMP_NET, f"tcp dport {AGENT_RPC_PORT} accept")
    if topo.has_fault("published-ports-exposed"):
        internet += _both_net("", COMP_NET, f"tcp dport {pool} accept")
    if topo.has_fault("vxlan-exposed"):
        internet += _both_net("", COMP_NET, f"udp dport {VXLAN_PORT} accept")
    if topo.has_fault("container-routed"):
        internet += _both_net("", CONTAINER_NETS, "accept")
    if topo.has_fault("management-exposed"):
        internet += _both(
            "", manager, f"tcp dport {{ {MANAGER_API_PORT}, {MANAGER_INTERNAL_PORT} }} accept"
        )
        internet += _both("", db, f"tcp dport {{ {', '.join(map(str, DB_PORTS))} }} accept")
    internet += _block(topo.options.perimeter)

    to_compute = [
        *_both("", manager, f"tcp dport {AGENT_RPC_PORT} accept", "saddr"),
        *_both("", proxy, f"tcp dport {pool} accept", "saddr"),
        "meta l4proto { icmp, ipv6-icmp } accept",
    ]
    agent_db = ", ".join(map(str, AGENT_TO_DB_PORTS))
    to_management = [
        *_both("", manager, f"tcp dport {MANAGER_API_PORT} accept"),
        *_both("", db, f"tcp dport {{ {agent_db} }} accept"),
        "meta l4proto { icmp, ipv6-icmp } accept",
    ]
    forward = [
        *_STATEFUL,
        'iifname "ext" jump from_internet',
        'iifname "mgmt" oifname "comp" jump management_to_compute',
        'iifname "comp" oifname "mgmt" jump compute_to_management',
        # Inside hosts may open connections to the Internet side (the user's network) only.
        *_both_net('iifname { "mgmt", "comp" } oifname "ext" ', EXT_NET, "accept"),
    ]
    inp = [
        *_STATEFUL,
        'iif "lo" accept',
        "meta l4proto { icmp, ipv6-icmp } accept",
        'iifname != "ext" accept',
    ]
    return (
        f"table inet {TABLE} {{\n"
        + _chain("input", inp, "type filter hook input priority filter; policy drop;")
        + _chain("forward", forward, "type filter hook forward priority filter; policy drop;")
        + _chain("from_internet", internet)
        + _chain("management_to_compute", to_compute)
        + _chain("compute_to_management", to_management)
        + "}\n"
    )


def _exposing_faults(topo: Topology) -> list[str]:
    """The agent INPUT rules of the faults that open an agent to the Internet (both runtimes)."""
    inp: list[str] = []
    if topo.has_fault("ipv6-open"):
        inp += [f"ip6 saddr {EXT_NET.v6.network} accept"]
    if topo.has_fault("perimeter-open"):
        inp += _both_net("", EXT_NET, "accept", "saddr")
    if topo.has_fault("agent-rpc-exposed"):
        inp += _both_net("", EXT_NET, f"tcp dport {AGENT_RPC_PORT} accept", "saddr")
    if topo.has_fault("vxlan-exposed"):
        inp += _both_net("", EXT_NET, f"udp dport {VXLAN_PORT} accept", "saddr")
    return inp


def agent_ruleset(topo: Topology, agent: Agent, targets: FaultTargets) -> str:
    n = agent.number
    db = topo.mgmt("db").addr

    early: list[str] = []
    output: list[str] = []
    if topo.has_fault("overlay-blocked") and targets.overlay_blocked is not None:
        first, other = targets.overlay_blocked
        if n == first:
            peer = topo.agent(other).node.addr
            early += _both("", peer, f"udp dport {VXLAN_PORT} drop", "saddr")
            output += _both("", peer, f"udp dport {VXLAN_PORT} drop")

    v4_only: list[str] = []
    if not topo.containers_v6:
        # Docker on a dual-stack host with IPv4-only networks: nothing of the containers,
        # their published ports or the overlay's VXLAN goes over IPv6.
        pool = f"{HOST_PORT_POOL[0]}-{HOST_PORT_POOL[1]}"
        v4_only = [
            f"meta nfproto ipv6 tcp dport {pool} drop",
            f"meta nfproto ipv6 udp dport {VXLAN_PORT} drop",
            'meta nfproto ipv6 iifname "docker0" drop',
        ]
    inp = [
        *early,
        *_STATEFUL,
        'iif "lo" accept',
        *v4_only,
        "meta l4proto { icmp, ipv6-icmp } accept",
        # The management LAN (only what the perimeter lets through) and the other agents.
        f'iifname "eth0" ip saddr {{ {MGMT_NET.v4.network}, {COMP_NET.v4.network} }} accept',
        f'iifname "eth0" ip6 saddr {{ {MGMT_NET.v6.network}, {COMP_NET.v6.network} }} accept',
        # Containers reach their agent (the metadata service on 40128 and the rest).
        'iifname "docker0" accept',
    ]
    inp += _exposing_faults(topo)

    forward = [*_STATEFUL]
    if not topo.containers_v6:
        forward += [
            'meta nfproto ipv6 iifname "docker0" drop',
            'meta nfproto ipv6 oifname "docker0" drop',
        ]
    broken = targets.appproxy_broken
    if topo.has_fault("appproxy-broken") and broken is not None and broken.agent == n:
        forward += _both("", broken.container.addr, f"tcp dport {APP_PORT} drop")
    forward.append("ct status dnat accept")  # published ports, as Docker's DOCKER chain
    if topo.has_fault("container-to-management"):
        dbs = ", ".join(map(str, DB_PORTS))
        forward += _both('iifname "docker0" ', db, f"tcp dport {{ {dbs} }} accept")
    forward += [
        # Segmentation: containers never reach the management zone, nor other sessions'
        # cluster networks by routing (peers talk on their own bridge or overlay only).
        f'iifname "docker0" ip daddr {{ {MGMT_NET.v4.network}, {CLUSTER_NETS.v4.network} }} drop',
        f'iifname "docker0" ip6 daddr {{ {MGMT_NET.v6.network}, {CLUSTER_NETS.v6.network} }} drop',
        'iifname "docker0" oifname "eth0" accept',
    ]
    if topo.has_fault("container-routed"):
        forward += _both_net('iifname "eth0" oifname "docker0" ', EXT_NET, "accept", "saddr")

    prerouting: list[str] = []
    for app in topo.apps:
        if app.agent != n:
            continue
        c = app.container.addr
        prerouting.append(
            f"meta nfproto ipv4 fib daddr type local tcp dport {app.published_port} "
            f"dnat ip to {c.v4.ip}:{app.container_port}"
        )
        if topo.containers_v6:
            prerouting.append(
                f"meta nfproto ipv6 fib daddr type local tcp dport {app.published_port} "
                f"dnat ip6 to [{c.v6.ip}]:{app.container_port}"
            )
    postrouting = [
        f'oifname "eth0" ip saddr {agent.docker.v4.network} masquerade',
        f'oifname "eth0" ip6 saddr {agent.docker.v6.network} masquerade',
    ]

    # Bridged frames (the default bridge, session bridges, the overlay's VXLAN port) carry
    # no IPv6 on IPv4-only container networks.
    bridge: list[str] = [] if topo.containers_v6 else ["meta protocol ip6 drop"]
    if not (topo.has_fault("cross-session") and targets.cross_session_agent == n):
        bridge.append('iifname "vd*" oifname "vd*" drop')  # ICC off on the default bridge
    session = targets.bridge_filtered
    filtered = topo.has_fault("bridge-filtered") and session is not None
    if filtered and session is not None and session.containers[0].agent == n:
        bridge.append(f'iifname "{session.port_glob}" tcp dport {{ {BRIDGE_FILTERED_PORTS} }} drop')

    text = (
        f"table inet {TABLE} {{\n"
        + _chain("input", inp, "type filter hook input priority filter; policy drop;")
        + _chain("output", output, "type filter hook output priority filter; policy accept;")
        + _chain("forward", forward, "type filter hook forward priority filter; policy drop;")
        + _chain(
            "prerouting", prerouting, "type nat hook prerouting priority dstnat; policy accept;"
        )
        + _chain(
            "postrouting", postrouting, "type nat hook postrouting priority srcnat; policy accept;"
        )
        + "}\n"
        + f"table bridge {TABLE} {{\n"
        + _chain("forward", bridge, "type filter hook forward priority filter; policy accept;")
        + "}\n"
    )
    return text


def docker_agent_ruleset(topo: Topology, agent: Agent) -> str:
    """An agent's own firewall on the docker runtime, where a site puts it: the INPUT policy
    of the host, and a forward chain of its own that keeps containers out of the management
    zone. Docker's chains (nat, DOCKER, DOCKER-USER, ICC) are dockerd's alone; an accept here
    only hands the packet on to them, a drop is final."""
    inp = [
        *_STATEFUL,
        'iif "lo" accept',
        "meta l4proto { icmp, ipv6-icmp } accept",
        f'iifname "eth0" ip saddr {{ {MGMT_NET.v4.network}, {COMP_NET.v4.network} }} accept',
        f'iifname "eth0" ip6 saddr {{ {MGMT_NET.v6.network}, {COMP_NET.v6.network} }} accept',
        'iifname != "eth0" accept',  # containers reach their agent (metadata service, DNS)
    ]
    inp += _exposing_faults(topo)
    forward = [
        "ct state established,related accept",  # replies, to the AppProxy's DNATed requests too
        *_both_net('iifname != "eth0" ', MGMT_NET, "drop"),
    ]
    return (
        f"table inet {TABLE} {{\n"
        + _chain("input", inp, "type filter hook input priority filter; policy drop;")
        + _chain("forward", forward, "type filter hook forward priority filter - 1; policy accept;")
        + "}\n"
    )


def ssh_broken_ruleset(topo: Topology, targets: FaultTargets) -> tuple[str, str] | None:
    """(namespace, ruleset) of the ssh-mesh-broken fault, or None when it is not applied.

    The one container's own output resets its tcp/2200 connections to the cluster network:
    peers look `closed` from it (reached, nothing listening: no firewall restriction in the
    sense of R9/R10), yet its SSH mesh is broken (R12). The kernel here has no bridge-family
    reject, so it cannot live on the agent's bridge.
    """
    lone = targets.ssh_broken
    if not topo.has_fault("ssh-mesh-broken") or lone is None:
        return None
    session = topo.session(lone.session)
    rules = [
        f"ip daddr {session.v4_net.network} tcp dport {SSH_PORT} reject with tcp reset",
        f"ip6 daddr {session.v6_net.network} tcp dport {SSH_PORT} reject with tcp reset",
    ]
    hook = "type filter hook output priority filter; policy accept;"
    return lone.netns, f"table inet {TABLE} {{\n" + _chain("output", rules, hook) + "}\n"


def apply_ruleset(netns: str, ruleset: str, timeout: float = 30.0) -> None:
    """Load `ruleset` into `netns` in one `nft -f -` transaction (all or nothing)."""
    try:
        result = subprocess.run(
            ["nsenter", f"--net={netns_path(netns)}", "nft", "-f", "-"],
            input=ruleset,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"nft in namespace {netns!r}: {exc}") from exc
    if result.returncode != 0:
        raise LabError(f"nft in namespace {netns!r} rejected the ruleset:\n{result.stderr.strip()}")
