"""`reachproof lab …`: build, inspect and remove the reference lab. Thin: parse, call, render."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from reachproof.errors import ReachproofError, UsageError
from reachproof.lab import sshd
from reachproof.lab.faults import FAULTS
from reachproof.lab.netns import list_netns
from reachproof.lab.state import LabState, state_dir, supervisor_pid, teardown
from reachproof.lab.topology import (
    DEFAULT_AGENTS,
    DEFAULT_PREFIX,
    DEFAULT_SESSIONS,
    LabOptions,
    check_prefix,
)

app = typer.Typer(
    help="The reference Backend.AI lab: network namespaces, bridges, VXLAN, nftables, services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _valid_prefix(value: str) -> str:
    """Every command's --prefix passes here before the command runs (exit 2 otherwise)."""
    try:
        check_prefix(value)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


PrefixOpt = Annotated[
    str,
    typer.Option(
        "--prefix",
        help="Name prefix of every lab object (labs of different prefixes coexist): "
        "1-8 lowercase letters and digits.",
        callback=_valid_prefix,
    ),
]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ReachproofError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(exc.exit_code) from None


@app.command()
def up(
    agents: Annotated[int, typer.Option("--agents", help="Number of agents.")] = DEFAULT_AGENTS,
    sessions: Annotated[
        str, typer.Option("--sessions", help="Comma list of single-node:N / multi-node:N.")
    ] = DEFAULT_SESSIONS,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault", help="Apply a named fault (repeatable); see `reachproof lab faults`."
        ),
    ] = None,
    prefix: PrefixOpt = DEFAULT_PREFIX,
    perimeter: Annotated[
        str,
        typer.Option(
            "--perimeter",
            help="How the perimeter blocks: drop, reject, reset, or reset6 (TCP reset over "
            "IPv6, drop over IPv4).",
        ),
    ] = "drop",
    container_families: Annotated[
        str,
        typer.Option(
            "--container-families",
            help="Families of the container networks, published ports and overlay: 4,6 or 4 "
            "(IPv4-only, as Docker's default; the inventory says so in `families`).",
        ),
    ] = "4,6",
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            help="Where to write the inventory (default .reachproof/lab/inventory.yaml, "
            "or .reachproof/lab/<prefix>/inventory.yaml for another prefix).",
        ),
    ] = None,
    ssh: Annotated[
        bool,
        typer.Option(
            "--ssh",
            help="Also run a real sshd on every host but the containers and write a second "
            "inventory (<inventory>-ssh.yaml) whose vantages are exec over ssh.",
        ),
    ] = False,
    runtime: Annotated[
        str,
        typer.Option(
            "--runtime",
            help="What runs the compute zone: netns (namespaces standing in for Docker) or "
            "docker (a real dockerd per agent, real containers, bridges, swarm overlays).",
        ),
    ] = "netns",
) -> None:
    """Build the lab, start its services, write its inventory; return once services answer."""
    from reachproof.lab.build import build_lab  # pyroute2 loads only for commands that build

    with _errors():
        options = LabOptions.create(
            agents,
            sessions,
            tuple(fault or ()),
            prefix,
            perimeter,
            ssh,
            runtime,
            container_families,
        )

        def say(msg: str) -> None:
            err.print(f"[dim]lab {prefix}: {msg}[/dim]")

        handle = build_lab(options, inventory, progress=say)
        out.print(
            f"lab {prefix} up in {handle.build_seconds:.1f}s: "
            f"{len(handle.topology.namespaces())} namespaces, "
            f"{len(handle.topology.containers)} containers"
            + (f", faults: {', '.join(sorted(options.fault_names))}" if options.faults else "")
        )
        out.print(str(handle.inventory_path), markup=False)
        if handle.ssh_inventory_path is not None:
            out.print(str(handle.ssh_inventory_path), markup=False)


@app.command()
def down(prefix: PrefixOpt = DEFAULT_PREFIX) -> None:
    """Remove everything the lab made (also after a crash or a killed supervisor)."""
    with _errors():
        removed = teardown(prefix)
        namespaces = sum(1 for r in removed if r.startswith("netns "))
        out.print(
            f"lab {prefix} down: removed {namespaces} namespaces"
            if removed
            else f"lab {prefix}: nothing to remove"
        )


@app.command()
def status(prefix: PrefixOpt = DEFAULT_PREFIX) -> None:
    """Show what is up: namespaces, supervisor, services, faults, inventory."""
    with _errors():
        namespaces = list_netns(prefix)
        state = LabState.read(prefix)
        if not namespaces and state is None:
            out.print(f"lab {prefix}: not up")
            raise typer.Exit(0)
        pid = supervisor_pid(prefix)
        table = Table(title=f"lab {prefix}", show_header=False)
        table.add_column("what", style="bold")
        table.add_column("value")
        shown = ", ".join(namespaces[:8]) + (
            f", … (+{len(namespaces) - 8})" if len(namespaces) > 8 else ""
        )
        table.add_row("namespaces", f"{len(namespaces)}: {shown}")
        table.add_row("supervisor", f"pid {pid}, alive" if pid else "not running")
        if state is not None:
            table.add_row("services", str(state.services))
            table.add_row("agents / sessions", f"{state.agents} / {state.sessions}")
            table.add_row("runtime", state.runtime)
            table.add_row("faults", ", ".join(state.faults) or "none")
            table.add_row("perimeter", state.perimeter)
            table.add_row("container families", state.container_families)
            table.add_row("inventory", state.inventory)
            if state.ssh_inventory:
                table.add_row("ssh inventory", state.ssh_inventory)
                alive, started = sshd.running(sshd.ssh_files(state_dir(prefix)), namespaces)
                table.add_row("sshd", f"{alive} of {started} running")
        table.add_row("state", str(state_dir(prefix)))
        out.print(table)
        if state is not None and len(namespaces) != state.namespaces:
            err.print(f"warning: {state.namespaces} namespaces expected, {len(namespaces)} present")


@app.command()
def faults() -> None:
    """List every fault with what it breaks."""
    table = Table(show_header=True)
    table.add_column("fault", style="bold")
    table.add_column("breaks")
    table.add_column("rules")
    table.add_column("runtimes")
    for item in FAULTS:
        table.add_row(item.name, item.summary, ", ".join(item.breaks), ", ".join(item.runtimes))
    out.print(table)


def main() -> None:
    """`python -m reachproof.lab.cli …` is `reachproof lab …`, with the same exit codes."""
    import sys

    from reachproof.cli import main as reachproof_main

    reachproof_main(["lab", *sys.argv[1:]])


if __name__ == "__main__":
    main()
