"""Full-range TCP sweep of the default lab from the user: reachproof's SYN engine vs nmap.

    sudo .venv/bin/python bench/sweep_vs_nmap.py [--prefix rpb] [--pps 150000] [--v6]

Builds the default lab (`build_lab` defaults, prefix rpb), then sweeps 1-65535/tcp of every
agent and container address (IPv4; IPv6 too with --v6) plus the webserver and the AppProxy —
the only hosts with ports open to the user, so "no open port missed" means something — once
with reachproof (SYN engine, 2 attempts per silent port, like nmap's --max-retries 1) and
once with `nmap -sS -T4 --min-rate 20000 --max-retries 1 -Pn -n` inside the user namespace.

SYN packets are counted where both must pass: a counter on the perimeter's forward hook for
packets from the Internet side, so the figure is the same for both tools whatever socket
they send with. Targets: ≥ 3× faster than nmap, ≥ 100k packets per second, zero open ports
missed. Exit 1 if reachproof missed an open port (or a run failed), 2 if labs cannot be built
here. The lab is always torn down.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from reachproof.engine import EngineOptions, run_specs
from reachproof.engine.nmap import parse_nmap_xml
from reachproof.errors import PrerequisiteError, ReachproofError
from reachproof.inventory.load import load_inventory
from reachproof.lab.build import LabHandle, build_lab
from reachproof.lab.netns import netns_path
from reachproof.lab.serviceplan import service_plan
from reachproof.lab.state import teardown
from reachproof.lab.topology import COORDINATOR_PORT, WEB_PORT, WORKER_PORTS, LabOptions
from reachproof.observation import PortState
from reachproof.plan import Expectation, ProbeKind, ProbeSpec
from reachproof.policy.ast import Action
from reachproof.ports import PortSet

ALL_PORTS = PortSet.parse("1-65535")
COUNTER_TABLE = "rpbcount"
NMAP_ARGS = ("-sS", "-T4", "--min-rate", "20000", "--max-retries", "1", "-Pn", "-n")
SPEEDUP_TARGET = 3.0
PPS_TARGET = 100_000


@dataclass(frozen=True)
class Target:
    host: str
    address: str
    open_ports: frozenset[int]  # what the lab opened to the user


@dataclass(frozen=True)
class Run:
    tool: str
    seconds: float
    packets: int
    sending: float  # seconds from the first SYN counted to the last
    found: dict[str, frozenset[int]]  # address → open ports seen


class Sampler:
    """Reads the SYN counter every 0.2 s while a tool runs: when sending started and ended."""

    def __init__(self, fw: str) -> None:
        self.fw = fw
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.samples.append((time.monotonic(), read_counter(self.fw)))

    def sending(self) -> float:
        first = next((t for t, n in self.samples if n > 0), None)
        final = self.samples[-1][1] if self.samples else 0
        last = next((t for t, n in self.samples if n >= final), None)
        return (last - first) if first is not None and last is not None else 0.0


def targets(handle: LabHandle, v6: bool) -> list[Target]:
    topo = handle.topology
    listening: dict[str, set[int]] = {}
    for listener in service_plan(topo, handle.targets).listeners:
        listening.setdefault(listener.netns, set()).add(listener.port)
    # The perimeter lets the user reach these and nothing else (docs/lab.md, "Firewalls").
    allowed = {
        "webserver": {WEB_PORT},
        "appproxy": {COORDINATOR_PORT, *WORKER_PORTS},
    }
    out: list[Target] = []
    hosts = [
        *((n.name, n.netns, n.addr) for n in topo.management if n.name in allowed),
        *((a.name, a.node.netns, a.node.addr) for a in topo.agents),
        *((c.host_name, c.netns, c.addr) for c in topo.containers),
    ]
    for name, netns, addr in hosts:
        visible = frozenset(listening.get(netns, set()) & allowed.get(name, set()))
        out.append(Target(name, str(addr.v4.ip), visible))
        if v6:
            out.append(Target(name, str(addr.v6.ip), visible))
    return out


def _nft(netns: str, script: str) -> str:
    return subprocess.run(
        ["nsenter", f"--net={netns_path(netns)}", "nft", "-f", "-"],
        input=script, text=True, capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip


def reset_counter(fw: str) -> None:
    _nft(fw, f"add table inet {COUNTER_TABLE}\ndelete table inet {COUNTER_TABLE}\n")
    _nft(
        fw,
        f"table inet {COUNTER_TABLE} {{\n  chain syns {{\n"
        "    type filter hook forward priority -50; policy accept;\n"
        '    iifname "ext" tcp flags & (syn | ack) == syn counter\n  }\n}\n',
    )


def read_counter(fw: str) -> int:
    listing = subprocess.run(
        ["nsenter", f"--net={netns_path(fw)}", "nft", "list", "table", "inet", COUNTER_TABLE],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    match = re.search(r"counter packets (\d+)", listing)
    return int(match.group(1)) if match else 0


def run_reachproof(handle: LabHandle, chosen: list[Target], pps: int) -> Run:
    inventory = load_inventory(handle.inventory_path)
    specs = [
        ProbeSpec(
            id=f"sweep/{t.address}", rule_id="bench", statement=0, hop=0, vantage="user",
            source="user", target=t.host, address=t.address,
            family=6 if ":" in t.address else 4, kind=ProbeKind.TCP, ports=ALL_PORTS,
            expect=Expectation(Action.REACH),
        )
        for t in chosen
    ]  # fmt: skip
    options = EngineOptions(attempts=2, pps=pps, vantage_pps=pps, in_flight=len(specs))
    reset_counter(handle.topology.fw_netns)
    started = time.monotonic()
    with Sampler(handle.topology.fw_netns) as sampler:
        observed = run_specs(specs, inventory, options)
    seconds = time.monotonic() - started
    found: dict[str, frozenset[int]] = {}
    for spec, obs in zip(specs, observed, strict=True):
        if obs.error or obs.degraded:
            raise SystemExit(
                f"reachproof sweep of {spec.address} failed: {obs.error or obs.degraded}"
            )
        covered = sum(len(r.ports) for r in obs.results)
        if covered != len(ALL_PORTS):
            raise SystemExit(
                f"reachproof left {len(ALL_PORTS) - covered} ports of {spec.address} unobserved"
            )
        found[str(spec.address)] = frozenset(
            p for r in obs.results if r.state is PortState.OPEN for p in r.ports
        )
    packets = read_counter(handle.topology.fw_netns)
    return Run("reachproof syn", seconds, packets, sampler.sending(), found)


def run_nmap(handle: LabHandle, chosen: list[Target]) -> Run:
    found: dict[str, frozenset[int]] = {}
    reset_counter(handle.topology.fw_netns)
    started = time.monotonic()
    with Sampler(handle.topology.fw_netns) as sampler:
        for family in (4, 6):
            addresses = [t.address for t in chosen if (":" in t.address) == (family == 6)]
            if not addresses:
                continue
            argv = [
                "ip", "netns", "exec", handle.topology.user.netns, "nmap", *NMAP_ARGS,
                *(["-6"] if family == 6 else []), "-p", "1-65535", "-oX", "-", *addresses,
            ]  # fmt: skip
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=True)
            for address, ports in parse_nmap_xml(done.stdout).items():
                found[address] = frozenset(
                    p for p, seen in ports.items() if seen.state is PortState.OPEN
                )
    seconds = time.monotonic() - started
    packets = read_counter(handle.topology.fw_netns)
    return Run("nmap -sS -T4", seconds, packets, sampler.sending(), found)


def missed(run: Run, chosen: list[Target]) -> int:
    return sum(len(t.open_ports - run.found.get(t.address, frozenset())) for t in chosen)


def _met(ok: bool) -> str:
    return "target met:" if ok else "target NOT met:"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="rpb")
    parser.add_argument("--pps", type=int, default=150_000)
    parser.add_argument("--v6", action="store_true", help="also sweep every IPv6 address")
    args = parser.parse_args(argv)
    with TemporaryDirectory() as tmp:
        try:
            handle = build_lab(LabOptions.create(prefix=args.prefix), Path(tmp) / "inventory.yaml")
        except PrerequisiteError as exc:
            print(f"cannot build the lab here: {exc}", file=sys.stderr)
            return 2
        try:
            chosen = targets(handle, args.v6)
            ours = run_reachproof(handle, chosen, args.pps)
            theirs = run_nmap(handle, chosen)
        except (ReachproofError, subprocess.SubprocessError) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        finally:
            teardown(args.prefix)
    probes = len(chosen) * len(ALL_PORTS)
    expected = sum(len(t.open_ports) for t in chosen)
    print(f"{len(chosen)} addresses × 65535 ports = {probes} probes; {expected} open to the user")
    header = ("tool", "wall s", "probes/s", "SYN pkts", "pkts/s", "sending s", "pkts/s", "missed")
    print("{:<16} {:>7} {:>9} {:>9} {:>8} {:>10} {:>8} {:>7}".format(*header))
    for run in (ours, theirs):
        print(
            f"{run.tool:<16} {run.seconds:>7.2f} {probes / run.seconds:>9.0f} {run.packets:>9} "
            f"{run.packets / run.seconds:>8.0f} {run.sending:>10.2f} "
            f"{run.packets / max(run.sending, 1e-9):>8.0f} {missed(run, chosen):>7}"
        )
    print("pkts/s: over the wall time, then over the span from the first SYN to the last")
    ratio = theirs.seconds / ours.seconds
    pps = ours.packets / max(ours.sending, 1e-9)
    lost = missed(ours, chosen)
    print(
        f"speed-up over nmap: {ratio:.2f}x ({_met(ratio >= SPEEDUP_TARGET)} ≥ {SPEEDUP_TARGET:g}x)"
    )
    print(
        f"reachproof packets/s while sending: {pps:.0f} ({_met(pps >= PPS_TARGET)} ≥ {PPS_TARGET})"
    )
    print(f"open ports missed by reachproof: {lost} ({_met(lost == 0)} 0)")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
