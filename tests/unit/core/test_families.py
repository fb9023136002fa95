"""Which families a hop is judged over (policy/families.py), table-driven over one small site.

Deny hops: every family an address exists for, whatever the inventory says. Allow/reach: the
target host's `families`, then its session's, then the site's; in each, the hop's named
services, then its traffic class, then `default`. No `families` anywhere: every family.
"""

from __future__ import annotations

import pytest

from reachproof.errors import InventoryError
from reachproof.inventory.load import parse_inventory
from reachproof.plan import Plan
from reachproof.policy.compile import compile_plan
from reachproof.policy.parse import parse_policy

POLICY = """
policy "t"
role user, agent, appproxy, container
service rpc = tcp/6001
service pool = tcp/30000-30010
service ssh = tcp/2200
rule RA "a":
    allow appproxy -> agent:rpc
rule RP "p":
    reach appproxy -> agent:pool
rule RD "d":
    deny user -> agent:rpc
rule RC "c":
    reach container -> container:ssh within session
rule RW "w":
    allow agent -> container:ssh within agent
rule RH "h":
    allow container -> container:ssh within session by hostname
"""

SITE = """
version: 1
{families}
vantages:
  v: {{transport: local}}
hosts:
  user: {{role: user, ipv4: 203.0.113.10, ipv6: "2001:db8::10", vantage: v}}
  proxy: {{role: appproxy, ipv4: 10.0.1.12, ipv6: "fd00:1::12", vantage: v}}
  agent1:
    role: agent
    ipv4: 10.0.2.11
    ipv6: "fd00:2::11"
    vantage: v
{agent_families}
sessions:
  s1:
    mode: multi-node
{session_families}
    containers:
      - {{hostname: main1, role: main, index: 1, agent: agent1, ipv4: 172.17.1.2,
          ipv6: "fd00:17:1::2", cluster_ipv4: 10.200.1.2, cluster_ipv6: "fd00:200:1::2",
          vantage: v}}
      - {{hostname: sub1, role: sub, index: 1, agent: agent1, ipv4: 172.17.1.3,
          ipv6: "fd00:17:1::3", cluster_ipv4: 10.200.1.3, cluster_ipv6: "fd00:200:1::3",
          vantage: v}}
"""


def _plan(families: str = "", agent: str = "", session: str = "") -> Plan:
    text = SITE.format(
        families=families,
        agent_families=f"    families: {agent}" if agent else "",
        session_families=f"    families: {session}" if session else "",
    )
    return compile_plan(parse_policy(POLICY), parse_inventory(text, "site.yaml"))


def _families(plan: Plan, rule: str) -> set[int | None]:
    return {s.family for s in plan.specs if s.rule_id == rule}


# (case, site families, agent1 families, session s1 families, {rule: families probed})
CASES = [
    ("no-families-every-family", "", "", "", {"RA": {4, 6}, "RP": {4, 6}, "RC": {4, 6}}),
    ("site-default", "families: {default: [4]}", "", "", {"RA": {4}, "RP": {4}, "RC": {4}}),
    ("deny-ignores-families", "families: {default: [4]}", "", "", {"RD": {4, 6}}),
    (
        "class-over-default",
        "families: {default: [6], service: [4]}",
        "",
        "",
        {"RA": {4}, "RC": {6}, "RW": {6}},
    ),
    ("cluster-class", "families: {cluster: [4]}", "", "", {"RC": {4}, "RW": {4, 6}}),
    ("container-class", "families: {container: [4]}", "", "", {"RW": {4}, "RC": {4, 6}}),
    (
        "service-name-over-class",
        "families: {service: [4, 6], services: {pool: [4]}}",
        "",
        "",
        {"RP": {4}, "RA": {4, 6}},
    ),
    (
        "host-over-site",
        "families: {default: [4]}",
        "{service: [6]}",
        "",
        {"RA": {6}, "RP": {6}, "RC": {4}},
    ),
    (
        "host-default-over-site-service-name",
        "families: {services: {rpc: [4]}}",
        "{default: [4, 6]}",
        "",
        {"RA": {4, 6}},
    ),
    ("session-over-site", "families: {cluster: [6]}", "", "{cluster: [4]}", {"RC": {4}}),
    # By hostname the vantage resolves in every family, in its resolver's order.
    ("hostname-any-family", "families: {cluster: [6]}", "", "", {"RH": {None}}),
]


@pytest.mark.parametrize(
    ("site", "agent", "session", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_family_rules(site: str, agent: str, session: str, expected: dict[str, set[int]]) -> None:
    plan = _plan(site, agent, session)
    for rule, families in expected.items():
        assert _families(plan, rule) == families, rule


def test_the_hop_says_which_families_and_why() -> None:
    plan = _plan("families: {cluster: [4]}")
    rc = next(r for r in plan.rules if r.rule_id == "RC")
    [line] = rc.hops[0].families
    assert (line.judged, line.skipped, line.targets) == ((4,), (6,), 2)
    assert line.why == "families.cluster at site.yaml:3:21"
    assert line.text() == "IPv4 (2 targets; IPv6 not judged): families.cluster at site.yaml:3:21"
    rd = next(r for r in plan.rules if r.rule_id == "RD")
    assert [f.text() for f in rd.hops[0].families] == [
        "IPv4, IPv6 (1 target): deny: every family an address exists for"
    ]
    ra = next(r for r in plan.rules if r.rule_id == "RA")
    assert ra.hops[0].families[0].why == "the inventory states no families for this path"


def test_families_that_leave_nothing_make_the_hop_empty_and_say_why() -> None:
    text = SITE.replace('    ipv6: "fd00:2::11"\n', "")
    inventory = parse_inventory(
        text.format(
            families="", agent_families="    families: {service: [6]}", session_families=""
        ),
        "site.yaml",
    )
    plan = compile_plan(parse_policy(POLICY), inventory)
    ra = next(r for r in plan.rules if r.rule_id == "RA")
    assert ra.hops[0].spec_ids == ()
    assert ra.hops[0].empty_reason is not None
    assert "families leave no address" in ra.hops[0].empty_reason


ERRORS = [
    ("families: {default: [5]}", "site.yaml:3:22: inventory: families.default: expected 4 or 6"),
    ("families: {overlay: [4]}", "site.yaml:3:12: unknown key 'overlay' in inventory: families"),
    ("families: {cluster: []}", "site.yaml:3:21: inventory: families.cluster: expected a list"),
    (
        "families: {services: {x: [4, 4]}}",
        "site.yaml:3:30: inventory: families.services.x: family 4",
    ),
]


@pytest.mark.parametrize(("site", "message"), ERRORS)
def test_family_errors_have_positions(site: str, message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        _plan(site)
    assert message in str(caught.value)


def test_a_host_family_error_names_the_host() -> None:
    with pytest.raises(InventoryError) as caught:
        _plan("", "{service: [4, ipv6]}")
    assert "host 'agent1': families.service: expected 4 or 6 (an address family), got 'ipv6'" in (
        str(caught.value)
    )
