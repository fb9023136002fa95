"""Hop attribution of resets (worker/hops.py, syn.attribute_resets), with fakes for the trace
and the echo witness: IPv6 hop limits are judged exactly as IPv4 TTLs, and a reset nobody can
place is `attribution-undecided`, never `closed`."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from reachproof.worker.hops import UNDECIDED, IcmpBudget
from reachproof.worker.syn import attribute_resets
from reachproof.worker.wire import Outcome, ProbeReport

# A Linux host 2 routers away answers with 62; the first-hop firewall's own reset with 64.
TARGET, FIREWALL = 62, 64


def _rst(ttl: int) -> Outcome:
    return Outcome("closed", "rst", 1, 1.0, ttl)


def _attribute(
    answers: dict[int, Outcome],
    trace: tuple[str, str | None] = ("silent", None),
    echo: int | None = None,
) -> tuple[dict[int, Outcome], list[str], list[tuple[int, int]]]:
    traced: list[tuple[int, int]] = []

    def tracer(_session: Any, port: int, ttl: int) -> tuple[str, str | None]:
        traced.append((port, ttl))
        return trace

    report = ProbeReport()
    sweep = SimpleNamespace(answers=dict(answers))
    attribute_resets(None, sweep, report, tracer=tracer, echo=lambda _s: echo)  # type: ignore[arg-type]
    notes = [v for k, v in report.detail if k == "hop-attribution"]
    return sweep.answers, notes, traced


# (case, answers, trace result, echo TTL, expected (state, reason) of port 22)
CASES = [
    (
        "syn-ack-farther",
        {22: _rst(FIREWALL), 443: Outcome("open", "syn-ack", 1, 1.0, TARGET)},
        ("silent", None),
        None,
        ("prohibited", "reset-by-firewall"),
    ),
    (
        "syn-ack-same-distance",
        {22: _rst(TARGET), 443: Outcome("open", "syn-ack", 1, 1.0, TARGET)},
        ("silent", None),
        None,
        ("closed", "rst"),
    ),
    (
        "every-port-reset-trace-expires",
        {22: _rst(FIREWALL)},
        ("router", "2001:db8:ff::1"),
        None,
        ("prohibited", "reset-by-firewall"),
    ),
    (
        "every-port-reset-trace-reaches",
        {22: _rst(FIREWALL)},
        ("target", None),
        None,
        ("closed", "rst"),
    ),
    (
        "trace-silent-echo-farther",
        {22: _rst(FIREWALL)},
        ("silent", None),
        TARGET,
        ("prohibited", "reset-by-firewall"),
    ),
    ("trace-silent-echo-same", {22: _rst(FIREWALL)}, ("silent", None), FIREWALL, ("closed", "rst")),
    ("undecided", {22: _rst(FIREWALL)}, ("silent", None), None, ("error", UNDECIDED)),
]


@pytest.mark.parametrize(
    ("answers", "trace", "echo", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_attribution(
    answers: dict[int, Outcome],
    trace: tuple[str, str | None],
    echo: int | None,
    expected: tuple[str, str],
) -> None:
    decided, notes, _ = _attribute(answers, trace, echo)
    assert (decided[22].state, decided[22].reason) == expected
    assert notes  # the report always says how it decided


def test_the_trace_goes_to_the_responders_position_once_per_ttl() -> None:
    answers = {p: _rst(FIREWALL) for p in range(1, 100)} | {200: _rst(TARGET)}
    _, _, traced = _attribute(answers, ("target", None))
    assert traced == [(200, 3), (1, 1)]  # sorted by TTL: 62 → hop 3, 64 → hop 1


def test_undecided_says_so_and_never_closed() -> None:
    decided, notes, _ = _attribute({22: _rst(FIREWALL), 23: _rst(FIREWALL)})
    assert {o.state for o in decided.values()} == {"error"}
    assert UNDECIDED in notes[-1] and "paced tries" in notes[-1]


def test_the_echo_witness_is_asked_once_per_probe() -> None:
    asked: list[int] = []
    report = ProbeReport()
    sweep = SimpleNamespace(answers={22: _rst(64), 23: _rst(63)})

    def echo(_s: Any) -> int | None:
        asked.append(1)
        return None

    attribute_resets(None, sweep, report, tracer=lambda *_a: ("silent", None), echo=echo)  # type: ignore[arg-type]
    assert len(asked) == 1


def test_the_icmp_budget_allows_a_burst_then_one_per_second() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    budget = IcmpBudget(burst=6, per_second=1.0, clock=lambda: now[0], sleep=sleep)
    waits = [budget.take() for _ in range(8)]
    assert waits[:6] == [0.0] * 6
    assert waits[6:] == [1.0, 2.0]  # queued behind each other, one token a second
    now[0] = 10.0  # idle long enough: the bucket refills to its burst, no more
    assert budget.take() == 0.0
    assert budget.tokens == pytest.approx(5.0)
