"""Write an Inventory as schema-1 YAML that loads back to an equal Inventory.

The output is stable (same inventory, same text) and reads like a hand-written file: small
leaves (addresses, services, commands, simple vantages) in flow style, defaults left out.
`path` and `sha256` describe a file, not its content, so they are not written.
"""

from __future__ import annotations

from typing import Any

import yaml

from reachproof.inventory.model import (
    DEFAULT_SPEAKS,
    NO_FAMILIES,
    App,
    Families,
    Host,
    Inventory,
    IPAddress,
    Session,
    Vantage,
)
from reachproof.ports import Ports


class _Flow(list[Any]):
    """A list written inline: `[a, b]`."""


class _FlowMap(dict[str, Any]):
    """A mapping written inline: `{transport: local}`."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # indent lists under their key


def _flow_list(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


def _flow_map(dumper: yaml.SafeDumper, data: _FlowMap) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # PyYAML folds a Unicode line break (NEL, LS, PS) in a single-quoted scalar into a space;
    # double quotes escape it (\N, \L, \P) so the text loads back unchanged.
    style = '"' if any(c in data for c in "\x85\u2028\u2029") else None
    if style is None and "\n" in data.rstrip("\n"):
        style = "|"  # a PEM block stays readable (PyYAML falls back where | cannot hold it)
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(_Flow, _flow_list)
_Dumper.add_representer(_FlowMap, _flow_map)
_Dumper.add_representer(str, _str)


def dump_inventory(inventory: Inventory) -> str:
    """The inventory as YAML text (schema version 1)."""
    doc: dict[str, Any] = {"version": 1}
    if inventory.name:
        doc["name"] = inventory.name
    if inventory.tls_ca is not None:
        doc["tls_ca"] = inventory.tls_ca
    if inventory.families != NO_FAMILIES:
        doc["families"] = _families(inventory.families)
    if inventory.vantages:
        doc["vantages"] = {v.name: _vantage(v) for v in inventory.vantages}
    hosts = [h for h in inventory.hosts if h.container is None]
    if hosts:
        doc["hosts"] = {h.name: _host(h) for h in hosts}
    if inventory.sessions:
        doc["sessions"] = {s.id: _session(s, inventory) for s in inventory.sessions}
    if inventory.apps:
        doc["apps"] = [_app(a, inventory) for a in inventory.apps]
    text: str = yaml.dump(
        doc,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )
    return text


def _vantage(vantage: Vantage) -> dict[str, Any]:
    out: dict[str, Any] = {"transport": str(vantage.transport)}
    if vantage.netns is not None:
        out["netns"] = vantage.netns
    if vantage.command:
        out["command"] = _Flow(vantage.command)
    if vantage.python != "python3":
        out["python"] = vantage.python
    if vantage.remote_shell is not None:
        out["remote_shell"] = vantage.remote_shell
    if vantage.env:
        out["env"] = dict(vantage.env)
    return out if vantage.env or vantage.command else _FlowMap(out)


def _addresses(addresses: tuple[IPAddress, ...]) -> str | _Flow:
    if len(addresses) == 1:
        return str(addresses[0])
    return _Flow(str(a) for a in addresses)


def _ports(ports: tuple[Ports, ...]) -> str | _Flow:
    return ", ".join(str(p) for p in ports) if ports else _Flow()


def _host_fields(host: Host) -> dict[str, Any]:
    """Addresses, services and vantage, in schema order (shared by hosts and containers)."""
    out: dict[str, Any] = {}
    if host.ipv4:
        out["ipv4"] = _addresses(host.ipv4)
    if host.ipv6:
        out["ipv6"] = _addresses(host.ipv6)
    if host.container is not None:
        if host.container.cluster_ipv4:
            out["cluster_ipv4"] = _addresses(host.container.cluster_ipv4)
        if host.container.cluster_ipv6:
            out["cluster_ipv6"] = _addresses(host.container.cluster_ipv6)
    if host.services:
        out["services"] = _FlowMap({name: _ports(ports) for name, ports in host.services})
    if host.vantage is not None:
        out["vantage"] = host.vantage
    if host.families != NO_FAMILIES:
        out["families"] = _families(host.families)
    return out


def _families(families: Families) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if families.default is not None:
        out["default"] = _Flow(families.default.families)
    for name, rule in families.classes:
        out[name] = _Flow(rule.families)
    if families.services:
        out["services"] = _FlowMap({n: _Flow(r.families) for n, r in families.services})
    return out


def _host(host: Host) -> dict[str, Any]:
    out: dict[str, Any] = {"role": host.role}
    if host.zone is not None:
        out["zone"] = host.zone
    out |= _host_fields(host)
    if host.tls_name is not None:
        out["tls_name"] = host.tls_name
    return out


def _session(session: Session, inventory: Inventory) -> dict[str, Any]:
    containers: list[dict[str, Any]] = []
    for name in session.containers:
        host = inventory.host(name)
        if host is None or host.container is None:
            continue
        info = host.container
        head = {
            "hostname": info.hostname,
            "role": info.cluster_role,
            "index": info.index,
            "agent": info.agent,
        }
        containers.append(head | _host_fields(host))
    out: dict[str, Any] = {"mode": str(session.mode)}
    if session.families != NO_FAMILIES:
        out["families"] = _families(session.families)
    return out | {"containers": containers}


def _app(app: App, inventory: Inventory) -> dict[str, Any]:
    host = inventory.host(app.container)
    if host is not None and host.container is not None:
        hostname = host.container.hostname
    else:
        hostname = app.container.removeprefix(f"{app.session}/")
    out: dict[str, Any] = {
        "session": app.session,
        "name": app.name,
        "proxy": app.proxy,
        "address": str(app.address),
        "port": app.port,
        "container": hostname,
        "container_port": app.container_port,
    }
    if app.published_port is not None:
        out["published_port"] = app.published_port
    if app.identity is not None:
        out["identity"] = app.identity
    if app.path != "/":
        out["path"] = app.path
    if app.speaks != DEFAULT_SPEAKS:
        out["speaks"] = _Flow(app.speaks)
    return out
