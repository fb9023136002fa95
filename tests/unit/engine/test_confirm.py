"""Two-ended UDP: how a sensor's sightings decide silent ports (pure part)."""

from __future__ import annotations

from reachproof.engine.confirm import confirm, sensor_vantage
from reachproof.inventory.model import Host, Inventory, Transport, Vantage
from reachproof.observation import Observation, PortResult, PortState
from reachproof.plan import Expectation, ProbeKind, ProbeSpec
from reachproof.policy.ast import Action
from reachproof.ports import PortSet

TOKEN = "0123456789abcdef"


def silent(ports: str = "4789,7946") -> Observation:
    return Observation(
        "s",
        (PortResult(PortSet.parse(ports), PortState.OPEN_FILTERED, "timeout", 4),),
        (("payload", f"reachproof {TOKEN}"),),
    )


def states(obs: Observation) -> dict[str, tuple[str, str]]:
    return {str(r.ports): (str(r.state), r.reason) for r in obs.results}


def test_delivered_ports_are_open_and_the_rest_filtered() -> None:
    out = confirm(silent(), {(TOKEN, 4789), ("ffffffffffffffff", 7946)}, "agent1", None)
    assert states(out) == {
        "4789": ("open", "delivered"),
        "7946": ("filtered", "not-delivered"),
    }
    assert ("sensor", "agent1") in out.detail
    assert all(r.attempts == 4 for r in out.results)


def test_nothing_seen_means_filtered() -> None:
    assert states(confirm(silent(), set(), "agent1", None)) == {
        "4789,7946": ("filtered", "not-delivered")
    }


def test_a_failed_sensor_decides_nothing() -> None:
    out = confirm(silent(), None, "agent1", "raw sockets not permitted")
    assert states(out) == {"4789,7946": ("open|filtered", "timeout")}
    assert out.degraded is not None and "raw sockets not permitted" in out.degraded


def test_answers_are_kept_as_they_were() -> None:
    obs = Observation(
        "s",
        (
            PortResult(PortSet.parse("53"), PortState.CLOSED, "port-unreachable", 1),
            PortResult(PortSet.parse("4789"), PortState.OPEN_FILTERED, "timeout", 4),
        ),
        (("payload", f"reachproof {TOKEN}"),),
    )
    out = confirm(obs, {(TOKEN, 53)}, "agent1", None)
    assert states(out) == {
        "53": ("closed", "port-unreachable"),
        "4789": ("filtered", "not-delivered"),
    }


def test_errors_stay_errors() -> None:
    obs = Observation("s", error="vantage 'user': worker died")
    assert confirm(obs, {(TOKEN, 4789)}, "agent1", None) is obs


def _spec(kind: ProbeKind, source: str, target: str) -> ProbeSpec:
    return ProbeSpec(
        "s",
        "R",
        0,
        0,
        source,
        source,
        target,
        "10.0.2.12",
        4,
        kind,
        PortSet.parse("4789"),
        Expectation(Action.DENY),
    )


def test_only_udp_towards_a_host_with_a_vantage_is_confirmed() -> None:
    inventory = Inventory(
        "inv",
        "",
        vantages=(Vantage("user", Transport.LOCAL), Vantage("agent2", Transport.NETNS, "rp-a2")),
        hosts=(Host("agent2", "agent", vantage="agent2"), Host("db", "database")),
    )
    watcher = sensor_vantage(_spec(ProbeKind.UDP, "user", "agent2"), inventory)
    assert watcher is not None and watcher.name == "agent2"
    assert sensor_vantage(_spec(ProbeKind.TCP, "user", "agent2"), inventory) is None
    assert sensor_vantage(_spec(ProbeKind.UDP, "user", "db"), inventory) is None
