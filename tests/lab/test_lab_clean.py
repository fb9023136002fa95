"""The clean lab: every documented path works, every blocked one is blocked (plain sockets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from labkit import (
    CleanLab,
    banner,
    blocked,
    host_snapshot,
    http_get,
    require_lab,
    state,
    tls_verdict,
    websocket_echo,
)

from reachproof.inventory.load import load_inventory
from reachproof.lab.netns import Connect, list_netns, resolve_in_netns
from reachproof.lab.topology import Topology

pytestmark = pytest.mark.lab
require_lab()


def _topo(clean_lab: CleanLab) -> Topology:
    return clean_lab.handle.topology


def test_user_reaches_the_webserver_on_443_over_both_families(clean_lab: CleanLab) -> None:
    topo = _topo(clean_lab)
    web = topo.mgmt("webserver").addr
    assert state(topo.user.netns, web.v4.ip, 443) is Connect.OPEN
    assert state(topo.user.netns, web.v6.ip, 443) is Connect.OPEN


def test_user_does_not_reach_agents_rpc_nor_vxlan_nor_anything_else(clean_lab: CleanLab) -> None:
    topo = _topo(clean_lab)
    agent = topo.agents[0].node.addr
    for address in (agent.v4.ip, agent.v6.ip):
        assert blocked(topo.user.netns, address, 6001)
        assert blocked(topo.user.netns, address, 30000)  # a published host port
    web = topo.mgmt("webserver").addr
    assert blocked(topo.user.netns, web.v4.ip, 22)  # `filtered`, never `closed`
    assert blocked(topo.user.netns, topo.mgmt("manager").addr.v6.ip, 8081)


def test_user_does_not_reach_containers_on_any_address(clean_lab: CleanLab) -> None:
    topo = _topo(clean_lab)
    main = topo.containers[0]
    for address in (main.addr.v4.ip, main.addr.v6.ip, main.cluster.v4.ip, main.cluster.v6.ip):
        assert blocked(topo.user.netns, address, 8080)


def test_main1_reaches_sub2_by_hostname_over_the_overlay(clean_lab: CleanLab) -> None:
    topo = _topo(clean_lab)
    session = next(s for s in topo.sessions if s.mode == "multi-node")
    main, sub2 = session.containers[0], session.containers[2]
    assert main.agent != sub2.agent  # really across the VXLAN overlay
    addresses = resolve_in_netns(main.netns, "sub2")
    assert set(addresses) == {str(sub2.cluster.v4.ip), str(sub2.cluster.v6.ip)}
    for address in addresses:
        assert f"session={session.id} host=sub2".encode() in banner(main.netns, address, 2200)


def test_session_networks_are_unfiltered_inside_and_closed_ports_answer(
    clean_lab: CleanLab,
) -> None:
    topo = _topo(clean_lab)
    for session in topo.sessions[:2]:
        main, peer = session.containers[0], session.containers[-1]
        assert state(main.netns, peer.cluster.v4.ip, 7681) is Connect.OPEN
        assert state(main.netns, peer.cluster.v6.ip, 12345) is Connect.CLOSED


def test_sessions_do_not_reach_each_other(clean_lab: CleanLab) -> None:
    topo = _topo(clean_lab)
    s1, s2 = topo.sessions[0], topo.sessions[1]
    same_agent = next(c for c in s2.containers if c.agent == s1.containers[0].agent)
    other_agent = next(c for c in s2.containers if c.agent != s1.containers[0].agent)
    src = s1.containers[0].netns
    for target in (same_agent, other_agent):
        for address in (target.addr.v4.ip, target.addr.v6.ip, target.cluster.v4.ip):
            assert blocked(src, address, 2200)


def test_containers_do_not_reach_management_but_reach_their_agent_metadata(
    clean_lab: CleanLab,
) -> None:
    topo = _topo(clean_lab)
    c = topo.containers[0]
    for name, port in (
        ("db", 2379),
        ("db", 5432),
        ("manager", 8081),
        ("manager", 18080),
        ("appproxy", 10200),
    ):
        node = topo.mgmt(name).addr
        assert blocked(c.netns, node.v4.ip, port)
        assert blocked(c.netns, node.v6.ip, port)
    agent = topo.agent(c.agent)
    assert state(c.netns, agent.docker.v4.ip, 40128) is Connect.OPEN


def test_agents_reach_management_and_each_other(clean_lab: CleanLab) -> None:
    topo = _topo(clean_lab)
    agent = topo.agents[1].node.netns
    assert state(agent, topo.mgmt("manager").addr.v4.ip, 8081) is Connect.OPEN
    assert state(agent, topo.mgmt("db").addr.v6.ip, 2379) is Connect.OPEN
    assert state(agent, topo.agents[0].node.addr.v4.ip, 6001) is Connect.OPEN


def test_webserver_forwards_to_the_manager_which_reaches_every_agent(clean_lab: CleanLab) -> None:
    topo = _topo(clean_lab)
    web = topo.mgmt("webserver").addr.v4.ip
    status, body = http_get(topo.user.netns, web, 443, "/api/agents", tls=True)
    assert status == 200
    reached = json.loads(body)["agents"]
    assert set(reached) == {f"{a.node.addr.v4.ip}:6001" for a in topo.agents}
    assert set(reached.values()) == {"ok"}


def test_appproxy_returns_each_sessions_own_app_over_http(clean_lab: CleanLab) -> None:
    topo = _topo(clean_lab)
    proxy = topo.mgmt("appproxy").addr
    for app in topo.apps:
        status, body = http_get(topo.user.netns, proxy.v4.ip, app.worker_port, tls=True)
        assert status == 200, app
        assert app.identity.encode() in body


def test_webserver_and_appproxy_serve_tls_the_inventory_can_verify(clean_lab: CleanLab) -> None:
    topo = _topo(clean_lab)
    inventory = load_inventory(clean_lab.handle.inventory_path)
    assert inventory.tls_ca is not None
    for name, port in (("webserver", 443), ("appproxy", 10200), ("appproxy", 10205)):
        host = inventory.host(name)
        assert host is not None and host.tls_name is not None
        for address in (topo.mgmt(name).addr.v4.ip, topo.mgmt(name).addr.v6.ip):
            verdict = tls_verdict(topo.user.netns, address, port, inventory.tls_ca, host.tls_name)
            assert verdict in ("ok TLSv1.2", "ok TLSv1.3"), (name, port, address, verdict)


def test_appproxy_completes_a_websocket_handshake_to_ttyd(clean_lab: CleanLab) -> None:
    topo = _topo(clean_lab)
    ttyd = next(a for a in topo.apps if a.name == "ttyd")
    status, echoed = websocket_echo(
        topo.user.netns, topo.mgmt("appproxy").addr.v4.ip, ttyd.worker_port, b"hello lab", True
    )
    assert status == 101
    assert echoed == b"hello lab"


def test_inventory_loads_and_describes_the_lab(clean_lab: CleanLab) -> None:
    handle = clean_lab.handle
    inventory = load_inventory(Path(handle.inventory_path))
    topo = handle.topology
    assert len(inventory.sessions) == len(topo.sessions)
    assert {v.netns for v in inventory.vantages} == set(topo.namespaces()) - {topo.fw_netns}
    env = inventory.vantage("s2-sub1")
    assert env is not None and env.environment()["BACKENDAI_CLUSTER_HOST"] == "sub1"


def test_the_lab_leaves_the_host_namespace_alone(clean_lab: CleanLab) -> None:
    after = host_snapshot()
    assert after.sysctls == clean_lab.host_before.sysctls
    created = after.links - clean_lab.host_before.links
    assert not created, f"links appeared in the host namespace: {sorted(created)}"
    assert len(list_netns(clean_lab.handle.prefix)) == len(clean_lab.handle.topology.namespaces())
