"""`tcp-syn` probes: raw SYNs in rounds, answers matched by cookie, resets attributed by hop.

Rounds: send to every port, resend only to the ports still silent, wait `timeout` after the
last send; an answer in any round decides the port. Round 2 needs no wait of its own: each
batch of round 1 is sent again as soon as it is `timeout` old, while later batches' answers
are still on the way (a full-range sweep saves one `timeout`); later rounds, which only a
lossy path gets, wait for the whole round before the next. Silent ports get 2 rounds, more where
the first two show loss on the path (`loss`), at most `attempts`. Handshakes are never
completed: the vantage's kernel resets the SYN-ACKs for a port it does not know.

The send loop is the hot path: packets go out in sendmmsg batches (`batch`), each slot a
prebuilt header patched in place with a single `pack_into`, the IPv4 checksum computed
incrementally (see `packets`), pacing per batch; one sendto per packet where sendmmsg is
not available. Hop attribution of resets is described in `hops`.
"""

from __future__ import annotations

import errno
import secrets
import select
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from reachproof.worker.batch import SLOTS, BatchSender, open_batch
from reachproof.worker.connect import run_connect
from reachproof.worker.hops import (
    TRACE_BUDGET,
    TRACE_WAITS,
    UNDECIDED,
    forged_by_hop,
    hops_of,
    trace_ttl,
)
from reachproof.worker.icmp import run_icmp
from reachproof.worker.icmp_errors import IcmpError, classify, is_time_exceeded
from reachproof.worker.local import local_failure
from reachproof.worker.loss import (
    MIN_ATTEMPTS,
    MUST_ANSWER,
    Estimate,
    LossMeter,
    attempts_for,
    meter,
)
from reachproof.worker.pacing import shared_pacer
from reachproof.worker.packets import (
    ACK,
    COOKIE_MIX,
    MASK32,
    OFFSET_FLAGS,
    PATCH_V4,
    PATCH_V6,
    RST,
    SYN,
    TCP_HEADER,
    WINDOW,
    cookie,
    syn_template,
    v4_base_sum,
    v4_syn_checksum,
)
from reachproof.worker.rawhub import RawHub, hub, sendmsg_with_ttl
from reachproof.worker.target import Target, route_source
from reachproof.worker.wire import Outcome, Output, ProbeReport, Progress, Request

BATCH = 256  # packets between pacing, progress and answer draining
SAMPLE = 256  # answered ports re-sent to in round 2 to measure the path's loss
POLL = 0.01
DEGRADED = "raw sockets not permitted: connect probes used"

if TYPE_CHECKING:  # subscripted ABCs fail at runtime on the Python 3.8 a vantage may have
    from collections.abc import Callable

    Tracer = Callable[["SynSession", int, int], tuple[str, str | None]]
    Echo = Callable[["SynSession"], int | None]


def reserve_port(family: int) -> socket.socket:
    """A bound socket that holds a source port for one session's raw SYNs.

    Bound to the wildcard address: a port bound on one local address only may be handed out
    again for another address (a container with two bridges sweeps from both), and the raw
    receiver knows answers by port alone. The wildcard makes the kernel refuse the port to
    every other bind and connect of this namespace while the session lives.
    """
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind(("0.0.0.0" if family == socket.AF_INET else "::", 0))
    except BaseException:
        sock.close()
        raise
    return sock


class SynSession:
    """One probe's raw conversation: a reserved local port, a cookie key, its answer queue."""

    def __init__(self, shared: RawHub, target: Target, source: str) -> None:
        self.hub = shared
        self.target = target
        self.family = target.family
        self.dst = socket.inet_pton(target.family, target.address)
        self.address = (target.address, 0)
        self.source = source
        self.reservation = reserve_port(target.family)
        self.sport = int(self.reservation.getsockname()[1])
        self.key = secrets.randbits(32)
        self.template = syn_template(self.sport)
        self.base = (
            v4_base_sum(socket.inet_pton(socket.AF_INET, source), self.dst, self.sport)
            if self.family == socket.AF_INET
            else 0
        )
        self.events: deque[tuple[str, tuple[Any, ...], float]] = deque()
        self.batch: BatchSender | None = None  # opened on first send (`sender`)
        self._sender_note: str | None = None
        try:
            self.hub.register(("tcp", self.sport), self._queue)
        except BaseException:
            self.reservation.close()
            raise

    def _queue(self, kind: str, reply: tuple[Any, ...]) -> None:
        self.events.append((kind, reply, time.monotonic()))

    def close(self) -> None:
        self.hub.unregister(("tcp", self.sport))
        self.reservation.close()

    def packet(self, port: int) -> bytes:
        seq = cookie(self.key, port)
        buf = bytearray(self.template)
        if self.family == socket.AF_INET:
            csum = v4_syn_checksum(self.base, port, seq)
            PATCH_V4.pack_into(buf, 2, port, seq, 0, OFFSET_FLAGS, WINDOW, csum)
        else:
            PATCH_V6.pack_into(buf, 2, port, seq)
        return bytes(buf)

    def sender(self) -> str:
        """How this session's packets leave (sendmmsg batches, or why one by one)."""
        if self._sender_note is None:
            self.batch, self._sender_note = open_batch(
                self.hub.tcp, self.family, self.target.address, bytes(self.template)
            )
        return self._sender_note

    def send(self, ports: list[int], failed: dict[int, int]) -> None:
        """Send a SYN to every port; ports the kernel refuses land in `failed` (errno)."""
        self.sender()
        if self.batch is None:
            self._send_each(ports, failed)
            return
        for start in range(0, len(ports), SLOTS):
            chunk = ports[start : start + SLOTS]
            self.fill(chunk)
            for slot, code in self.batch.send(len(chunk), self._wait_writable).items():
                failed[chunk[slot]] = code

    def fill(self, ports: list[int]) -> None:
        """The hot loop of the batch path: patch one slot of the batch per port."""
        assert self.batch is not None
        buf = self.batch.buffer
        key = self.key
        mix = COOKIE_MIX
        offset = 2
        if self.family == socket.AF_INET:
            patch = PATCH_V4.pack_into
            base = self.base
            flags = OFFSET_FLAGS
            window = WINDOW
            for port in ports:
                seq = ((port * mix) ^ key) & MASK32
                total = base + port + (seq >> 16) + (seq & 0xFFFF)
                total = (total & 0xFFFF) + (total >> 16)
                total = (total & 0xFFFF) + (total >> 16)
                patch(buf, offset, port, seq, 0, flags, window, ~total & 0xFFFF)
                offset += TCP_HEADER
        else:
            patch6 = PATCH_V6.pack_into
            for port in ports:
                patch6(buf, offset, port, ((port * mix) ^ key) & MASK32)
                offset += TCP_HEADER

    def _wait_writable(self) -> None:
        select.select([], [self.hub.tcp], [], 0.05)
        time.sleep(0.001)

    def _send_each(self, ports: list[int], failed: dict[int, int]) -> None:
        """Where sendmmsg is not available: one sendto per packet."""
        buf = self.template
        sendto = self.hub.tcp.sendto
        address = self.address
        key = self.key
        mix = COOKIE_MIX
        if self.family == socket.AF_INET:
            patch = PATCH_V4.pack_into
            base = self.base
            flags = OFFSET_FLAGS
            window = WINDOW
            for port in ports:
                seq = ((port * mix) ^ key) & MASK32
                total = base + port + (seq >> 16) + (seq & 0xFFFF)
                total = (total & 0xFFFF) + (total >> 16)
                total = (total & 0xFFFF) + (total >> 16)
                patch(buf, 2, port, seq, 0, flags, window, ~total & 0xFFFF)
                try:
                    sendto(buf, address)
                except OSError as exc:
                    self._send_failed(buf, port, exc, failed)
        else:
            patch6 = PATCH_V6.pack_into
            for port in ports:
                patch6(buf, 2, port, ((port * mix) ^ key) & MASK32)
                try:
                    sendto(buf, address)
                except OSError as exc:
                    self._send_failed(buf, port, exc, failed)

    def _send_failed(self, buf: bytearray, port: int, exc: OSError, failed: dict[int, int]) -> None:
        if exc.errno in (errno.EAGAIN, errno.ENOBUFS):
            # The shared socket is non-blocking (its reader must never block): wait, retry once.
            self._wait_writable()
            try:
                self.hub.tcp.sendto(buf, self.address)
                return
            except OSError as again:
                exc = again
            if exc.errno in (errno.EAGAIN, errno.ENOBUFS):
                return  # stays silent this round; the next round resends it
        failed[port] = exc.errno or 0


class Sweep:
    """The rounds of one probe and what each port ended as.

    Round 1 goes to every port; round 2 to the ports still silent, plus a re-send to a sample
    of ports that answered; what the two rounds show of the path's loss (see `loss`) decides
    how many more rounds the silent ports get.
    """

    def __init__(self, session: SynSession, request: Request, losses: LossMeter) -> None:
        self.session = session
        self.request = request
        self.losses = losses
        self.answers: dict[int, Outcome] = {}
        self.sent_at: dict[int, float] = {}
        self.attempt_of: dict[int, int] = {}
        self.resent: dict[int, float] = {}  # sample port -> when its must-answer SYN left
        self.reanswered: set[int] = set()
        self.version = 4 if session.family == socket.AF_INET else 6
        self.packets = 0  # SYNs sent over all rounds
        self.sending = 0.0  # seconds spent in send loops (pacing included, waits not)
        self.attempts = 0  # rounds sent
        self.estimate = Estimate(0.0, 0, 0, "none")
        self.decided = False  # whether round 2 measured the loss

    def rate(self) -> str:
        pps = self.packets / self.sending if self.sending > 0 else 0.0
        return f"{self.packets} packets in {self.sending:.3f}s: {pps:.0f} per second"

    def loss_note(self) -> str:
        if self.decided:
            return self.estimate.describe(self.attempts)
        if len(self.answers) == len(self.request.ports) and self.attempts <= 1:
            return "not measured: every port answered the first attempt"
        return f"not measured: {self.attempts} attempt(s) requested"

    def run(self, progress: Progress) -> None:
        most = self.request.attempts
        planned = min(most, MIN_ATTEMPTS)
        silent = list(self.request.ports)
        # Round 2 follows round 1 without a wait of its own: each batch of round 1 is sent
        # again once it is `timeout` old, to the ports of it still silent (`_resend`).
        self.attempts = 1
        self._round(silent, progress, wait=planned < 2)
        if planned >= 2:
            self._resend(silent, progress)
        silent = [p for p in silent if p not in self.answers]
        first = self._first()
        if self.attempts == 1:  # every port answered its first attempt: no loss seen
            self.losses.record(self.session.target.address, len(first), 0)
        elif self.attempts == 2:
            planned = self._decide(first, most)
        while self.attempts < planned and silent:
            self.attempts += 1
            self._round(silent, progress)
            silent = [p for p in silent if p not in self.answers]
        for port in silent:
            self.answers[port] = Outcome("filtered", "timeout", self.attempts)

    def _first(self) -> list[int]:
        """Ports that answered their first attempt with a SYN-ACK or reset."""
        return [p for p, o in self.answers.items() if o.attempts == 1 and o.reason in MUST_ANSWER]

    def _decide(self, first: list[int], most: int) -> int:
        """Tally round 2's evidence of loss, record it, and plan the rounds it calls for."""
        recovered = sum(
            1
            for p, o in self.answers.items()
            if self.attempt_of.get(p) == 2 and o.reason in MUST_ANSWER
        )
        sample = len(self.resent)
        trials = len(first) + sample
        lost = recovered + sample - len(self.reanswered)
        path = self.session.target.address
        self.estimate = self.losses.estimate(path, trials, lost)
        self.losses.record(path, trials, lost)
        self.decided = True
        return attempts_for(self.estimate.loss, most)

    def _resend(self, ports: list[int], progress: Progress) -> None:
        """Round 2, pipelined: batch by batch in round 1's order, each batch once its first
        SYNs are `timeout` old (so an answer to round 1 still counts as round 1's), to the
        ports that are still silent; then the wait for the last of them. The loss sample
        (ports that answered round 1 already) leaves first. Nothing to resend: no round 2."""
        request = self.request
        pacer = shared_pacer(request.pps)
        failed: dict[int, int] = {}
        sending = 0.0
        sent = 0
        sample: list[int] = []
        for start in range(0, len(ports), BATCH):
            batch = ports[start : start + BATCH]
            due = self.sent_at[batch[-1]] + request.timeout
            self.drain()
            while time.monotonic() < due and any(p not in self.answers for p in batch):
                time.sleep(min(POLL, max(0.0, due - time.monotonic())))
                self.drain()
                progress.update(len(self.answers))
            batch = [p for p in batch if p not in self.answers]
            if not batch:
                continue
            clock = time.monotonic()
            if not sent:
                self.attempts = 2
                sample = _sample(self._first(), self.answers)
                if sample:
                    self.resent.update(dict.fromkeys(sample, clock))
                    self.session.send(sample, {})  # an error here shows as a lost re-send
                    pacer.take(len(sample))
            self.sent_at.update(dict.fromkeys(batch, clock))
            self.attempt_of.update(dict.fromkeys(batch, 2))
            self.session.send(batch, failed)
            pacer.take(len(batch))
            sent += len(batch)
            sending += time.monotonic() - clock
            self.drain()
            progress.update(len(self.answers))
        if not sent:
            return
        self.packets += sent + len(sample)
        self.sending += sending
        self._wait(len(sample), progress)
        for port, code in failed.items():
            self.answers.setdefault(port, local_failure(code, 2))

    def _round(self, silent: list[int], progress: Progress, wait: bool = True) -> None:
        """Send one attempt to every port of `silent`, then (with `wait`) wait for answers."""
        pacer = shared_pacer(self.request.pps)
        failed: dict[int, int] = {}
        attempt = self.attempts
        round_started = time.monotonic()
        for start in range(0, len(silent), BATCH):
            batch = silent[start : start + BATCH]
            self.sent_at.update(dict.fromkeys(batch, time.monotonic()))
            self.attempt_of.update(dict.fromkeys(batch, attempt))
            self.session.send(batch, failed)
            pacer.take(len(batch))
            self.drain()
            progress.update(len(self.answers))
        self.packets += len(silent)
        self.sending += time.monotonic() - round_started
        if wait:
            self._wait(0, progress)
        for port, code in failed.items():
            self.answers.setdefault(port, local_failure(code, attempt))

    def _wait(self, sample: int, progress: Progress) -> None:
        """Wait `timeout` after the last send, or until every port and re-send answered."""
        deadline = time.monotonic() + self.request.timeout
        total = len(self.request.ports)
        while time.monotonic() < deadline and (
            len(self.answers) < total or len(self.reanswered) < sample
        ):
            time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
            self.drain()
            progress.update(len(self.answers))

    def drain(self) -> None:
        events = self.session.events
        dst = self.session.dst
        key = self.session.key
        answers = self.answers
        attempt_of = self.attempt_of
        while events:
            kind, reply, at = events.popleft()
            if kind == "tcp":
                src, port, _dport, flags, ack, ttl = reply
                if src != dst or port not in attempt_of:
                    continue
                if (ack - 1) & MASK32 != cookie(key, port):
                    continue
                if port in answers:
                    if port in self.resent and at >= self.resent[port]:
                        self.reanswered.add(port)
                    continue
                rtt = (at - self.sent_at[port]) * 1000.0
                if flags & SYN and flags & ACK:
                    answers[port] = Outcome("open", "syn-ack", attempt_of[port], rtt, ttl)
                elif flags & RST:
                    answers[port] = Outcome("closed", "rst", attempt_of[port], rtt, ttl)
            elif kind == "icmp":
                offender, icmp_type, code, _proto, qdst, _qsport, port, qseq, ttl = reply
                if qdst != dst or port in answers or port not in attempt_of:
                    continue
                if qseq != cookie(key, port):
                    continue
                error = IcmpError(self.version, icmp_type, code, _ntop(offender))
                state, reason = classify(error, self.session.target.address, "tcp")
                rtt = (at - self.sent_at[port]) * 1000.0
                answers[port] = Outcome(state, reason, attempt_of[port], rtt, ttl)


def _sample(first: list[int], answers: dict[int, Outcome]) -> list[int]:
    """Up to SAMPLE ports that answered round 1, resets first: a SYN-ACK is retransmitted by
    the target when our kernel's reset to it is lost, which would pass for a fresh answer."""
    resets = [p for p in first if answers[p].reason == "rst"]
    chosen = resets if len(resets) >= SAMPLE else resets + [p for p in first if p not in resets]
    step = max(1, len(chosen) // SAMPLE)
    return chosen[::step][:SAMPLE]


def _ntop(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def trace(
    session: SynSession, port: int, ttl: int, waits: tuple[float, ...] = TRACE_WAITS
) -> tuple[str, str | None]:
    """A TTL-limited SYN (from a fresh source port), retried once per entry of `waits` and
    paced by the worker's ICMP budget: ("router", address) if it expired on the way,
    ("target", None) if it drew a reset or SYN-ACK, ("silent", None) if no try did."""
    probe = SynSession(session.hub, session.target, session.source)
    try:
        packet = probe.packet(port)
        for wait in waits:
            TRACE_BUDGET.take()
            sendmsg_with_ttl(session.hub.tcp, session.family, packet, session.target.address, ttl)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                time.sleep(POLL)
                while probe.events:
                    kind, reply, _at = probe.events.popleft()
                    if kind == "tcp":
                        src, sport, _dport, _flags, ack, _ttl = reply
                        if (
                            src == probe.dst
                            and sport == port
                            and (ack - 1) & MASK32 == cookie(probe.key, port)
                        ):
                            return "target", None
                    elif kind == "icmp":
                        offender, icmp_type, _code, _p, qdst, _qs, qport, qseq, _ttl = reply
                        version = 4 if session.family == socket.AF_INET else 6
                        if (
                            qdst == probe.dst
                            and qport == port
                            and qseq == cookie(probe.key, port)
                            and is_time_exceeded(version, icmp_type)
                        ):
                            return "router", _ntop(offender)
        return "silent", None
    finally:
        probe.close()


def echo_ttl(session: SynSession) -> int | None:
    """The TTL of an echo reply from the target (rule 3's witness), or None without one."""
    seen = ProbeReport()
    request = Request(
        "echo",
        "icmp",
        session.target.address,
        None,
        None,
        [0],
        1.0,
        2,
        0,
        {},
        frozenset([session.target.address]),
    )
    run_icmp(request, session.target, seen, Progress(Output(lambda _t: 0, lambda: None), "", 1))
    outcome = seen.outcomes.get(0)
    return outcome.ttl if outcome is not None and outcome.state == "open" else None


def attribute_resets(
    session: SynSession,
    sweep: Sweep,
    report: ProbeReport,
    tracer: Tracer = trace,
    echo: Echo = echo_ttl,
) -> None:
    """Turn resets sent by a hop before the target into `prohibited reset-by-firewall`, and
    resets nobody can place into `error attribution-undecided` (module `hops`)."""
    answers = sweep.answers
    resets = {p: o for p, o in answers.items() if o.reason == "rst" and o.ttl is not None}
    if not resets:
        return
    synacks = [o.ttl for o in answers.values() if o.reason == "syn-ack" and o.ttl is not None]
    if synacks:
        target_ttl = min(synacks, key=hops_of)
        forged = _by_distance(answers, resets, target_ttl)
        report.add_detail(
            "hop-attribution",
            f"target is {hops_of(target_ttl)} router hop(s) away (SYN-ACK TTL {target_ttl}); "
            f"{forged} of {len(resets)} reset(s) came from closer: reset-by-firewall",
        )
        return
    by_ttl: dict[int, list[int]] = {}
    for port, outcome in sorted(resets.items()):
        by_ttl.setdefault(int(outcome.ttl or 0), []).append(port)
    echoed: list[int | None] = []  # asked at most once per probe, when a trace stays silent
    for ttl, ports in sorted(by_ttl.items()):
        limit = trace_ttl(ttl)
        verdict, router = tracer(session, ports[0], limit)
        where = f"resets with TTL {ttl} place the responder at hop {limit}"
        sent = f"a SYN to port {ports[0]} with TTL {limit}"
        group = {p: resets[p] for p in ports}
        if verdict == "router":
            _by_distance(answers, group, None)
            note = f"{sent} expired at router {router}"
            report.add_detail("hop-attribution", f"{where}; {note}: reset-by-firewall")
            continue
        if verdict == "target":
            report.add_detail("hop-attribution", f"{where}; {sent} reached the target: closed")
            continue
        if not echoed:
            echoed.append(echo(session))
        tries = f"{sent} drew no answer in {len(TRACE_WAITS)} paced tries"
        if echoed[0] is not None:
            forged = _by_distance(answers, group, echoed[0])
            state = "reset-by-firewall" if forged else "closed"
            away = hops_of(echoed[0])
            note = f"an echo reply (TTL {echoed[0]}) places the target {away} hop(s) away"
            report.add_detail("hop-attribution", f"{where}; {tries}; {note}: {state}")
            continue
        for port in ports:
            answers[port] = answers[port]._replace(state="error", reason=UNDECIDED)
        report.add_detail("hop-attribution", f"{where}; {tries}, and no echo reply: {UNDECIDED}")


def _by_distance(
    answers: dict[int, Outcome], resets: dict[int, Outcome], target_ttl: int | None
) -> int:
    """Mark the resets that crossed fewer routers than the target's own answer with
    `target_ttl` (all of them when None: a trace placed a router there); how many."""
    forged = 0
    for port, outcome in resets.items():
        if target_ttl is None or forged_by_hop(int(outcome.ttl or 0), target_ttl):
            answers[port] = outcome._replace(state="prohibited", reason="reset-by-firewall")
            forged += 1
    return forged


def run_syn(request: Request, target: Target, report: ProbeReport, progress: Progress) -> None:
    try:
        shared = hub(target.family)
    except PermissionError:
        report.degraded = DEGRADED
        run_connect(request, target, report, progress)
        return
    try:
        source = route_source(target)
    except OSError as exc:
        for port in request.ports:
            report.outcomes[port] = local_failure(exc.errno or 0, 1)
        return
    session = SynSession(shared, target, source)
    try:
        sweep = Sweep(session, request, meter())
        sweep.run(progress)
        report.add_detail("sent", sweep.rate())
        report.add_detail("sender", session.sender())
        report.add_detail("loss", sweep.loss_note())
        try:
            attribute_resets(session, sweep, report)
        except OSError as exc:
            # A TTL-limited SYN the local firewall refuses (EPERM) or cannot route decides
            # nothing about who sent the resets; the sweep's own answers still stand.
            report.add_detail("hop-attribution", f"not possible here: {exc}")
        report.outcomes.update(sweep.answers)
    finally:
        session.close()
