"""Build labs of growing size and report build time, teardown time and the supervisor's peak memory.

    sudo .venv/bin/python bench/lab_scale.py [--max-agents 64] [--prefix rpbench]

Sizes: A agents with 8·A containers in sessions of 4, half single-node and half multi-node,
up to 64 agents / 512 containers. Target on a 2-core machine: the largest lab up in ≤ 60 s
and down in ≤ 30 s. Exits 1 when a build or teardown fails (or misses the target), 2 when the
machine cannot build labs at all.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from reachproof.errors import PrerequisiteError, ReachproofError
from reachproof.lab.build import build_lab
from reachproof.lab.netns import list_netns
from reachproof.lab.state import teardown
from reachproof.lab.topology import LabOptions

UP_TARGET = 60.0
DOWN_TARGET = 30.0
SIZES = (3, 8, 16, 32, 64)


@dataclass(frozen=True)
class Result:
    agents: int
    containers: int
    namespaces: int
    listeners: int
    up: float
    down: float
    peak_kib: int | None
    error: str = ""


def sessions_for(agents: int) -> str:
    count = max(2, 2 * agents)  # 8·A containers in sessions of 4
    singles = ["single-node:4"] * (count // 2)
    multis = ["multi-node:4"] * (count - count // 2)
    return ",".join(singles + multis)


def peak_memory_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def measure(agents: int, prefix: str, inventory: Path) -> Result:
    options = LabOptions.create(agents, sessions_for(agents), (), prefix, "drop")
    started = time.monotonic()
    handle = None
    error = ""
    try:
        handle = build_lab(options, inventory)
    except ReachproofError as exc:
        error = str(exc)
    up = time.monotonic() - started
    peak = peak_memory_kib(handle.supervisor_pid) if handle else None
    started = time.monotonic()
    try:
        teardown(prefix)
    except ReachproofError as exc:
        error = error or f"teardown: {exc}"
    down = time.monotonic() - started
    if list_netns(prefix):
        error = error or "namespaces left after teardown"
    topo = handle.topology if handle else None
    return Result(
        agents=agents,
        containers=len(topo.containers) if topo else 0,
        namespaces=len(topo.namespaces()) if topo else 0,
        listeners=_listeners(prefix, handle),
        up=up,
        down=down,
        peak_kib=peak,
        error=error,
    )


def _listeners(prefix: str, handle: object) -> int:
    if handle is None:
        return 0
    from reachproof.lab.build import LabHandle
    from reachproof.lab.serviceplan import service_plan

    assert isinstance(handle, LabHandle)
    return len(service_plan(handle.topology, handle.targets).listeners)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-agents", type=int, default=64)
    parser.add_argument("--prefix", default="rpbench")
    args = parser.parse_args(argv)
    console = Console(width=120)
    sizes = [a for a in SIZES if a <= args.max_agents]
    inventory = Path(f"/tmp/{args.prefix}-inventory.yaml")
    results: list[Result] = []
    for agents in sizes:
        try:
            result = measure(agents, args.prefix, inventory)
        except PrerequisiteError as exc:
            console.print(f"error: {exc}")
            return 2
        finally:
            teardown(args.prefix)
        results.append(result)
        console.print(
            f"{agents} agents: up {result.up:.1f}s, down {result.down:.1f}s"
            + (f" — FAILED: {result.error}" if result.error else "")
        )
    table = Table(title="reachproof lab scale")
    for column in (
        "agents",
        "containers",
        "namespaces",
        "listeners",
        "up s",
        "down s",
        "supervisor VmHWM",
    ):
        table.add_column(column, justify="right")
    table.add_column("result")
    for r in results:
        table.add_row(
            str(r.agents),
            str(r.containers),
            str(r.namespaces),
            str(r.listeners),
            f"{r.up:.1f}",
            f"{r.down:.1f}",
            f"{r.peak_kib / 1024:.1f} MiB" if r.peak_kib else "-",
            r.error or "ok",
        )
    console.print(table)
    failed = any(r.error for r in results)
    largest = results[-1] if results else None
    if largest and largest.agents == 64 and (largest.up > UP_TARGET or largest.down > DOWN_TARGET):
        console.print(f"target missed: ≤ {UP_TARGET:.0f}s up and ≤ {DOWN_TARGET:.0f}s down")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
