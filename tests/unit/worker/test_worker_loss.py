"""Retries that follow the path's loss: the pure estimate, and SYN sweeps over a fake path.

The fake path answers every SYN to a listening port with a SYN-ACK and to a closed port with
a reset, each lost with probability `loss` (seeded: the same losses every run); other ports
stay silent. No root and no sockets: the sweep's rounds run exactly as on a real path.
"""

from __future__ import annotations

import random
import socket
import time
from collections import deque
from typing import Any, cast

import pytest

from reachproof.worker.loss import MISS_TARGET, LossMeter, attempts_for
from reachproof.worker.packets import ACK, RST, SYN, cookie
from reachproof.worker.syn import SAMPLE, Sweep, SynSession
from reachproof.worker.target import Target
from reachproof.worker.wire import Output, Progress, Request

ADDRESS = "192.0.2.7"
MOST = 10


class FakePath:
    """What SynSession gives a Sweep: send() and the answer queue."""

    def __init__(self, listening: set[int], closed: set[int], loss: float, seed: int) -> None:
        self.target = Target(ADDRESS, socket.AF_INET, None)
        self.family = socket.AF_INET
        self.dst = socket.inet_pton(socket.AF_INET, ADDRESS)
        self.key = 0x5EED
        self.events: deque[tuple[str, tuple[Any, ...], float]] = deque()
        self.listening, self.closed, self.loss = listening, closed, loss
        self.rng = random.Random(seed)
        self.sent: list[int] = []

    def send(self, ports: list[int], failed: dict[int, int]) -> None:
        for port in ports:
            self.sent.append(port)
            if port in self.listening:
                flags = SYN | ACK
            elif port in self.closed:
                flags = RST | ACK
            else:
                continue
            if self.rng.random() < self.loss:
                continue
            ack = cookie(self.key, port) + 1
            self.events.append(("tcp", (self.dst, port, 40000, flags, ack, 64), time.monotonic()))


def sweep(path: FakePath, ports: range, losses: LossMeter, most: int = MOST) -> Sweep:
    request = Request(
        "t", "tcp-syn", ADDRESS, 4, None, list(ports), 0.005, most, 0, {}, frozenset({ADDRESS})
    )
    done = Sweep(cast(SynSession, path), request, losses)
    done.run(Progress(Output(lambda _line: None, lambda: None), "t", len(ports)))
    return done


def silent_attempts(done: Sweep) -> set[int]:
    return {o.attempts for o in done.answers.values() if o.state == "filtered"}


def test_attempts_bring_the_miss_chance_below_the_target() -> None:
    assert attempts_for(0.0, MOST) == 2
    assert attempts_for(0.19, 20) == 9  # 10 % loss each way
    assert 0.19**9 < MISS_TARGET < 0.19**8
    assert attempts_for(0.01, MOST) == 3
    assert attempts_for(0.6, MOST) == MOST  # capped by the request
    assert attempts_for(1.0, MOST) == MOST
    assert attempts_for(0.3, 1) == 1  # never more than the request allows


def test_a_path_with_few_measurements_borrows_the_worse_vantage_tally() -> None:
    losses = LossMeter()
    assert losses.estimate("a").basis == "none"
    losses.record("b", 100, 20)
    borrowed = losses.estimate("a", 5, 0)
    assert borrowed.basis == "vantage" and borrowed.loss == pytest.approx(20 / 105)
    assert losses.estimate("a", 5, 4).basis == "path"  # its own ratio is the worse one
    losses.record("a", 40, 0)
    own = losses.estimate("a")
    assert own.basis == "path" and own.loss == 0.0  # enough of its own: the vantage's is moot


def test_no_loss_on_the_path_two_attempts_for_silent_ports() -> None:
    path = FakePath(listening={80, 443}, closed=set(range(1000, 1900)), loss=0.0, seed=1)
    done = sweep(path, range(1, 2001), LossMeter())
    assert silent_attempts(done) == {2}
    assert done.attempts == 2 and done.estimate.loss == 0.0
    assert {p for p, o in done.answers.items() if o.state == "open"} == {80, 443}
    silent = 2000 - 902
    assert len(path.sent) == 2000 + silent + SAMPLE  # round 2: the silent ports and the sample
    assert "0.000 on this path: 0 of" in done.loss_note()


def test_loss_on_the_path_grows_the_attempts_and_finds_every_open_port() -> None:
    listening = {22, 80, 443, 4500}
    path = FakePath(listening, closed=set(range(1000, 4000)), loss=0.19, seed=2)
    done = sweep(path, range(1, 5001), LossMeter(), most=20)
    assert 0.14 < done.estimate.loss < 0.25
    assert done.attempts == attempts_for(done.estimate.loss, 20) >= 8
    assert silent_attempts(done) == {done.attempts}
    assert {p for p, o in done.answers.items() if o.state == "open"} == listening
    assert f"{done.attempts} attempts at most" in done.loss_note()


def test_a_silent_host_uses_the_loss_seen_on_its_neighbours() -> None:
    losses = LossMeter()
    losses.record("198.51.100.1", 1000, 190)  # another target of this vantage, lossy
    filtered = FakePath(listening=set(), closed=set(), loss=0.0, seed=3)
    done = sweep(filtered, range(1, 501), losses)
    assert silent_attempts(done) == {attempts_for(0.19, MOST)}
    assert "this vantage" in done.loss_note()
    alone = sweep(FakePath(set(), set(), 0.0, seed=3), range(1, 501), LossMeter())
    assert silent_attempts(alone) == {2}
    assert "no probe that must answer" in alone.loss_note()


def test_every_port_answering_the_first_round_needs_no_second() -> None:
    losses = LossMeter()
    path = FakePath(listening={5}, closed=set(range(1, 101)) - {5}, loss=0.0, seed=4)
    done = sweep(path, range(1, 101), losses)
    assert done.attempts == 1 and len(path.sent) == 100
    assert done.loss_note() == "not measured: every port answered the first attempt"
    assert losses.estimate(ADDRESS) == (0.0, 0, 100, "path")
