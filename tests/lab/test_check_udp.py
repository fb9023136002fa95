"""Two-ended UDP on the lab: a sensor at the target decides what UDP silence cannot."""

from __future__ import annotations

from pathlib import Path

import pytest
from labkit import lab, require_lab

from reachproof.api import prepare, run_check
from reachproof.verdict import Verdict

pytestmark = pytest.mark.lab

POLICY = Path(__file__).resolve().parents[2] / "policies" / "backend-ai.policy"
SESSIONS = "single-node:1,multi-node:2"


@pytest.fixture(autouse=True)
def _needs_lab() -> None:
    require_lab()


def udp_evidence(inventory: Path) -> dict[str, list[tuple[str, str, str]]]:
    report = run_check(prepare(POLICY, inventory, rules=("R7", "R8")))
    out: dict[str, list[tuple[str, str, str]]] = {}
    for rule in report.rules:
        out[f"{rule.rule_id} {rule.verdict}"] = [
            (e.target, e.state, e.reason)
            for hop in rule.hops
            for e in hop.evidence
            if e.kind == "udp" and e.verdict is Verdict.FAIL
        ]
    return out


def test_clean_lab_udp_is_decided(tmp_path: Path) -> None:
    with lab(tmp_path, "udc", 2, SESSIONS) as handle:
        result = udp_evidence(handle.inventory_path)
    assert result == {"R7 PASS": [], "R8 PASS": []}


def test_vxlan_exposed_is_seen_delivered(tmp_path: Path) -> None:
    with lab(tmp_path, "udx", 2, SESSIONS, faults=("vxlan-exposed",)) as handle:
        result = udp_evidence(handle.inventory_path)
    assert set(result) == {"R7 FAIL", "R8 PASS"}
    assert ("agent1", "open", "delivered") in result["R7 FAIL"]


def test_blocked_overlay_is_seen_not_delivered(tmp_path: Path) -> None:
    with lab(tmp_path, "udo", 2, SESSIONS, faults=("overlay-blocked",)) as handle:
        result = udp_evidence(handle.inventory_path)
    assert set(result) == {"R7 PASS", "R8 FAIL"}
    assert any(reason == "not-delivered" for _, _, reason in result["R8 FAIL"]) or any(
        state == "prohibited" for _, state, _ in result["R8 FAIL"]
    )
