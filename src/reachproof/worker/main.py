"""The worker's main loop: read requests line by line, run probes concurrently, reply.

Each probe runs in a pool thread; a probe that raises becomes its own `result` with `error`
set, so one bad probe never takes the worker (and every other probe) down. Unknown or
malformed lines are logged and skipped. EOF or `bye` lets running probes finish, then the
worker says `bye` and exits 0.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from reachproof.worker import protocol
from reachproof.worker.checks import run_check
from reachproof.worker.connect import run_connect
from reachproof.worker.http import run_http, run_websocket
from reachproof.worker.icmp import run_icmp
from reachproof.worker.local import route_failure
from reachproof.worker.loss import attempts_for, meter
from reachproof.worker.sensor import run_sense, stop_sensor
from reachproof.worker.syn import run_syn
from reachproof.worker.target import NoSuchHost, OutOfScope, Target, resolve_all, resolve_target
from reachproof.worker.tls import run_tls
from reachproof.worker.udp import run_udp
from reachproof.worker.wire import (
    BadRequest,
    Outcome,
    Output,
    ProbeReport,
    Progress,
    Request,
    parse_probe,
)

MAX_CONCURRENT_PROBES = 32
# Probe kinds that measure the path's loss themselves and size their retries on it.
MEASURING = (protocol.KIND_TCP_SYN, protocol.KIND_TCP_CONNECT)

if TYPE_CHECKING:  # subscripted ABCs fail at runtime on the Python 3.8 a vantage may have
    NetworkProbe = Callable[[Request, Target, ProbeReport, Progress], None]


def raw_permitted() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()
    except OSError:
        return False
    return True


def hello() -> dict[str, Any]:
    return {
        "op": "hello",
        "version": protocol.VERSION,
        "pid": os.getpid(),
        "uid": os.getuid(),
        "python": sys.version.split()[0],
        "raw": raw_permitted(),
        "hostname": socket.gethostname(),
    }


def _network_probes() -> dict[str, NetworkProbe]:
    return {
        protocol.KIND_TCP_CONNECT: run_connect,
        protocol.KIND_TCP_SYN: run_syn,
        protocol.KIND_UDP: run_udp,
        protocol.KIND_ICMP: run_icmp,
        protocol.KIND_HTTP: run_http,
        protocol.KIND_WEBSOCKET: run_websocket,
        protocol.KIND_TLS: run_tls,
    }


def _run_network(request: Request, report: ProbeReport, progress: Progress) -> None:
    runner = _network_probes().get(request.kind)
    if runner is None:
        report.error = f"unknown probe kind {request.kind!r}"
        return
    try:
        if request.resolve and request.family is None:
            _run_by_name(request, resolve_all(request), runner, report, progress)
            return
        target = resolve_target(request)
    except NoSuchHost as exc:
        report.add_detail("resolve-error", str(exc))
        for port in request.ports:
            report.outcomes[port] = Outcome("unreachable", "no-such-host", 0)
        return
    except OutOfScope as exc:
        report.error = str(exc)
        return
    if target.resolved_from is not None:
        report.add_detail("resolved", target.address)
    _run_address(request, target, runner, report, progress)


def _run_by_name(
    request: Request,
    targets: list[Target],
    runner: NetworkProbe,
    report: ProbeReport,
    progress: Progress,
) -> None:
    """A probe by hostname in any family: the addresses tried in the resolver's order, as a
    client does. A port is `open` once any address answers it; a port no address opens keeps
    what the first address that got an answer saw (an address the vantage cannot even send to
    is skipped, as a client skips it)."""
    for target in targets:
        report.add_detail("resolved", target.address)
    remaining = list(request.ports)
    kept: dict[int, Outcome] = {}
    for target in targets:
        seen = ProbeReport()
        _run_address(request._replace(ports=remaining), target, runner, seen, progress)
        if seen.error is not None:
            report.add_detail("tried", f"{target.address}: {seen.error}")
            continue
        report.degraded = report.degraded or seen.degraded
        report.detail.extend(seen.detail)
        opened = [p for p in remaining if seen.outcomes.get(p, _UNSEEN).state == "open"]
        report.add_detail("tried", f"{target.address}: {len(opened)} of {len(remaining)} open")
        for port in remaining:
            outcome = seen.outcomes.get(port, _UNSEEN)
            if port in opened or kept.get(port, _UNSEEN).state == "error":
                kept[port] = outcome
        remaining = [p for p in remaining if p not in opened]
        if not remaining:
            break
    report.outcomes.update(kept)


_UNSEEN = Outcome("error", "not-probed", 0)


def _run_address(
    request: Request, target: Target, runner: NetworkProbe, report: ProbeReport, progress: Progress
) -> None:
    unroutable = route_failure(target.address, target.family)
    if unroutable is not None:
        for port in request.ports:
            report.outcomes[port] = Outcome("error", unroutable, 0)
        return
    if request.kind not in MEASURING:
        # Silence here tells no loss; the path's tally from the TCP sweeps decides.
        estimate = meter().estimate(target.address)
        request = request._replace(attempts=attempts_for(estimate.loss, request.attempts))
        report.add_detail("loss", estimate.describe(request.attempts))
    runner(request, target, report, progress)


def run_probe(request: Request, output: Output) -> None:
    report = ProbeReport()
    progress = Progress(output, request.id, len(request.ports))
    try:
        if request.kind == protocol.KIND_CHECK:
            run_check(request, report)
        elif request.kind == protocol.KIND_UDP_SENSE:
            run_sense(request, report, progress)
        else:
            _run_network(request, report, progress)
    except Exception as exc:  # a probe's bug must not kill the worker
        report.error = f"{type(exc).__name__}: {exc}"
        output.log(f"probe {request.id} failed:\n{traceback.format_exc()}")
    if report.error is not None:
        fill = Outcome("error", "probe-failed", 0)
    else:
        fill = Outcome("error", "not-probed", 0)
    for port in request.ports:
        report.outcomes.setdefault(port, fill)
    if request.ports:
        progress.update(len(request.ports), force=True)
    output.send(report.message(request.id))


def serve(lines: Iterable[bytes], output: Output) -> None:
    pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_PROBES)
    try:
        for raw_line in lines:
            line = raw_line.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                output.log(f"malformed line ignored: {line[:200]!r}")
                continue
            if not isinstance(message, dict):
                output.log(f"not a JSON object, ignored: {line[:200]!r}")
                continue
            op = message.get("op")
            if op == "hello":
                output.send(hello())
            elif op == "probe":
                try:
                    request = parse_probe(message)
                except BadRequest as exc:
                    output.log(f"bad probe request: {exc}")
                    if isinstance(message.get("id"), str):
                        output.send(_rejected(message["id"], str(exc)))
                    continue
                pool.submit(run_probe, request, output)
            elif op == "sense-stop":
                if not stop_sensor(str(message.get("id"))):
                    output.log(f"sense-stop for unknown sensor {message.get('id')!r}")
            elif op == "bye":
                break
            else:
                output.log(f"unknown op {op!r} ignored")
    finally:
        pool.shutdown(wait=True)
    output.send({"op": "bye"})


def _rejected(probe_id: str, why: str) -> dict[str, Any]:
    report = ProbeReport()
    report.error = f"bad request: {why}"
    return report.message(probe_id)


def main() -> None:
    stdout = sys.stdout
    output = Output(stdout.write, stdout.flush)
    serve(sys.stdin.buffer, output)
