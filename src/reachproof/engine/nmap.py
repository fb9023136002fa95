"""`--engine nmap`: the same TCP specs through `nmap -sS --reason` at the vantage, a cross-check.

nmap runs where the worker would: in this namespace, inside `ip netns exec NS`, or behind an
exec vantage's command prefix (nmap must then be installed there). Specs of one family and
one port set share one nmap run. Its XML is read with xml.etree rather than python-nmap's
parser, because python-nmap drops `<extraports>` — and a full-range sweep is mostly extraports
(nmap ≥ 7.90 lists their ports in `extrareasons`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

from reachproof.engine.options import EngineOptions
from reachproof.engine.progress import ProbeProgress, ProgressSink
from reachproof.engine.ratelimit import expected_seconds
from reachproof.inventory.model import Transport, Vantage
from reachproof.observation import Observation, PortResult, PortState
from reachproof.plan import ProbeSpec
from reachproof.ports import PortSet

_PROHIBITED = {"admin-prohibited", "host-prohibited", "net-prohibited", "port-unreach"}
_UNREACHABLE = {"host-unreach", "net-unreach", "proto-unreach", "network-unreach"}
_BY_STATE = {
    "open": PortState.OPEN,
    "closed": PortState.CLOSED,
    "filtered": PortState.FILTERED,
    "unfiltered": PortState.CLOSED,  # an answer came back: the packet was not filtered
    "open|filtered": PortState.OPEN_FILTERED,
    "closed|filtered": PortState.FILTERED,
}


class NmapError(Exception):
    """nmap could not run or its output could not be read (becomes error observations)."""


@dataclass(frozen=True)
class NmapPort:
    state: PortState
    reason: str
    ttl: int | None


def nmap_argv(
    vantage: Vantage,
    ports: PortSet,
    family: int | None,
    addresses: Iterable[str],
    options: EngineOptions,
    pps: int,
) -> list[str]:
    if vantage.transport is Transport.NETNS:
        prefix = ["ip", "netns", "exec", vantage.netns or ""]
    elif vantage.transport is Transport.EXEC:
        prefix = list(vantage.command)
    else:
        prefix = []
    return [
        *prefix,
        "nmap",
        "-sS",
        "--reason",
        "-Pn",
        "-n",
        "--max-retries",
        str(configured_attempts(options) - 1),
        "--max-rtt-timeout",
        f"{max(1, round(options.timeout * 1000))}ms",
        "--max-rate",
        str(pps),
        "-p",
        str(ports),
        "-oX",
        "-",
        *(["-6"] if family == 6 else []),
        *addresses,
    ]


def classify(state: str, reason: str) -> PortState:
    """A PortState for nmap's state and reason (the reason decides where nmap is coarser)."""
    if reason in _PROHIBITED:
        return PortState.PROHIBITED
    if reason in _UNREACHABLE:
        return PortState.UNREACHABLE
    return _BY_STATE.get(state, PortState.ERROR)


def our_reason(reason: str) -> str:
    """nmap's reason in reachproof's words (syn-ack, rst, timeout, icmp-…)."""
    if reason == "reset":
        return "rst"
    if reason == "no-response":
        return "timeout"
    if reason in _PROHIBITED | _UNREACHABLE:
        return f"icmp-{reason}"
    return reason


def parse_nmap_xml(text: str) -> dict[str, dict[int, NmapPort]]:
    """Per scanned address, every port nmap reported (listed or in `extraports`)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise NmapError(f"unreadable nmap XML: {exc}") from exc
    out: dict[str, dict[int, NmapPort]] = {}
    for host in root.iter("host"):
        address = next(
            (a.get("addr") for a in host.iter("address") if a.get("addrtype") in ("ipv4", "ipv6")),
            None,
        )
        if address is None:
            continue
        ports = out.setdefault(address, {})
        for extra in host.iter("extraports"):
            state = extra.get("state", "")
            for why in extra.iter("extrareasons"):
                listed = why.get("ports")
                if not listed:
                    continue  # an old nmap that does not say which ports: leave them unobserved
                reason = why.get("reason", "")
                entry = NmapPort(classify(state, reason), our_reason(reason), None)
                for port in PortSet.parse(listed):
                    ports[port] = entry
        for item in host.iter("port"):
            if item.get("protocol") != "tcp":
                continue
            st = item.find("state")
            if st is None:
                continue
            reason = st.get("reason", "")
            ttl = st.get("reason_ttl")
            ports[int(item.get("portid", "0"))] = NmapPort(
                classify(st.get("state", ""), reason),
                our_reason(reason),
                int(ttl) if ttl and ttl != "0" else None,
            )
    return out


def configured_attempts(options: EngineOptions) -> int:
    """The attempts nmap is configured for (`--max-retries` this less one): what a silent
    port's result records. nmap's own timing decides how many it sends; with no retry that
    ever succeeded on the host, 2 (ultra_scan's allowedTryno)."""
    return options.attempts


def observation_from_nmap(spec: ProbeSpec, seen: dict[int, NmapPort], attempts: int) -> Observation:
    """Group nmap's per-port answers into runs; ports nmap did not report stay unobserved.
    `attempts` is configured_attempts(): a silent port records it, with the `loss` detail."""
    groups: dict[NmapPort, list[int]] = {}
    for port in spec.ports:
        found = seen.get(port)
        if found is not None:
            groups.setdefault(found, []).append(port)
    results = tuple(
        PortResult(
            ports=PortSet.of(ports),
            state=entry.state,
            reason=entry.reason,
            attempts=attempts if entry.reason == "timeout" else 1,
            ttl=entry.ttl,
        )
        for entry, ports in groups.items()
    )
    covered = PortSet.of(r for res in results for r in res.ports.ranges)
    missing = spec.ports.difference(covered)
    loss = (
        f"not measured by reachproof: nmap -sS --max-retries {attempts - 1} "
        f"(at most {attempts} attempts; nmap's timing decides how many it sends)"
    )
    detail = (("engine", "nmap"), ("loss", loss)) + (
        (("unobserved", str(missing)),) if missing else ()
    )
    return Observation(spec.id, results, detail)


async def run_nmap(
    vantage: Vantage,
    specs: list[ProbeSpec],
    options: EngineOptions,
    budget: int,
    progress: ProgressSink | None,
) -> list[Observation]:
    """One nmap run per (family, port set) group of `specs`, one after the other."""
    groups: dict[tuple[int | None, PortSet], list[ProbeSpec]] = {}
    for spec in specs:
        groups.setdefault((spec.family, spec.ports), []).append(spec)
    out: list[Observation] = []
    for (family, ports), group in groups.items():
        addresses = list(dict.fromkeys(str(s.address) for s in group))
        argv = nmap_argv(vantage, ports, family, addresses, options, budget)
        probes = len(ports) * len(addresses)
        deadline = options.grace + 2 * expected_seconds(
            probes, options.attempts, options.timeout, budget
        )
        try:
            scanned = parse_nmap_xml(await _run(argv, deadline))
        except NmapError as exc:
            out += [Observation(s.id, error=f"vantage {vantage.name!r}: {exc}") for s in group]
            continue
        for spec in group:
            out.append(
                observation_from_nmap(
                    spec, scanned.get(str(spec.address), {}), configured_attempts(options)
                )
            )
            if progress is not None:
                total = len(spec.ports)
                progress(ProbeProgress(vantage.name, spec.id, total, total))
    return out


async def _run(argv: list[str], deadline: float) -> str:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise NmapError(f"cannot start {argv[0]!r}: {exc}") from exc
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), deadline)
    except BaseException as exc:  # also a cancelled run (Ctrl-C): nmap has its own session
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        if isinstance(exc, TimeoutError):
            raise NmapError(f"nmap did not finish within {deadline:.0f}s") from exc
        raise
    if process.returncode != 0:
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-2:]
        raise NmapError(f"nmap exited with status {process.returncode}: {' / '.join(tail)}")
    return stdout.decode("utf-8", "replace")
