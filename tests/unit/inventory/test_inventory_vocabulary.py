"""check_vocabulary: what the inventory names must be what the policy declares."""

from __future__ import annotations

from pathlib import Path

from reachproof.inventory.load import check_vocabulary, load_inventory, parse_inventory

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "lab-small.yaml"

# The vocabulary of policies/backend-ai.policy.
ROLES = frozenset({"user", "webserver", "manager", "appproxy", "database", "agent", "container"})
ZONES = {
    "internet": frozenset({"user"}),
    "management": frozenset({"webserver", "manager", "appproxy", "database"}),
    "compute": frozenset({"agent", "container"}),
}

TEXT = """\
version: 1
hosts:
  u: {role: user, zone: internet}
  w: {role: web, zone: management}
  a1: {role: agent, zone: dmz}
  m: {role: manager, zone: compute}
  free: {role: agent}
sessions:
  s1: {mode: single-node, containers: [{hostname: main1, role: main, index: 1, agent: a1}]}
  s2: {mode: single-node, containers: [{hostname: main1, role: main, index: 1, agent: a1}]}
"""


def messages(roles: frozenset[str]) -> list[str]:
    inventory = parse_inventory(TEXT, "inv.yaml")
    diagnostics = check_vocabulary(inventory, roles, ZONES)
    return [f"{d.path}:{d.line}:{d.column}: {d.message}" for d in diagnostics]


def test_the_lab_fits_the_backend_ai_policy() -> None:
    assert check_vocabulary(load_inventory(EXAMPLE), ROLES, ZONES) == []


def test_undeclared_role_zone_and_misplaced_role() -> None:
    declared = "agent, appproxy, container, database, manager, user, webserver"
    assert messages(ROLES) == [
        f"inv.yaml:4:13: host 'w': role 'web' is not declared by the policy "
        f"(declared roles: {declared})",
        "inv.yaml:5:3: host 'a1': zone 'dmz' is not declared by the policy "
        "(declared zones: compute, internet, management)",
        "inv.yaml:6:13: host 'm': zone 'compute' does not hold role 'manager' "
        "(the policy puts agent, container in it)",
    ]


def test_container_role_must_be_declared_when_sessions_exist() -> None:
    roles = ROLES - {"container"} | {"web"}
    declared = "agent, appproxy, database, manager, user, web, webserver"
    tail = f"which the policy does not declare (declared roles: {declared})"
    assert messages(roles)[-2:] == [
        f"inv.yaml:9:3: session 's1': its containers have role 'container', {tail}",
        f"inv.yaml:10:3: session 's2': its containers have role 'container', {tail}",
    ]


def test_no_sessions_no_container_role_needed() -> None:
    inventory = parse_inventory("version: 1\nhosts:\n  u: {role: user}\n")
    assert check_vocabulary(inventory, frozenset({"user"}), {}) == []


def test_the_site_example_of_the_docs_loads_and_fits_the_policy() -> None:
    docs = (EXAMPLE.parents[1] / "docs" / "inventory.md").read_text()
    site = docs.split("## Example: a real site", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    inventory = parse_inventory(site, "docs/inventory.md")
    assert check_vocabulary(inventory, ROLES, ZONES) == []
    www = inventory.host("www")
    assert www is not None and www.vantage is None
    vantage = inventory.vantage("c0ffee-main1")
    assert vantage is not None and vantage.command[-4:] == (
        "docker",
        "exec",
        "-i",
        "kernel.c0ffee.main1",
    )
