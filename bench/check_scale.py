"""Time `check` of the shipped policy end to end on labs of growing size.

    sudo nice -n 10 .venv/bin/python bench/check_scale.py [--agents 8,16,64] [--prefix spscale]

Sizes as bench/lab_scale.py: A agents with 8·A containers in sessions of 4, half single-node
and half multi-node. Per lab it reports the plan's probes (ports × addresses), the SYN packets
the workers say they sent (their `sent` detail), the check's wall time, the checker's peak
memory (its own VmHWM; the workers are separate processes) and the verdicts. Target: the
64-agent lab in ≤ 10 minutes. Exits 1 when a rule does not PASS on a clean lab, 2 when a lab
cannot be built.
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lab_scale import sessions_for
from rich.console import Console
from rich.table import Table

from reachproof.api import build_report, prepare
from reachproof.engine.engine import run_plan
from reachproof.errors import PrerequisiteError, ReachproofError
from reachproof.lab.build import build_lab
from reachproof.lab.state import teardown
from reachproof.lab.topology import LabOptions
from reachproof.observation import Observation

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "backend-ai.policy"
TARGET_SECONDS = 600.0  # the 64-agent lab


@dataclass(frozen=True)
class Result:
    agents: int
    containers: int
    probes: int
    packets: int
    wall: float
    peak_mib: float
    verdicts: Counter[str]


def sent_packets(observations: tuple[Observation, ...]) -> int:
    """SYNs the workers report: the `sent` detail reads `N packets in S s: R per second`."""
    total = 0
    for observation in observations:
        for sent in observation.details("sent"):
            head = sent.split(" packets", 1)[0]
            if head.isdigit():
                total += int(head)
    return total


def checker_peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(agents: int, prefix: str, tmp: Path) -> Result:
    options = LabOptions.create(agents, sessions_for(agents), (), prefix, "drop")
    handle = build_lab(options, tmp / f"inventory-{agents}.yaml")
    try:
        prepared = prepare(POLICY, handle.inventory_path)
        probes = sum(max(1, len(s.ports)) for s in prepared.plan.specs)
        started = datetime.now(UTC)
        clock = time.perf_counter()
        observations = run_plan(prepared.plan, prepared.inventory)
        wall = time.perf_counter() - clock
        report = build_report(prepared, observations, started, datetime.now(UTC))
    finally:
        teardown(prefix)
    return Result(
        agents,
        len(handle.topology.containers),
        probes,
        sent_packets(observations),
        wall,
        checker_peak_mib(),
        Counter(str(r.verdict) for r in report.rules),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", default="8,16,64", help="comma list of lab sizes")
    parser.add_argument("--prefix", default="spscale")
    args = parser.parse_args(argv)
    # A kill runs the `finally` that takes the lab down, as an interrupt does.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    console = Console(width=120)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        for agents in (int(a) for a in args.agents.split(",")):
            try:
                result = measure(agents, args.prefix, Path(tmp))
            except PrerequisiteError as exc:
                console.print(f"cannot build the lab: {exc}")
                return 2
            except ReachproofError as exc:
                console.print(f"{agents} agents: check failed: {exc}")
                return 1
            results.append(result)
            console.print(f"{agents} agents: {result.wall:.1f} s, {result.peak_mib:.1f} MiB")
    table = Table(title="reachproof check, policies/backend-ai.policy, labs of growing size")
    for column in ("agents", "containers", "probes", "SYN packets", "wall s", "peak MiB"):
        table.add_column(column, justify="right")
    table.add_column("verdicts")
    for r in results:
        verdicts = ", ".join(f"{n} {v}" for v, n in sorted(r.verdicts.items()))
        table.add_row(
            str(r.agents),
            str(r.containers),
            f"{r.probes:,}",
            f"{r.packets:,}",
            f"{r.wall:.1f}",
            f"{r.peak_mib:.1f}",
            verdicts,
        )
    console.print(table)
    failed = any(r.verdicts.get("PASS", 0) != sum(r.verdicts.values()) for r in results)
    for r in results:
        if r.agents == 64:
            met = "meets" if r.wall <= TARGET_SECONDS else "misses"
            console.print(f"64 agents: {r.wall:.0f} s {met} the ≤ {TARGET_SECONDS:.0f} s target")
    if failed:
        console.print("[red]not every rule passed on a clean lab[/]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
