"""The lab's named faults: the one table tests, `lab faults` and the fault matrix read.

Each fault is a deliberate misconfiguration that breaks one documented property; `breaks`
names the rules of policies/backend-ai.policy that must FAIL with it applied (every other
rule must still hold). Where one network property underlies several rules (the overlay
carries both R10's reachability and R12's SSH mesh), all of them are listed.

`must_not_pass` names the rules a fault leaves undecidable rather than broken: a deny rule
whose target is down, or whose vantage cannot send, proves nothing, so it must come out
INCONCLUSIVE (or FAIL), never PASS.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    breaks: tuple[str, ...]
    how: str  # what the lab changes to apply it
    must_not_pass: tuple[str, ...] = ()  # INCONCLUSIVE or FAIL, never PASS
    runtimes: tuple[str, ...] = ("netns",)  # the lab runtimes (topology.Runtime) it exists on


FAULTS: tuple[Fault, ...] = (
    Fault(
        "perimeter-open",
        "users reach every agent port",
        ("R3", "R7"),
        "perimeter and agent host firewalls accept anything from the Internet to the agents",
    ),
    Fault(
        "agent-rpc-exposed",
        "users reach the agents' tcp/6001 (RPC) only",
        ("R3",),
        "perimeter and agent host firewalls accept tcp/6001 from the Internet",
        runtimes=("netns", "docker"),
    ),
    Fault(
        "container-routed",
        "users reach container addresses directly",
        ("R4",),
        "perimeter routes and accepts the container networks; agents forward to containers",
    ),
    Fault(
        "published-ports-exposed",
        "users reach the agents' published host ports (30000-31000)",
        ("R3",),
        "perimeter accepts tcp/30000-31000 from the Internet to the agents (DNAT does the rest)",
    ),
    Fault(
        "management-exposed",
        "users reach the manager API and the databases",
        ("R5",),
        "perimeter accepts the manager's 8081/18080 and the database ports from the Internet",
        runtimes=("netns", "docker"),
    ),
    Fault(
        "container-to-management",
        "containers reach the databases",
        ("R6",),
        "agents forward container traffic to the database host (etcd and Redis pass the perimeter)",
    ),
    Fault(
        "bridge-filtered",
        "a drop rule inside one single-node session's private bridge (tcp/7681, 10000-19999)",
        ("R9",),
        "the agent's bridge filter drops those ports between the session's containers",
    ),
    Fault(
        "overlay-blocked",
        "VXLAN is dropped between two agents of a multi-node session",
        ("R8", "R10", "R12"),
        "one agent drops udp/4789 to and from another",
    ),
    Fault(
        "cross-session",
        "containers of two sessions on one agent reach each other",
        ("R11",),
        "inter-container communication (ICC) is on for one agent's default bridge (docker: "
        "that agent's dockerd runs without --icc=false)",
        runtimes=("netns", "docker"),
    ),
    Fault(
        "appproxy-broken",
        "the AppProxy cannot reach one container's app (jupyter of the first session)",
        ("R2",),
        "the agent drops the published port's forwarded traffic to that container",
    ),
    Fault(
        "cluster-env-wrong",
        "one container's cluster environment breaks the contract (BACKENDAI_CLUSTER_REPLICAS)",
        ("R14",),
        "one sub container gets a wrong BACKENDAI_CLUSTER_REPLICAS (netns: in its inventory "
        "environment; docker: overridden at `docker run -e`)",
        runtimes=("netns", "docker"),
    ),
    Fault(
        "training-env-inconsistent",
        "one container's TF_CONFIG task index contradicts its BACKENDAI_CLUSTER_LOCAL_RANK",
        ("R15",),
        "the inventory records a TF_CONFIG task index of 0 for one sub container (R15 is "
        "advisory, but a contradiction FAILs whatever the release)",
    ),
    Fault(
        "ipv6-open",
        "the perimeter filters IPv4 only",
        ("R3", "R5", "R7"),
        "perimeter and agent host firewalls accept any IPv6 from the Internet",
    ),
    Fault(
        "ssh-mesh-broken",
        "one container cannot reach its peers' tcp/2200",
        ("R12",),
        "that container's own output resets its tcp/2200 connections to its peers",
    ),
    Fault(
        "vxlan-exposed",
        "users reach udp/4789 (VXLAN) on the agents",
        ("R7",),
        "perimeter and agent host firewalls accept udp/4789 from the Internet",
    ),
    Fault(
        "app-outside-main",
        "an interactive app (tcp/8080) listens in a sub container",
        ("R13",),
        "the service plan adds an app listener to sub1 of the first session that has one",
    ),
    Fault(
        "app-on-default-address",
        "an interactive app (tcp/8080) listens in a sub container on its default-network "
        "IPv4 address only",
        ("R13",),
        "the service plan adds an app listener bound to sub1's docker0 address (not its cluster "
        "address, which is all a probe from main1 reaches) in the first session that has one",
    ),
    Fault(
        "agent-down",
        "one agent is off: its services stopped, its address silent",
        ("R1", "R2", "R8", "R10", "R12"),
        "the last agent's services are not started and its uplink is down; its containers "
        "keep running behind it, cut off from their multi-node session's overlay",
        must_not_pass=("R3", "R7"),
    ),
    Fault(
        "webserver-plain-http",
        "the webserver serves plain HTTP on tcp/443",
        ("R16",),
        "the webserver's 443 listener gets no certificate (the inventory still names it TLS)",
    ),
    Fault(
        "appproxy-cert-expired",
        "the AppProxy serves a certificate that expired in 2020",
        ("R16",),
        "the lab CA signs the AppProxy's certificate for January 2020 only",
    ),
    Fault(
        "user-no-route",
        "the user vantage has no route to the compute LAN or the container networks",
        (),
        "the user namespace routes only the management LAN, no default route",
        must_not_pass=("R3", "R4", "R7"),
    ),
)


def fault(name: str) -> Fault:
    """The fault called `name` (KeyError when there is none)."""
    for item in FAULTS:
        if item.name == name:
            return item
    raise KeyError(name)
