"""The `reachproof` command: parse arguments, call the core, render, exit.

Exit codes (one meaning everywhere, see errors.py): 0 every rule holds, 1 a rule FAILED,
2 invalid input (command line, policy, inventory) or a missing prerequisite, 3 no FAIL but
something INCONCLUSIVE, 4 internal error, 130 interrupted. A user mistake never shows a
traceback; an internal bug always does, with a line asking to report it.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from reachproof import __version__
from reachproof.discover import cli as dcli
from reachproof.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    InventoryError,
    PolicyError,
    ReachproofError,
    UsageError,
)
from reachproof.scan import scan_command

if TYPE_CHECKING:
    from reachproof.api import Prepared
    from reachproof.engine.options import EngineOptions
    from reachproof.engine.progress import ProgressSink
    from reachproof.report.model import Report
    from reachproof.report.writers import Format

E = TypeVar("E", bound=StrEnum)

app = typer.Typer(
    name="reachproof",
    help=(
        "Prove that a cluster's network behaves as its security documentation says: probe from "
        "the vantage points that matter, judge every documented rule PASS / FAIL / "
        "INCONCLUSIVE with evidence.\n\n"
        "Exit codes: 0 every rule holds; 1 a rule failed; 2 invalid input; "
        "3 nothing failed but something could not be decided; 4 internal error (a bug: "
        "please report it); 130 interrupted."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
policy_app = typer.Typer(help="Work with policy files.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


class PlanFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


PolicyOpt = Annotated[
    Path, typer.Option("--policy", "-P", help="Policy file (the documented rules, in the DSL).")
]
InventoryOpt = Annotated[
    Path,
    typer.Option(
        "--inventory", "-i", help="Inventory file (YAML: vantages, hosts, sessions, apps)."
    ),
]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn reachproof's own errors into a message on stderr and their exit code.

    Plain text, never wrapped: `path:line:col: message` lines must stay whole for editors and
    CI log parsers; other errors start with `error:`.
    """
    try:
        yield
    except ReachproofError as exc:
        text = str(exc)
        if not isinstance(exc, PolicyError | InventoryError):
            text = f"error: {text}"
        sys.stderr.write(text.rstrip("\n") + "\n")
        raise typer.Exit(exc.exit_code) from exc


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reachproof {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """reachproof: network security conformance checker."""


@policy_app.command("lint")
def policy_lint(
    policy: Annotated[Path, typer.Argument(help="Policy file to check.")],
) -> None:
    """Parse POLICY and check every reference in it; exit 0 if valid (warnings included), 2 if not.

    Warnings (file:line:col: warning: …, on stderr) name a valid policy that contradicts itself,
    such as a deny that an egress declaration and an allow make fail on a correct site.
    """
    from reachproof.policy.lint import lint_warnings
    from reachproof.policy.parse import load_policy

    with user_errors():
        parsed = load_policy(policy)
    warnings = lint_warnings(parsed)
    for warning in warnings:
        sys.stderr.write(warning.render(parsed.text) + "\n")
    typer.echo(
        f"{policy}: ok — {len(parsed.rules)} rules, {len(parsed.roles)} roles, "
        f"{len(parsed.zones)} zones, {len(parsed.services)} services"
        + (f", {len(warnings)} warning(s)" if warnings else "")
    )


@app.command("plan")
def plan_command(
    policy: PolicyOpt,
    inventory: InventoryOpt,
    output_format: Annotated[
        PlanFormat,
        typer.Option("--format", "-f", help="table: a summary per rule and hop; json: every spec."),
    ] = PlanFormat.TABLE,
) -> None:
    """Compile POLICY against INVENTORY and show what would be probed, without probing."""
    from reachproof.api import prepare
    from reachproof.report.plan_view import render_plan_json, render_plan_summary

    with user_errors():
        prepared = prepare(policy, inventory)
    if output_format is PlanFormat.JSON:
        sys.stdout.write(render_plan_json(prepared.plan))
    else:
        render_plan_summary(prepared.plan, Console(highlight=False))


@app.command("check")
def check_command(
    policy: PolicyOpt,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            "-i",
            help="Inventory file (YAML: vantages, hosts, sessions, apps); or --discover.",
        ),
    ] = None,
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            "-f",
            help="terminal, json, junit, sarif, html or markdown; repeatable. Default: the "
            "terminal report on stdout and every file format in the output directory.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Directory for report files (default: reports/<UTC time>/)."
        ),
    ] = None,
    rules: Annotated[
        list[str] | None, typer.Option("--rule", "-r", help="Check only this rule; repeatable.")
    ] = None,
    pps: Annotated[
        int | None, typer.Option("--pps", help="Packets per second, all vantages together.")
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="TCP probes: syn (raw, falls back to connect), connect.")
    ] = "syn",
    evidence: Annotated[
        bool,
        typer.Option(
            "--evidence",
            help="Also capture each namespace or local vantage's traffic to a pcap "
            "(OUTPUT/pcap/), referenced from the JSON report with its sha256.",
        ),
    ] = False,
    waivers: Annotated[
        Path | None,
        typer.Option(
            "--waivers",
            help="YAML file of accepted exceptions: a FAIL they cover is reported as WAIVED "
            "(exit 0); expired and unused waivers are listed.",
        ),
    ] = None,
    discover: Annotated[
        str | None,
        typer.Option(
            "--discover",
            help="backend-ai: build the inventory from the cluster's API at the start of the "
            "run (the options below, as `discover backend-ai` takes them); it is written to "
            "OUTPUT/inventory.yaml and recorded in the report with its sha256.",
        ),
    ] = None,
    endpoint: dcli.EndpointOpt = None,
    access_key: dcli.AccessKeyOpt = None,
    secret_key: dcli.SecretKeyOpt = None,
    credentials: dcli.CredentialsOpt = None,
    site: dcli.SiteOpt = None,
    agent_vantage: dcli.AgentVantageOpt = None,
    container_vantage: dcli.ContainerVantageOpt = None,
    appproxy: dcli.AppProxyOpt = None,
    appproxy_token_file: dcli.AppProxyTokenOpt = None,
    skip_pending: dcli.SkipPendingOpt = False,
    strict_advisory: Annotated[
        bool,
        typer.Option(
            "--strict-advisory",
            help="Judge advisory rules like the others: a FAIL stays FAIL instead of WARN "
            "(as the policy's `strict advisory` does).",
        ),
    ] = False,
) -> None:
    """Probe every documented rule from its vantage points and report PASS / FAIL / INCONCLUSIVE.

    Exit 0 every rule holds (or is WAIVED by --waivers), 1 a rule FAILED, 2 invalid input, 3 nothing failed but something could not be decided, 4 internal error, 130 interrupted (no partial report is left).
    """  # noqa: E501
    from dataclasses import replace
    from datetime import UTC, datetime

    from reachproof.api import prepare, run_check
    from reachproof.engine.options import EngineOptions, TcpEngine
    from reachproof.report.live import vantage_progress
    from reachproof.report.model import DiscoveryRecord
    from reachproof.report.terminal import render_terminal
    from reachproof.report.writers import Format, default_output_dir, write_reports

    console = _stdout_console()
    with user_errors():
        wanted = _formats(formats)
        options = EngineOptions(engine=_choice(TcpEngine, engine, "--engine"))
        if pps is not None:
            options = replace(options, pps=pps, vantage_pps=pps)
        directory = output or default_output_dir(Path("reports"), datetime.now(UTC))
        discovery = None
        if discover is not None:
            if inventory is not None:
                raise UsageError("--inventory and --discover exclude each other")
            if discover != "backend-ai":
                raise UsageError(f"--discover {discover!r}: expected backend-ai")
            args = dcli.DiscoverArgs(
                endpoint,
                access_key,
                secret_key,
                credentials,
                site,
                agent_vantage,
                container_vantage,
                appproxy,
                appproxy_token_file,
                skip_pending,
            )
            inventory = directory / "inventory.yaml"
            found = dcli.run_discovery(args, str(inventory))
            dcli.write_inventory(inventory, found.text)
            discovery = DiscoveryRecord(
                found.source,
                found.endpoint,
                found.manager_version,
                found.api_version,
                found.at,
                found.sha256,
                found.text,
                found.notes,
            )
        elif inventory is None:
            raise UsageError("check needs --inventory FILE or --discover backend-ai")
        prepared = prepare(policy, inventory, rules or (), waivers, strict_advisory)
        with vantage_progress(prepared.plan, console) as progress:
            if evidence:
                report = _check_with_evidence(prepared, options, progress, directory / "pcap")
            else:
                report = run_check(prepared, options, progress)
        report = replace(report, discovery=discovery)
        if Format.TERMINAL in wanted:
            render_terminal(report, console)
            _render_matrix(report, console)
        written = write_reports(report, wanted, directory)
    if written:
        console.print(f"reports: {', '.join(str(p) for p in written)}")
    raise typer.Exit(report.exit_code)


class DiffFormat(StrEnum):
    TERMINAL = "terminal"
    JSON = "json"
    MARKDOWN = "markdown"


@app.command("diff")
def diff_command(
    old: Annotated[Path, typer.Argument(help="The accepted baseline (a JSON report).")],
    new: Annotated[Path, typer.Argument(help="The new JSON report.")],
    output_format: Annotated[
        DiffFormat, typer.Option("--format", "-f", help="terminal, json or markdown.")
    ] = DiffFormat.TERMINAL,
) -> None:
    """Compare two JSON reports: rules whose verdict changed, observations whose state changed
    (a newly open port first). Exit 1 when anything got worse, 0 otherwise, 2 on bad input."""
    from reachproof.report.diff import (
        diff_reports,
        render_diff_json,
        render_diff_markdown,
        render_diff_terminal,
    )
    from reachproof.report.load import load_report

    with user_errors():
        changes = diff_reports(load_report(old), load_report(new))
    if output_format is DiffFormat.JSON:
        sys.stdout.write(render_diff_json(changes))
    elif output_format is DiffFormat.MARKDOWN:
        sys.stdout.write(render_diff_markdown(changes))
    else:
        render_diff_terminal(changes, Console(highlight=False))
    raise typer.Exit(changes.exit_code)


def _check_with_evidence(
    prepared: Prepared,
    options: EngineOptions,
    progress: ProgressSink | None,
    directory: Path,
) -> Report:
    from dataclasses import replace

    from reachproof.api import run_check
    from reachproof.evidence import EvidenceRecorder

    vantages = {s.vantage for s in prepared.plan.specs if s.vantage is not None}
    with EvidenceRecorder(prepared.inventory, vantages, directory) as recorder:
        report = run_check(prepared, options, progress)
    return replace(report, evidence=tuple(recorder.captures))


def _render_matrix(report: Report, console: Console) -> None:
    from reachproof.report.matrix import render_matrix_terminal, report_zones, zone_matrix

    zones = report_zones(report)
    if zones is not None:
        console.print()
        render_matrix_terminal(zone_matrix(report, zones), console)


def _stdout_console() -> Console:
    """Full width on a terminal; 140 columns in a CI log or a file, so evidence lines stay whole."""
    probe = Console()
    return Console(highlight=False, width=None if probe.is_terminal else 140)


def _formats(given: list[str] | None) -> list[Format]:
    from reachproof.report.writers import Format

    if not given:
        return list(Format)
    return [_choice(Format, item, "--format") for item in given]


def _choice(kind: type[E], value: str, option: str) -> E:
    try:
        return kind(value)
    except ValueError as exc:
        choices = ", ".join(str(v.value) for v in kind)
        raise UsageError(f"{option} {value!r}: expected one of {choices}") from exc


def _mount_lab() -> None:
    from reachproof.lab.cli import app as lab_app

    app.add_typer(
        lab_app, name="lab", help="Build, inspect and remove the reference lab (needs root)."
    )


_mount_lab()


def _mount_discover() -> None:
    from reachproof.discover.cli import app as discover_app

    app.add_typer(discover_app, name="discover")


_mount_discover()
app.command("scan")(scan_command)


REPORT_BUG = (
    "reachproof: internal error (a bug in reachproof, not a finding about the network); "
    "please report it with the traceback above and the command you ran.\n"
)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: the exit codes of errors.py, whatever escapes a command.

    A command turns its own ReachproofErrors into messages; what is left is an interrupt
    (typer already maps one raised inside a command to 130) or a bug, which must never
    look like exit 1, "a rule failed".
    """
    command: Callable[..., object] = typer.main.get_command(app)
    try:
        command(args=argv, prog_name="reachproof")
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except ReachproofError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
    except Exception:
        traceback.print_exc()
        sys.stderr.write(REPORT_BUG)
        sys.exit(EXIT_INTERNAL)
