"""The policy AST: frozen dataclasses that carry the line and column they were parsed from.

Positions are excluded from equality, so a rendered and re-parsed policy compares equal to
the original even though its text (and so every position) differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from reachproof.errors import NOWHERE, Pos
from reachproof.inventory.model import APP_PROTOCOLS, SessionMode
from reachproof.ports import Protocol

__all__ = ["APP_PROTOCOLS", "NOWHERE", "Pos", "SessionMode"]  # re-exported for AST users


class Action(StrEnum):
    ALLOW = "allow"  # every probed port must be open
    REACH = "reach"  # every probed port open or closed: nothing filters the path
    DENY = "deny"  # every probed port filtered, prohibited or unreachable


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class ExpectKind(StrEnum):
    HTTP = "http"
    WEBSOCKET = "websocket"
    TLS = "tls"  # handshake, version >= 1.2, certificate valid for the inventory's name


# The in-container checks a `check NAME` statement may name; `listeners` takes `in ENDPOINT:PORTS`.
CHECKS = ("cluster-env", "training-env", "hostnames", "listeners")
LISTENERS = "listeners"


@dataclass(frozen=True)
class Name:
    """An identifier as written, with its position (roles, zones, services)."""

    text: str
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class PortItem:
    """An inline `tcp/443` or `udp/30000-31000`."""

    protocol: Protocol
    first: int
    last: int
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class ServiceRef:
    """A reference to a declared `service` by name."""

    name: str
    pos: Pos = field(default=NOWHERE, compare=False)


PortSpec = PortItem | ServiceRef


@dataclass(frozen=True)
class ServiceDef:
    """`service NAME = tcp/1-65535, udp/4789 [sample N]`."""

    name: Name
    items: tuple[PortItem, ...]
    sample: int | None = None
    pos: Pos = field(default=NOWHERE, compare=False)
    sample_pos: Pos = field(default=NOWHERE, compare=False)  # of N, for `sample < 1`


@dataclass(frozen=True)
class ZoneDef:
    """`zone NAME = role, role`."""

    name: Name
    roles: tuple[Name, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class EgressDef:
    """`zone NAME egress ZONE|ROLE, …`: hosts of the zone reach whatever hosts of the listed
    zones or roles reach (their traffic leaves as theirs, e.g. through the agent's masquerade
    to the Internet). `policy lint` warns when a deny contradicts it."""

    zone: Name
    to: tuple[Name, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Endpoint:
    """One hop of a chain: a role or zone, optionally narrowed (`container[main]`), with ports.

    The first element of a chain is the source and carries no ports.
    """

    name: Name
    selector: Name | None = None
    ports: tuple[PortSpec, ...] = ()


class ScopeKind(StrEnum):
    WITHIN_SESSION = "within session"  # pairs containers of the same session
    ACROSS_SESSIONS = "across sessions"  # pairs containers of different sessions
    WITHIN_AGENT = "within agent"  # pairs an agent with its own containers (or co-located ones)
    ACROSS_AGENTS = "across agents"  # pairs a container with every other agent (and its containers)


@dataclass(frozen=True)
class Scope:
    """How the two ends of a hop are paired; `mode` narrows `within session` to one mode."""

    kind: ScopeKind
    mode: SessionMode | None = None
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class FlowStmt:
    """`allow|reach|deny A -> B:ports [-> C:ports …]` with its modifiers.

    Modifiers: `except X:ports` (repeatable), `closed-ok`, a scope, `by hostname`.
    """

    action: Action
    chain: tuple[Endpoint, ...]
    excepts: tuple[Endpoint, ...] = ()
    closed_ok: bool = False
    scope: Scope | None = None
    by_hostname: bool = False
    pos: Pos = field(default=NOWHERE, compare=False)
    # Where each modifier was written, so a misplaced one is reported at its own token.
    closed_ok_pos: Pos = field(default=NOWHERE, compare=False)
    by_hostname_pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class CheckStmt:
    """`check NAME [in ENDPOINT:PORTS] [within session [MODE]]`: an in-container check in every
    matching container. `target` narrows the containers (and, for `listeners`, names the ports
    that must have no listener there)."""

    name: Name
    scope: Scope | None = None
    target: Endpoint | None = None
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class ExpectStmt:
    """`expect http|websocket|tls from ROLE via ROLE app "NAME"|*|* speaking P [path "/p"]
    [status N] [at least N]`, or `expect tls from ROLE to ROLE:ports` (exactly one of `via`
    and `target` is set).

    `app "NAME"` and `app *` need at least one app (none is INCONCLUSIVE); `app * speaking P`
    selects the apps the inventory says speak P and needs `at_least` of them (default 0: a
    site that runs none has nothing to hold)."""

    kind: ExpectKind
    source: Endpoint
    via: Endpoint | None
    app: str | None = None  # None: every app of the inventory (that speaks `speaking`)
    target: Endpoint | None = None  # `to ROLE:ports`: the ports themselves, no app
    path: str = "/"
    status: int | None = None
    speaking: Name | None = None
    at_least: int | None = None
    pos: Pos = field(default=NOWHERE, compare=False)
    status_pos: Pos = field(default=NOWHERE, compare=False)  # of N, for a status out of range
    at_least_pos: Pos = field(default=NOWHERE, compare=False)

    def required(self) -> int:
        """How many selected apps the expectation needs before it can hold."""
        if self.at_least is not None:
            return self.at_least
        return 0 if self.speaking is not None else 1


Statement = FlowStmt | CheckStmt | ExpectStmt


@dataclass(frozen=True)
class Rule:
    """`rule ID "title" [severity S] [advisory]:` followed by its statements.

    An advisory rule reports WARN where it would FAIL.
    """

    id: Name
    title: str
    body: tuple[Statement, ...]
    severity: Severity = Severity.MEDIUM
    advisory: bool = False
    sources: tuple[str, ...] = ()
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Policy:
    name: str
    sources: tuple[str, ...] = ()
    roles: tuple[Name, ...] = ()
    zones: tuple[ZoneDef, ...] = ()
    services: tuple[ServiceDef, ...] = ()
    rules: tuple[Rule, ...] = ()
    egress: tuple[EgressDef, ...] = ()
    # `strict advisory`: advisory rules are judged like the others (a FAIL stays FAIL), for a
    # site whose release ships what the advisory rules check.
    strict_advisory: bool = False
    path: str = field(default="<policy>", compare=False)
    text: str = field(default="", compare=False, repr=False)
    pos: Pos = field(default=NOWHERE, compare=False)  # of the name string

    def service(self, name: str) -> ServiceDef | None:
        return next((s for s in self.services if s.name.text == name), None)

    def zone(self, name: str) -> ZoneDef | None:
        return next((z for z in self.zones if z.name.text == name), None)

    def role_names(self) -> frozenset[str]:
        return frozenset(r.text for r in self.roles)
