"""The probe engine on a real lab (root): ground truth, nmap agreement, exec transport,
failing vantages, and `reachproof scan`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginelab import Truth, ground_truth_cases, lab_inventory, mismatches, port_states, spec
from labkit import lab, require_lab

from reachproof.engine import EngineOptions, TcpEngine, run_specs
from reachproof.inventory.model import Transport, Vantage
from reachproof.lab.build import LabHandle
from reachproof.observation import PortState
from reachproof.plan import HopPlan, Plan, RulePlan
from reachproof.policy.ast import Action, Severity
from reachproof.ports import PortSet
from reachproof.verdict import Verdict, judge_plan

pytestmark = pytest.mark.lab
require_lab()


@pytest.fixture(scope="module")
def engine_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with lab(tmp_path_factory.mktemp("engine"), "rpe", agents=2) as handle:
        yield handle


@pytest.mark.parametrize("engine", [TcpEngine.SYN, TcpEngine.CONNECT])
def test_states_equal_the_labs_ground_truth(engine_lab: LabHandle, engine: TcpEngine) -> None:
    cases = ground_truth_cases(engine_lab.topology)
    observed = run_specs(
        cases, lab_inventory(engine_lab), EngineOptions(engine=engine, timeout=0.5, attempts=2)
    )
    assert mismatches(Truth(engine_lab), cases, observed) == []
    if engine is TcpEngine.SYN:
        assert all(o.degraded is None for o in observed), "root has raw sockets: no fallback"


DIFF_PORTS = PortSet.parse(
    "1-120,440-445,2195-2205,6000-6010,7680-7682,8078-8082,10198-10240,30000"
)


def test_syn_engine_agrees_with_nmap(engine_lab: LabHandle) -> None:
    topo = engine_lab.topology
    assert len(DIFF_PORTS) == 200
    main, sub = topo.sessions[0].containers[:2]
    own = topo.agent(main.agent)
    web, proxy = topo.mgmt("webserver"), topo.mgmt("appproxy")
    cases = [
        spec("user", "user", "webserver", str(web.addr.v4.ip), DIFF_PORTS),
        spec("user", "user", "appproxy", str(proxy.addr.v4.ip), DIFF_PORTS),
        spec("user", "user", own.name, str(own.node.addr.v4.ip), DIFF_PORTS),
        spec(main.vantage, main.host_name, sub.host_name, str(sub.cluster.v4.ip), DIFF_PORTS),
        spec(main.vantage, main.host_name, own.name, str(own.node.addr.v4.ip), DIFF_PORTS),
        spec(main.vantage, main.host_name, "webserver", str(web.addr.v4.ip), DIFF_PORTS),
    ]
    inventory = lab_inventory(engine_lab)
    options = EngineOptions(timeout=0.5, attempts=2)
    ours = run_specs(cases, inventory, options)
    theirs = run_specs(
        cases, inventory, EngineOptions(engine=TcpEngine.NMAP, timeout=0.5, attempts=2)
    )
    differ = []
    for mine, nmap in zip(ours, theirs, strict=True):
        a, b = port_states(mine), port_states(nmap)
        assert len(a) == len(b) == 200
        differ += [f"{mine.spec_id}:{p} syn {a[p]} nmap {b[p]}" for p in a if a[p] != b[p]]
    assert differ == []
    opened = [p for o in ours for p, s in port_states(o).items() if s is PortState.OPEN]
    assert len(opened) > 40, "the sample must contain open ports to mean something"


def test_exec_transport_through_a_plain_sh_pipe(engine_lab: LabHandle) -> None:
    topo = engine_lab.topology
    piped = Vantage(
        "piped-user",
        Transport.EXEC,
        command=("ip", "netns", "exec", topo.user.netns, "sh", "-c", 'exec "$0" "$@"'),
        python=sys.executable,
    )
    web = str(topo.mgmt("webserver").addr.v4.ip)
    case = spec("piped-user", "user", "webserver", web, PortSet.of([443, 444]))
    (obs,) = run_specs([case], lab_inventory(engine_lab, piped), EngineOptions(timeout=0.5))
    assert port_states(obs) == {443: PortState.OPEN, 444: PortState.FILTERED}


def test_a_failing_vantage_makes_its_rule_inconclusive(engine_lab: LabHandle) -> None:
    topo = engine_lab.topology
    broken = (
        Vantage("no-netns", Transport.NETNS, netns=f"{topo.prefix}-nonexistent"),
        Vantage("false", Transport.EXEC, command=("false",)),
    )
    web = str(topo.mgmt("webserver").addr.v4.ip)
    specs = tuple(spec(v.name, "user", "webserver", web, PortSet.of([443])) for v in broken)
    hop = HopPlan(0, 0, "user → webserver:web", Action.ALLOW, tuple(s.id for s in specs))
    rule = RulePlan("R1", "web", Severity.HIGH, False, 1, ("user",), (hop,))
    plan = Plan("test", (rule,), specs)
    observed = run_specs(specs, lab_inventory(engine_lab, *broken), EngineOptions())
    assert all(o.error for o in observed)
    (verdict,) = judge_plan(plan, observed)
    assert verdict.verdict is Verdict.INCONCLUSIVE


def _scan(handle: LabHandle, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "reachproof", "scan", "-i", str(handle.inventory_path)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


def test_scan_command_prints_nmap_like_results(engine_lab: LabHandle) -> None:
    done = _scan(engine_lab, "--from", "user", "webserver", "-p", "1-1000", "--timeout", "0.5")
    assert done.returncode == 0, done.stderr
    assert "Not shown: 999 filtered ports (timeout)" in done.stdout
    assert any(line.startswith("443/tcp") and "open" in line for line in done.stdout.splitlines())
    refused = _scan(engine_lab, "--from", "user", "192.0.2.1", "-p", "80")
    assert refused.returncode == 2 and "192.0.2.1" in refused.stderr
    unknown = _scan(engine_lab, "--from", "nowhere", "webserver", "-p", "80")
    assert unknown.returncode == 2 and "nowhere" in unknown.stderr


def test_scan_json_from_a_container(engine_lab: LabHandle, tmp_path: Path) -> None:
    import json

    main, sub = engine_lab.topology.sessions[0].containers[:2]
    done = _scan(
        engine_lab, "--from", main.vantage, str(sub.cluster.v4.ip), "-p", "2200,7681,9",
        "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (target,) = json.loads(done.stdout)["targets"]
    states = {r["ports"]: r["state"] for r in target["results"]}
    assert states == {"2200": "open", "7681": "open", "9": "closed"} or (
        states.get("2200,7681") == "open" and states.get("9") == "closed"
    )
