"""Malformed input, bad requests and failing probes never take the worker down."""

from __future__ import annotations

import json
import socket

import pytest
from workerkit import Worker, port_states

from reachproof.worker.main import run_probe
from reachproof.worker.wire import Output, parse_probe


def test_garbage_lines_are_logged_and_skipped() -> None:
    with Worker() as worker:
        worker.write_raw(b'not json\n[1, 2]\n{"op": "dance"}\n\n\xff\xfe\n')
        assert worker.hello()["op"] == "hello"
        logs = [m["message"] for m in worker.messages if m["op"] == "log"]
        assert len(logs) == 4
        assert any("dance" in line for line in logs)
        assert worker.close() == 0


def test_a_bad_probe_request_gets_an_error_result() -> None:
    with Worker() as worker:
        worker.send({"op": "probe", "id": "x", "kind": "tcp-connect", "ports": [[5, 1]]})
        result = worker.wait_for("result", "x")
        assert result["error"] and "bad request" in result["error"]
        assert worker.hello()["op"] == "hello"


def test_a_probe_that_fails_reports_error_for_every_port() -> None:
    with Worker() as worker:
        result = worker.probe("tcp-connect", "not-an-address", [(1, 3)], scope=[])
        assert result["error"] and "not an IP address" in result["error"]
        assert set(port_states(result).values()) == {("error", "probe-failed")}
        unknown = worker.probe("teleport", "127.0.0.1", [(1, 1)])
        assert "unknown probe kind" in unknown["error"]
        assert worker.hello()["op"] == "hello"
        assert worker.close() == 0


def test_an_unresolvable_name_is_unreachable_no_such_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process with a failing resolver: a real lookup of a missing name could leave loopback.
    def no_such_host(*args: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    lines: list[str] = []
    output = Output(lines.append, lambda: None)
    run_probe(
        parse_probe(
            {
                "op": "probe",
                "id": "r",
                "kind": "tcp-connect",
                "resolve": "sub9",
                "ports": [[22, 23]],
            }
        ),
        output,
    )
    result = json.loads(lines[-1])
    assert result["error"] is None
    assert port_states(result) == {
        22: ("unreachable", "no-such-host"),
        23: ("unreachable", "no-such-host"),
    }
    assert result["detail"][0][0] == "resolve-error"
