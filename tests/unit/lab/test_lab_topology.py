"""The lab as pure data: address plan, placement, faults, rulesets, inventory, service plan."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reachproof.errors import UsageError
from reachproof.inventory.dump import dump_inventory
from reachproof.inventory.load import parse_inventory
from reachproof.lab.faults import FAULTS
from reachproof.lab.inventory import hosts_file_text, lab_inventory
from reachproof.lab.nft import agent_ruleset, perimeter_ruleset, ssh_broken_ruleset
from reachproof.lab.serviceplan import service_plan
from reachproof.lab.services.spec import ServiceKind
from reachproof.lab.targets import fault_targets
from reachproof.lab.topology import LabOptions, Topology, build_topology
from reachproof.policy.parse import load_policy

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "lab-small.yaml"
ISSUE_FAULTS = {
    "perimeter-open", "agent-rpc-exposed", "container-routed", "published-ports-exposed",
    "management-exposed", "container-to-management", "bridge-filtered", "overlay-blocked",
    "cross-session", "appproxy-broken", "cluster-env-wrong", "ipv6-open", "ssh-mesh-broken",
    "vxlan-exposed", "app-outside-main", "agent-down", "user-no-route", "training-env-inconsistent",
    "app-on-default-address",
    # issue 10: the rest of the security guide
    "webserver-plain-http", "appproxy-cert-expired",
}  # fmt: skip
POLICY_RULES = {r.id.text for r in load_policy(ROOT / "policies" / "backend-ai.policy").rules}


def _topo(**kwargs: object) -> Topology:
    return build_topology(LabOptions.create(**kwargs))  # type: ignore[arg-type]


def test_default_lab_inventory_is_the_example_inventory() -> None:
    topo = _topo()
    ours = dump_inventory(lab_inventory(topo, fault_targets(topo)))
    example = parse_inventory(EXAMPLE.read_text())
    mine = parse_inventory(ours)
    assert mine.vantages == example.vantages
    assert mine.hosts == example.hosts
    assert mine.sessions == example.sessions
    assert mine.apps == example.apps


def test_fault_table_covers_the_issue_and_names_real_rules() -> None:
    assert {f.name for f in FAULTS} == ISSUE_FAULTS
    for item in FAULTS:
        assert item.summary and item.how
        assert set(item.breaks) <= POLICY_RULES, item.name
        assert set(item.must_not_pass) <= POLICY_RULES - set(item.breaks), item.name
        assert item.breaks or item.must_not_pass, item.name


def test_namespace_and_interface_names_fit_the_kernel() -> None:
    topo = _topo(agents=64, sessions=",".join(["single-node:4"] * 64 + ["multi-node:4"] * 64))
    names = topo.namespaces()
    assert len(names) == len(set(names)) == 6 + 64 + 512
    for c in topo.containers:
        for ifname in (c.default_port, c.cluster_port, c.cluster_ifname):
            assert len(ifname) <= 15
    addresses = [
        a for c in topo.containers for a in (c.addr.v4, c.addr.v6, c.cluster.v4, c.cluster.v6)
    ]
    assert len(addresses) == len(set(addresses))
    assert len(topo.apps) == 96  # the worker range 10205-10300 is full


def test_placement_round_robin() -> None:
    topo = _topo(agents=3, sessions="single-node:3,multi-node:4,single-node:1")
    assert [c.agent for c in topo.sessions[1].containers] == [1, 2, 3, 1]
    assert {c.agent for c in topo.sessions[2].containers} == {2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": "rp-x"}, "prefix"),
        ({"prefix": "1abc"}, "prefix"),
        ({"sessions": "multi-node:2", "agents": 1}, "needs --agents 2"),
        ({"sessions": "single-node:0"}, "positive"),
        ({"sessions": "two-node:2"}, "single-node:N"),
        ({"faults": ["nope"]}, "unknown fault"),
        ({"perimeter": "maybe"}, "drop, reject, reset or reset6"),
        ({"container_families": "6"}, "--container-families must be 4 or 4,6"),
        ({"container_families": "4", "runtime": "docker"}, "for --runtime netns only"),
        ({"agents": 0}, "--agents"),
        ({"sessions": "single-node:1", "faults": ["cross-session"]}, "two sessions"),
        ({"sessions": "single-node:1,single-node:1", "faults": ["overlay-blocked"]}, "multi-node"),
    ],
)
def test_impossible_labs_are_usage_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        topo = _topo(**kwargs)
        fault_targets(topo)


@pytest.mark.parametrize("mode", ["drop", "reject", "reset", "reset6"])
def test_perimeter_blocks_both_families_and_never_accepts_by_default(mode: str) -> None:
    text = perimeter_ruleset(_topo(perimeter=mode))
    assert "ip daddr 10.0.1.10 tcp dport 443 accept" in text
    assert "ip6 daddr fd00:1::10 tcp dport 443 accept" in text
    assert "ip6 daddr fd00:1::12 tcp dport { 10200, 10205-10300 } accept" in text
    block = {
        "drop": "drop",
        "reject": "icmpx admin-prohibited",
        "reset": "tcp reset",
        "reset6": "meta nfproto ipv6 meta l4proto tcp reject with tcp reset",
    }[mode]
    internet = text.split("chain from_internet")[1].split("chain ")[0]
    assert block in internet
    assert "10.0.2.0/24" not in internet


def test_agent_ruleset_publishes_apps_and_isolates_containers() -> None:
    topo = _topo()
    text = agent_ruleset(topo, topo.agents[0], fault_targets(topo))
    assert "tcp dport 30000 dnat ip to 172.17.1.2:8080" in text
    assert "tcp dport 30000 dnat ip6 to [fd00:17:1::2]:8080" in text
    assert 'iifname "vd*" oifname "vd*" drop' in text  # ICC off
    assert 'iifname "docker0" ip daddr { 10.0.1.0/24, 10.200.0.0/16 } drop' in text


@pytest.mark.parametrize(
    ("fault", "where", "needle"),
    [
        ("cross-session", "agent1", None),
        ("bridge-filtered", "agent1", 'iifname "s1p*" tcp dport { 7681, 10000-19999 } drop'),
        ("overlay-blocked", "agent1", "ip daddr 10.0.2.12 udp dport 4789 drop"),
        ("appproxy-broken", "agent1", "ip daddr 172.17.1.2 tcp dport 8080 drop"),
        (
            "container-to-management",
            "agent2",
            "ip daddr 10.0.1.13 tcp dport { 2379, 6379, 5432 } accept",
        ),
        ("vxlan-exposed", "agent2", "ip saddr 203.0.113.0/24 udp dport 4789 accept"),
    ],
)
def test_agent_faults(fault: str, where: str, needle: str | None) -> None:
    topo = _topo(faults=[fault])
    agent = next(a for a in topo.agents if a.name == where)
    text = agent_ruleset(topo, agent, fault_targets(topo))
    if needle is None:
        assert '"vd*"' not in text
    else:
        assert needle in text
    clean = _topo()
    assert text != agent_ruleset(clean, clean.agents[agent.number - 1], fault_targets(clean))


def test_ssh_mesh_broken_resets_only_in_one_container() -> None:
    topo = _topo(faults=["ssh-mesh-broken"])
    found = ssh_broken_ruleset(topo, fault_targets(topo))
    assert found is not None
    netns, text = found
    assert netns == "rp-s1-sub2"
    assert "ip daddr 10.200.1.0/24 tcp dport 2200 reject with tcp reset" in text
    assert ssh_broken_ruleset(_topo(), fault_targets(_topo())) is None


def test_service_plan_binds_the_worker_range_and_apps_only_in_main1() -> None:
    topo = _topo()
    plan = service_plan(topo, fault_targets(topo))
    workers = [item for item in plan.listeners if item.kind is ServiceKind.APPPROXY_WORKER]
    assert [w.port for w in workers] == list(range(10205, 10301))
    assert workers[0].upstreams == (("10.0.2.11", 30000),)
    assert workers[-1].upstreams == ()
    apps = {item.netns for item in plan.listeners if item.port == 8080}
    assert apps == {s.containers[0].netns for s in topo.sessions}
    stray = _topo(faults=["app-outside-main"])
    apps = {
        item.netns
        for item in service_plan(stray, fault_targets(stray)).listeners
        if item.port == 8080
    }
    assert "rp-s1-sub1" in apps


def test_app_on_default_address_binds_only_sub1s_default_ipv4() -> None:
    topo = _topo(faults=["app-on-default-address"])
    sub1 = topo.sessions[0].containers[1]
    [stray] = [
        item
        for item in service_plan(topo, fault_targets(topo)).listeners
        if item.port == 8080 and item.netns == sub1.netns
    ]
    assert stray.bind == str(sub1.addr.v4.ip) != str(sub1.cluster.v4.ip)


def test_agent_down_stops_the_last_agents_services_only() -> None:
    topo = _topo(faults=["agent-down"])
    targets = fault_targets(topo)
    assert targets.agent_down == topo.agents[-1].number
    served = {item.netns for item in service_plan(topo, targets).listeners}
    assert topo.agents[-1].node.netns not in served
    assert {a.node.netns for a in topo.agents[:-1]} <= served
    assert {c.netns for c in topo.containers} <= served  # its containers keep running
    with pytest.raises(UsageError, match="2 or more agents"):
        fault_targets(_topo(agents=1, sessions="single-node:1", faults=["agent-down"]))


def test_cluster_env_wrong_changes_one_vantage_only() -> None:
    clean = _topo()
    broken = _topo(faults=["cluster-env-wrong"])
    a = {v.name: v.env for v in lab_inventory(clean, fault_targets(clean)).vantages}
    b = {v.name: v.env for v in lab_inventory(broken, fault_targets(broken)).vantages}
    assert [name for name in a if a[name] != b[name]] == ["s1-sub2"]
    assert dict(b["s1-sub2"])["BACKENDAI_CLUSTER_REPLICAS"] == "main:1,sub:3"


def test_training_env_inconsistent_changes_one_tf_config_only() -> None:
    clean = _topo()
    broken = _topo(faults=["training-env-inconsistent"])
    a = {v.name: dict(v.env) for v in lab_inventory(clean, fault_targets(clean)).vantages}
    b = {v.name: dict(v.env) for v in lab_inventory(broken, fault_targets(broken)).vantages}
    assert [name for name in a if a[name] != b[name]] == ["s1-sub2"]
    assert [k for k in a["s1-sub2"] if a["s1-sub2"][k] != b["s1-sub2"][k]] == ["TF_CONFIG"]
    assert json.loads(b["s1-sub2"]["TF_CONFIG"])["task"]["index"] == 0


def test_hosts_file_lists_the_session_on_its_cluster_network() -> None:
    topo = _topo()
    text = hosts_file_text(topo, topo.sessions[1].containers[0])
    assert "10.200.2.4\tsub2" in text and "fd00:200:2::4\tsub2" in text
    assert "10.200.1." not in text


def test_reset6_resets_over_ipv6_and_drops_ipv4() -> None:
    text = perimeter_ruleset(_topo(perimeter="reset6"))
    internet = text.split("chain from_internet")[1].split("chain ")[0]
    rules = [line.strip() for line in internet.splitlines()]
    assert [r for r in rules if r not in ("", "{", "}")][-3:] == [
        "meta nfproto ipv6 meta l4proto tcp reject with tcp reset",
        "meta nfproto ipv6 reject with icmpx admin-prohibited",
        "drop",
    ]


def test_ipv4_only_containers_carry_no_ipv6_and_the_inventory_says_so() -> None:
    topo = _topo(container_families="4")
    text = agent_ruleset(topo, topo.agents[0], fault_targets(topo))
    assert "dnat ip to 172.17.1.2:8080" in text
    assert "dnat ip6" not in text
    assert "meta nfproto ipv6 tcp dport 30000-31000 drop" in text
    assert "meta nfproto ipv6 udp dport 4789 drop" in text
    assert "meta protocol ip6 drop" in text  # bridged frames: bridges and the overlay
    assert 'meta nfproto ipv6 oifname "docker0" drop' in text  # routed, not the agent's own
    inventory = parse_inventory(dump_inventory(lab_inventory(topo, fault_targets(topo))))
    assert inventory.families.lookup("cluster", ()) is not None
    assert [f for f in ("container", "cluster") if inventory.families.lookup(f, ())] == [
        "container",
        "cluster",
    ]
    pool = inventory.families.lookup("service", ("host-port-pool",))
    assert pool is not None and pool.families == (4,)
    default = inventory.families.lookup("service", ("agent-rpc",))
    assert default is not None and default.families == (4, 6)
    c = topo.containers[0]
    assert str(c.cluster.v6.ip) not in hosts_file_text(topo, c)
    assert str(c.cluster.v4.ip) in hosts_file_text(topo, c)


def test_dual_stack_containers_are_the_default() -> None:
    topo = _topo()
    assert topo.containers_v6
    inventory = lab_inventory(topo, fault_targets(topo))
    assert inventory.families.lookup("cluster", ()) is None
