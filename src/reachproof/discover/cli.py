"""`reachproof discover backend-ai …` and the options `check --discover backend-ai` shares."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reachproof.errors import InputError, UsageError, read_text

if TYPE_CHECKING:
    from reachproof.discover.run import Discovered

app = typer.Typer(help="Build an inventory from a live cluster's own API.", no_args_is_help=True)

ENV_APPPROXY_TOKEN = "BACKEND_APPPROXY_TOKEN"

EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint", help="The manager's API URL (http(s)://HOST:PORT)."),
]
AccessKeyOpt = Annotated[
    str | None,
    typer.Option("--access-key", help="API access key (else BACKEND_ACCESS_KEY)."),
]
SecretKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--secret-key",
        help="API secret key (else BACKEND_SECRET_KEY; prefer the environment or "
        "--credentials: an option is visible to other users in the process list).",
    ),
]
CredentialsOpt = Annotated[
    Path | None,
    typer.Option("--credentials", help="YAML file with access_key and secret_key."),
]
SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="A partial inventory merged over the discovered one: what the API cannot know "
        "(the user's vantage, the webserver, container addresses, overrides).",
    ),
]
AgentVantageOpt = Annotated[
    str | None,
    typer.Option(
        "--agent-vantage",
        help="Command template for each agent's vantage, e.g. 'ssh -T audit@{agent_addr}' "
        "(fields {agent_id} {agent_addr}).",
    ),
]
ContainerVantageOpt = Annotated[
    str | None,
    typer.Option(
        "--container-vantage",
        help="Command template for each container's vantage, e.g. 'ssh -T audit@{agent_addr} "
        "docker exec -i {container_id}' (also {session_id} {kernel_id} {cluster_hostname}).",
    ),
]
AppProxyOpt = Annotated[
    str | None,
    typer.Option("--appproxy", help="AppProxy coordinator URL, to list its circuits as apps."),
]
AppProxyTokenOpt = Annotated[
    Path | None,
    typer.Option(
        "--appproxy-token-file",
        help=f"File holding the coordinator's token (else {ENV_APPPROXY_TOKEN}).",
    ),
]
SkipPendingOpt = Annotated[
    bool,
    typer.Option(
        "--skip-pending",
        help="Leave out sessions whose containers have no agent yet (listed on stderr) "
        "instead of failing.",
    ),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds per API request.")]


@dataclass(frozen=True)
class DiscoverArgs:
    endpoint: str | None
    access_key: str | None = None
    secret_key: str | None = None
    credentials: Path | None = None
    site: Path | None = None
    agent_vantage: str | None = None
    container_vantage: str | None = None
    appproxy: str | None = None
    appproxy_token_file: Path | None = None
    skip_pending: bool = False
    timeout: float = 15.0
    name: str = ""


def run_discovery(args: DiscoverArgs, output: str) -> Discovered:
    """Discover with the command line's options; `output` names the inventory in errors."""
    from reachproof.discover.backendai import Options
    from reachproof.discover.client import load_credentials
    from reachproof.discover.run import discover_backend_ai
    from reachproof.discover.templates import AGENT_FIELDS, CONTAINER_FIELDS, parse_template

    if not args.endpoint:
        raise UsageError("discovery needs --endpoint URL (the manager's API)")
    credentials = load_credentials(args.access_key, args.secret_key, args.credentials)
    options = Options(
        name=args.name,
        agent_vantage=None
        if args.agent_vantage is None
        else parse_template("--agent-vantage", args.agent_vantage, AGENT_FIELDS),
        container_vantage=None
        if args.container_vantage is None
        else parse_template("--container-vantage", args.container_vantage, CONTAINER_FIELDS),
        skip_pending=args.skip_pending,
    )
    token = None
    if args.appproxy_token_file is not None:
        token = read_text(args.appproxy_token_file, "AppProxy token").strip()
    elif args.appproxy is not None:
        token = os.environ.get(ENV_APPPROXY_TOKEN)
    discovered = discover_backend_ai(
        args.endpoint,
        credentials,
        options,
        output,
        site=args.site,
        appproxy=args.appproxy,
        appproxy_token=token,
        timeout=args.timeout,
    )
    for note in discovered.notes:
        sys.stderr.write(f"note: {note}\n")
    return discovered


@app.command("backend-ai")
def backend_ai(
    endpoint: EndpointOpt = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Inventory file to write (default: stdout)."),
    ] = None,
    access_key: AccessKeyOpt = None,
    secret_key: SecretKeyOpt = None,
    credentials: CredentialsOpt = None,
    site: SiteOpt = None,
    agent_vantage: AgentVantageOpt = None,
    container_vantage: ContainerVantageOpt = None,
    appproxy: AppProxyOpt = None,
    appproxy_token_file: AppProxyTokenOpt = None,
    skip_pending: SkipPendingOpt = False,
    name: Annotated[str, typer.Option("--name", help="The site's name in the inventory.")] = "",
    timeout: TimeoutOpt = 15.0,
) -> None:
    """Ask a Backend.AI manager (HMAC-signed GraphQL) what exists now — agents, sessions,
    containers, AppProxy addresses and circuits — and write it as an inventory.

    Exit 0 written; 2 bad input, bad credentials, an unreachable endpoint, an API version this
    reachproof does not understand, or a session whose containers have no agent yet.
    """
    from reachproof.cli import user_errors

    args = DiscoverArgs(
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
        timeout,
        name,
    )
    with user_errors():
        discovered = run_discovery(args, str(output or "<stdout>"))
        if output is None:
            sys.stdout.write(discovered.text)
        else:
            write_inventory(output, discovered.text)
    inv = discovered.inventory
    sys.stderr.write(
        f"discovered from {discovered.endpoint} (manager {discovered.manager_version}, API "
        f"{discovered.api_version}): {len(inv.hosts_with_role('agent'))} agents, "
        f"{len(inv.sessions)} sessions, {len(inv.hosts_with_role('container'))} containers, "
        f"{len(inv.apps)} apps; sha256 {discovered.sha256}"
        + (f"; written to {output}" if output else "")
        + "\n"
    )


def write_inventory(path: Path, text: str) -> None:
    """0600 in a 0700 directory, never half-written: an inventory maps the site's weak spots."""
    from reachproof.files import private_dirs, write_private

    try:
        private_dirs(path.parent)
        write_private(path, text.encode())
    except OSError as exc:
        raise InputError(f"{path}: cannot write the inventory: {exc.strerror}") from exc
