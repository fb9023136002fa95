"""Probes by hostname in any family (family null): resolved as clients do (getaddrinfo
AF_UNSPEC), every address checked against the scope first, then tried in the resolver's order.

The resolver and the per-address probe are fakes: the order and the decisions are the point.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from reachproof.worker import main
from reachproof.worker.target import NoSuchHost, OutOfScope, Target, resolve_all
from reachproof.worker.wire import Outcome, Output, ProbeReport, Progress, Request

V4, V6 = "10.200.1.3", "fd00:200:1::3"


def _request(scope: tuple[str, ...] = (V4, V6), ports: tuple[int, ...] = (2200,)) -> Request:
    return Request(
        id="p",
        kind="tcp-connect",
        address=V4,
        family=None,
        resolve="sub1",
        ports=list(ports),
        timeout=0.1,
        attempts=2,
        pps=0,
        params={},
        scope=frozenset(scope),
    )


def _resolver(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[int]:
    asked: list[int] = []

    def fake(host: str, port: Any, family: int = 0, type: int = 0, *rest: Any) -> list[Any]:
        asked.append(family)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, type, 6, "", (a, 0))
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def _progress() -> Progress:
    return Progress(Output(lambda _t: 0, lambda: None), "p", 1)


def _run(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, dict[int, Outcome]], *order: str
) -> tuple[ProbeReport, list[str]]:
    _resolver(monkeypatch, *order)
    tried: list[str] = []

    def runner(request: Request, where: Target, report: ProbeReport, _p: Progress) -> None:
        tried.append(where.address)
        for port in request.ports:
            report.outcomes[port] = answers[where.address][port]

    monkeypatch.setattr(main, "route_failure", lambda _a, _f: None)
    monkeypatch.setattr(main, "_network_probes", lambda: {"tcp-connect": runner})
    report = ProbeReport()
    main._run_network(_request(), report, _progress())
    return report, tried


OPEN = Outcome("open", "connected", 1)
REFUSED = Outcome("closed", "refused", 1)
SILENT = Outcome("filtered", "timeout", 2)


def test_the_resolver_is_asked_for_every_family(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _resolver(monkeypatch, V6, V4)
    found = resolve_all(_request())
    assert asked == [socket.AF_UNSPEC]
    assert [t.address for t in found] == [V6, V4]  # the resolver's order, kept


def test_one_address_outside_the_scope_refuses_the_whole_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _resolver(monkeypatch, V4, "10.200.9.9")
    with pytest.raises(OutOfScope, match=r"10\.200\.9\.9"):
        resolve_all(_request())


def test_a_name_that_does_not_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolver(monkeypatch)
    with pytest.raises(NoSuchHost):
        resolve_all(_request())


# (case, resolver order, answers per address, outcome, addresses tried)
CASES = [
    # An IPv4-only name: the client uses IPv4 and it answers; no IPv6 probe exists to fail.
    ("v4-only-name", (V4,), {V4: OPEN}, OPEN, [V4]),
    ("first-answers", (V6, V4), {V6: OPEN, V4: SILENT}, OPEN, [V6]),
    # The client falls back to the next address when the first refuses or stays silent.
    ("second-answers", (V6, V4), {V6: SILENT, V4: OPEN}, OPEN, [V6, V4]),
    ("refused-then-open", (V4, V6), {V4: REFUSED, V6: OPEN}, OPEN, [V4, V6]),
    # No address answers: what the first address saw stands (FAIL for an allow).
    ("none-answers", (V4, V6), {V4: REFUSED, V6: SILENT}, REFUSED, [V4, V6]),
]


@pytest.mark.parametrize(
    ("order", "answers", "outcome", "tried"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_addresses_are_tried_in_order(
    monkeypatch: pytest.MonkeyPatch,
    order: tuple[str, ...],
    answers: dict[str, Outcome],
    outcome: Outcome,
    tried: list[str],
) -> None:
    report, seen = _run(monkeypatch, {a: {2200: o} for a, o in answers.items()}, *order)
    assert report.error is None
    assert report.outcomes == {2200: outcome}
    assert seen == tried
    assert [v for k, v in report.detail if k == "resolved"] == list(order)


def test_an_unresolvable_name_is_no_such_host(monkeypatch: pytest.MonkeyPatch) -> None:
    report, seen = _run(monkeypatch, {})
    assert seen == []
    assert report.outcomes == {2200: Outcome("unreachable", "no-such-host", 0)}


def test_an_address_outside_the_scope_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    report, seen = _run(monkeypatch, {V4: {2200: OPEN}}, V4, "fd00:9::9")
    assert seen == []
    assert report.error is not None and "fd00:9::9" in report.error
