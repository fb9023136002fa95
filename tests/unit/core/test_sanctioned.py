"""Sanctioned user → agent paths (`service direct-access = none`, overridden per agent) and the
`across agents` scope, as the compiler plans them (table-driven)."""

from __future__ import annotations

import pytest

from reachproof.inventory.load import parse_inventory
from reachproof.plan import ProbeSpec
from reachproof.policy.compile import compile_plan
from reachproof.policy.parse import parse_policy

INVENTORY = """\
version: 1
vantages:
  user: {transport: local}
  c1: {transport: local}
hosts:
  laptop: {role: user, ipv4: 203.0.113.10, vantage: user}
  agent1: {role: agent, ipv4: 10.0.2.11, services: {direct-access: tcp/30022-30023}}
  agent2: {role: agent, ipv4: 10.0.2.12}
sessions:
  s1:
    mode: single-node
    containers:
      - {hostname: main1, role: main, index: 1, agent: agent1, ipv4: 172.17.1.2, vantage: c1}
"""

POLICY = """\
policy "t"
role user, agent, container
service any-tcp = tcp/1-65535
service direct-access = none
service metadata = tcp/40128
rule R3 "User → Agent blocked":
    deny user -> agent:any-tcp except agent:direct-access
rule M "Own agent only":
    allow container -> agent:metadata within agent
    deny container -> agent:metadata across agents
"""


def _specs(rule: str) -> list[ProbeSpec]:
    plan = compile_plan(parse_policy(POLICY), parse_inventory(INVENTORY))
    return [s for s in plan.specs if s.rule_id == rule]


@pytest.mark.parametrize(
    ("target", "ports"),
    [
        ("agent1", "1-30021,30024-65535"),  # exactly its sanctioned ports left out
        ("agent2", "1-65535"),  # an agent that declares none keeps the whole range
    ],
)
def test_r3_leaves_out_exactly_the_sanctioned_ports_of_that_agent(target: str, ports: str) -> None:
    (spec,) = [s for s in _specs("R3") if s.target == target]
    assert str(spec.ports) == ports


def test_across_agents_pairs_a_container_with_the_other_agents_only() -> None:
    pairs = {(s.statement, s.source, s.target) for s in _specs("M")}
    assert pairs == {(0, "s1/main1", "agent1"), (1, "s1/main1", "agent2")}
