"""The plan compiler: resolution, pairing scopes, ports, excepts, dual stack, empty hops."""

from __future__ import annotations

import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from reachproof.errors import InventoryError
from reachproof.inventory.load import load_inventory, parse_inventory
from reachproof.inventory.model import Inventory
from reachproof.plan import Plan, ProbeKind
from reachproof.policy.compile import compile_plan
from reachproof.policy.parse import parse_policy
from reachproof.ports import PortSet
from reachproof.verdict import Verdict, judge_plan

ROOT = Path(__file__).resolve().parents[3]
HEADER = """
policy "t"
role user, webserver, manager, appproxy, database, agent, container
zone internet = user
zone management = webserver, manager, appproxy, database
zone compute = agent, container
service ssh = tcp/2200
service few = tcp/1-10, udp/53
"""


@pytest.fixture(scope="module")
def lab() -> Inventory:
    return load_inventory(ROOT / "examples" / "lab-small.yaml")


def plan_of(body: str, inventory: Inventory) -> Plan:
    return compile_plan(parse_policy(HEADER + body), inventory)


def pairs(plan: Plan, family: int = 4) -> set[tuple[str, str]]:
    return {(s.source, s.target) for s in plan.specs if s.family == family}


def test_chain_is_one_hop_per_arrow(lab: Inventory) -> None:
    plan = plan_of('rule R "c":\n allow user -> webserver:tcp/443 -> manager:tcp/8081\n', lab)
    [rule] = plan.rules
    assert [h.label for h in rule.hops] == [
        "allow user → webserver:tcp/443",
        "allow webserver → manager:tcp/8081",
    ]
    assert pairs(plan) == {("user", "webserver"), ("webserver", "manager")}
    assert {s.hop for s in plan.specs} == {0, 1}


def test_every_ipv6_target_gets_the_same_specs(lab: Inventory) -> None:
    plan = plan_of('rule R "d":\n deny user -> compute:few\n', lab)
    v4 = sorted((s.target, s.kind, str(s.ports)) for s in plan.specs if s.family == 4)
    v6 = sorted((s.target, s.kind, str(s.ports)) for s in plan.specs if s.family == 6)
    assert v4 == v6
    assert {s.kind for s in plan.specs if s.rule_id == "R"} == {ProbeKind.TCP, ProbeKind.UDP}


def test_deny_to_containers_covers_every_address(lab: Inventory) -> None:
    plan = plan_of('rule R "d":\n deny user -> container[main1]:ssh\n', lab)
    s1 = lab.host("s1/main1")
    assert s1 is not None
    probed = {s.address for s in plan.specs if s.target == "s1/main1" and s.rule_id == "R"}
    assert probed == {str(a) for a in s1.all_addresses()}
    assert len(probed) == 4  # default network and cluster network, v4 and v6


def test_within_session_pairs_peers_on_the_cluster_network(lab: Inventory) -> None:
    plan = plan_of(
        'rule R "w":\n reach container -> container:ssh within session single-node\n', lab
    )
    got = pairs(plan)
    assert got == {
        (a, b)
        for a in ("s1/main1", "s1/sub1", "s1/sub2")
        for b in ("s1/main1", "s1/sub1", "s1/sub2")
        if a != b
    }
    assert all(s.address and s.address.startswith(("10.200.", "fd00:200:")) for s in plan.specs)


def test_across_sessions_never_pairs_a_session_with_itself(lab: Inventory) -> None:
    plan = plan_of('rule R "x":\n deny container -> container:ssh across sessions\n', lab)
    sessions = {h.name: h.container.session for h in lab.hosts if h.container}
    assert pairs(plan)
    assert all(sessions[a] != sessions[b] for a, b in pairs(plan))


def test_within_agent_pairs_agents_with_their_own_containers(lab: Inventory) -> None:
    plan = plan_of('rule R "a":\n allow agent -> container[main]:tcp/8080 within agent\n', lab)
    agents = {h.name: h.container.agent for h in lab.hosts if h.container}
    assert pairs(plan) == {(agents[c], c) for c in ("s1/main1", "s2/main1", "s3/main1")}


def test_by_hostname_resolves_at_the_vantage(lab: Inventory) -> None:
    plan = plan_of(
        'rule R "h":\n allow container -> container:ssh within session by hostname\n', lab
    )
    spec = next(s for s in plan.specs if s.target == "s2/sub3")
    assert spec.resolve == "sub3"


def test_except_subtracts_ports_on_matching_targets_only(lab: Inventory) -> None:
    plan = plan_of(
        'rule R "e":\n deny user -> management:tcp/1-1000 except webserver:tcp/443\n', lab
    )
    ports = {s.target: s.ports for s in plan.specs if s.family == 4}
    assert ports["webserver"] == PortSet.parse("1-442,444-1000")
    assert ports["manager"] == PortSet.parse("1-1000")


def test_inventory_overrides_service_ports_per_host(lab: Inventory) -> None:
    policy = parse_policy(
        HEADER + "service host-port-pool = tcp/30000-31000\n"
        'rule R "o":\n reach appproxy -> agent:host-port-pool\n'
    )
    plan = compile_plan(policy, lab)
    by_agent = {s.target: str(s.ports) for s in plan.specs if s.family == 4}
    agent1, agent3 = lab.host("agent1"), lab.host("agent3")
    assert agent1 is not None and agent3 is not None
    override = agent1.service_ports("host-port-pool")
    assert override is not None
    assert by_agent["agent1"] == str(override[0].ports) != "30000-31000"
    assert agent3.service_ports("host-port-pool") is None
    assert by_agent["agent3"] == "30000-31000"


def test_sample_is_reproducible(lab: Inventory) -> None:
    body = 'service big = tcp/1-65535 sample 50\nrule R "s":\n deny user -> agent:big\n'
    first = {s.ports for s in plan_of(body, lab).specs if s.rule_id == "R"}
    second = {s.ports for s in plan_of(body, lab).specs if s.rule_id == "R"}
    assert first == second
    sampled = PortSet.parse("1-65535").sample(50, zlib.crc32(b"big"))
    assert {p.difference(sampled) for p in first} == {
        PortSet(),
        PortSet.parse("30000-30003"),
        PortSet.parse("30004-30005"),
    }


@pytest.mark.parametrize(
    ("agent", "published_ports"),
    [("agent1", "30000-30003"), ("agent2", "30004-30005"), ("agent3", "")],
)
def test_a_sampled_service_also_probes_the_ports_the_inventory_publishes(
    lab: Inventory, agent: str, published_ports: str
) -> None:
    published = PortSet.parse(published_ports) if published_ports else PortSet()
    # Every published_port of an app on the agent is probed, whatever the sample drew; ports
    # the inventory knows outside the service's range are not added.
    body = (
        "service pool = tcp/30000-31000 sample 4\nservice low = tcp/1-1000 sample 4\n"
        'rule R "p":\n reach appproxy -> agent:pool\n reach appproxy -> agent:low\n'
    )
    policy = parse_policy(HEADER + body)
    inventory = replace(lab, hosts=tuple(replace(h, services=()) for h in lab.hosts))
    plan = compile_plan(policy, inventory)
    pool = {s.ports for s in plan.specs if s.target == agent and s.statement == 0}
    low = {s.ports for s in plan.specs if s.target == agent and s.statement == 1}
    assert {p.difference(published) for p in pool} == {
        PortSet.parse("30000-31000").sample(4, zlib.crc32(b"pool"))
    }
    assert {len(p) for p in pool} == {4 + len(published)}
    assert {len(p) for p in low} == {4}


def test_empty_hop_keeps_its_reason_and_is_inconclusive(lab: Inventory) -> None:
    plan = plan_of('rule R "e":\n deny user -> container[nosuch]:ssh\n', lab)
    [hop] = plan.rules[0].hops
    assert hop.spec_ids == ()
    assert hop.empty_reason is not None and "container[nosuch]" in hop.empty_reason
    [verdict] = judge_plan(plan, [])
    assert verdict.verdict is Verdict.INCONCLUSIVE


def test_host_without_vantage_is_inconclusive_no_vantage() -> None:
    inventory = parse_inventory(
        "version: 1\n"
        "vantages: {u: {transport: local}}\n"
        "hosts:\n"
        "  user: {role: user, ipv4: 127.0.0.1, vantage: u}\n"
        "  web: {role: webserver, ipv4: 127.0.0.2}\n"
        "  mgr: {role: manager, ipv4: 127.0.0.3}\n"
    )
    plan = compile_plan(
        parse_policy(
            HEADER + 'rule R "c":\n allow user -> webserver:tcp/443 -> manager:tcp/8081\n'
        ),
        inventory,
    )
    blind = [s for s in plan.specs if s.vantage is None]
    assert [(s.source, s.target) for s in blind] == [("web", "mgr")]
    [verdict] = judge_plan(plan, [])
    assert verdict.verdict is Verdict.INCONCLUSIVE
    notes = {e.note for h in verdict.hops for e in h.evidence}
    assert "no vantage" in notes


def test_apps_are_probed_through_the_proxy_over_both_families(lab: Inventory) -> None:
    plan = plan_of(
        'rule R "a":\n expect http from user via appproxy app "jupyter" status 200\n', lab
    )
    assert {s.kind for s in plan.specs} == {ProbeKind.HTTP}
    assert {s.family for s in plan.specs} == {4, 6}
    assert len(plan.specs) == 2 * sum(1 for a in lab.apps if a.name == "jupyter")
    assert all(s.expect.identity and s.expect.status == 200 for s in plan.specs)


def test_checks_carry_the_inventory_view_of_each_container(lab: Inventory) -> None:
    plan = plan_of('rule R "c":\n check cluster-env within session multi-node\n', lab)
    assert {s.target for s in plan.specs} == {"s2/main1", "s2/sub1", "s2/sub2", "s2/sub3"}
    spec = next(s for s in plan.specs if s.target == "s2/sub2")
    assert spec.param("expect.hosts") == "main1,sub1,sub2,sub3"
    assert spec.param("expect.local_rank") == "2"


def test_undeclared_inventory_role_is_an_inventory_error(lab: Inventory) -> None:
    policy = parse_policy(
        HEADER.replace("database, ", "").replace(", database", "")
        + 'rule R "r":\n deny user -> agent:ssh\n'
    )
    with pytest.raises(InventoryError) as caught:
        compile_plan(policy, lab)
    assert "database" in str(caught.value)
    assert "lab-small.yaml:" in str(caught.value)


@pytest.mark.parametrize(
    ("strict_flag", "strict_policy", "advisory"),
    [(False, False, True), (True, False, False), (False, True, False), (True, True, False)],
)
def test_strict_advisory_judges_advisory_rules_like_the_others(
    tmp_path: Path, strict_flag: bool, strict_policy: bool, advisory: bool
) -> None:
    from reachproof.api import prepare

    text = (ROOT / "policies" / "backend-ai.policy").read_text(encoding="utf-8")
    if strict_policy:
        text = text.replace("\nrole ", "\nstrict advisory\n\nrole ", 1)
    policy = tmp_path / "p.policy"
    policy.write_text(text, encoding="utf-8")
    prepared = prepare(policy, ROOT / "examples" / "lab-small.yaml", strict_advisory=strict_flag)
    [r15] = [r for r in prepared.plan.rules if r.rule_id == "R15"]
    assert r15.advisory is advisory


# (case, expect statement, (hop verdict, fragment of its reason), the rule's verdict)
SPEAKING = [
    ("named-app", 'app "ttyd"', (Verdict.PASS, "as required"), Verdict.PASS),
    ("speaking-websocket", "app * speaking websocket", (Verdict.PASS, "as required"), Verdict.PASS),
    (
        "named-app-the-site-lacks",
        'app "vscode"',
        (Verdict.INCONCLUSIVE, "publishes no app 'vscode'"),
        Verdict.INCONCLUSIVE,
    ),
    (
        "nothing-speaks-it-and-none-needed",
        "app * speaking websocket",
        (Verdict.PASS, "not applicable: the inventory publishes no app speaking websocket"),
        Verdict.PASS,
    ),
    (
        "nothing-speaks-it-one-needed",
        "app * speaking websocket at least 1",
        (Verdict.INCONCLUSIVE, "publishes no app speaking websocket"),
        Verdict.INCONCLUSIVE,
    ),
    (
        "fewer-than-needed",
        "app * speaking websocket at least 4",
        (Verdict.INCONCLUSIVE, "publishes 3 app speaking websocket through 'appproxy', the rule "
         "needs at least 4"),
        Verdict.INCONCLUSIVE,
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("selection", "hop", "rule"), [c[1:] for c in SPEAKING], ids=[c[0] for c in SPEAKING]
)
def test_an_expectation_selects_apps_by_what_they_speak(
    lab: Inventory, selection: str, hop: tuple[Verdict, str], rule: Verdict
) -> None:
    from reachproof.fake import Fact, FakeNetwork
    from reachproof.observation import PortState

    inventory = lab
    if "no app speaking" in hop[1]:  # a site whose sessions publish no websocket app
        inventory = replace(lab, apps=tuple(replace(a, speaks=("http",)) for a in lab.apps))
    body = (
        'rule R "s":\n allow user -> webserver:tcp/443\n'
        f" expect websocket from user via appproxy {selection}\n"
    )
    plan = plan_of(body, inventory)
    network = FakeNetwork(inventory, [Fact("*", "*", PortState.OPEN)])
    [verdict] = judge_plan(plan, network.observe(plan))
    assert (verdict.hops[1].verdict, verdict.verdict) == (hop[0], rule)
    assert hop[1] in verdict.hops[1].reason, verdict.hops[1].reason


def test_a_rule_of_only_inapplicable_hops_is_inconclusive(lab: Inventory) -> None:
    inventory = replace(lab, apps=tuple(replace(a, speaks=("http",)) for a in lab.apps))
    plan = plan_of(
        'rule R "s":\n expect websocket from user via appproxy app * speaking websocket\n',
        inventory,
    )
    [verdict] = judge_plan(plan, [])
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert verdict.reason.startswith("the rule has nothing to observe: not applicable")


def test_check_listeners_runs_in_the_selected_containers_with_the_watched_ports(
    lab: Inventory,
) -> None:
    body = 'rule R "l":\n check listeners in container[sub]:tcp/8080, tcp/6006, udp/53\n'
    plan = plan_of(body, lab)
    specs = [s for s in plan.specs if s.rule_id == "R"]
    subs = {h.name for h in lab.hosts if h.container and h.container.cluster_role == "sub"}
    assert {s.target for s in specs} == {s.vantage and s.source for s in specs} == subs
    assert {s.param("ports") for s in specs} == {"6006,8080"}
    assert {s.param("check") for s in specs} == {"listeners"}
    assert (
        plan.rules[0].hops[0].label
        == "check listeners in container[sub]:tcp/8080, tcp/6006, udp/53"
    )
