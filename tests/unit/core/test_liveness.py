"""Liveness witnesses: the compiler plans the cheapest per deny target address, and the
verdict holds a deny hop to them (DESIGN.md, Round 2)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from reachproof.fake import Fact, FakeNetwork
from reachproof.inventory.load import load_inventory
from reachproof.inventory.model import Inventory
from reachproof.observation import PortState
from reachproof.plan import LIVENESS_RULE, Plan, ProbeKind
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
"""
DENY_DB = 'rule D "d":\n deny user -> database:tcp/5432\n'
REACH_DB = 'rule A "a":\n reach agent -> database:tcp/2379\n'


@pytest.fixture(scope="module")
def lab() -> Inventory:
    return load_inventory(ROOT / "examples" / "lab-small.yaml")


def _without_vantage(inventory: Inventory, host: str) -> Inventory:
    hosts = tuple(replace(h, vantage=None) if h.name == host else h for h in inventory.hosts)
    return replace(inventory, hosts=hosts)


def plan_of(body: str, inventory: Inventory) -> Plan:
    return compile_plan(parse_policy(HEADER + body), inventory)


def _added(plan: Plan) -> list[str]:
    return [s.id for s in plan.specs if s.rule_id == LIVENESS_RULE]


def test_another_rules_probe_is_the_witness_and_no_packet_is_added(lab: Inventory) -> None:
    plan = plan_of(DENY_DB + REACH_DB, lab)
    assert _added(plan) == ["liveness/holds/db"]  # a check at db's own vantage, no packet
    assert _added(plan_of(DENY_DB + REACH_DB, _without_vantage(lab, "db"))) == []
    db = lab.host("db")
    assert db is not None
    assert {w.address for w in plan.witnesses} == {str(a) for a in db.all_addresses()}
    for witness in plan.witnesses:
        assert witness.spec_ids[-1] == "liveness/holds/db"
        assert witness.spec_ids[:-1] and all(i.startswith("A/") for i in witness.spec_ids[:-1])


def test_a_host_that_is_a_vantage_is_asked_once_for_all_its_addresses(lab: Inventory) -> None:
    plan = plan_of(DENY_DB, lab)
    [check] = [s for s in plan.specs if s.rule_id == LIVENESS_RULE]
    assert (check.kind, check.vantage, check.param("check")) == (ProbeKind.CHECK, "db", "addresses")
    db = lab.host("db")
    assert db is not None
    assert set((check.param("addresses") or "").split(",")) == {str(a) for a in db.all_addresses()}


def test_without_a_vantage_one_echo_per_address_from_a_vantage_that_reaches_it(
    lab: Inventory,
) -> None:
    blind = _without_vantage(lab, "db")
    assert _added(plan_of(DENY_DB + REACH_DB, blind)) == []  # the agents' TCP answers suffice
    # Only a UDP probe reaches it: UDP silence decides nothing, so an echo is planned.
    plan = plan_of(DENY_DB + 'rule A "a":\n reach agent -> database:udp/53\n', blind)
    echoes = [s for s in plan.specs if s.rule_id == LIVENESS_RULE]
    assert {s.kind for s in echoes} == {ProbeKind.ICMP}
    db = lab.host("db")
    assert db is not None
    assert sorted(s.address or "" for s in echoes) == sorted(str(a) for a in db.all_addresses())
    assert {s.source for s in echoes} == {"agent1"}
    up = FakeNetwork(lab, [Fact("agent1", "db", PortState.OPEN, PortSet(), kind="icmp")])
    deny = next(r for r in judge_plan(plan, up.observe(plan)) if r.rule_id == "D")
    assert deny.verdict is Verdict.PASS
    assert {w.kind for h in deny.hops for w in h.witnesses} == {"icmp"}


def test_a_target_nothing_can_witness_makes_the_deny_inconclusive(lab: Inventory) -> None:
    plan = plan_of(DENY_DB, _without_vantage(lab, "db"))
    assert _added(plan) == []
    assert all(w.spec_ids == () for w in plan.witnesses)
    [rule] = judge_plan(plan, FakeNetwork(lab).observe(plan))
    assert rule.verdict is Verdict.INCONCLUSIVE
    assert rule.reason.startswith("target not shown alive")
    assert all(not w.alive for h in rule.hops for w in h.witnesses)


def test_a_down_target_is_inconclusive_a_live_one_passes(lab: Inventory) -> None:
    plan = plan_of(DENY_DB + REACH_DB, lab)
    up = FakeNetwork(lab, [Fact("*", "db", PortState.CLOSED, PortSet.parse("2379"))])
    verdicts = {r.rule_id: r.verdict for r in judge_plan(plan, up.observe(plan))}
    assert verdicts == {"D": Verdict.PASS, "A": Verdict.PASS}
    [deny] = [r for r in judge_plan(plan, up.observe(plan)) if r.rule_id == "D"]
    assert {w.state for h in deny.hops for w in h.witnesses} == {"closed"}
    down = replace(up, down=frozenset({"db"}))
    verdicts = {r.rule_id: r.verdict for r in judge_plan(plan, down.observe(plan))}
    assert verdicts == {"D": Verdict.INCONCLUSIVE, "A": Verdict.FAIL}
