"""The probe engine under lab faults (root): ground truth and a full-range sweep under loss."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from enginelab import Truth, ground_truth_cases, lab_inventory, mismatches, port_states, spec
from labkit import lab, require_lab

from reachproof.engine import EngineOptions, run_specs
from reachproof.lab.build import LabHandle
from reachproof.lab.netns import netns_path
from reachproof.observation import PortState
from reachproof.ports import PortSet

# The worker's test client lives with the unit tests of the worker.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "worker"))
from workerkit import Worker, record_of

pytestmark = pytest.mark.lab
require_lab()

FAULTS = ("agent-rpc-exposed", "container-routed", "bridge-filtered")
LOSS_RUNS = 20
LOSS_TABLE = "rpeloss"


def detail(result: dict[str, object], key: str) -> list[str]:
    return [v for k, v in result["detail"] if k == key]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def fault_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with lab(tmp_path_factory.mktemp("faults"), "rpf", agents=2, faults=FAULTS) as handle:
        yield handle


def test_states_equal_the_labs_ground_truth_under_faults(fault_lab: LabHandle) -> None:
    topo = fault_lab.topology
    cases = ground_truth_cases(topo)
    filtered = fault_lab.targets.bridge_filtered
    assert filtered is not None and filtered.id == topo.sessions[0].id  # the cases cover it
    observed = run_specs(cases, lab_inventory(fault_lab), EngineOptions(timeout=0.5, attempts=2))
    assert mismatches(Truth(fault_lab), cases, observed) == []


def _nft(netns: str, script: str) -> None:
    subprocess.run(
        ["nsenter", f"--net={netns_path(netns)}", "nft", "-f", "-"],
        input=script, text=True, check=True, timeout=30,
    )  # fmt: skip


@pytest.fixture
def lossy_perimeter(fault_lab: LabHandle) -> Iterator[None]:
    """10 % of every packet the perimeter forwards (both directions) is dropped at random."""
    fw = fault_lab.topology.fw_netns
    _nft(
        fw,
        f"table inet {LOSS_TABLE} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority -10; policy accept;\n"
        "    numgen random mod 10 == 0 drop\n"
        "  }\n"
        "}\n",
    )
    try:
        yield
    finally:
        _nft(fw, f"delete table inet {LOSS_TABLE}\n")


def test_full_range_sweep_under_loss_finds_every_open_port(
    fault_lab: LabHandle, lossy_perimeter: None
) -> None:
    topo = fault_lab.topology
    target = topo.sessions[0].containers[0]  # container-routed: the user reaches it
    truth = Truth(fault_lab)
    address = str(target.addr.v4.ip)
    everything = PortSet.parse("1-65535")
    want_open = {
        p
        for p in truth.listening[target.netns]
        if truth.state("user", target.host_name, address, p) is PortState.OPEN
    }
    assert want_open, "the target must have ports the user can see open"
    # Twenty independent full-range sweeps, each with its own source port and verdict, run
    # through one worker with the shipped defaults (in_flight of them at a time).
    case = spec("user", "user", target.host_name, address, everything)
    runs = [replace(case, id=f"{case.id}#run{n}") for n in range(LOSS_RUNS)]
    observed = run_specs(runs, lab_inventory(fault_lab), EngineOptions())
    misses = []
    for obs in observed:
        states = port_states(obs)
        assert len(states) == len(everything)
        found = {p for p, s in states.items() if s is PortState.OPEN}
        if found != want_open:
            misses.append(f"{obs.spec_id}: open {sorted(found)}, expected {sorted(want_open)}")
    assert misses == []


def test_loss_seen_on_one_path_grows_the_attempts_of_a_silent_neighbour(
    fault_lab: LabHandle, lossy_perimeter: None
) -> None:
    topo = fault_lab.topology
    routed = str(topo.sessions[0].containers[0].addr.v4.ip)  # answers: its ports are closed
    dropped = str(topo.agents[0].node.addr.v4.ip)  # the perimeter drops all of it: no answer
    with Worker(prefix=["ip", "netns", "exec", topo.user.netns]) as worker:
        answering = worker.probe("tcp-syn", routed, [(1, 4000)], timeout=0.3, attempts=10)
        silent = worker.probe("tcp-syn", dropped, [(1, 500)], timeout=0.3, attempts=10)
    [seen] = detail(answering, "loss")
    measured = float(seen.split()[0])
    assert 0.1 < measured < 0.3, seen  # 10 % each way: p ≈ 0.19 per attempt
    [borrowed] = detail(silent, "loss")
    assert "this vantage" in borrowed, borrowed
    filtered = record_of(silent, 1)
    assert filtered["state"] == "filtered" and filtered["attempts"] >= 7, borrowed
