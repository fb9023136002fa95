"""A fake network that behaves as Backend.AI's documentation says, built from the inventory,
for driving verdicts and reports without the engine."""

from __future__ import annotations

from reachproof.fake import Fact, FakeNetwork
from reachproof.inventory.model import CONTAINER_ROLE, Inventory
from reachproof.observation import PortState
from reachproof.ports import PortSet

S = PortState


def documented_world(inventory: Inventory) -> FakeNetwork:
    """Every documented flow works; everything else is silently dropped (the default)."""
    ports = PortSet.parse
    facts = [
        Fact("user", "webserver", S.OPEN, ports("443")),
        Fact("user", "appproxy", S.OPEN, ports("10200,10205-10300"), kind="tcp"),
        Fact("user", "appproxy", S.OPEN, ports("10200,10205-10300"), kind="tls"),
        Fact("webserver", "manager", S.OPEN, ports("8081")),
        Fact("manager", "*", S.OPEN, ports("6001")),
    ]
    for app in inventory.apps:
        for kind in ("http", "websocket"):
            facts.append(
                Fact(
                    "user",
                    app.proxy,
                    S.OPEN,
                    ports(str(app.port)),
                    kind=kind,
                    status=101 if kind == "websocket" else 200,
                    identity=app.identity,
                )
            )
    agents = [h for h in inventory.hosts if h.role == "agent"]
    for agent in agents:
        facts.append(Fact(agent.name, "manager", S.OPEN, ports("8081")))
        facts.append(Fact(agent.name, "db", S.OPEN, ports("2379,6379")))
        facts.append(Fact("appproxy", agent.name, S.CLOSED, ports("30000-31000")))
        for other in agents:
            if other is not agent:
                facts.append(Fact(agent.name, other.name, S.OPEN, ports("4789"), kind="udp"))
    containers = inventory.hosts_with_role(CONTAINER_ROLE)
    for a in containers:
        for b in containers:
            if a is b or a.container is None or b.container is None:
                continue
            if a.container.session == b.container.session:
                facts.append(Fact(a.name, b.name, S.OPEN, ports("2200,7681")))
                facts.append(Fact(a.name, b.name, S.CLOSED, ports("1-65535")))
    for c in containers:
        assert c.container is not None
        if c.container.cluster_role == "main":
            facts.append(Fact(c.container.agent, c.name, S.OPEN, ports("8080")))
    return FakeNetwork(inventory, facts)
