"""Proof that the checker catches what it must: `check` with the shipped policy on the lab.

- clean lab (the default one of `lab up`): every rule PASSes, two runs and the run over ssh
  give identical verdicts;
- vantages over real ssh (`lab up --ssh`) give the verdicts of the netns vantages, on the clean
  lab and on the faults of SSH_FAULTS (same lab, both inventories);
- each perimeter mode (drop, reject, reset, reset6: resets over IPv6 only) passes the clean
  check;
- faults and perimeter modes run on FAULT_LAB, the smallest lab every fault applies to (2 agents,
  a single-node session of 2, a multi-node session spread over both agents, a single-container
  session on the agent that `agent-down` stops, as in the default lab): a check there sends
  about 2/3 of the default lab's packets (measured figures: README, "Fault matrix");
- a dual-stack site whose container networks, published ports and overlay are IPv4-only
  (`lab up --container-families 4`, its inventory's `families` saying so) passes the clean
  check, and the same check judging every family FAILs: families decide, nothing is skipped;
- each named fault FAILs exactly the rules the fault table says it breaks, leaves exactly its
  `must_not_pass` rules INCONCLUSIVE (a down target, a vantage that cannot send), and no other;
- a vantage made to fail gives exit 3, never 0.

The expected rule ids per fault live in one table: reachproof.lab.faults.FAULTS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from labkit import SSH_PROGRAMS, lab, require_lab

from reachproof.api import Prepared, prepare, run_check
from reachproof.inventory.model import NO_FAMILIES, Transport
from reachproof.lab.build import LabHandle
from reachproof.lab.faults import FAULTS, Fault
from reachproof.policy.compile import compile_plan
from reachproof.report.model import Report
from reachproof.verdict import Verdict

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "backend-ai.policy"
# The default lab of `reachproof lab up`.
AGENTS = 3
SESSIONS = "single-node:3,multi-node:4,single-node:1"
# The lab of the fault cases and the perimeter modes: every fault of FAULTS lands on it
# (lab/targets.py) and breaks the same rules as on the default lab.
FAULT_AGENTS = 2
FAULT_SESSIONS = "single-node:2,multi-node:2,single-node:1"
# Faults also checked over the ssh inventory: one seen from the user's vantage, one in the
# containers' environment (which reaches them through their agent's ssh).
SSH_FAULTS = ("perimeter-open", "cluster-env-wrong")


@pytest.fixture(autouse=True)
def _needs_lab() -> None:
    require_lab(*SSH_PROGRAMS)


def _check(inventory: Path) -> Report:
    return run_check(prepare(POLICY, inventory))


def _verdicts(report: Report) -> dict[str, Verdict]:
    return {r.rule_id: r.verdict for r in report.rules}


def _explain(report: Report) -> str:
    lines = []
    for rule in report.rules:
        if rule.verdict is Verdict.PASS:
            continue
        lines.append(f"{rule.rule_id} {rule.verdict}: {rule.reason}")
        for hop in rule.hops:
            for item in hop.evidence:
                if item.verdict is not Verdict.PASS:
                    lines.append(
                        f"    {item.source} -> {item.target} {item.address} "
                        f"{item.kind}/{item.ports[:60]} {item.state} {item.reason} {item.note}"
                    )
                    break
    return "\n".join(lines)


@pytest.fixture(scope="module")
def clean_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with lab(tmp_path_factory.mktemp("matrix"), "mxc", AGENTS, SESSIONS, ssh=True) as handle:
        yield handle


@pytest.fixture(scope="module")
def clean_report(clean_lab: LabHandle) -> Report:
    return _check(clean_lab.inventory_path)


def test_clean_lab_passes_every_rule_twice_alike(
    clean_lab: LabHandle, clean_report: Report
) -> None:
    # A third identical run is the ssh one below; bench/soak.py repeats the check 20 times.
    again = _check(clean_lab.inventory_path)
    assert set(_verdicts(clean_report).values()) == {Verdict.PASS}, _explain(clean_report)
    assert clean_report.exit_code == 0
    assert _verdicts(again) == _verdicts(clean_report), _explain(again)


def test_ssh_vantages_give_the_netns_verdicts_on_the_clean_lab(
    clean_lab: LabHandle, clean_report: Report
) -> None:
    assert clean_lab.ssh_inventory_path is not None
    over_ssh = _check(clean_lab.ssh_inventory_path)
    assert _verdicts(over_ssh) == _verdicts(clean_report), _explain(over_ssh)
    assert set(_verdicts(over_ssh).values()) == {Verdict.PASS}, _explain(over_ssh)
    assert over_ssh.exit_code == 0


def test_a_failed_vantage_is_inconclusive_never_pass(clean_lab: LabHandle) -> None:
    prepared = prepare(POLICY, clean_lab.inventory_path, rules=("R1",))
    broken = tuple(
        replace(v, netns="rp-no-such-namespace") if v.name == "user" else v
        for v in prepared.inventory.vantages
    )
    assert any(v.transport is Transport.NETNS for v in broken)
    inventory = replace(prepared.inventory, vantages=broken)
    report = run_check(Prepared(prepared.policy, inventory, prepared.plan))
    assert _verdicts(report) == {"R1": Verdict.INCONCLUSIVE}
    assert report.exit_code == 3


@pytest.mark.parametrize("perimeter", ["reject", "reset", "reset6"])
def test_every_perimeter_mode_passes_the_clean_check(tmp_path: Path, perimeter: str) -> None:
    with lab(tmp_path, "mxp", FAULT_AGENTS, FAULT_SESSIONS, perimeter=perimeter) as handle:
        report = _check(handle.inventory_path)
    assert set(_verdicts(report).values()) == {Verdict.PASS}, _explain(report)


def test_ipv4_only_container_networks_pass_the_clean_check(tmp_path: Path) -> None:
    with lab(tmp_path, "mxv", FAULT_AGENTS, FAULT_SESSIONS, container_families="4") as handle:
        report = _check(handle.inventory_path)
        # The control: the same site judged over every family (no `families`) FAILs R2, so
        # the PASS is the inventory's families at work, not a path that carries both.
        r2 = prepare(POLICY, handle.inventory_path, rules=("R2",))
        every = replace(r2.inventory, families=NO_FAMILIES)
        unnarrowed = run_check(Prepared(r2.policy, every, compile_plan(r2.policy, every)))
    assert set(_verdicts(report).values()) == {Verdict.PASS}, _explain(report)
    narrowed = {
        r.rule_id for r in report.rules for h in r.hops if any(f.skipped for f in h.families)
    }
    # R2: the proxy → agent published ports and agent → container; R8: VXLAN; R9/R10: the
    # session networks. Deny rules are judged over every family whatever the inventory says.
    assert narrowed == {"R2", "R8", "R9", "R10"}
    assert report.exit_code == 0
    assert _verdicts(unnarrowed) == {"R2": Verdict.FAIL}, _explain(unnarrowed)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_fails_exactly_its_rules(tmp_path: Path, fault: Fault) -> None:
    breaks, undecided = set(fault.breaks), set(fault.must_not_pass)
    ssh = fault.name in SSH_FAULTS
    with lab(
        tmp_path, "mxf", FAULT_AGENTS, FAULT_SESSIONS, faults=(fault.name,), ssh=ssh
    ) as handle:
        report = _check(handle.inventory_path)
        if handle.ssh_inventory_path is not None:
            over_ssh = _check(handle.ssh_inventory_path)
            assert _verdicts(over_ssh) == _verdicts(report), _explain(over_ssh)
    verdicts = _verdicts(report)
    failed = {rule for rule, verdict in verdicts.items() if verdict is Verdict.FAIL}
    assert failed == breaks, _explain(report)
    # A deny whose target is down or whose vantage cannot send proves nothing: never PASS.
    unproven = {rule for rule in undecided if verdicts[rule] is Verdict.INCONCLUSIVE}
    assert unproven == undecided, _explain(report)
    others = {rule: v for rule, v in verdicts.items() if rule not in breaks | undecided}
    assert set(others.values()) == {Verdict.PASS}, _explain(report)
    assert report.exit_code == (1 if breaks else 3)
    for rule in report.rules:
        if rule.rule_id in breaks:
            evidence = [e for h in rule.hops for e in h.evidence if e.verdict is Verdict.FAIL]
            assert evidence, f"{rule.rule_id} failed without evidence"
