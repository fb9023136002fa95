"""The shipped worker inside lab namespaces (root): SYN states and hop attribution in every
--perimeter mode, retries, the SYN send rate, UDP, ICMP echo, HTTP/WebSocket, resolution.

Every probe is sent from inside a lab namespace toward lab addresses; labs always come down.
"""

from __future__ import annotations

import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import lab, require_lab

from reachproof.lab.build import LabHandle
from reachproof.lab.netns import socket_in_netns
from reachproof.lab.nft import apply_ruleset

# The worker's test client lives with the unit tests of the worker.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "worker"))
from workerkit import Worker, port_states, record_of

pytestmark = pytest.mark.lab
require_lab()

MIN_SWEEP_PPS = 30_000  # loose bound; about 120k packets/s is typical here


def worker_in(netns: str) -> Worker:
    return Worker(prefix=["ip", "netns", "exec", netns])


@pytest.fixture(scope="module")
def reset_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with lab(
        tmp_path_factory.mktemp("rst"), "rpw", sessions="single-node:2", perimeter="reset"
    ) as h:
        yield h


@pytest.fixture(scope="module")
def drop_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with lab(tmp_path_factory.mktemp("drp"), "rpw", sessions="single-node:1", services=False) as h:
        yield h


def detail(result: dict[str, object], key: str) -> list[str]:
    return [v for k, v in result["detail"] if k == key]  # type: ignore[attr-defined]


@pytest.mark.parametrize("family", [4, 6])
def test_firewall_resets_are_prohibited_not_closed(reset_lab: LabHandle, family: int) -> None:
    topo = reset_lab.topology
    addr = topo.agents[0].node.addr
    agent = str(addr.v4.ip if family == 4 else addr.v6.ip)
    with worker_in(topo.user.netns) as worker:
        result = worker.probe("tcp-syn", agent, [(6001, 6001), (22, 22)], timeout=0.5)
    assert set(port_states(result).values()) == {("prohibited", "reset-by-firewall")}
    assert record_of(result, 6001)["ttl"] == 64
    assert "expired at router" in detail(result, "hop-attribution")[0]


@pytest.mark.parametrize("family", [4, 6])
def test_resets_nobody_can_place_are_undecided_not_closed(
    reset_lab: LabHandle, family: int
) -> None:
    """The perimeter sends no time-exceeded (as a router whose ICMP budget is spent) and
    rejects echo requests: the resets stay unplaced, so `attribution-undecided`, never
    `closed`. Costs the trace's paced retries, about 6 s per family."""
    topo = reset_lab.topology
    addr = topo.agents[0].node.addr
    agent = str(addr.v4.ip if family == 4 else addr.v6.ip)
    quiet = (
        "table inet rpquiet {\n\tchain output {\n"
        "\t\ttype filter hook output priority filter; policy accept;\n"
        "\t\ticmp type time-exceeded drop\n\t\ticmpv6 type time-exceeded drop\n\t}\n}\n"
    )
    apply_ruleset(topo.fw_netns, quiet)
    try:
        with worker_in(topo.user.netns) as worker:
            result = worker.probe("tcp-syn", agent, [(6001, 6001)], timeout=0.5)
    finally:
        apply_ruleset(topo.fw_netns, "delete table inet rpquiet\n")
    assert port_states(result) == {6001: ("error", "attribution-undecided")}
    assert "attribution-undecided" in detail(result, "hop-attribution")[0]


def test_a_reset_next_to_the_targets_own_syn_ack(reset_lab: LabHandle) -> None:
    topo = reset_lab.topology
    web = str(topo.mgmt("webserver").addr.v4.ip)
    with worker_in(topo.user.netns) as worker:
        result = worker.probe("tcp-syn", web, [(443, 444)], timeout=0.5)
    assert port_states(result) == {
        443: ("open", "syn-ack"),
        444: ("prohibited", "reset-by-firewall"),
    }
    assert record_of(result, 443)["ttl"] == 63 and record_of(result, 444)["ttl"] == 64


@pytest.mark.parametrize("family", [4, 6])
def test_a_closed_port_inside_a_session_stays_closed(reset_lab: LabHandle, family: int) -> None:
    main1, sub1 = reset_lab.topology.sessions[0].containers[:2]
    peer = str(sub1.cluster.v4.ip if family == 4 else sub1.cluster.v6.ip)
    with worker_in(main1.netns) as worker:
        both = worker.probe("tcp-syn", peer, [(2200, 2201)], timeout=0.5)
        # Resets only: the TTL-limited test has to decide, and must find the target itself.
        alone = worker.probe("tcp-syn", peer, [(2201, 2201)], timeout=0.5)
    assert port_states(both) == {2200: ("open", "syn-ack"), 2201: ("closed", "rst")}
    assert port_states(alone) == {2201: ("closed", "rst")}
    assert "reached the target" in detail(alone, "hop-attribution")[0]


def test_udp_states(reset_lab: LabHandle) -> None:
    topo = reset_lab.topology
    main1, sub1 = topo.sessions[0].containers[:2]
    peer = str(sub1.cluster.v4.ip)
    echo = socket_in_netns(sub1.netns, socket.AF_INET, socket.SOCK_DGRAM)
    quiet = socket_in_netns(sub1.netns, socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind((peer, 5353))
    quiet.bind((peer, 5354))

    def answer() -> None:
        try:
            data, source = echo.recvfrom(2048)
            echo.sendto(data, source)
        except OSError:
            return

    threading.Thread(target=answer, daemon=True).start()
    with echo, quiet, worker_in(main1.netns) as worker:
        inside = worker.probe("udp", peer, [(5353, 5355)], timeout=0.5, attempts=2)
    assert port_states(inside) == {
        5353: ("open", "udp-response"),
        5354: ("open|filtered", "no-response"),
        5355: ("closed", "icmp-3-3"),
    }
    assert record_of(inside, 5354)["attempts"] == 2
    agent = str(topo.agents[0].node.addr.v4.ip)
    with worker_in(topo.user.netns) as worker:
        outside = worker.probe("udp", agent, [(4789, 4789)], timeout=0.5)
    assert port_states(outside) == {4789: ("prohibited", "icmp-3-13")}


@pytest.mark.parametrize("family", [4, 6])
def test_icmp_echo_between_containers(reset_lab: LabHandle, family: int) -> None:
    main1, sub1 = reset_lab.topology.sessions[0].containers[:2]
    peer = str(sub1.cluster.v4.ip if family == 4 else sub1.cluster.v6.ip)
    with worker_in(main1.netns) as worker:
        result = worker.probe("icmp", peer, [(0, 0)], timeout=0.5)
    assert port_states(result) == {0: ("open", "echo-reply")}
    assert record_of(result, 0)["ttl"] == 64


def test_http_and_websocket_through_the_appproxy(reset_lab: LabHandle) -> None:
    topo = reset_lab.topology
    proxy = str(topo.mgmt("appproxy").addr.v4.ip)
    jupyter = next(a for a in topo.apps if a.name == "jupyter")
    ttyd = next(a for a in topo.apps if a.name == "ttyd")
    with worker_in(topo.user.netns) as worker:
        tls = {"tls": "1"}
        page = worker.probe("http", proxy, [(jupyter.worker_port, jupyter.worker_port)], params=tls)
        ws = worker.probe("websocket", proxy, [(ttyd.worker_port, ttyd.worker_port)], params=tls)
    assert detail(page, "status") == ["200"]
    assert jupyter.identity in detail(page, "identity")[0]
    assert detail(ws, "status") == ["101"] and detail(ws, "websocket") == ["ok"]


def test_resolving_a_peer_by_name(reset_lab: LabHandle) -> None:
    main1, sub1 = reset_lab.topology.sessions[0].containers[:2]
    with worker_in(main1.netns) as worker:
        result = worker.probe(
            "tcp-syn",
            None,
            [(2200, 2200)],
            resolve=sub1.hostname,
            family=4,
            scope=[str(sub1.cluster.v4.ip)],
        )
    assert port_states(result) == {2200: ("open", "syn-ack")}
    assert detail(result, "resolved") == [str(sub1.cluster.v4.ip)]


@pytest.mark.parametrize("family", [4, 6])
def test_reject_perimeter_is_admin_prohibited(tmp_path: Path, family: int) -> None:
    with lab(tmp_path, "rpw", sessions="single-node:1", perimeter="reject", services=False) as h:
        topo = h.topology
        addr = topo.agents[0].node.addr
        agent = str(addr.v4.ip if family == 4 else addr.v6.ip)
        with worker_in(topo.user.netns) as worker:
            syn = worker.probe("tcp-syn", agent, [(6001, 6002)], timeout=0.5)
            connect = worker.probe("tcp-connect", agent, [(6001, 6001)], timeout=0.5)
    reason = "icmp-3-13" if family == 4 else "icmp6-1-1"
    assert set(port_states(syn).values()) == {("prohibited", reason)}
    assert port_states(connect) == {6001: ("prohibited", reason)}


def test_dropped_ports_are_filtered_after_the_attempts_no_loss_calls_for(
    drop_lab: LabHandle,
) -> None:
    topo = drop_lab.topology
    agent = str(topo.agents[0].node.addr.v4.ip)
    with worker_in(topo.user.netns) as worker:
        syn = worker.probe("tcp-syn", agent, [(6001, 6003)], timeout=0.3, attempts=5)
        connect = worker.probe("tcp-connect", agent, [(6001, 6001)], timeout=0.3, attempts=5)
    # Nothing answered on this path, so no loss was measured: 2 of the 5 attempts allowed.
    assert port_states(syn) == {p: ("filtered", "timeout") for p in (6001, 6002, 6003)}
    assert record_of(syn, 6001)["attempts"] == 2
    assert detail(syn, "loss") == ["no probe that must answer was seen yet: 2 attempts"]
    assert port_states(connect) == {6001: ("filtered", "timeout")}
    assert record_of(connect, 6001)["attempts"] == 2


def test_full_range_sweep_send_rate(drop_lab: LabHandle) -> None:
    topo = drop_lab.topology
    agent = str(topo.agents[0].node.addr.v4.ip)
    with worker_in(topo.user.netns) as worker:
        result = worker.probe("tcp-syn", agent, [(1, 65535)], timeout=0.3, attempts=1, wait=60)
    assert port_states(result) == {p: ("filtered", "timeout") for p in range(1, 65536)}
    sent = detail(result, "sent")[0]
    match = re.search(r"(\d+) packets in [\d.]+s: (\d+) per second", sent)
    assert match and int(match.group(1)) == 65535
    print(f"SYN sweep of a dropped target: {sent}")
    assert int(match.group(2)) >= MIN_SWEEP_PPS


def test_pps_limit_is_respected(drop_lab: LabHandle) -> None:
    topo = drop_lab.topology
    agent = str(topo.agents[0].node.addr.v4.ip)
    with worker_in(topo.user.netns) as worker:
        result = worker.probe("tcp-syn", agent, [(1, 2048)], timeout=0.2, attempts=1, pps=4096)
    rate = int(re.findall(r"(\d+) per second", detail(result, "sent")[0])[0])
    assert 2000 <= rate <= 4600
