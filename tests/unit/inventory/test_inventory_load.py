"""The reference lab inventory loads into the model the rest of reachproof relies on."""

from __future__ import annotations

import hashlib
import json
from ipaddress import ip_address
from pathlib import Path

import pytest

from reachproof.errors import InputError, InventoryError
from reachproof.inventory.load import load_inventory, parse_inventory
from reachproof.inventory.model import CONTAINER_ROLE, Inventory, SessionMode, Transport
from reachproof.ports import parse_ports

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "lab-small.yaml"


@pytest.fixture(scope="module")
def lab() -> Inventory:
    return load_inventory(EXAMPLE)


def test_counts(lab: Inventory) -> None:
    plain = [h for h in lab.hosts if h.container is None]
    containers = [h for h in lab.hosts if h.container is not None]
    assert [h.name for h in plain] == [
        "user",
        "webserver",
        "manager",
        "appproxy",
        "db",
        "agent1",
        "agent2",
        "agent3",
    ]
    assert len(containers) == 8
    assert len(lab.vantages) == 16
    assert [s.id for s in lab.sessions] == ["s1", "s2", "s3"]
    assert [(a.session, a.name) for a in lab.apps] == [
        (s, app) for s in ("s1", "s2", "s3") for app in ("jupyter", "ttyd")
    ]
    assert lab.name == "reachproof-lab-small"


def test_path_and_digest_of_file_bytes(lab: Inventory) -> None:
    assert lab.path == str(EXAMPLE)
    assert lab.sha256 == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()


def test_roles_and_zones(lab: Inventory) -> None:
    db = lab.host("db")
    assert db is not None and db.role == "database" and db.zone == "management"
    assert [h.name for h in lab.hosts_with_role("agent")] == ["agent1", "agent2", "agent3"]
    assert {h.zone for h in lab.hosts_with_role("agent")} == {"compute"}
    assert all(h.zone is None for h in lab.hosts_with_role(CONTAINER_ROLE))


def test_every_host_is_dual_stack_with_the_address_plan(lab: Inventory) -> None:
    assert all(len(h.ipv4) == 1 and len(h.ipv6) == 1 for h in lab.hosts)
    user = lab.host("user")
    assert user is not None
    assert user.primary_addresses() == (ip_address("203.0.113.10"), ip_address("2001:db8:ff::10"))
    agent2 = lab.host("agent2")
    assert agent2 is not None and agent2.ipv6 == (ip_address("fd00:2::12"),)
    sub3 = lab.host("s2/sub3")
    assert sub3 is not None and sub3.container is not None
    assert sub3.ipv4 == (ip_address("172.17.1.6"),)
    assert sub3.container.cluster_ipv4 == (ip_address("10.200.2.5"),)
    assert sub3.container.cluster_ipv6 == (ip_address("fd00:200:2::5"),)
    assert sub3.all_addresses() == (
        ip_address("172.17.1.6"),
        ip_address("fd00:17:1::6"),
        ip_address("10.200.2.5"),
        ip_address("fd00:200:2::5"),
    )


def test_sessions_kernel_order_and_ranks(lab: Inventory) -> None:
    s2 = lab.session("s2")
    assert s2 is not None and s2.mode is SessionMode.MULTI_NODE
    assert s2.containers == ("s2/main1", "s2/sub1", "s2/sub2", "s2/sub3")
    infos = [lab.host(name) for name in s2.containers]
    assert [(h.container.local_rank, h.container.agent) for h in infos if h and h.container] == [
        (0, "agent1"),
        (1, "agent2"),
        (2, "agent3"),
        (3, "agent1"),
    ]
    s3 = lab.session("s3")
    assert s3 is not None and s3.mode is SessionMode.SINGLE_NODE and s3.containers == ("s3/main1",)


def test_kernel_order_does_not_depend_on_file_order() -> None:
    text = """\
version: 1
hosts:
  a1: {role: agent}
sessions:
  s:
    mode: single-node
    containers:
      - {hostname: sub2, role: sub, index: 2, agent: a1}
      - {hostname: main1, role: main, index: 1, agent: a1}
      - {hostname: sub1, role: sub, index: 1, agent: a1}
"""
    inventory = parse_inventory(text)
    session = inventory.session("s")
    assert session is not None and session.containers == ("s/main1", "s/sub1", "s/sub2")
    ranks = [(h.name, h.container.local_rank) for h in inventory.hosts if h.container]
    assert ranks == [("s/main1", 0), ("s/sub1", 1), ("s/sub2", 2)]


def test_vantages_and_cluster_environment(lab: Inventory) -> None:
    user = lab.vantage("user")
    assert user is not None and user.transport is Transport.NETNS and user.netns == "rp-user"
    sub2 = lab.vantage("s2-sub2")
    assert sub2 is not None
    env = sub2.environment()
    assert env["BACKENDAI_CLUSTER_SIZE"] == "4"
    assert env["BACKENDAI_CLUSTER_HOSTS"] == "main1,sub1,sub2,sub3"
    assert env["BACKENDAI_CLUSTER_REPLICAS"] == "main:1,sub:3"
    assert (env["BACKENDAI_CLUSTER_HOST"], env["BACKENDAI_CLUSTER_ROLE"]) == ("sub2", "sub")
    assert (env["BACKENDAI_CLUSTER_IDX"], env["BACKENDAI_CLUSTER_LOCAL_RANK"]) == ("2", "2")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("main1", "29500")
    workers = ["main1:29500", "sub1:29501", "sub2:29502", "sub3:29503"]
    assert env["TF_CONFIG"] == json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": 2}}
    )
    lone = lab.vantage("s3-main1")
    assert lone is not None and "MASTER_ADDR" not in lone.environment()
    assert all(v.netns and v.netns.startswith("rp-") for v in lab.vantages)
    assert all(h.vantage is not None and lab.vantage(h.vantage) for h in lab.hosts)


def test_services_and_apps(lab: Inventory) -> None:
    agent1 = lab.host("agent1")
    assert agent1 is not None
    assert agent1.service_ports("host-port-pool") == parse_ports("tcp/30000-30003")
    main1 = lab.host("s1/main1")
    sub1 = lab.host("s1/sub1")
    assert main1 is not None and main1.service_ports("app") == parse_ports("tcp/8080")
    assert sub1 is not None and sub1.service_ports("app") is None
    ttyd = lab.apps[3]
    assert (ttyd.session, ttyd.name, ttyd.container) == ("s2", "ttyd", "s2/main1")
    assert (ttyd.proxy, ttyd.address, ttyd.port) == ("appproxy", ip_address("10.0.1.12"), 10208)
    assert (ttyd.container_port, ttyd.published_port) == (7681, 30003)
    assert ttyd.identity == "session=s2 host=main1" and ttyd.path == "/"
    assert ip_address("10.0.1.12") in lab.declared_addresses()


def test_positions_point_at_the_file(lab: Inventory) -> None:
    lines = EXAMPLE.read_text().splitlines()
    db = lab.host("db")
    assert db is not None
    assert lines[db.pos.line - 1][db.pos.column - 1 :].startswith("db:")
    assert lines[db.role_pos.line - 1][db.role_pos.column - 1 :] == "database"
    s2 = lab.session("s2")
    assert s2 is not None and lines[s2.pos.line - 1].strip() == "s2:"


def test_defaults() -> None:
    text = """\
version: 1
vantages:
  ssh: {transport: exec, command: [ssh, -T, audit@h]}
  here: {transport: local}
hosts:
  px: {role: appproxy, ipv6: "fd00::1", vantage: here}
  h: {role: x, services: {web: [], two: [tcp/1, "udp/2,3"]}}
sessions:
  s: {mode: multi-node, containers: [{hostname: main1, role: main, index: 1, agent: a}]}
  empty: {mode: single-node, containers: [{hostname: main1, role: main, index: 1, agent: a}]}
apps:
  - {session: s, name: j, proxy: px, port: 1, container: main1, container_port: 2}
"""
    with pytest.raises(InventoryError):
        parse_inventory(text)  # agent `a` is not declared
    fixed = text.replace("hosts:\n", "hosts:\n  a: {role: agent}\n")
    inventory = parse_inventory(fixed)
    assert inventory.path == "<inventory>"
    assert inventory.sha256 == hashlib.sha256(fixed.encode()).hexdigest()
    ssh = inventory.vantage("ssh")
    assert ssh is not None and ssh.command == ("ssh", "-T", "audit@h") and ssh.python == "python3"
    assert inventory.name == ""
    h = inventory.host("h")
    assert h is not None and h.zone is None and h.vantage is None
    assert h.services == (("web", ()), ("two", parse_ports("tcp/1, udp/2,3")))
    app = inventory.apps[0]
    assert app.address == ip_address("fd00::1") and app.path == "/" and app.published_port is None


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such inventory file"):
        load_inventory(tmp_path / "nope.yaml")
