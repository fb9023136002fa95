"""The `reachproof scan` command: probe TARGET... from one vantage, print nmap-like results.

Exit codes: 0 the scan ran; 2 invalid input (unknown vantage, bad ports, a target the
inventory does not declare); 3 a target could not be scanned (its vantage failed).
"""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from reachproof.errors import EXIT_INCONCLUSIVE


class ScanFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


class ScanEngine(StrEnum):
    SYN = "syn"
    CONNECT = "connect"
    NMAP = "nmap"


def scan_command(
    targets: Annotated[
        list[str],
        typer.Argument(metavar="TARGET...", help="Inventory host names or addresses it declares."),
    ],
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Inventory file (YAML).")],
    vantage: Annotated[
        str, typer.Option("--from", help="The vantage point to probe from (an inventory name).")
    ],
    ports: Annotated[str, typer.Option("-p", "--ports", help="TCP ports: 22,80,8000-8100.")],
    engine: Annotated[
        ScanEngine,
        typer.Option(help="syn (raw, falls back to connect), connect, or nmap as a cross-check."),
    ] = ScanEngine.SYN,
    output_format: Annotated[ScanFormat, typer.Option("--format")] = ScanFormat.TABLE,
    pps: Annotated[int | None, typer.Option("--pps", help="Packets per second.")] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to wait for one attempt.")
    ] = None,
    attempts: Annotated[
        int | None, typer.Option("--attempts", help="Most attempts per silent port (at least 2).")
    ] = None,
) -> None:
    """Scan TARGET... from one vantage point with nmap-like output (port, state, reason, ttl)."""
    from rich.console import Console

    from reachproof.cli import user_errors
    from reachproof.engine.engine import run_specs
    from reachproof.engine.scan_view import (
        render_json,
        render_table,
        resolve_targets,
        scan_options,
        scan_ports,
        scan_specs,
        scan_vantage,
    )
    from reachproof.inventory.load import load_inventory
    from reachproof.plan import Plan
    from reachproof.report.live import vantage_progress

    with user_errors():
        loaded = load_inventory(inventory)
        source = scan_vantage(loaded, vantage)
        port_set = scan_ports(ports)
        specs = scan_specs(source, resolve_targets(loaded, targets), port_set)
        options = scan_options(engine.value, pps, timeout, attempts)
        started = time.monotonic()
        plan = Plan("scan", (), specs)
        with vantage_progress(plan, Console(stderr=True)) as progress:
            observations = run_specs(specs, loaded, options, progress)
        elapsed = time.monotonic() - started
    render = render_json if output_format is ScanFormat.JSON else render_table
    sys.stdout.write(render(source.name, engine.value, specs, observations, elapsed))
    if any(o.error for o in observations):
        raise typer.Exit(EXIT_INCONCLUSIVE)
