"""Discovery's pure core: the signature, vantage templates, GraphQL answers → inventory.

The GraphQL answers under data/ are shaped as the manager 26.9's legacy schema returns them;
tests/lab/test_discover_manager.py runs discovery against a real manager.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reachproof.discover.backendai import (
    Options,
    Snapshot,
    build_document,
    merge_site,
    parse_agent,
    parse_circuits,
    parse_scaling_groups,
    parse_session,
    split_addr,
)
from reachproof.discover.client import check_api_version, load_credentials, parse_api_version
from reachproof.discover.signing import signed_headers
from reachproof.discover.templates import AGENT_FIELDS, CONTAINER_FIELDS, parse_template
from reachproof.errors import DiscoveryError, UsageError
from reachproof.inventory.dump import dump_inventory
from reachproof.inventory.load import parse_inventory

DATA = Path(__file__).parent / "data"


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def _snapshot(sessions: bool = True) -> Snapshot:
    agents = tuple(parse_agent(r) for r in _load("gql-agents.json")["agent_list"]["items"])
    rows = _load("gql-sessions.json")["compute_session_list"]["items"] if sessions else []
    groups = parse_scaling_groups(_load("gql-scaling-groups.json"))
    return Snapshot(agents, tuple(parse_session(r) for r in rows), groups)


def test_signature_is_the_backend_ai_clients() -> None:
    # The vector: ai.backend.common.auth.utils.generate_signature of backend.ai-common 26.9.6
    # for these inputs (the real manager accepts ours in the lab test).
    headers = signed_headers(
        method="POST",
        rel_url="/admin/gql",
        host="127.0.0.1:8081",
        content_type="application/json",
        api_version="v9.20250722",
        date=datetime(2026, 12, 2, 6, 3, 9, 123456, tzinfo=UTC),
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    assert headers["Authorization"] == (
        "BackendAI signMethod=HMAC-SHA256, credential=AKIAIOSFODNN7EXAMPLE:"
        "e96dba5be4f4e218603c0caafcdfa354bbbdcc897027ee042d49eb4a38440735"
    )
    assert headers["Date"] == "2026-12-02T06:03:09.123456+00:00"
    assert headers["X-BackendAI-Version"] == "v9.20250722"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("v9.20250722", True),
        ("v8.20240915", True),
        ("v7.20230615", True),
        ("v6.20220615", False),
        ("v10.20270101", False),
    ],
)
def test_api_versions_outside_what_is_understood_are_refused(text: str, ok: bool) -> None:
    version = parse_api_version(text)
    if ok:
        assert check_api_version(version) == text
    else:
        with pytest.raises(DiscoveryError, match=r"understands v7\.20230615 to v9\.x"):
            check_api_version(version)


def test_an_api_version_that_is_no_version_is_refused() -> None:
    with pytest.raises(DiscoveryError, match=r"not vN\.YYYYMMDD"):
        parse_api_version("9")


def test_credentials_come_from_options_or_environment_and_are_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BACKEND_ACCESS_KEY", raising=False)
    monkeypatch.delenv("BACKEND_SECRET_KEY", raising=False)
    with pytest.raises(UsageError, match="no credentials"):
        load_credentials(None, None, None)
    monkeypatch.setenv("BACKEND_ACCESS_KEY", "AK")
    monkeypatch.setenv("BACKEND_SECRET_KEY", "very-secret")
    creds = load_credentials(None, None, None)
    assert (creds.access_key, creds.secret_key) == ("AK", "very-secret")
    assert "very-secret" not in repr(creds)
    file = tmp_path / "creds.yaml"
    file.write_text("access_key: AK2\nsecret_key: s2\n")
    assert load_credentials(None, None, file).access_key == "AK2"


def test_addresses_of_the_api_split_into_host_and_port() -> None:
    assert split_addr("tcp://10.0.2.11:6001", "a") == ("10.0.2.11", 6001)
    assert split_addr("tcp://[fd00:2::11]:6001", "a") == ("fd00:2::11", 6001)
    assert split_addr("http://proxy.example.com:10200", "a") == ("proxy.example.com", 10200)
    assert split_addr(None, "a") == (None, None)


def test_templates_substitute_inside_words_never_split() -> None:
    template = parse_template("--agent-vantage", "ssh -T 'audit@{agent_addr}' -p 22", AGENT_FIELDS)
    assert template.render({"agent_addr": "10.0.2.11"}, "agent a") == (
        "ssh",
        "-T",
        "audit@10.0.2.11",
        "-p",
        "22",
    )


@pytest.mark.parametrize(
    "value", ["10.0.2.11; rm -rf /", "-oProxyCommand=x", "a b", "$(id)", "host`id`", ""]
)
def test_unsafe_api_values_never_reach_a_command(value: str) -> None:
    template = parse_template("--agent-vantage", "ssh audit@{agent_addr}", AGENT_FIELDS)
    with pytest.raises(DiscoveryError, match="agent x"):
        template.render({"agent_addr": value}, "agent x")


def test_unknown_template_fields_are_usage_errors() -> None:
    with pytest.raises(UsageError, match=r"unknown field \{secret\}.*\{agent_id\}"):
        parse_template("--agent-vantage", "ssh {secret}", AGENT_FIELDS)
    with pytest.raises(UsageError, match="No closing quotation"):
        parse_template("--agent-vantage", "ssh 'x", AGENT_FIELDS)


def _options(**kw: Any) -> Options:
    return Options(manager_host="10.0.1.11", manager_port=8081, **kw)


def test_a_cluster_becomes_an_inventory_the_loader_accepts() -> None:
    options = _options(
        agent_vantage=parse_template("a", "ssh -T audit@{agent_addr}", AGENT_FIELDS),
        container_vantage=parse_template(
            "c", "ssh -T audit@{agent_addr} docker exec -i {container_id}", CONTAINER_FIELDS
        ),
        skip_pending=True,
    )
    doc = build_document(_snapshot(), options)
    inventory = parse_inventory(json.dumps(doc), "site.yaml")
    assert [h.name for h in inventory.hosts_with_role("agent")] == ["i-agent1", "i-agent2"]
    agent2 = inventory.host("i-agent2")
    assert agent2 is not None and agent2.service_ports("agent-rpc") is not None  # port 6011
    (session,) = inventory.sessions
    assert session.id == "0b7c1a56-3f0e-4a57-9d4e-2b1f0c9a1e01"
    sub2 = inventory.host(f"{session.id}/sub2")
    assert sub2 is not None and sub2.container is not None
    assert (sub2.container.index, sub2.container.local_rank, sub2.container.agent) == (
        2,
        2,
        "i-agent2",
    )
    vantage = inventory.vantage(f"{session.id}-sub2")
    assert vantage is not None
    assert vantage.command == (
        "ssh",
        "-T",
        "audit@10.0.2.12",
        "docker",
        "exec",
        "-i",
        "c3c3c3c3c3c3c3c3",
    )
    assert [p.name for p in inventory.hosts_with_role("appproxy")] == ["appproxy-default"]
    assert options.skipped == [
        "session 9d1f4e2a-0000-4000-8000-00000000beef (queued, PENDING): left out, its "
        "containers have no agent yet"
    ]
    assert parse_inventory(dump_inventory(inventory), "x") == parse_inventory(
        dump_inventory(inventory), "x"
    )


def test_a_session_without_agents_is_an_error_unless_skipped() -> None:
    with pytest.raises(DiscoveryError, match=r"queued, PENDING\): containers main1 have no agent"):
        build_document(_snapshot(), _options())


def test_a_container_on_an_agent_the_key_cannot_see_is_an_error() -> None:
    snap = _snapshot()
    snap = Snapshot(snap.agents[:1], snap.sessions[:1], snap.scaling_groups)
    with pytest.raises(DiscoveryError, match="'i-agent2', which the agent list does not have"):
        build_document(snap, _options())


def test_the_site_file_adds_and_overrides() -> None:
    doc = build_document(_snapshot(sessions=False), _options())
    site = {
        "name": "acme",
        "vantages": {"outside": {"transport": "exec", "command": ["ssh", "probe"]}},
        "hosts": {
            "user": {"role": "user", "zone": "internet", "vantage": "outside"},
            "manager": {"ipv4": "10.9.9.9"},
        },
    }
    merged = merge_site(doc, site)
    inventory = parse_inventory(json.dumps(merged), "site.yaml")
    assert inventory.name == "acme"
    manager = inventory.host("manager")
    assert manager is not None and [str(a) for a in manager.ipv4] == ["10.9.9.9"]
    assert manager.role == "manager"  # kept from discovery
    assert inventory.host("user") is not None


def test_port_mode_circuits_become_apps() -> None:
    snap = _snapshot()
    workers = [{"id": "w1", "hostname": "10.0.1.12"}]
    circuits = {
        "w1": [
            {
                "app": "jupyter",
                "app_mode": "interactive",
                "frontend_mode": "port",
                "port": 10205,
                "open_to_public": False,
                "allowed_client_ips": None,
                "route_info": [
                    {
                        "session_id": "0b7c1a56-3f0e-4a57-9d4e-2b1f0c9a1e01",
                        "kernel_host": "10.0.2.11",
                        "kernel_port": 30005,
                        "protocol": "http",
                    }
                ],
            },
            {
                "app": "",
                "app_mode": "inference",
                "frontend_mode": "port",
                "port": 10206,
                "route_info": [],
            },
        ]
    }
    snap = Snapshot(
        snap.agents, snap.sessions, snap.scaling_groups, parse_circuits(workers, circuits)
    )
    doc = build_document(snap, _options(skip_pending=True))
    inventory = parse_inventory(json.dumps(doc), "site.yaml")
    (app,) = inventory.apps
    assert (app.name, app.port, app.container_port, app.published_port) == (
        "jupyter",
        10205,
        8080,
        30005,
    )
    assert app.container.endswith("/main1")
