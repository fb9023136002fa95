"""`discover backend-ai`: ask the manager (and the AppProxy coordinator), build the inventory,
merge the site file, validate it as any inventory is validated, and give its text."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from reachproof.discover.backendai import (
    AGENT_STATUSES,
    AGENTS_QUERY,
    LIVE_STATUSES,
    PAGE,
    SCALING_GROUPS_QUERY,
    SESSIONS_QUERY,
    Circuit,
    Options,
    Snapshot,
    _items,
    build_document,
    merge_site,
    parse_agent,
    parse_circuits,
    parse_scaling_groups,
    parse_session,
)
from reachproof.discover.client import Credentials, ManagerApi, check_endpoint, fetch_json
from reachproof.errors import DiscoveryError, InputError, read_text
from reachproof.inventory.dump import dump_inventory
from reachproof.inventory.load import parse_inventory
from reachproof.inventory.model import Inventory

MAX_ITEMS = 100_000  # a bound on paging, whatever total_count says


@dataclass(frozen=True)
class Discovered:
    """The result of one discovery: the inventory and where it came from."""

    source: str  # "backend-ai"
    endpoint: str
    api_version: str
    manager_version: str
    at: datetime
    text: str  # the inventory file's text
    sha256: str
    inventory: Inventory
    notes: tuple[str, ...]  # what was left out and why


def _paged(api: ManagerApi, query: str, key: str, status: str) -> list[Any]:
    rows: list[Any] = []
    while len(rows) < MAX_ITEMS:
        data = api.graphql(query, {"limit": PAGE, "offset": len(rows), "status": status})
        items, total = _items(data, key)
        rows += items
        if not items or len(rows) >= total:
            break
    return rows


def _appproxy_circuits(url: str, token: str, timeout: float) -> tuple[Any, dict[str, Any]]:
    endpoint = check_endpoint(url)
    headers = {"X-BackendAI-Token": token, "Accept": "application/json"}

    def get(path: str) -> Any:
        return fetch_json(f"{endpoint}{path}", "GET", headers, None, timeout, None, endpoint)

    answer = get("/api/worker")
    workers = answer.get("workers") if isinstance(answer, dict) else None
    if not isinstance(workers, list):
        raise DiscoveryError(f"{endpoint}: /api/worker is not an AppProxy coordinator's answer")
    circuits: dict[str, Any] = {}
    for worker in workers:
        worker_id = str(worker.get("id"))
        listed = get(f"/api/worker/{worker_id}/circuits")
        circuits[worker_id] = listed.get("circuits", []) if isinstance(listed, dict) else []
    return workers, circuits


def discover_backend_ai(
    endpoint: str,
    credentials: Credentials,
    options: Options,
    output: str,
    site: Path | None = None,
    appproxy: str | None = None,
    appproxy_token: str | None = None,
    timeout: float = 15.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Discovered:
    """Ask the manager at `endpoint`; `output` names the inventory in its error positions."""
    site_doc = _site(site) if site is not None else {}
    api = ManagerApi(endpoint, credentials, timeout)
    info = api.server_info()
    at = now()
    agents = tuple(parse_agent(r) for r in _paged(api, AGENTS_QUERY, "agent_list", AGENT_STATUSES))
    sessions = tuple(
        parse_session(r) for r in _paged(api, SESSIONS_QUERY, "compute_session_list", LIVE_STATUSES)
    )
    groups = parse_scaling_groups(api.graphql(SCALING_GROUPS_QUERY, {}))
    circuits: tuple[Circuit, ...] = ()
    if appproxy is not None:
        if not appproxy_token:
            raise DiscoveryError("--appproxy needs a token (--appproxy-token-file or env)")
        circuits = parse_circuits(*_appproxy_circuits(appproxy, appproxy_token, timeout))
    parts = urlsplit(api.endpoint)
    options = replace(
        options,
        manager_host=parts.hostname,
        manager_port=parts.port or (443 if parts.scheme == "https" else 80),
        skipped=[],
    )
    doc = build_document(Snapshot(agents, sessions, groups, circuits), options)
    doc = merge_site(doc, site_doc)
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)
    inventory = parse_inventory(text, output)  # InventoryError with positions in that text
    text = dump_inventory(inventory)  # the stable form, as every written inventory
    inventory = parse_inventory(text, output)
    sha = hashlib.sha256(text.encode()).hexdigest()
    return Discovered(
        source="backend-ai",
        endpoint=api.endpoint,
        api_version=info.api_version,
        manager_version=info.manager_version,
        at=at,
        text=text,
        sha256=sha,
        inventory=replace(inventory, sha256=sha),
        notes=tuple(options.skipped),
    )


def _site(path: Path) -> dict[str, Any]:
    """The site file: a partial inventory (its entries complete or override discovered ones,
    so it is validated merged, not alone)."""
    text = read_text(path, "site")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise InputError(f"{where}: invalid YAML") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping (a partial inventory)")
    if data.get("version", 1) != 1:
        raise InputError(f"{path}: unsupported inventory version {data['version']!r}")
    return data
