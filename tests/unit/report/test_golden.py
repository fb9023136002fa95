"""Golden files for the JSON and terminal reports (timings fixed, not measured).

Regenerate after an intended change with `REACHPROOF_REGEN=1 pytest tests/unit/report`,
then read the diff before committing it.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console
from world import documented_world

from reachproof.api import Prepared, build_report, prepare
from reachproof.fake import Fact, FakeNetwork
from reachproof.inventory.load import parse_inventory
from reachproof.observation import PortState
from reachproof.policy.compile import compile_plan
from reachproof.ports import PortSet
from reachproof.report.json_report import render_json, report_to_dict, schema
from reachproof.report.model import Report
from reachproof.report.terminal import render_terminal
from reachproof.verdict import Verdict
from reachproof.waivers.load import load_waivers

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden"
STARTED = datetime(2026, 11, 22, 6, 0, 0, tzinfo=UTC)
FINISHED = datetime(2026, 11, 22, 6, 0, 12, tzinfo=UTC)


def _prepare(policy: str) -> Prepared:
    cwd = os.getcwd()
    os.chdir(ROOT)  # paths in the reports are relative, as a user would type them
    try:
        return prepare(Path(policy), Path("examples/lab-small.yaml"))
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    """The shipped policy: terminal goldens and semantics."""
    return _prepare("policies/backend-ai.policy")


@pytest.fixture(scope="module")
def compact() -> Prepared:
    """A small policy with every statement kind: JSON goldens (the full one is megabytes)."""
    return _prepare("tests/unit/report/golden/compact.policy")


def _faulty(prepared: Prepared) -> FakeNetwork:
    """Agent RPC exposed on agent1, one container's vantage down, s3's env wrong."""
    world = documented_world(prepared.inventory)
    world.facts.insert(0, Fact("user", "agent1", PortState.OPEN, PortSet.parse("6001")))
    world.broken_vantages = frozenset({"s2-sub3"})
    return world


def _breached(prepared: Prepared) -> FakeNetwork:
    """Faults that the golden waivers meet, every vantage answering. Shipped policy: agent1's
    RPC open to users (waived: exit 0). Compact policy: a DB port open to users (waived) and
    cross-session SSH (its waiver expired: exit 1)."""
    world = documented_world(prepared.inventory)
    if _policy_name(prepared) == "backend-ai":
        world.facts.insert(0, Fact("user", "agent1", PortState.OPEN, PortSet.parse("6001")))
    else:
        world.facts[:0] = [
            Fact("user", "db", PortState.OPEN, PortSet.parse("2")),
            Fact("s1/main1", "s2/sub1", PortState.OPEN, PortSet.parse("2200")),
        ]
    return world


def _policy_name(prepared: Prepared) -> str:
    return "backend-ai" if "backend-ai" in prepared.policy.path else "compact"


SCENARIOS = {
    "clean": lambda p: documented_world(p.inventory),
    "faulty": _faulty,
    "waived": _breached,
}


def _waived(prepared: Prepared) -> Prepared:
    """The prepared run with the golden waiver file beside its policy."""
    name = _policy_name(prepared)
    rules = [r.id.text for r in prepared.policy.rules]
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        waivers = load_waivers(Path(f"tests/unit/report/golden/{name}.waivers.yaml"), rules)
    finally:
        os.chdir(cwd)
    return replace(prepared, waivers=waivers)


def _report(prepared: Prepared, scenario: str) -> Report:
    world = SCENARIOS[scenario](prepared)
    if scenario == "waived":
        prepared = _waived(prepared)
    return build_report(prepared, world.observe(prepared.plan), STARTED, FINISHED)


def _terminal(report: Report) -> str:
    with open(os.devnull, "w") as sink:
        console = Console(record=True, width=140, color_system=None, file=sink)
        render_terminal(report, console)
        return console.export_text()


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("REACHPROOF_REGEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with REACHPROOF_REGEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_json_golden(compact: Prepared, scenario: str) -> None:
    _check_golden(f"compact-{scenario}.json", render_json(_report(compact, scenario)))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_terminal_golden(prepared: Prepared, scenario: str) -> None:
    _check_golden(f"{scenario}.txt", _terminal(_report(prepared, scenario)))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_json_matches_schema(prepared: Prepared, compact: Prepared, scenario: str) -> None:
    for case in (prepared, compact):
        document = json.loads(render_json(_report(case, scenario)))
        jsonschema.validate(document, schema())


def test_documented_world_passes_every_rule(prepared: Prepared) -> None:
    report = _report(prepared, "clean")
    assert {r.rule_id: r.verdict for r in report.rules} == {
        r.rule_id: Verdict.PASS for r in report.rules
    }
    assert report.exit_code == 0


def test_faults_fail_exactly_their_rules(prepared: Prepared) -> None:
    report = _report(prepared, "faulty")
    verdicts = {r.rule_id: r.verdict for r in report.rules}
    failed = {k for k, v in verdicts.items() if v is Verdict.FAIL}
    undecided = {k for k, v in verdicts.items() if v is Verdict.INCONCLUSIVE}
    assert failed == {"R3"}
    # s2/sub3's vantage is down: every other rule that probes from it cannot be decided.
    blind = {s.rule_id for s in prepared.plan.specs if s.vantage == "s2-sub3"} - {"liveness"}
    assert blind == {"R6", "R10", "R11", "R12", "R13", "R14", "R15"}
    # Its own vantage was the only witness that s2/sub3's default address was up, so the
    # deny from users to it cannot pass either: the container may as well be down.
    assert undecided == blind | {"R4"}
    r4 = next(r for r in report.rules if r.rule_id == "R4")
    assert r4.reason.startswith("target not shown alive")
    assert report.exit_code == 1
    r3 = next(r for r in report.rules if r.rule_id == "R3")
    failures = [e for h in r3.hops for e in h.evidence if e.verdict is Verdict.FAIL]
    # The leak is reported over both families, with the port and what was seen.
    assert sorted((e.target, e.family, e.ports, e.state) for e in failures) == [
        ("agent1", 4, "6001", "open"),
        ("agent1", 6, "6001", "open"),
    ]


def test_inconclusive_without_failure_exits_3(prepared: Prepared) -> None:
    world = documented_world(prepared.inventory)
    world.broken_vantages = frozenset({"user"})
    report = build_report(prepared, world.observe(prepared.plan), STARTED, FINISHED)
    assert report.exit_code == 3
    assert report_to_dict(report)["summary"]["exit_code"] == 3


def test_a_silent_engine_never_passes(prepared: Prepared) -> None:
    report = build_report(prepared, [], STARTED, FINISHED)
    assert all(r.verdict is Verdict.INCONCLUSIVE for r in report.rules)
    assert report.exit_code == 3


# The lab-small site with IPv4-only container networks, published ports and overlay.
FAMILIES = """
families:
  default: [4, 6]
  container: 4
  cluster: 4
  services: {host-port-pool: 4, vxlan: 4}
"""


def _narrowed(prepared: Prepared) -> Prepared:
    text = (ROOT / "examples" / "lab-small.yaml").read_text(encoding="utf-8") + FAMILIES
    inventory = parse_inventory(text, "examples/lab-small.yaml+families")
    return replace(prepared, inventory=inventory, plan=compile_plan(prepared.policy, inventory))


def test_families_golden(prepared: Prepared, compact: Prepared) -> None:
    """Every hop says which families it judged and why; deny hops stay on every family."""
    shipped = _narrowed(prepared)
    report = build_report(
        shipped, documented_world(shipped.inventory).observe(shipped.plan), STARTED, FINISHED
    )
    _check_golden("families.txt", _terminal(report))
    small = _narrowed(compact)
    report = build_report(
        small, documented_world(small.inventory).observe(small.plan), STARTED, FINISHED
    )
    document = render_json(report)
    jsonschema.validate(json.loads(document), schema())
    _check_golden("compact-families.json", document)
