"""dump_inventory writes YAML that loads back to an equal inventory, and is stable."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reachproof.inventory.load import dump_inventory, load_inventory, parse_inventory
from reachproof.inventory.model import (
    CONTAINER_ROLE,
    App,
    ContainerInfo,
    Host,
    Inventory,
    Session,
    SessionMode,
    Transport,
    Vantage,
)
from reachproof.ports import Ports, parse_ports

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "lab-small.yaml"

SITE = """\
version: 1
vantages:
  here: {transport: local}
  bastion:
    transport: exec
    command: [ssh, -T, -o, BatchMode=yes, audit@bastion.example.com]
    python: /usr/bin/python3.11
  pod:
    transport: exec
    command: [kubectl, exec, -i, -n, ai, main1-pod, --]
    env: {BACKENDAI_CLUSTER_SIZE: 2, QUOTED: "it's \\"quoted\\"", EMPTY: ""}
hosts:
  proxy:
    role: appproxy
    ipv4: [192.0.2.10, 192.0.2.11]
    ipv6: "1:2:3:4:5:6:7:8"
    services: {appproxy-user: ["tcp/10200", "tcp/10205-10300, udp/53"], web: []}
    vantage: here
  node1: {role: agent, zone: compute, ipv6: [fd00::1], vantage: bastion}
sessions:
  abc:
    mode: multi-node
    containers:
      - {hostname: sub1, role: sub, index: 1, agent: node1, cluster_ipv6: fd00:9::3}
      - {hostname: main1, role: main, index: 1, agent: node1, vantage: pod}
apps:
  - session: abc
    name: lab
    proxy: proxy
    address: 192.0.2.11
    port: 10205
    container: main1
    container_port: 8090
    path: /lab?token=x
"""


def assert_round_trip(inventory: Inventory) -> None:
    text = dump_inventory(inventory)
    again = parse_inventory(text, inventory.path)
    assert replace(again, sha256=inventory.sha256) == inventory
    assert dump_inventory(again) == text


def test_example_round_trips() -> None:
    assert_round_trip(load_inventory(EXAMPLE))


def test_site_round_trips() -> None:
    inventory = parse_inventory(SITE)
    assert_round_trip(inventory)
    pod = inventory.vantage("pod")
    assert pod is not None and pod.environment()["BACKENDAI_CLUSTER_SIZE"] == "2"


def test_example_is_written_the_way_dump_writes_it() -> None:
    """The example file is dump output under a comment header: it stays canonical."""
    text = EXAMPLE.read_text()
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    assert dump_inventory(load_inventory(EXAMPLE)) == body


def test_dump_is_readable() -> None:
    text = dump_inventory(parse_inventory(SITE))
    assert "  here: {transport: local}\n" in text
    assert "    command: [ssh, -T, -o, BatchMode=yes, audit@bastion.example.com]\n" in text
    assert "    ipv4: [192.0.2.10, 192.0.2.11]\n" in text
    assert "    services: {appproxy-user: 'tcp/10200,10205-10300, udp/53', web: []}\n" in text
    assert "\n      - hostname: main1\n" in text  # kernel order, main1 first
    assert "path: /lab?token=x\n" in text and "published_port" not in text


# Generated inventories: names from a small alphabet, free text where the schema allows it.

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_names = st.builds(
    "".join, st.tuples(st.sampled_from(_LOWER), st.text(_LOWER + "0123456789-", max_size=8))
)
_env_names = st.builds(
    "".join,
    st.tuples(st.sampled_from(_LOWER.upper() + "_"), st.text(_LOWER.upper() + "_1", max_size=6)),
)
_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
_ipv4 = st.ip_addresses(v=4).map(lambda a: IPv4Address(int(a)))
_ipv6 = st.ip_addresses(v=6).map(lambda a: IPv6Address(int(a)))
_ports = st.lists(
    st.tuples(st.sampled_from(["tcp", "udp"]), st.integers(1, 65535), st.integers(0, 50)),
    max_size=3,
).map(
    lambda items: (
        parse_ports(", ".join(f"{p}/{a}-{min(a + n, 65535)}" for p, a, n in items)) if items else ()
    )
)


@st.composite
def _vantage(draw: st.DrawFn, name: str) -> Vantage:
    transport = draw(st.sampled_from(Transport))
    env = draw(st.dictionaries(_env_names, _text, max_size=3))
    return Vantage(
        name=name,
        transport=transport,
        netns=draw(_names) if transport is Transport.NETNS else None,
        command=tuple(draw(st.lists(_text.filter(bool), min_size=1, max_size=4)))
        if transport is Transport.EXEC
        else (),
        python=draw(_text.filter(bool)) if transport is Transport.EXEC else "python3",
        env=tuple(env.items()),
        remote_shell=draw(st.sampled_from([None, True, False]))
        if transport is Transport.EXEC
        else None,
    )


def _services(draw: st.DrawFn) -> tuple[tuple[str, tuple[Ports, ...]], ...]:
    return tuple(draw(st.dictionaries(_names, _ports, max_size=3)).items())


@st.composite
def _inventories(draw: st.DrawFn) -> Inventory:
    vantage_names = draw(st.lists(_names, unique=True, max_size=4))
    vantages = tuple(draw(_vantage(name)) for name in vantage_names)
    maybe_vantage = st.none() | st.sampled_from(vantage_names) if vantage_names else st.none()
    host_names = draw(st.lists(_names, unique=True, min_size=1, max_size=5))
    hosts = [
        Host(
            name=name,
            role="agent" if i == 0 else draw(_names.filter(lambda r: r != CONTAINER_ROLE)),
            zone=draw(st.none() | _names),
            ipv4=tuple(draw(st.lists(_ipv4, unique=True, max_size=2))),
            ipv6=tuple(draw(st.lists(_ipv6, unique=True, max_size=2))),
            services=_services(draw),
            vantage=draw(maybe_vantage),
        )
        for i, name in enumerate(host_names)
    ]
    subs = draw(st.integers(0, 3))
    session_id = draw(_names)
    containers = [
        Host(
            name=f"{session_id}/{hostname}",
            role=CONTAINER_ROLE,
            ipv4=tuple(draw(st.lists(_ipv4, unique=True, max_size=1))),
            services=_services(draw),
            vantage=draw(maybe_vantage),
            container=ContainerInfo(
                session=session_id,
                hostname=hostname,
                cluster_role="main" if rank == 0 else "sub",
                index=1 if rank == 0 else rank,
                local_rank=rank,
                agent=host_names[0],
                cluster_ipv6=tuple(draw(st.lists(_ipv6, unique=True, max_size=1))),
            ),
        )
        for rank, hostname in enumerate(["main1", *(f"sub{i}" for i in range(1, subs + 1))])
    ]
    session = Session(
        session_id, draw(st.sampled_from(SessionMode)), tuple(h.name for h in containers)
    )
    proxies = [h for h in hosts if h.primary_addresses()]
    proxy = draw(st.sampled_from(proxies)) if proxies else None
    apps: tuple[App, ...] = ()
    if proxy is not None:
        apps = (
            App(
                session=session_id,
                name=draw(_names),
                proxy=proxy.name,
                address=draw(st.sampled_from(proxy.primary_addresses())),
                port=draw(st.integers(1, 65535)),
                container=f"{session_id}/main1",
                container_port=draw(st.integers(1, 65535)),
                published_port=draw(st.none() | st.integers(1, 65535)),
                identity=draw(st.none() | _text.filter(bool)),
                path="/" + draw(_text),
            ),
        )
    return Inventory(
        path="<inventory>",
        sha256="",
        name=draw(st.just("") | _text.filter(bool)),
        vantages=vantages,
        hosts=(*hosts, *containers),
        sessions=(session,),
        apps=apps,
    )


@settings(max_examples=100, deadline=None)
@given(_inventories())
def test_generated_inventories_round_trip(inventory: Inventory) -> None:
    assert_round_trip(inventory)
