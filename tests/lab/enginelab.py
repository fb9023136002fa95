"""Ground truth for the engine's lab tests: what state a TCP probe must end in, derived from
the lab's topology, its service plan, its fault targets and its perimeter mode (docs/lab.md,
"Firewalls"), never from the engine itself."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from reachproof.inventory.load import load_inventory
from reachproof.inventory.model import Inventory, Vantage
from reachproof.lab.build import LabHandle
from reachproof.lab.nft import BRIDGE_FILTERED_PORTS
from reachproof.lab.serviceplan import service_plan
from reachproof.lab.topology import (
    AGENT_RPC_PORT,
    COORDINATOR_PORT,
    HOST_PORT_POOL,
    WEB_PORT,
    WORKER_PORTS,
    Container,
    Perimeter,
    Topology,
)
from reachproof.observation import Observation, PortState
from reachproof.plan import Expectation, ProbeKind, ProbeSpec
from reachproof.policy.ast import Action
from reachproof.ports import PortSet

BRIDGE_FILTERED = PortSet.parse(BRIDGE_FILTERED_PORTS.replace(" ", ""))
SUPPORTED_FAULTS = {"agent-rpc-exposed", "container-routed", "bridge-filtered"}


@dataclass(frozen=True)
class Endpoint:
    name: str  # inventory host name
    netns: str
    kind: str  # user | management | agent | container
    container: Container | None = None


def endpoints(topo: Topology) -> dict[str, Endpoint]:
    out = {"user": Endpoint("user", topo.user.netns, "user")}
    out |= {n.name: Endpoint(n.name, n.netns, "management") for n in topo.management}
    out |= {a.name: Endpoint(a.name, a.node.netns, "agent") for a in topo.agents}
    out |= {c.host_name: Endpoint(c.host_name, c.netns, "container", c) for c in topo.containers}
    return out


def _perimeter(topo: Topology) -> PortState:
    return PortState.FILTERED if topo.options.perimeter is Perimeter.DROP else PortState.PROHIBITED


class Truth:
    """What the lab opened and filtered."""

    def __init__(self, handle: LabHandle) -> None:
        self.topo = handle.topology
        assert self.topo.options.fault_names <= SUPPORTED_FAULTS, "oracle does not model it"
        self.ends = endpoints(self.topo)
        self.listening: dict[str, set[int]] = {}
        for listener in service_plan(self.topo, handle.targets).listeners:
            self.listening.setdefault(listener.netns, set()).add(listener.port)
        self.published = {(app.agent, app.published_port): app for app in self.topo.apps}
        self.bridge_filtered = handle.targets.bridge_filtered

    def state(self, source: str, target: str, address: str, port: int) -> PortState:
        src, dst = self.ends[source], self.ends[target]
        blocked = self._blocked(src, dst, address, port)
        if blocked is not None:
            return blocked
        if dst.kind == "agent":
            number = int(dst.name.removeprefix("agent"))
            if (number, port) in self.published:
                app = self.published[(number, port)]
                listens = self.listening.get(app.container.netns, set())
                return PortState.OPEN if app.container_port in listens else PortState.CLOSED
        return PortState.OPEN if port in self.listening.get(dst.netns, set()) else PortState.CLOSED

    def _blocked(self, src: Endpoint, dst: Endpoint, address: str, port: int) -> PortState | None:
        topo = self.topo
        if src.kind == "user":
            if dst.kind == "management":
                if dst.name == "webserver" and port == WEB_PORT:
                    return None
                if dst.name == "appproxy" and (port == COORDINATOR_PORT or port in WORKER_PORTS):
                    return None
                return _perimeter(topo)
            if dst.kind == "agent":
                if topo.has_fault("agent-rpc-exposed") and port == AGENT_RPC_PORT:
                    return None
                return _perimeter(topo)
            if dst.kind == "container":
                assert dst.container is not None
                cluster = {str(dst.container.cluster.v4.ip), str(dst.container.cluster.v6.ip)}
                if topo.has_fault("container-routed") and address not in cluster:
                    return None
                return _perimeter(topo)
        if src.kind == "management" and dst.kind == "agent":
            if src.name == "manager" and port == AGENT_RPC_PORT:
                return None
            if src.name == "appproxy" and HOST_PORT_POOL[0] <= port <= HOST_PORT_POOL[1]:
                return None
            return PortState.FILTERED  # the perimeter's forward policy: drop
        if src.kind == "container" and dst.kind == "container":
            assert src.container is not None and dst.container is not None
            if src.container.session != dst.container.session:
                raise AssertionError("cross-session cases are not modelled")
            session = self.bridge_filtered
            if (
                topo.has_fault("bridge-filtered")
                and session is not None
                and session.id == src.container.session
                and port in BRIDGE_FILTERED
            ):
                return PortState.FILTERED
            return None
        if src.kind == "container" and dst.kind == "management":
            return PortState.FILTERED  # agents drop forwarded container traffic to management
        if src.kind == "container" and dst.kind == "agent":
            return None
        raise AssertionError(f"case {src.name} → {dst.name} is not modelled")


def lab_inventory(handle: LabHandle, *extra: Vantage) -> Inventory:
    inventory = load_inventory(Path(handle.inventory_path))
    return replace(inventory, vantages=(*inventory.vantages, *extra))


def spec(vantage: str, source: str, target: str, address: str, ports: PortSet) -> ProbeSpec:
    return ProbeSpec(
        id=f"{vantage}>{target}@{address}",
        rule_id="T",
        statement=0,
        hop=0,
        vantage=vantage,
        source=source,
        target=target,
        address=address,
        family=6 if ":" in address else 4,
        kind=ProbeKind.TCP,
        ports=ports,
        expect=Expectation(Action.REACH),
    )


def port_states(obs: Observation) -> dict[int, PortState]:
    assert obs.error is None, obs.error
    out: dict[int, PortState] = {}
    for result in obs.results:
        for port in result.ports:
            out[port] = result.state
    return out


def mismatches(
    truth: Truth, specs: list[ProbeSpec], observed: tuple[Observation, ...]
) -> list[str]:
    """Every (spec, port) whose observed state differs from the lab's truth."""
    by_id = {o.spec_id: o for o in observed}
    wrong: list[str] = []
    for s in specs:
        assert s.address is not None
        states = port_states(by_id[s.id])
        for port in s.ports:
            want = truth.state(s.source, s.target, s.address, port)
            got = states.get(port)
            if got != want:
                wrong.append(f"{s.id}:{port} expected {want}, saw {got}")
    return wrong


CASE_PORTS = PortSet.of([22, 80, 443, 2200, 6001, 6003, 7681, 8080, 10200, 10205, 10206, 30000])
PEER_PORTS = PortSet.of([22, 2200, 7681, 8080, 9999, 12000])


def ground_truth_cases(topo: Topology) -> list[ProbeSpec]:
    """Vantage × target × ports cases over every zone boundary of the lab, both families."""
    web, proxy = topo.mgmt("webserver"), topo.mgmt("appproxy")
    a1, a2 = topo.agents[0], topo.agents[1]
    single = topo.sessions[0].containers  # single-node, two containers on one agent
    multi = next(s for s in topo.sessions if s.mode == "multi-node").containers
    cases: list[ProbeSpec] = []
    for family in ("v4", "v6"):

        def ip(dual: object, family: str = family) -> str:
            return str(getattr(dual, family).ip)

        for node in (web.addr, proxy.addr, a1.node.addr):
            name = {web.addr: "webserver", proxy.addr: "appproxy", a1.node.addr: a1.name}[node]
            cases.append(spec("user", "user", name, ip(node), CASE_PORTS))
        for c in (single[0],):
            cases.append(spec("user", "user", c.host_name, ip(c.addr), CASE_PORTS))
            cases.append(spec("user", "user", c.host_name, ip(c.cluster), CASE_PORTS))
        ports = PortSet.of([22, 6001, 6003, 30000])
        for agent in (a1, a2):
            cases.append(spec("manager", "manager", agent.name, ip(agent.node.addr), ports))
        app = topo.apps[0]
        owner = topo.agent(app.agent)
        published = PortSet.of(
            [6001, *(a.published_port for a in topo.apps if a.agent == owner.number)]
        )
        cases.append(spec("appproxy", "appproxy", owner.name, ip(owner.node.addr), published))
        for src, dst in ((single[0], single[1]), (multi[1], multi[0])):
            cases.append(
                spec(src.vantage, src.host_name, dst.host_name, ip(dst.cluster), PEER_PORTS)
            )
        own = topo.agent(single[0].agent)
        cases.append(
            spec(single[0].vantage, single[0].host_name, own.name, ip(own.node.addr),
                 PortSet.of([9, 6001, 6003]))
        )  # fmt: skip
        cases.append(
            spec(single[0].vantage, single[0].host_name, "webserver", ip(web.addr),
                 PortSet.of([443]))
        )  # fmt: skip
    return cases
