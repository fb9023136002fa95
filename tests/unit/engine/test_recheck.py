"""Re-check before failing: silence that would fail an allow/reach rule is probed again,
and only there (never by `scan`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest
from enginekit import fake_worker, local_inventory, tcp_spec

from reachproof.engine import run_specs
from reachproof.engine.options import EngineOptions, TcpEngine
from reachproof.engine.progress import ProgressSink
from reachproof.engine.recheck import merge, recheck_silent, silent_ports
from reachproof.engine.scan_view import scan_options
from reachproof.inventory.model import Inventory
from reachproof.observation import Observation, PortResult, PortState
from reachproof.plan import Expectation, ProbeKind, ProbeSpec
from reachproof.policy.ast import Action
from reachproof.ports import PortSet
from reachproof.scan import ScanEngine

S = PortState


def spec(action: Action, kind: ProbeKind = ProbeKind.TCP, ports: str = "1-100") -> ProbeSpec:
    return ProbeSpec(
        "s",
        "R",
        0,
        0,
        "v",
        "a",
        "b",
        "10.0.0.2",
        4,
        kind,
        PortSet.parse(ports),
        Expectation(action),
    )


def result(ports: str, state: PortState, attempts: int = 1) -> PortResult:
    return PortResult(PortSet.parse(ports), state, "r", attempts)


SWEEP = Observation("s", (result("1-95", S.CLOSED), result("96-100", S.FILTERED, 4)))


def test_only_silence_that_would_fail_is_rechecked() -> None:
    assert str(silent_ports(spec(Action.REACH), SWEEP)) == "96-100"
    assert str(silent_ports(spec(Action.ALLOW), SWEEP)) == "96-100"
    assert not silent_ports(spec(Action.DENY), SWEEP)  # silence is what deny expects
    assert not silent_ports(spec(Action.REACH, ProbeKind.UDP), SWEEP)
    assert not silent_ports(spec(Action.REACH), Observation("s", error="worker died"))


def test_an_answer_on_recheck_replaces_the_silence() -> None:
    again = Observation("s", (result("96-99", S.CLOSED), result("100", S.FILTERED, 2)))
    merged = merge(SWEEP, again, PortSet.parse("96-100"))
    states = {str(r.ports): (str(r.state), r.attempts) for r in merged.results}
    assert states == {"1-95": ("closed", 1), "96-99": ("closed", 1), "100": ("filtered", 6)}
    assert ("rechecked", "96-100") in merged.detail


def test_ports_the_recheck_could_not_probe_keep_the_first_pass() -> None:
    again = Observation("s", (result("96-98", S.ERROR), result("99-100", S.CLOSED)))
    merged = merge(SWEEP, again, PortSet.parse("96-100"))
    states = {str(r.ports): str(r.state) for r in merged.results}
    assert states == {"1-95": "closed", "96-98": "filtered", "99-100": "closed"}


def test_a_failed_recheck_keeps_the_first_observation() -> None:
    assert merge(SWEEP, Observation("s", error="vantage gone"), PortSet.parse("96-100")) is SWEEP


def test_recheck_runs_gently_and_only_on_silent_ports() -> None:
    calls: list[tuple[list[str], EngineOptions]] = []

    async def observe(
        specs: Sequence[ProbeSpec],
        inventory: Inventory,
        options: EngineOptions,
        progress: ProgressSink | None,
    ) -> tuple[Observation, ...]:
        calls.append(([str(s.ports) for s in specs], options))
        return tuple(Observation(s.id, (result(str(s.ports), S.OPEN),)) for s in specs)

    options = EngineOptions()
    out = asyncio.run(
        recheck_silent([spec(Action.REACH)], (SWEEP,), Inventory("i", ""), options, observe)
    )
    [(ports, gentle)] = calls
    assert ports == ["96-100"]
    assert gentle.pps < options.pps and gentle.timeout > options.timeout
    assert {str(r.ports): str(r.state) for r in out[0].results} == {
        "1-95": "closed",
        "96-100": "open",
    }


@pytest.mark.parametrize("recheck", [True, False])
def test_the_recheck_runs_only_where_the_options_ask(recheck: bool) -> None:
    reach = replace(tcp_spec("20-25"), expect=Expectation(Action.REACH))
    options = EngineOptions(worker_source=fake_worker("filtered", (22,)), recheck=recheck)
    [observed] = run_specs([reach], local_inventory(), options)
    assert (("rechecked", "20-21,23-25") in observed.detail) is recheck


def test_scan_judges_no_rule_so_it_never_rechecks() -> None:
    assert scan_options(ScanEngine.SYN, pps=None, timeout=None, attempts=None).recheck is False
    assert scan_options(ScanEngine.NMAP, 5000, 0.5, 3) == EngineOptions(
        engine=TcpEngine.NMAP, pps=5000, vantage_pps=5000, timeout=0.5, attempts=3, recheck=False
    )
