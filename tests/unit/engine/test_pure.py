"""The engine's pure parts: pps budgets, nmap's XML, scan targets and nmap-like output."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

import pytest
from enginekit import check_spec, local_inventory, tcp_spec

from reachproof.engine import OutOfScopeError
from reachproof.engine.nmap import (
    configured_attempts,
    nmap_argv,
    observation_from_nmap,
    parse_nmap_xml,
)
from reachproof.engine.options import EngineOptions
from reachproof.engine.ratelimit import expected_seconds, probe_budget, vantage_budgets
from reachproof.engine.scan_view import render_json, render_table, resolve_targets, scan_ports
from reachproof.engine.scope import probe_scope
from reachproof.engine.translate import observation_from_result, probe_request
from reachproof.errors import UsageError
from reachproof.inventory.model import Host, Transport, Vantage
from reachproof.observation import Observation, PortResult, PortState
from reachproof.ports import PortSet


def even(global_pps: int, vantage_pps: int, vantages: int) -> int:
    """The budget of each of `vantages` vantages with the same amount of work."""
    shares = vantage_budgets(global_pps, vantage_pps, {f"v{i}": 100 for i in range(vantages)})
    assert len(set(shares.values())) == 1
    return shares["v0"]


def test_budgets_never_exceed_the_limits() -> None:
    assert even(150_000, 150_000, 1) == 150_000
    assert even(150_000, 100_000, 1) == 100_000
    assert even(150_000, 150_000, 3) == 50_000
    assert even(10, 10, 100) == 1  # never zero: every vantage makes progress
    assert probe_budget(50_000, 8, 3) == 16_666  # three requests, all in flight at once
    assert probe_budget(50_000, 8, 100) == 6_250  # at most eight in flight
    for vantages in range(1, 20):
        for requests in range(1, 20):
            share = even(1000, 800, vantages)
            assert share * min(vantages, 1000) <= max(1000, vantages)
            assert probe_budget(share, 8, requests) * min(8, requests) <= max(share, 8)


def test_expected_seconds_covers_sending_and_waiting() -> None:
    assert expected_seconds(65535, 4, 1.0, 150_000) == 2 + 4.0
    assert expected_seconds(1, 2, 0.5, 1) == 2 + 1.0


NMAP_XML = """<?xml version="1.0"?>
<nmaprun><host><status state="up"/><address addr="10.0.2.11" addrtype="ipv4"/>
<ports>
<extraports state="filtered" count="97">
  <extrareasons reason="no-response" count="96" proto="tcp" ports="1-21,23-100"/>
  <extrareasons reason="admin-prohibited" count="1" proto="tcp" ports="101"/>
</extraports>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="63"/></port>
<port protocol="tcp" portid="102"><state state="closed" reason="reset" reason_ttl="63"/></port>
<port protocol="tcp" portid="103"><state state="filtered" reason="host-unreach" reason_ttl="0"/>
</port>
</ports></host></nmaprun>"""


def test_nmap_xml_covers_listed_and_extra_ports() -> None:
    scanned = parse_nmap_xml(NMAP_XML)["10.0.2.11"]
    obs = observation_from_nmap(tcp_spec("1-104", address="10.0.2.11"), scanned, 2)
    states = {(str(r.ports), r.state, r.reason, r.attempts, r.ttl) for r in obs.results}
    assert states == {
        ("1-21,23-100", PortState.FILTERED, "timeout", 2, None),
        ("101", PortState.PROHIBITED, "icmp-admin-prohibited", 1, None),
        ("22", PortState.OPEN, "syn-ack", 1, 63),
        ("102", PortState.CLOSED, "rst", 1, 63),
        ("103", PortState.UNREACHABLE, "icmp-host-unreach", 1, None),
    }
    assert obs.details("unobserved") == ("104",)  # nmap said nothing about it
    # What nmap was configured for, and that reachproof did not measure the loss itself.
    assert obs.details("loss") == (
        "not measured by reachproof: nmap -sS --max-retries 1 "
        "(at most 2 attempts; nmap's timing decides how many it sends)",
    )


def test_nmap_is_configured_for_the_attempts_its_results_record() -> None:
    options = EngineOptions(attempts=7)
    argv = nmap_argv(
        Vantage("v", Transport.LOCAL), PortSet.parse("22"), 4, ["10.0.2.11"], options, 100
    )
    assert argv[argv.index("--max-retries") + 1] == str(configured_attempts(options) - 1) == "6"


def test_malformed_results_become_errors_not_passes() -> None:
    spec = tcp_spec("22")
    bad = {"results": [{"ports": [[22, 22]], "state": "wide-open", "attempts": 1}]}
    assert observation_from_result(spec, bad).error is not None
    assert observation_from_result(spec, {"results": [{"ports": "22"}]}).error is not None
    outside = {"results": [{"ports": [[22, 23]], "state": "open", "reason": "syn-ack"}]}
    (result,) = observation_from_result(spec, outside).results
    assert result.ports == PortSet.of([22])  # port 23 was never asked for
    failed = observation_from_result(spec, {"error": "no route"}, "connect probes used")
    assert failed.error == "no route" and failed.degraded == "connect probes used"


def test_scan_targets_must_be_declared() -> None:
    inventory = local_inventory()
    (by_name,) = resolve_targets(inventory, ["self"])
    (by_address,) = resolve_targets(inventory, ["127.0.0.1"])
    assert by_name.address == by_address.address == "127.0.0.1"
    assert by_address.host == "self"
    with pytest.raises(OutOfScopeError, match=r"10\.9\.9\.9"):
        resolve_targets(inventory, ["self", "10.9.9.9"])
    with pytest.raises(OutOfScopeError, match=r"example\.org"):
        resolve_targets(inventory, ["example.org"])
    with pytest.raises(UsageError):
        scan_ports("22-")


def test_table_folds_big_runs_like_nmap() -> None:
    spec = tcp_spec("1-65535")
    obs = Observation(
        spec.id,
        (
            PortResult(PortSet.parse("1-442,444-65535"), PortState.FILTERED, "timeout", 4),
            PortResult(PortSet.of([443]), PortState.OPEN, "syn-ack", 1, 0.2, 63),
        ),
    )
    text = render_table("user", "syn", [spec], [obs], 1.5)
    assert "Not shown: 65534 filtered ports (timeout)" in text
    assert "443/tcp    open           syn-ack              63" in text
    assert '"count": 65534' in render_json("user", "syn", [spec], [obs], 1.5)


def test_vantage_budgets_follow_the_packets_each_vantage_sends() -> None:
    budgets = vantage_budgets(150_000, 150_000, {"user": 12_000_000, "a": 400, "b": 400})
    assert budgets["user"] > 140_000  # the big sweep is not starved by idle vantages
    assert budgets["a"] == budgets["b"] == 1_000  # the floor keeps small ones moving
    assert vantage_budgets(150_000, 50_000, {"user": 10**7})["user"] == 50_000
    even = vantage_budgets(90_000, 90_000, {"x": 10, "y": 10, "z": 10})
    assert even == {"x": 30_000, "y": 30_000, "z": 30_000}
    assert sum(even.values()) <= 90_000


def test_a_name_resolved_outside_the_probe_scope_is_not_evidence() -> None:
    spec = replace(tcp_spec("22"), resolve="peer")
    answer = {
        "results": [{"ports": [[22, 22]], "state": "open", "reason": "syn-ack", "attempts": 1}],
        "detail": [["resolved", "10.9.9.9"]],
    }
    scope = probe_scope(spec, local_inventory())
    obs = observation_from_result(spec, answer, None, scope)
    assert obs.error == "peer resolved to 10.9.9.9 at the vantage, outside the probe's scope"
    answer["detail"] = [["resolved", "127.0.0.1"]]
    assert observation_from_result(spec, answer, None, scope).error is None
    # The hostnames check reports what it resolved in its own words; that is not a target.
    check = {"detail": [["ran", "hostnames"], ["resolved", "main1=10.200.1.2"]]}
    assert observation_from_result(check_spec(), check, None, scope).error is None


def test_the_request_carries_the_addresses_its_probe_may_touch() -> None:
    peer = Host(
        "peer", "container", ipv4=(IPv4Address("10.0.0.5"),), ipv6=(IPv6Address("fd00::5"),)
    )
    inventory = replace(local_inventory(), hosts=(*local_inventory().hosts, peer))
    by_address = replace(tcp_spec("22", address="10.0.0.5"), target="peer")
    by_name = replace(by_address, resolve="peer")
    assert probe_request(
        by_address, "tcp-connect", 1, 2, 0, "x", probe_scope(by_address, inventory)
    )["scope"] == ["10.0.0.5"]
    # A name may resolve to any address of its host, in either family, and to nothing else.
    assert probe_scope(by_name, inventory) == {IPv4Address("10.0.0.5"), IPv6Address("fd00::5")}
    assert probe_scope(check_spec(), inventory) == frozenset()
