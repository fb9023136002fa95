"""Load the YAML inventory (schema version 1) into frozen dataclasses, with positions.

Every problem of the file is collected and raised together as one InventoryError, each at the
file:line:col of the offending key or value. Nothing else escapes for any input text.
The schema is documented field by field in docs/inventory.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import TypedDict, TypeVar

from yaml.nodes import Node, ScalarNode, SequenceNode

from reachproof.errors import Diagnostic, InventoryError, Pos, read_text
from reachproof.inventory.dump import dump_inventory
from reachproof.inventory.families import read_families
from reachproof.inventory.model import (
    APP_PROTOCOLS,
    CONTAINER_ROLE,
    DEFAULT_SPEAKS,
    NO_FAMILIES,
    App,
    ContainerInfo,
    Families,
    Host,
    Inventory,
    IPAddress,
    Session,
    SessionMode,
    Transport,
    Vantage,
)
from reachproof.inventory.yamlpos import NULL_TAG, NodeReader, compose, describe, pos_of
from reachproof.ports import Ports, merge_ports, parse_ports

__all__ = ["check_vocabulary", "dump_inventory", "load_inventory", "parse_inventory"]

SCHEMA_VERSION = 1
CLUSTER_ROLES = ("main", "sub")
MAX_PORT = 65535

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit"
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_HOSTNAME_RULE = "a DNS label: letters, digits and '-', at most 63 characters"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_RULE = "letters, digits and '_', not starting with a digit"
_ENV_VALUE_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:int")

_TOP_KEYS = ("name", "tls_ca", "vantages", "hosts", "sessions", "apps", "families")
_PEM_CERT = "-----BEGIN CERTIFICATE-----"
_VANTAGE_KEYS = ("netns", "command", "python", "remote_shell", "env")
_BOOL_TAG = "tag:yaml.org,2002:bool"
_HOST_KEYS = ("zone", "ipv4", "ipv6", "services", "vantage", "tls_name", "families")
_CONTAINER_REQUIRED = ("hostname", "role", "index", "agent")
_CONTAINER_KEYS = (
    "ipv4",
    "ipv6",
    "cluster_ipv4",
    "cluster_ipv6",
    "services",
    "vantage",
    "families",
)
_APP_REQUIRED = ("session", "name", "proxy", "port", "container", "container_port")
_APP_KEYS = ("address", "published_port", "identity", "path", "speaks")

_T = TypeVar("_T")
_Read = Callable[[str, ScalarNode, Node], _T | None]


class _HostCommon(TypedDict):
    ipv4: tuple[IPv4Address, ...]
    ipv6: tuple[IPv6Address, ...]
    services: tuple[tuple[str, tuple[Ports, ...]], ...]
    vantage: str | None
    families: Families


def load_inventory(path: Path) -> Inventory:
    """Load an inventory file; `sha256` is the digest of the file's bytes."""
    text = read_text(path, "inventory")
    inventory = parse_inventory(text, str(path))
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:  # read_text just succeeded; hash what it read if the file vanished since
        return inventory
    return replace(inventory, sha256=digest)


def parse_inventory(text: str, path: str = "<inventory>") -> Inventory:
    """Parse inventory text; `sha256` is the digest of the text encoded as UTF-8."""
    root = compose(text, path)
    loader = _Loader(path)
    inventory = loader.inventory(root)
    if loader.diagnostics or inventory is None:
        diagnostics = loader.diagnostics or [Diagnostic(path, 1, 1, "invalid inventory")]
        raise InventoryError(diagnostics, text)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return replace(inventory, sha256=digest)


def check_vocabulary(
    inventory: Inventory, roles: frozenset[str], zones: Mapping[str, frozenset[str]]
) -> list[Diagnostic]:
    """What the inventory names that the policy does not declare, or places where it may not.

    `zones` maps each declared zone to the roles it holds.
    """
    out: list[Diagnostic] = []
    declared_roles = ", ".join(sorted(roles)) or "none"
    declared_zones = ", ".join(sorted(zones)) or "none"
    for host in inventory.hosts:
        if host.container is not None:
            continue
        if host.role not in roles:
            out.append(
                Diagnostic.at(
                    inventory.path,
                    host.role_pos,
                    f"host {host.name!r}: role {host.role!r} is not declared by the policy "
                    f"(declared roles: {declared_roles})",
                )
            )
        if host.zone is None:
            continue
        members = zones.get(host.zone)
        if members is None:
            message = (
                f"host {host.name!r}: zone {host.zone!r} is not declared by the policy "
                f"(declared zones: {declared_zones})"
            )
            out.append(Diagnostic.at(inventory.path, host.pos, message))
        elif host.role in roles and host.role not in members:
            message = (
                f"host {host.name!r}: zone {host.zone!r} does not hold role {host.role!r} "
                f"(the policy puts {', '.join(sorted(members)) or 'no roles'} in it)"
            )
            out.append(Diagnostic.at(inventory.path, host.role_pos, message))
    if CONTAINER_ROLE not in roles:
        for session in inventory.sessions:
            message = (
                f"session {session.id!r}: its containers have role {CONTAINER_ROLE!r}, "
                f"which the policy does not declare (declared roles: {declared_roles})"
            )
            out.append(Diagnostic.at(inventory.path, session.pos, message))
    return out


@dataclass
class _ContainerDraft:
    """A container read from the file, before its session fixes the kernel order."""

    hostname: str
    cluster_role: str
    index: int
    agent: str
    host: Host
    agent_pos: Pos


@dataclass
class _Declared:
    """Names declared so far, including those whose definition has errors (no cascades)."""

    vantages: set[str] = field(default_factory=set)
    hosts: dict[str, Host | None] = field(default_factory=dict)  # None: declared, broken
    sessions: dict[str, dict[str, str] | None] = field(default_factory=dict)  # hostname → host


class _Loader(NodeReader):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.declared = _Declared()
        self.apps_seen: dict[tuple[str, str], int] = {}

    def inventory(self, root: Node | None) -> Inventory | None:
        if root is None:
            self.error(Pos(1, 1), f"empty inventory: expected a mapping with 'version: {1}'")
            return None
        top = self.fields(root, "inventory", root, ("version",), _TOP_KEYS)
        if top is None:
            return None
        if "version" in top:
            version = self.integer(top["version"], "version", 0, 10**9)
            if version is not None and version != SCHEMA_VERSION:
                self.error(
                    top["version"],
                    f"unsupported inventory version {version} (expected {SCHEMA_VERSION})",
                )
        name = self.string(top["name"], "name") if "name" in top else ""
        tls_ca = self.string(top["tls_ca"], "tls_ca") if "tls_ca" in top else None
        if tls_ca is not None and _PEM_CERT not in tls_ca:
            self.error(top["tls_ca"], f"tls_ca: expected PEM certificates ({_PEM_CERT} …)")
        families = self.families(top, "inventory")
        vantages = self.section(top, "vantages", self.vantage)
        hosts = self.section(top, "hosts", self.host)
        sessions: list[Session] = []
        containers: list[Host] = []
        for session_id, key_node, node in self.section_entries(top, "sessions"):
            loaded = self.session(session_id, key_node, node)
            if loaded is not None:
                sessions.append(loaded[0])
                containers.extend(loaded[1])
        apps = [app for node in self.section_items(top, "apps") if (app := self.app(node))]
        return Inventory(
            path=self.path,
            sha256="",
            name=name or "",
            vantages=tuple(vantages),
            hosts=(*hosts, *containers),
            sessions=tuple(sessions),
            apps=tuple(apps),
            tls_ca=tls_ca,
            families=families,
        )

    def families(self, fields: dict[str, Node], owner: str) -> Families:
        """`families` of `owner` when it has one (errors are recorded, then none is used)."""
        if "families" not in fields:
            return NO_FAMILIES
        return read_families(self, fields["families"], owner) or NO_FAMILIES

    # sections

    def section_entries(self, top: dict[str, Node], key: str) -> list[tuple[str, ScalarNode, Node]]:
        node = top.get(key)
        if node is None or (isinstance(node, ScalarNode) and node.tag == NULL_TAG):
            return []
        return self.entries(node, key) or []

    def section_items(self, top: dict[str, Node], key: str) -> list[Node]:
        node = top.get(key)
        if node is None or (isinstance(node, ScalarNode) and node.tag == NULL_TAG):
            return []
        return list(self.items(node, key))

    def section(self, top: dict[str, Node], key: str, read: _Read[_T]) -> list[_T]:
        out: list[_T] = []
        for name, key_node, node in self.section_entries(top, key):
            item = read(name, key_node, node)
            if item is not None:
                out.append(item)
        return out

    # vantages

    def vantage(self, name: str, key_node: ScalarNode, node: Node) -> Vantage | None:
        what = f"vantage {name!r}"
        self.declared.vantages.add(name)  # even when invalid: references to it are not news
        if self.name(key_node, "vantage name", _NAME, _NAME_RULE) is None:
            return None
        fields = self.fields(node, what, key_node, ("transport",), _VANTAGE_KEYS)
        if fields is None or "transport" not in fields:
            return None
        text = self.string(fields["transport"], f"{what}: transport")
        if text is None:
            return None
        try:
            transport = Transport(text)
        except ValueError:
            self.error(
                fields["transport"],
                f"{what}: unknown transport {text!r} (expected local, netns or exec)",
            )
            return None
        ok = True
        for key, needs in (("netns", Transport.NETNS), ("command", Transport.EXEC)):
            if key in fields and transport is not needs:
                self.error(fields[key], f"{what}: {key!r} applies only to transport {needs}")
                ok = False
            if key not in fields and transport is needs:
                self.error(key_node, f"{what}: transport {needs} needs key {key!r}")
                ok = False
        for key in ("python", "remote_shell"):
            if key in fields and transport is not Transport.EXEC:
                self.error(fields[key], f"{what}: {key!r} applies only to transport exec")
                ok = False
        netns = None
        if "netns" in fields:
            netns = self.name(fields["netns"], f"{what}: netns", _NAME, _NAME_RULE)
        command = self.command(fields["command"], what) if "command" in fields else ()
        python = "python3"
        if "python" in fields:
            python = self.string(fields["python"], f"{what}: python") or python
        remote_shell = None
        if "remote_shell" in fields:
            remote_shell = self.boolean(fields["remote_shell"], f"{what}: remote_shell")
            ok = ok and remote_shell is not None
        env = self.environment(fields["env"], what) if "env" in fields else ()
        if not ok or (transport is Transport.NETNS and netns is None):
            return None
        if transport is Transport.EXEC and not command:
            return None
        return Vantage(
            name=name,
            transport=transport,
            netns=netns,
            command=command,
            python=python,
            env=env,
            remote_shell=remote_shell,
            pos=pos_of(key_node),
        )

    def boolean(self, node: Node, what: str) -> bool | None:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL_TAG:
            self.error(node, f"{what}: expected true or false, got {describe(node)}")
            return None
        return node.value.lower() in ("true", "yes", "on")

    def command(self, node: Node, what: str) -> tuple[str, ...]:
        if isinstance(node, ScalarNode) and node.tag != NULL_TAG:
            self.error(
                node,
                f"{what}: command must be a list of arguments, not a shell string "
                "(write it as [ssh, -T, audit@host]; no shell on this machine parses it)",
            )
            return ()
        if not isinstance(node, SequenceNode) or not node.value:
            self.error(node, f"{what}: command: expected a non-empty list of arguments")
            return ()
        args = [self.string(item, f"{what}: command argument") for item in node.value]
        return tuple(a for a in args if a is not None) if None not in args else ()

    def environment(self, node: Node, what: str) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        for key, key_node, value in self.entries(node, f"{what}: env") or []:
            if self.name(key_node, f"{what}: env", _ENV_NAME, _ENV_RULE) is None:
                continue
            if not isinstance(value, ScalarNode) or value.tag not in _ENV_VALUE_TAGS:
                self.error(
                    value,
                    f"{what}: env {key}: expected a string or an integer, got "
                    f"{describe(value)} (quote it)",
                )
                continue
            if "\x00" in value.value:
                self.error(value, f"{what}: env {key}: a NUL character is not allowed")
                continue
            out.append((key, str(value.value)))
        return tuple(out)

    # hosts

    def host(self, name: str, key_node: ScalarNode, node: Node) -> Host | None:
        what = f"host {name!r}"
        self.declared.hosts[name] = None
        if self.name(key_node, "host name", _NAME, _NAME_RULE) is None:
            return None
        fields = self.fields(node, what, key_node, ("role",), _HOST_KEYS)
        if fields is None or "role" not in fields:
            return None
        role = self.string(fields["role"], f"{what}: role")
        if role == CONTAINER_ROLE:
            self.error(
                fields["role"],
                f"{what}: role {CONTAINER_ROLE!r} is reserved for session containers "
                "(declare them under sessions)",
            )
            role = None
        zone = self.string(fields["zone"], f"{what}: zone") if "zone" in fields else None
        tls_name = None
        if "tls_name" in fields:
            tls_name = self.string(fields["tls_name"], f"{what}: tls_name")
            if tls_name is None:
                return None
        common = self.host_common(fields, what)
        if role is None or common is None or ("zone" in fields and zone is None):
            return None
        host = Host(
            name=name,
            role=role,
            zone=zone,
            tls_name=tls_name,
            pos=pos_of(key_node),
            role_pos=pos_of(fields["role"]),
            **common,
        )
        self.declared.hosts[name] = host
        return host

    def host_common(self, fields: dict[str, Node], what: str) -> _HostCommon | None:
        """Addresses, services and vantage: what hosts and containers share."""
        before = len(self.diagnostics)
        ipv4 = self.addresses(fields.get("ipv4"), what, "ipv4")
        ipv6 = self.addresses(fields.get("ipv6"), what, "ipv6")
        services = self.services(fields["services"], what) if "services" in fields else ()
        vantage = None
        if "vantage" in fields:
            vantage = self.string(fields["vantage"], f"{what}: vantage")
            if vantage is not None and vantage not in self.declared.vantages:
                self.error(
                    fields["vantage"],
                    f"{what}: vantage {vantage!r} is not declared under vantages",
                )
        families = self.families(fields, what)
        if len(self.diagnostics) > before:
            return None
        return {
            "ipv4": tuple(a for a in ipv4 if isinstance(a, IPv4Address)),
            "ipv6": tuple(a for a in ipv6 if isinstance(a, IPv6Address)),
            "services": services,
            "vantage": vantage,
            "families": families,
        }

    def addresses(self, node: Node | None, owner: str, key: str) -> list[IPAddress]:
        """The addresses under `key` (ipv4, ipv6, cluster_ipv4, cluster_ipv6) of `owner`."""
        if node is None:
            return []
        version = int(key[-1])
        other = key[:-1] + ("6" if version == 4 else "4")
        out: list[IPAddress] = []
        for text, item in self.strings(node, f"{owner}: {key}"):
            try:
                address = ip_address(text)
            except ValueError:
                self.error(item, f"{owner}: {key}: {text!r} is not an IPv{version} address")
                continue
            if address.version != version:
                self.error(
                    item,
                    f"{owner}: {key}: {text!r} is an IPv{address.version} address, expected "
                    f"IPv{version} (put it under {other})",
                )
                continue
            if address in out:
                self.error(item, f"{owner}: {key}: address {text} is listed twice")
                continue
            out.append(address)
        return out

    def services(self, node: Node, what: str) -> tuple[tuple[str, tuple[Ports, ...]], ...]:
        out: list[tuple[str, tuple[Ports, ...]]] = []
        for key, _key_node, value in self.entries(node, f"{what}: services") or []:
            parts: list[Ports] = []
            for text, item in self.strings(value, f"{what}: service {key!r}"):
                try:
                    parts.extend(parse_ports(text))
                except ValueError as exc:
                    self.error(
                        item,
                        f"{what}: service {key!r}: {exc} "
                        "(expected ports such as 'tcp/443,8443' or 'udp/4789')",
                    )
            out.append((key, merge_ports(parts)))
        return tuple(out)

    # sessions

    def session(
        self, session_id: str, key_node: ScalarNode, node: Node
    ) -> tuple[Session, list[Host]] | None:
        what = f"session {session_id!r}"
        self.declared.sessions[session_id] = None
        if self.name(key_node, "session id", _NAME, _NAME_RULE) is None:
            return None
        fields = self.fields(node, what, key_node, ("mode", "containers"), ("families",))
        if fields is None or "containers" not in fields:
            return None
        mode = self.session_mode(fields["mode"], what) if "mode" in fields else None
        before = len(self.diagnostics)
        families = self.families(fields, what)
        drafts = self.containers(session_id, fields["containers"], what)
        if len(self.diagnostics) > before:
            pass  # a broken container may be the missing main1: say nothing more
        elif not drafts:
            self.error(fields["containers"], f"{what}: containers: expected a non-empty list")
        elif not any(d.cluster_role == "main" and d.index == 1 for d in drafts):
            self.error(key_node, f"{what} has no main1 (a container with role main, index 1)")
        if mode is SessionMode.SINGLE_NODE and drafts:
            first = drafts[0]
            for draft in drafts[1:]:
                if draft.agent != first.agent:
                    self.error(
                        draft.agent_pos,
                        f"single-node {what} must run on one agent: {draft.hostname!r} is on "
                        f"{draft.agent!r}, {first.hostname!r} on {first.agent!r}",
                    )
        if mode is None or len(self.diagnostics) > before or not drafts:
            return None
        drafts.sort(key=lambda d: (CLUSTER_ROLES.index(d.cluster_role), d.index))
        hosts = [
            replace(
                d.host,
                container=ContainerInfo(
                    session=session_id,
                    hostname=d.hostname,
                    cluster_role=d.cluster_role,
                    index=d.index,
                    local_rank=rank,
                    agent=d.agent,
                    cluster_ipv4=d.host.container.cluster_ipv4 if d.host.container else (),
                    cluster_ipv6=d.host.container.cluster_ipv6 if d.host.container else (),
                ),
            )
            for rank, d in enumerate(drafts)
        ]
        self.declared.sessions[session_id] = {d.hostname: d.host.name for d in drafts}
        session = Session(
            session_id, mode, tuple(h.name for h in hosts), families=families, pos=pos_of(key_node)
        )
        return session, hosts

    def session_mode(self, node: Node, what: str) -> SessionMode | None:
        text = self.string(node, f"{what}: mode")
        if text is None:
            return None
        try:
            return SessionMode(text)
        except ValueError:
            self.error(node, f"{what}: unknown mode {text!r} (expected single-node or multi-node)")
            return None

    def containers(self, session_id: str, node: Node, what: str) -> list[_ContainerDraft]:
        drafts: list[_ContainerDraft] = []
        hostnames: dict[str, int] = {}
        indexes: dict[tuple[str, int], int] = {}
        for item in self.items(node, f"{what}: containers"):
            draft = self.container(session_id, item, what)
            if draft is None:
                continue
            line = draft.host.pos.line
            if draft.hostname in hostnames:
                self.error(
                    draft.host.pos,
                    f"{what}: duplicate hostname {draft.hostname!r} "
                    f"(first at line {hostnames[draft.hostname]})",
                )
                continue
            hostnames[draft.hostname] = line
            slot = (draft.cluster_role, draft.index)
            if slot in indexes:
                self.error(
                    draft.host.role_pos,
                    f"{what}: container {draft.hostname!r}: duplicate index {draft.index} for "
                    f"role {draft.cluster_role} (first at line {indexes[slot]})",
                )
                continue
            indexes[slot] = line
            drafts.append(draft)
        return drafts

    def container(self, session_id: str, node: Node, session_what: str) -> _ContainerDraft | None:
        what = f"{session_what}: container"
        fields = self.fields(node, what, node, _CONTAINER_REQUIRED, _CONTAINER_KEYS)
        if fields is None or any(k not in fields for k in _CONTAINER_REQUIRED):
            return None
        hostname = self.name(fields["hostname"], f"{what}: hostname", _HOSTNAME, _HOSTNAME_RULE)
        if hostname is not None:
            what = f"{session_what}: container {hostname!r}"
        cluster_role = self.string(fields["role"], f"{what}: role")
        if cluster_role is not None and cluster_role not in CLUSTER_ROLES:
            self.error(fields["role"], f"{what}: role: expected main or sub, got {cluster_role!r}")
            cluster_role = None
        index = self.integer(fields["index"], f"{what}: index", 1, 10**6)
        agent = self.agent(fields["agent"], what)
        common = self.host_common(fields, what)
        cluster_ipv4 = self.addresses(fields.get("cluster_ipv4"), what, "cluster_ipv4")
        cluster_ipv6 = self.addresses(fields.get("cluster_ipv6"), what, "cluster_ipv6")
        if hostname is None or cluster_role is None or index is None or agent is None:
            return None
        if common is None:
            return None
        host = Host(
            # unique: session ids and hostnames cannot contain '/', host names neither
            name=f"{session_id}/{hostname}",
            role=CONTAINER_ROLE,
            pos=pos_of(fields["hostname"]),
            role_pos=pos_of(fields["role"]),
            # provisional: the session sets the rest once it knows the kernel order
            container=ContainerInfo(
                session=session_id,
                hostname=hostname,
                cluster_role=cluster_role,
                index=index,
                local_rank=0,
                agent=agent,
                cluster_ipv4=tuple(a for a in cluster_ipv4 if isinstance(a, IPv4Address)),
                cluster_ipv6=tuple(a for a in cluster_ipv6 if isinstance(a, IPv6Address)),
            ),
            **common,
        )
        return _ContainerDraft(hostname, cluster_role, index, agent, host, pos_of(fields["agent"]))

    def agent(self, node: Node, what: str) -> str | None:
        name = self.string(node, f"{what}: agent")
        if name is None:
            return None
        if name not in self.declared.hosts:
            self.error(node, f"{what}: agent {name!r} is not a declared host")
            return None
        host = self.declared.hosts[name]
        if host is not None and host.role != "agent":
            self.error(
                node,
                f"{what}: agent {name!r} is not a host with role agent (its role is {host.role!r})",
            )
            return None
        return name

    # apps

    def app(self, node: Node) -> App | None:
        fields = self.fields(node, "app", node, _APP_REQUIRED, _APP_KEYS)
        if fields is None or any(k not in fields for k in _APP_REQUIRED):
            return None
        before = len(self.diagnostics)
        name = self.string(fields["name"], "app: name")
        what = "app" if name is None else f"app {name!r}"
        session_id = self.string(fields["session"], f"{what}: session")
        container = self.app_container(fields, what, session_id)
        proxy, address = self.app_proxy(fields, what)
        port = self.integer(fields["port"], f"{what}: port", 1, MAX_PORT)
        container_port = self.integer(
            fields["container_port"], f"{what}: container_port", 1, MAX_PORT
        )
        published_port = None
        if "published_port" in fields:
            published_port = self.integer(
                fields["published_port"], f"{what}: published_port", 1, MAX_PORT
            )
        identity = None
        if "identity" in fields:
            identity = self.string(fields["identity"], f"{what}: identity")
        path = "/"
        if "path" in fields:
            path = self.string(fields["path"], f"{what}: path") or "/"
            if not path.startswith("/"):
                self.error(fields["path"], f"{what}: path must start with '/', got {path!r}")
        speaks = DEFAULT_SPEAKS
        if "speaks" in fields:
            speaks = self.speaks(fields["speaks"], what)
        if (
            len(self.diagnostics) > before
            or name is None
            or session_id is None
            or container is None
            or proxy is None
            or address is None
            or port is None
            or container_port is None
        ):
            return None
        key = (session_id, name)
        if key in self.apps_seen:
            self.error(
                fields["name"],
                f"{what}: session {session_id!r} already has an app named {name!r} "
                f"(line {self.apps_seen[key]})",
            )
            return None
        self.apps_seen[key] = pos_of(fields["name"]).line
        return App(
            session=session_id,
            name=name,
            proxy=proxy,
            address=address,
            port=port,
            container=container,
            container_port=container_port,
            published_port=published_port,
            identity=identity,
            path=path,
            speaks=speaks,
            pos=pos_of(node),
        )

    def speaks(self, node: Node, what: str) -> tuple[str, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            self.error(
                node,
                f"{what}: speaks: expected a non-empty list of protocols "
                f"({', '.join(APP_PROTOCOLS)}), got {describe(node)}",
            )
            return DEFAULT_SPEAKS
        out: list[str] = []
        for item in node.value:
            text = self.string(item, f"{what}: speaks")
            if text is not None and text not in APP_PROTOCOLS:
                self.error(
                    item,
                    f"{what}: speaks: unknown protocol {text!r} "
                    f"(known: {', '.join(APP_PROTOCOLS)})",
                )
            elif text is not None:
                out.append(text)
        return tuple(dict.fromkeys(out)) or DEFAULT_SPEAKS

    def app_container(
        self, fields: dict[str, Node], what: str, session_id: str | None
    ) -> str | None:
        """The host name of the app's container (`s1/main1`)."""
        hostname = self.string(fields["container"], f"{what}: container")
        if session_id is None or hostname is None:
            return None
        if session_id not in self.declared.sessions:
            self.error(fields["session"], f"{what}: session {session_id!r} is not declared")
            return None
        members = self.declared.sessions[session_id]
        if members is None:  # the session itself is broken and already reported
            return None
        host = members.get(hostname)
        if host is None:
            self.error(
                fields["container"],
                f"{what}: session {session_id!r} has no container {hostname!r} "
                f"(it has {', '.join(members)})",
            )
        return host

    def app_proxy(self, fields: dict[str, Node], what: str) -> tuple[str | None, IPAddress | None]:
        """The proxy host's name and the address the app is served on."""
        name = self.string(fields["proxy"], f"{what}: proxy")
        if name is None:
            return None, None
        if name not in self.declared.hosts:
            self.error(fields["proxy"], f"{what}: proxy {name!r} is not a declared host")
            return name, None
        proxy = self.declared.hosts[name]
        if "address" not in fields:
            if proxy is None:
                return name, None
            first = next(iter(proxy.primary_addresses()), None)
            if first is None:
                self.error(
                    fields["proxy"],
                    f"{what}: proxy {name!r} has no address; give the app an 'address'",
                )
            return name, first
        text = self.string(fields["address"], f"{what}: address")
        if text is None:
            return name, None
        try:
            address = ip_address(text)
        except ValueError:
            self.error(fields["address"], f"{what}: address {text!r} is not an IP address")
            return name, None
        if proxy is not None and address not in proxy.primary_addresses():
            self.error(
                fields["address"],
                f"{what}: address {text} is not an address of proxy {name!r}",
            )
            return name, None
        return name, address
