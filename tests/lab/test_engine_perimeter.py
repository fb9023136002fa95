"""Hop attribution in each --perimeter mode (root): user → agent meets the perimeter."""

from __future__ import annotations

from pathlib import Path

import pytest
from enginelab import lab_inventory, spec
from labkit import lab, require_lab

from reachproof.engine import EngineOptions, run_specs
from reachproof.observation import PortState
from reachproof.ports import PortSet

pytestmark = pytest.mark.lab
require_lab()

EXPECTED = {
    "drop": (PortState.FILTERED, "timeout"),
    "reject": (PortState.PROHIBITED, None),  # the reason names the ICMP type/code
    "reset": (PortState.PROHIBITED, "reset-by-firewall"),
}


@pytest.mark.parametrize("mode", ["drop", "reject", "reset"])
def test_the_perimeter_answers_for_the_agent(tmp_path: Path, mode: str) -> None:
    with lab(tmp_path, "rph", agents=1, sessions="single-node:1", perimeter=mode) as handle:
        topo = handle.topology
        agent = topo.agents[0].node.addr
        web = topo.mgmt("webserver").addr
        cases = [
            spec("user", "user", "agent1", str(agent.v4.ip), PortSet.of([22, 6001])),
            spec("user", "user", "agent1", str(agent.v6.ip), PortSet.of([22, 6001])),
            spec("user", "user", "webserver", str(web.v4.ip), PortSet.of([443])),
        ]
        observed = run_specs(cases, lab_inventory(handle), EngineOptions(timeout=0.5))
        state, reason = EXPECTED[mode]
        for obs in observed[:2]:
            assert obs.error is None, obs.error
            (result,) = obs.results
            assert result.ports == PortSet.of([22, 6001])
            assert result.state is state, result
            if reason is not None:
                assert result.reason == reason, result
            else:
                assert result.reason.startswith("icmp"), result
            if state is PortState.FILTERED:
                assert result.attempts >= 2
        (answer,) = observed[2].results
        assert answer.state is PortState.OPEN and answer.reason == "syn-ack"
