"""Build labs of growing size and report build time, teardown time and the supervisor's peak memory.

    sudo .venv/bin/python bench/lab_scale.py [--max-agents 64] [--prefix rpbench]
                                             [--runtime netns|docker]

Sizes: A agents with 8·A containers in sessions of 4, half single-node and half multi-node,
up to 64 agents / 512 containers. Target on a 2-core machine: the largest lab up in ≤ 60 s
and down in ≤ 30 s. With --runtime docker: 3, 8 and 16 agents with 4·A containers (real
containers, a dockerd per agent); target 8 agents / 32 containers up in ≤ 60 s with a cached
image and down in ≤ 30 s; memory is the summed RSS of every dockerd, containerd, shim and
container process once the lab is up. Exits 1 when a build or teardown fails (or misses the
target), 2 when the machine cannot build labs at all.
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
DOCKER_SIZES = (3, 8, 16)
DOCKER_TARGET_AGENTS = 8


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
    docker_rss_kib: int | None = None


def sessions_for(agents: int, per_agent: int = 8) -> str:
    count = max(2, per_agent * agents // 4)  # per_agent·A containers in sessions of 4
    singles = ["single-node:4"] * (count // 2)
    multis = ["multi-node:4"] * (count - count // 2)
    return ",".join(singles + multis)


def peak_memory_kib(pid: int | None, field: str = "VmHWM:") -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def docker_rss_kib(prefix: str) -> int:
    """Summed VmRSS of the lab's dockerd, containerd, shims and container processes."""
    from reachproof.lab import dockerd
    from reachproof.lab.dockerlab import found_daemons

    pids: set[int] = set()
    for daemon in found_daemons(prefix):
        pids |= dockerd.daemon_pids(daemon) | dockerd.cgroup_pids(daemon.cgroup_parent)
    total = 0
    for pid in pids:
        total += peak_memory_kib(pid, "VmRSS:") or 0
    return total


def measure(agents: int, prefix: str, inventory: Path, runtime: str = "netns") -> Result:
    per_agent = 4 if runtime == "docker" else 8
    options = LabOptions.create(
        agents, sessions_for(agents, per_agent), (), prefix, "drop", runtime=runtime
    )
    started = time.monotonic()
    handle = None
    error = ""
    try:
        handle = build_lab(options, inventory)
    except ReachproofError as exc:
        error = str(exc)
    up = time.monotonic() - started
    peak = peak_memory_kib(handle.supervisor_pid) if handle else None
    rss = docker_rss_kib(prefix) if handle and runtime == "docker" else None
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
        docker_rss_kib=rss,
    )


def _listeners(prefix: str, handle: object) -> int:
    if handle is None:
        return 0
    from reachproof.lab.build import LabHandle
    from reachproof.lab.serviceplan import service_plan

    assert isinstance(handle, LabHandle)
    return len(service_plan(handle.topology, handle.targets).listeners)


def _mib(kib: int | None) -> str:
    return f"{kib / 1024:.0f} MiB" if kib else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-agents", type=int, default=64)
    parser.add_argument("--prefix", default="rpbench")
    parser.add_argument("--runtime", choices=("netns", "docker"), default="netns")
    args = parser.parse_args(argv)
    console = Console(width=120)
    docker = args.runtime == "docker"
    sizes = [a for a in (DOCKER_SIZES if docker else SIZES) if a <= args.max_agents]
    inventory = Path(f"/tmp/{args.prefix}-inventory.yaml")
    results: list[Result] = []
    for agents in sizes:
        try:
            result = measure(agents, args.prefix, inventory, args.runtime)
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
        *(("docker RSS",) if docker else ()),
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
            *((_mib(r.docker_rss_kib),) if docker else ()),
            r.error or "ok",
        )
    console.print(table)
    failed = any(r.error for r in results)
    target = DOCKER_TARGET_AGENTS if docker else 64
    largest = next((r for r in results if r.agents == target), None)
    if largest and (largest.up > UP_TARGET or largest.down > DOWN_TARGET):
        console.print(f"target missed: ≤ {UP_TARGET:.0f}s up and ≤ {DOWN_TARGET:.0f}s down")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
