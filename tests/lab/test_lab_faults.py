"""Each fault: the property it breaks is observably broken (plain sockets), and a neighbouring
property still holds. Every fault gets a small lab of its own:

    agent1: s1 main1 (single-node), s1 sub1, s2 main1 (multi-node)     agent2: s2 sub1
    apps: s1 jupyter 10205 → agent1:30000, s1 ttyd 10206 → agent1:30001, s2 … 10207/10208
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from labkit import (
    banner,
    blocked,
    http_get,
    lab,
    overlay_injection_arrives,
    require_lab,
    state,
    tls_verdict,
)

from reachproof.checks.cluster_env import (
    TrainingFindings,
    cluster_env_problems,
    training_env_findings,
)
from reachproof.inventory.load import load_inventory
from reachproof.lab.build import LabHandle
from reachproof.lab.faults import FAULTS
from reachproof.lab.netns import Connect, tcp_connect

pytestmark = pytest.mark.lab
require_lab()

Check = Callable[[LabHandle], None]
DENY = 1.0  # seconds a connect may stay silent before it counts as dropped


def _user_blocked_from_agent_rpc(h: LabHandle) -> None:
    assert blocked(h.topology.user.netns, h.topology.agents[0].node.addr.v4.ip, 6001)


def _perimeter_open(h: LabHandle) -> None:
    t = h.topology
    agent = t.agents[0].node.addr
    assert state(t.user.netns, agent.v4.ip, 6003) is Connect.OPEN
    assert state(t.user.netns, agent.v6.ip, 12345) is Connect.CLOSED  # reached: nothing listens
    assert blocked(t.user.netns, t.mgmt("manager").addr.v4.ip, 8081)


def _agent_rpc_exposed(h: LabHandle) -> None:
    t = h.topology
    agent = t.agents[1].node.addr
    assert state(t.user.netns, agent.v4.ip, 6001) is Connect.OPEN
    assert state(t.user.netns, agent.v6.ip, 6001) is Connect.OPEN
    assert blocked(t.user.netns, agent.v4.ip, 6003)


def _container_routed(h: LabHandle) -> None:
    t = h.topology
    main = t.containers[0]
    assert state(t.user.netns, main.addr.v4.ip, 2200) is Connect.OPEN
    assert state(t.user.netns, main.addr.v6.ip, 8080) is Connect.OPEN
    _user_blocked_from_agent_rpc(h)


def _published_ports_exposed(h: LabHandle) -> None:
    t = h.topology
    app = t.apps[0]
    status, body = http_get(t.user.netns, t.agent(app.agent).node.addr.v4.ip, app.published_port)
    assert status == 200 and app.identity.encode() in body
    _user_blocked_from_agent_rpc(h)


def _management_exposed(h: LabHandle) -> None:
    t = h.topology
    assert state(t.user.netns, t.mgmt("manager").addr.v4.ip, 8081) is Connect.OPEN
    assert b"etcd" in banner(t.user.netns, t.mgmt("db").addr.v6.ip, 2379)
    _user_blocked_from_agent_rpc(h)


def _container_to_management(h: LabHandle) -> None:
    t = h.topology
    c = t.containers[0]
    assert b"redis" in banner(c.netns, t.mgmt("db").addr.v4.ip, 6379)
    assert blocked(c.netns, t.mgmt("manager").addr.v4.ip, 8081)


def _bridge_filtered(h: LabHandle) -> None:
    t = h.topology
    main, sub = t.sessions[0].containers
    assert blocked(main.netns, sub.cluster.v4.ip, 7681)
    assert blocked(main.netns, sub.cluster.v6.ip, 15000)
    assert state(main.netns, sub.cluster.v4.ip, 2200) is Connect.OPEN  # SSH mesh intact


def _overlay_blocked(h: LabHandle) -> None:
    t = h.topology
    main, sub = t.sessions[1].containers
    assert main.agent != sub.agent
    assert blocked(main.netns, sub.cluster.v4.ip, 2200)
    s1_main, s1_sub = t.sessions[0].containers
    assert state(s1_main.netns, s1_sub.cluster.v4.ip, 2200) is Connect.OPEN  # bridges fine


def _cross_session(h: LabHandle) -> None:
    t = h.topology
    s1_main = t.sessions[0].containers[0]
    s2_main, s2_sub = t.sessions[1].containers
    assert s1_main.agent == s2_main.agent
    assert state(s1_main.netns, s2_main.addr.v4.ip, 2200) is Connect.OPEN
    assert blocked(s1_main.netns, s2_sub.addr.v4.ip, 2200)  # other agents still isolate


def _appproxy_broken(h: LabHandle) -> None:
    t = h.topology
    proxy = t.mgmt("appproxy")
    jupyter, ttyd = t.apps[0], t.apps[1]
    agent = t.agent(jupyter.agent).node.addr
    assert blocked(proxy.netns, agent.v4.ip, jupyter.published_port)
    status, _ = http_get(t.user.netns, proxy.addr.v4.ip, jupyter.worker_port, tls=True)
    assert status >= 500
    status, body = http_get(t.user.netns, proxy.addr.v4.ip, ttyd.worker_port, tls=True)
    assert status == 200 and ttyd.identity.encode() in body


def _cluster_env_wrong(h: LabHandle) -> None:
    inventory = load_inventory(h.inventory_path)
    wrong = inventory.vantage("s1-sub1")
    right = inventory.vantage("s1-main1")
    assert wrong is not None and right is not None
    assert wrong.environment()["BACKENDAI_CLUSTER_REPLICAS"] != "main:1,sub:1"
    assert right.environment()["BACKENDAI_CLUSTER_REPLICAS"] == "main:1,sub:1"
    assert wrong.environment()["BACKENDAI_CLUSTER_HOSTS"] == "main1,sub1"


def _training_env_inconsistent(h: LabHandle) -> None:
    inventory = load_inventory(h.inventory_path)
    wrong = inventory.vantage("s1-sub1")
    right = inventory.vantage("s1-main1")
    assert wrong is not None and right is not None
    findings = training_env_findings(wrong.environment())
    assert findings.contradictions == (
        "TF_CONFIG task.index=0 but BACKENDAI_CLUSTER_LOCAL_RANK=1",
    ), findings
    assert training_env_findings(right.environment()) == TrainingFindings()
    assert cluster_env_problems(wrong.environment()) == []


def _ipv6_open(h: LabHandle) -> None:
    t = h.topology
    agent = t.agents[0].node.addr
    assert state(t.user.netns, agent.v6.ip, 6001) is Connect.OPEN
    assert blocked(t.user.netns, agent.v4.ip, 6001)


def _ssh_mesh_broken(h: LabHandle) -> None:
    t = h.topology
    main, sub = t.sessions[0].containers
    assert state(sub.netns, main.cluster.v4.ip, 2200) is Connect.CLOSED
    assert state(sub.netns, main.cluster.v6.ip, 2200) is Connect.CLOSED
    assert state(sub.netns, main.cluster.v4.ip, 7681) is Connect.OPEN
    assert state(main.netns, sub.cluster.v4.ip, 2200) is Connect.OPEN


def _vxlan_exposed(h: LabHandle) -> None:
    assert overlay_injection_arrives(h)
    _user_blocked_from_agent_rpc(h)


def _app_outside_main(h: LabHandle) -> None:
    t = h.topology
    main, sub = t.sessions[0].containers
    status, body = http_get(main.netns, sub.cluster.v4.ip, 8080)
    assert status == 200 and b"host=sub1" in body
    s2_main, s2_sub = t.sessions[1].containers
    assert state(s2_main.netns, s2_sub.cluster.v4.ip, 8080) is Connect.CLOSED


def _app_on_default_address(h: LabHandle) -> None:
    t = h.topology
    main, sub = t.sessions[0].containers[:2]
    agent = t.agent(sub.agent).node
    # Its agent reaches the default-network address and the app answers there ...
    status, body = http_get(agent.netns, sub.addr.v4.ip, 8080)
    assert status == 200 and b"host=sub1" in body
    # ... while main1, over the cluster network (all a peer probe reaches), finds it closed,
    # and the IPv6 default address has nothing listening.
    assert state(main.netns, sub.cluster.v4.ip, 8080) is Connect.CLOSED
    assert state(agent.netns, sub.addr.v6.ip, 8080) is Connect.CLOSED


def _tls_of(h: LabHandle, host: str) -> tuple[str, str]:
    """(CA, name) the inventory gives for `host`'s TLS."""
    inventory = load_inventory(h.inventory_path)
    found = inventory.host(host)
    assert inventory.tls_ca is not None and found is not None and found.tls_name is not None
    return inventory.tls_ca, found.tls_name


def _webserver_plain_http(h: LabHandle) -> None:
    t = h.topology
    web = t.mgmt("webserver").addr
    ca, name = _tls_of(h, "webserver")
    assert tls_verdict(t.user.netns, web.v4.ip, 443, ca, name) == "WRONG_VERSION_NUMBER"
    status, body = http_get(t.user.netns, web.v6.ip, 443)  # plain HTTP answers
    assert status == 200 and b"webserver" in body
    ca, name = _tls_of(h, "appproxy")  # the AppProxy still verifies
    assert tls_verdict(t.user.netns, t.mgmt("appproxy").addr.v4.ip, 10200, ca, name).startswith(
        "ok"
    )


def _appproxy_cert_expired(h: LabHandle) -> None:
    t = h.topology
    proxy = t.mgmt("appproxy").addr
    ca, name = _tls_of(h, "appproxy")
    for port in (10200, t.apps[0].worker_port):
        assert tls_verdict(t.user.netns, proxy.v4.ip, port, ca, name) == "certificate has expired"
    ca, name = _tls_of(h, "webserver")
    assert tls_verdict(t.user.netns, t.mgmt("webserver").addr.v6.ip, 443, ca, name).startswith("ok")


def _no_route(netns: str, address: str) -> bool:
    """The vantage itself has no route: connect() fails at once, before any packet."""
    result = tcp_connect(netns, address, 6001, timeout=2.0)
    return result.detail == os.strerror(errno.ENETUNREACH)


def _agent_down(h: LabHandle) -> None:
    t = h.topology
    manager = t.mgmt("manager").netns
    down, up = t.agents[-1].node.addr, t.agents[0].node.addr
    # Silent: neither the RPC port nor a closed one answers, over either family.
    assert state(manager, down.v4.ip, 6001, DENY) is Connect.TIMEOUT
    assert state(manager, down.v6.ip, 12345, DENY) is Connect.TIMEOUT
    assert state(manager, up.v4.ip, 6001) is Connect.OPEN  # the other agents serve on


def _user_no_route(h: LabHandle) -> None:
    t = h.topology
    agent = t.agents[0].node.addr
    assert _no_route(t.user.netns, str(agent.v4.ip))
    assert _no_route(t.user.netns, str(agent.v6.ip))
    assert _no_route(t.user.netns, str(t.containers[0].addr.v4.ip))
    web = t.mgmt("webserver").addr.v4.ip  # the management LAN is still routed
    assert state(t.user.netns, web, 443) is Connect.OPEN


CHECKS: dict[str, Check] = {
    "perimeter-open": _perimeter_open,
    "agent-rpc-exposed": _agent_rpc_exposed,
    "container-routed": _container_routed,
    "published-ports-exposed": _published_ports_exposed,
    "management-exposed": _management_exposed,
    "container-to-management": _container_to_management,
    "bridge-filtered": _bridge_filtered,
    "overlay-blocked": _overlay_blocked,
    "cross-session": _cross_session,
    "appproxy-broken": _appproxy_broken,
    "cluster-env-wrong": _cluster_env_wrong,
    "training-env-inconsistent": _training_env_inconsistent,
    "ipv6-open": _ipv6_open,
    "ssh-mesh-broken": _ssh_mesh_broken,
    "vxlan-exposed": _vxlan_exposed,
    "app-outside-main": _app_outside_main,
    "app-on-default-address": _app_on_default_address,
    "agent-down": _agent_down,
    "user-no-route": _user_no_route,
    "webserver-plain-http": _webserver_plain_http,
    "appproxy-cert-expired": _appproxy_cert_expired,
}


def test_every_fault_has_a_check() -> None:
    assert set(CHECKS) == {f.name for f in FAULTS}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_fault_breaks_its_property_and_the_rest_holds(tmp_path: Path, name: str) -> None:
    with lab(tmp_path, "flt", faults=(name,)) as handle:
        CHECKS[name](handle)
        # The front door works in every fault lab.
        web = handle.topology.mgmt("webserver").addr.v4.ip
        assert state(handle.topology.user.netns, web, 443) is Connect.OPEN
