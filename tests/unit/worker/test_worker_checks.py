"""`check` probes read the worker's own environment (crafted per test), not the engine's."""

from __future__ import annotations

import os
import socket

import pytest
from workerkit import Worker

from reachproof.worker.checks import hostname_problems

GOOD = {
    "BACKENDAI_CLUSTER_SIZE": "2",
    "BACKENDAI_CLUSTER_HOSTS": "main1,sub1",
    "BACKENDAI_CLUSTER_REPLICAS": "main:1,sub:1",
    "BACKENDAI_CLUSTER_HOST": "sub1",
    "BACKENDAI_CLUSTER_IDX": "1",
    "BACKENDAI_CLUSTER_ROLE": "sub",
    "BACKENDAI_CLUSTER_LOCAL_RANK": "1",
    "MASTER_ADDR": "main1",
    "MASTER_PORT": "29500",
    "TF_CONFIG": '{"cluster": {"worker": ["main1:29500", "sub1:29501"]}, '
    '"task": {"type": "worker", "index": 1}}',
}


def run_check(env: dict[str, str], check: str, **expect: str) -> list[list[str]]:
    params = {"check": check, **{f"expect.{k}": v for k, v in expect.items()}}
    with Worker(env={"PATH": os.environ.get("PATH", ""), **env}) as worker:
        result = worker.probe("check", params=params)
    assert result["error"] is None and result["results"] == []
    assert result["detail"][0] == ["ran", check] or ["ran", check] in result["detail"]
    detail: list[list[str]] = result["detail"]
    return detail


def problems(detail: list[list[str]]) -> list[str]:
    return [value for key, value in detail if key == "problem"]


def test_a_consistent_environment_has_no_problems() -> None:
    assert problems(run_check(GOOD, "cluster-env", host="sub1", local_rank="1")) == []
    assert problems(run_check(GOOD, "training-env")) == []


def test_the_workers_own_environment_is_read() -> None:
    broken = {**GOOD, "BACKENDAI_CLUSTER_LOCAL_RANK": "0", "WORLD_SIZE": "2"}
    found = problems(run_check(broken, "cluster-env"))
    assert any("LOCAL_RANK=0" in p for p in found)
    assert any("WORLD_SIZE" in p for p in problems(run_check(broken, "training-env")))


def test_expected_values_from_the_inventory_are_compared() -> None:
    found = problems(run_check(GOOD, "cluster-env", host="main1"))
    assert found == ["host is 'sub1' here but the inventory says 'main1'"]


def test_an_empty_environment_lists_every_missing_variable() -> None:
    found = problems(run_check({}, "cluster-env"))
    assert len(found) == 7 and all("is not set" in p for p in found)


def test_unknown_check_is_an_error() -> None:
    with Worker() as worker:
        result = worker.probe("check", params={"check": "astrology"})
    assert "unknown check" in result["error"]


def test_hostnames_resolve_through_the_worker() -> None:
    env = {**GOOD, "BACKENDAI_CLUSTER_HOSTS": "sub1,localhost"}
    detail = run_check(env, "hostnames")
    assert problems(detail) == []
    assert ["resolved", "localhost=127.0.0.1"] in detail or any(
        k == "resolved" and v.startswith("localhost=") for k, v in detail
    )


def test_unresolvable_peers_are_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process with a fake resolver: a real lookup of a missing name could leave loopback.
    def fake(host: str, *args: object) -> list[tuple[object, ...]]:
        if host == "main1":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.200.1.2", 0))]
        if host == "sub2":
            return []
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    found, resolved = hostname_problems(
        {"BACKENDAI_CLUSTER_HOSTS": "main1,sub1,sub2,sub3", "BACKENDAI_CLUSTER_HOST": "sub3"}
    )
    assert resolved == ["main1=10.200.1.2"]
    assert found == [
        "peer sub1 does not resolve: [Errno -2] Name or service not known",
        "peer sub2 resolves to no address",
    ]
    assert hostname_problems({})[0] == ["BACKENDAI_CLUSTER_HOSTS is not set: no peers to resolve"]


def test_listeners_reports_a_socket_off_loopback_and_not_one_on_it() -> None:
    # Sockets of this test's own namespace: listening only, nothing is probed.
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as stray,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as local,
    ):
        stray.bind(("0.0.0.0", 0))
        stray.listen()
        local.bind(("127.0.0.1", 0))
        local.listen()
        ports = [stray.getsockname()[1], local.getsockname()[1]]
        with Worker() as worker:
            result = worker.probe(
                "check", params={"check": "listeners", "ports": ",".join(map(str, ports))}
            )
    detail = result["detail"]
    assert ["ran", "listeners"] in detail and ["read", "/proc/net/tcp"] in detail
    found = problems(detail)
    assert len(found) == 1, found
    assert found[0].startswith(f"listening on 0.0.0.0:{ports[0]} (/proc/net/tcp: ")
