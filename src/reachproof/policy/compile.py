"""Policy × inventory → Plan.

Each hop of each statement becomes one ProbeSpec per source host × target host × target
address × protocol; port sets stay ranges. Deny hops go over every address of every family;
allow/reach hops over the families the inventory says the path uses (policy/families.py), and
by hostname as the vantage's clients resolve the name. Hops that resolve to nothing keep the
reason, so the verdict can say why the rule is INCONCLUSIVE instead of passing over it silently.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from reachproof.errors import InventoryError
from reachproof.inventory.model import (
    ALL_FAMILIES,
    CONTAINER_ROLE,
    App,
    Host,
    Inventory,
    IPAddress,
    SessionMode,
)
from reachproof.plan import (
    Expectation,
    HopFamilies,
    HopPlan,
    Plan,
    ProbeKind,
    ProbeSpec,
    RulePlan,
)
from reachproof.policy.ast import (
    Action,
    CheckStmt,
    Endpoint,
    ExpectKind,
    ExpectStmt,
    FlowStmt,
    Policy,
    PortItem,
    Rule,
    Scope,
    ScopeKind,
    ServiceRef,
)
from reachproof.policy.families import (
    EVERY_FAMILY,
    HOSTNAME_WHY,
    FamilyChoice,
    choose,
    rule_for,
    summarize,
)
from reachproof.policy.liveness import plan_witnesses
from reachproof.ports import Ports, PortSet, Protocol, merge_ports

ARROW = "→"
_EXPECT_KINDS = {
    ExpectKind.HTTP: ProbeKind.HTTP,
    ExpectKind.WEBSOCKET: ProbeKind.WEBSOCKET,
    ExpectKind.TLS: ProbeKind.TLS,
}


def compile_plan(policy: Policy, inventory: Inventory) -> Plan:
    """Raises InventoryError when the inventory uses a role or zone the policy does not declare."""
    _check_vocabulary(policy, inventory)
    compiler = _Compiler(policy, inventory)
    rules = tuple(compiler.rule(rule) for rule in policy.rules)
    added, witnesses = plan_witnesses(compiler.specs, inventory)
    return Plan(
        policy_name=policy.name,
        rules=rules,
        specs=(*compiler.specs, *added),
        witnesses=witnesses,
    )


def _check_vocabulary(policy: Policy, inventory: Inventory) -> None:
    from reachproof.inventory.load import check_vocabulary

    zones = {z.name.text: frozenset(r.text for r in z.roles) for z in policy.zones}
    diagnostics = check_vocabulary(inventory, policy.role_names(), zones)
    if diagnostics:
        raise InventoryError(list(diagnostics), source=_inventory_text(inventory))


def _inventory_text(inventory: Inventory) -> str | None:
    try:
        with open(inventory.path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


@dataclass(frozen=True)
class _Target:
    host: Host
    ports: tuple[Ports, ...]


class _Compiler:
    def __init__(self, policy: Policy, inventory: Inventory) -> None:
        self.policy = policy
        self.inventory = inventory
        self.specs: list[ProbeSpec] = []
        self._sampled: dict[str, tuple[Ports, ...]] = {}
        self.modes = {s.id: s.mode for s in inventory.sessions}

    # --- rules and statements -------------------------------------------------------------

    def rule(self, rule: Rule) -> RulePlan:
        hops: list[HopPlan] = []
        for index, stmt in enumerate(rule.body):
            if isinstance(stmt, FlowStmt):
                hops.extend(self.flow(rule, index, stmt))
            elif isinstance(stmt, CheckStmt):
                hops.append(self.check(rule, index, stmt))
            else:
                hops.append(self.expect(rule, index, stmt))
        return RulePlan(
            rule_id=rule.id.text,
            title=rule.title,
            severity=rule.severity,
            advisory=rule.advisory,
            line=rule.pos.line,
            sources=rule.sources,
            hops=tuple(hops),
        )

    def flow(self, rule: Rule, index: int, stmt: FlowStmt) -> Iterator[HopPlan]:
        for hop in range(1, len(stmt.chain)):
            source_ep, target_ep = stmt.chain[hop - 1], stmt.chain[hop]
            label = (
                f"{_endpoint_label(source_ep, ports=False)} {ARROW} {_endpoint_label(target_ep)}"
            )
            sources = self.resolve(source_ep)
            targets = self.resolve(target_ep)
            ids: list[str] = []
            choices: dict[str, FamilyChoice] = {}
            for source, target in _pairs(sources, targets, stmt.scope, self.modes):
                ports = self.target_ports(target_ep, target, stmt.excepts)
                addresses = _addresses(target, stmt.scope)
                choice = choices.setdefault(
                    target.name,
                    choose(self.inventory, stmt.action, target, target_ep, stmt.scope, addresses),
                )
                for address, family in self.probed(stmt, choice, addresses):
                    for item in ports:
                        spec = ProbeSpec(
                            id=_spec_id(rule, index, hop, source, target, str(address), item),
                            rule_id=rule.id.text,
                            statement=index,
                            hop=hop - 1,
                            vantage=source.vantage,
                            source=source.name,
                            target=target.name,
                            address=str(address),
                            family=family,
                            kind=ProbeKind(item.protocol.value),
                            ports=item.ports,
                            expect=Expectation(stmt.action, closed_ok=stmt.closed_ok),
                            resolve=_hostname(target) if stmt.by_hostname else None,
                        )
                        self.specs.append(spec)
                        ids.append(spec.id)
            empty = None
            if not ids:
                empty = _empty_reason(source_ep, target_ep, sources, targets, choices.values())
            yield HopPlan(
                statement=index,
                hop=hop - 1,
                label=_flow_label(stmt, label),
                action=stmt.action,
                spec_ids=tuple(ids),
                empty_reason=empty,
                families=_families(stmt, choices.values()),
            )

    @staticmethod
    def probed(
        stmt: FlowStmt, choice: FamilyChoice, addresses: Sequence[IPAddress]
    ) -> Iterator[tuple[IPAddress, int | None]]:
        """The (address, family) pairs a hop probes at one target.

        An allow/reach by hostname is one probe per target that the vantage resolves as its
        clients do (every family, in order: family None); `address` is the first one the
        inventory gives, for the plan's id. Everything else: each address of the families
        judged, deny hops every family.
        """
        if stmt.by_hostname and stmt.action is not Action.DENY:
            if addresses:
                yield addresses[0], None
            return
        for address in choice.keep(addresses):
            yield address, address.version

    def check(self, rule: Rule, index: int, stmt: CheckStmt) -> HopPlan:
        ids: list[str] = []
        hosts = self.inventory.hosts_with_role(CONTAINER_ROLE)
        if stmt.target is not None:
            hosts = tuple(h for h in self.resolve(stmt.target) if h.role == CONTAINER_ROLE)
        for host in hosts:
            if not _mode_matches(host, stmt.scope, self.modes):
                continue
            watched = PortSet()
            if stmt.target is not None:
                watched = next(
                    (
                        p.ports
                        for p in self.target_ports(stmt.target, host, ())
                        if p.protocol is Protocol.TCP
                    ),
                    PortSet(),
                )
            spec = ProbeSpec(
                id=f"{rule.id.text}/{index}/check/{stmt.name.text}/{host.name}",
                rule_id=rule.id.text,
                statement=index,
                hop=0,
                vantage=host.vantage,
                source=host.name,
                target=host.name,
                address=None,
                family=None,
                kind=ProbeKind.CHECK,
                ports=PortSet(),
                expect=Expectation(Action.ALLOW),
                params=(
                    ("check", stmt.name.text),
                    *((("ports", str(watched)),) if stmt.target is not None else ()),
                    *self._expected_cluster(host),
                ),
            )
            self.specs.append(spec)
            ids.append(spec.id)
        where = "every container" if stmt.target is None else _endpoint_label(stmt.target)
        return HopPlan(
            statement=index,
            hop=0,
            label=f"check {stmt.name.text} in {where}"
            + (f" ({stmt.scope.kind} {stmt.scope.mode or ''})".rstrip() if stmt.scope else ""),
            action=Action.ALLOW,
            spec_ids=tuple(ids),
            empty_reason=None if ids else "the inventory has no session containers in scope",
        )

    def expect(self, rule: Rule, index: int, stmt: ExpectStmt) -> HopPlan:
        if stmt.via is None:
            return self.expect_tls(rule, index, stmt)
        proxies = {h.name for h in self.resolve(stmt.via)}
        speaking = stmt.speaking.text if stmt.speaking is not None else None
        apps = [
            app
            for app in self.inventory.apps
            if app.proxy in proxies
            and (stmt.app is None or app.name == stmt.app)
            and (speaking is None or speaking in app.speaks)
        ]
        kind = _EXPECT_KINDS[stmt.kind]
        ids: list[str] = []
        sources = self.resolve(stmt.source)
        for source in sources:
            for app, address in self.app_addresses(apps):
                path = stmt.path if stmt.path != "/" else app.path
                spec = ProbeSpec(
                    id=f"{rule.id.text}/{index}/{kind}/{source.name}>{app.session}:{app.name}"
                    f"/{address}",
                    rule_id=rule.id.text,
                    statement=index,
                    hop=0,
                    vantage=source.vantage,
                    source=source.name,
                    target=app.proxy,
                    address=str(address),
                    family=address.version,
                    kind=kind,
                    ports=PortSet.of([app.port]),
                    # A 101 answer has no body to carry the app's identity: the http
                    # expectation proves which container answers, websocket the upgrade.
                    expect=Expectation(
                        Action.ALLOW,
                        status=stmt.status,
                        identity=app.identity if kind is ProbeKind.HTTP else None,
                    ),
                    params=(
                        ("path", path),
                        ("app", app.name),
                        ("session", app.session),
                        ("container", app.container),
                        *self.tls_params(self.inventory.host(app.proxy), kind),
                    ),
                )
                self.specs.append(spec)
                ids.append(spec.id)
        app_label = "every app" if stmt.app is None else f"app {stmt.app!r}"
        choices = {app.proxy: self.app_choice(app) for app in apps}
        if speaking is not None:
            app_label = f"every app speaking {speaking}"
        published = f"through {stmt.via.name.text!r}"
        reason = None
        if not ids:
            reason = (
                f"no host has role or zone {stmt.source.name.text!r}"
                if not sources
                else f"the inventory publishes no {app_label.removeprefix('every ')} {published}"
            )
        needed = stmt.required()
        shortfall = None
        if sources and 0 < len(apps) < needed:
            shortfall = (
                f"the inventory publishes {len(apps)} {app_label.removeprefix('every ')} "
                f"{published}, the rule needs at least {needed}"
            )
        return HopPlan(
            statement=index,
            hop=0,
            label=f"{stmt.kind} {_endpoint_label(stmt.source)} {ARROW} "
            f"{_endpoint_label(stmt.via)} {ARROW} {app_label}",
            action=Action.ALLOW,
            spec_ids=tuple(ids),
            empty_reason=reason,
            families=summarize(choices.values()),
            # A selection the site leaves empty has nothing to hold unless the rule needs some;
            # a source that does not exist is never "not applicable".
            applicable=needed > 0 or not sources or not proxies,
            shortfall=shortfall,
        )

    def expect_tls(self, rule: Rule, index: int, stmt: ExpectStmt) -> HopPlan:
        """`expect tls from A to B:ports`: one spec per source × target address × tcp ports."""
        assert stmt.target is not None  # the parser sets exactly one of via and target
        label = f"tls {_endpoint_label(stmt.source)} {ARROW} {_endpoint_label(stmt.target)}"
        sources, targets = self.resolve(stmt.source), self.resolve(stmt.target)
        ids: list[str] = []
        for source, target in _pairs(sources, targets, None, self.modes):
            for address in target.primary_addresses():
                for item in self.target_ports(stmt.target, target, ()):
                    if item.protocol.value != "tcp":
                        continue  # TLS runs over TCP; DTLS is not checked
                    spec = ProbeSpec(
                        id=_spec_id(rule, index, 1, source, target, str(address), item) + "/tls",
                        rule_id=rule.id.text,
                        statement=index,
                        hop=0,
                        vantage=source.vantage,
                        source=source.name,
                        target=target.name,
                        address=str(address),
                        family=address.version,
                        kind=ProbeKind.TLS,
                        ports=item.ports,
                        expect=Expectation(Action.ALLOW),
                        params=self.tls_params(target, ProbeKind.TLS),
                    )
                    self.specs.append(spec)
                    ids.append(spec.id)
        return HopPlan(
            statement=index,
            hop=0,
            label=label,
            action=Action.ALLOW,
            spec_ids=tuple(ids),
            empty_reason=None
            if ids
            else _empty_reason(stmt.source, stmt.target, sources, targets, ()),
        )

    def tls_params(self, host: Host | None, kind: ProbeKind) -> tuple[tuple[str, str], ...]:
        """How to speak TLS to `host`: the name its certificate must carry and the CA that
        signs it. http/websocket only wrap their connection in TLS where the host declares a
        `tls_name`; they do not judge the certificate (the tls expectation does)."""
        name = host.tls_name if host is not None else None
        if kind is not ProbeKind.TLS and name is None:
            return ()
        params = [("tls", "1"), ("server-name", name or (host.name if host else ""))]
        if self.inventory.tls_ca is not None:
            params.append(("tls-ca", self.inventory.tls_ca))
        return tuple(params)

    def app_addresses(self, apps: Sequence[App]) -> Iterator[tuple[App, IPAddress]]:
        """Each app at the address the inventory gives, and at the proxy's first address of
        the other family, so that IPv6 is held to the same expectations as IPv4 — over the
        families the inventory says carry the `apps` traffic of that proxy."""
        for app in apps:
            proxy = self.inventory.host(app.proxy)
            addresses = [app.address]
            others = [
                a
                for a in (proxy.primary_addresses() if proxy else ())
                if a.version != app.address.version
            ]
            addresses += others[:1]
            choice = self.app_choice(app)
            for address in choice.keep(addresses):
                yield app, address

    def app_choice(self, app: App) -> FamilyChoice:
        proxy = self.inventory.host(app.proxy)
        present = (
            app.address.version,
            *(a.version for a in (proxy.primary_addresses() if proxy else ())),
        )
        families = tuple(f for f in ALL_FAMILIES if f in present)
        if proxy is None:
            return FamilyChoice(EVERY_FAMILY, families)
        return FamilyChoice(rule_for(self.inventory, proxy, "apps", ()), families)

    # --- resolution ------------------------------------------------------------------------

    def resolve(self, endpoint: Endpoint) -> tuple[Host, ...]:
        name = endpoint.name.text
        zone = self.policy.zone(name)
        roles = {r.text for r in zone.roles} if zone else {name}
        hosts = [h for h in self.inventory.hosts if h.role in roles]
        if endpoint.selector is not None:
            hosts = [h for h in hosts if _selected(h, endpoint.selector.text)]
        return tuple(hosts)

    def target_ports(
        self, endpoint: Endpoint, host: Host, excepts: Sequence[Endpoint]
    ) -> tuple[Ports, ...]:
        ports = self.ports_for(endpoint, host)
        for exc in excepts:
            if host in self.resolve(exc):
                cut = {p.protocol: p.ports for p in self.ports_for(exc, host)}
                ports = tuple(
                    Ports(p.protocol, p.ports.difference(cut.get(p.protocol, PortSet())))
                    for p in ports
                )
        return tuple(p for p in ports if p.ports)

    def ports_for(self, endpoint: Endpoint, host: Host) -> tuple[Ports, ...]:
        items: list[Ports] = []
        for spec in endpoint.ports:
            if isinstance(spec, PortItem):
                items.append(Ports(spec.protocol, PortSet.of([(spec.first, spec.last)])))
                continue
            override = host.service_ports(spec.name)
            items.extend(override if override is not None else self.service_ports(spec, host))
        return merge_ports(items)

    def service_ports(self, ref: ServiceRef, host: Host) -> tuple[Ports, ...]:
        """The service's ports on `host`. A sampled service probes its sample plus every port
        of its range that the inventory knows is in use on `host` (see `known_ports`): the
        sample guesses, the inventory's facts are probed whatever the sample drew."""
        service = self.policy.service(ref.name)
        if service is None:  # the semantic pass rejects this; keep the compiler total anyway
            return ()
        full = merge_ports(
            Ports(i.protocol, PortSet.of([(i.first, i.last)])) for i in service.items
        )
        if service.sample is None:
            return full
        sampled = self._sampled.get(ref.name)
        if sampled is None:
            # Seeded by the service name so the same policy always probes the same ports.
            seed = zlib.crc32(service.name.text.encode())
            sampled = tuple(
                Ports(p.protocol, p.ports.sample(service.sample, seed + i))
                for i, p in enumerate(full)
            )
            self._sampled[ref.name] = sampled
        known = self.known_ports(host)
        return tuple(
            Ports(s.protocol, s.ports.union(f.ports.intersection(known)))
            if s.protocol is Protocol.TCP
            else s
            for s, f in zip(sampled, full, strict=True)
        )

    def known_ports(self, host: Host) -> PortSet:
        """TCP ports the inventory records in use on `host`: the published host port of every
        app whose container runs on it (an agent), and the port of every app it serves (a
        container)."""
        ports: list[int] = []
        for app in self.inventory.apps:
            if app.container == host.name:
                ports.append(app.container_port)
            container = self.inventory.host(app.container)
            info = container.container if container is not None else None
            if info is not None and info.agent == host.name and app.published_port is not None:
                ports.append(app.published_port)
        return PortSet.of(ports)

    def _expected_cluster(self, host: Host) -> tuple[tuple[str, str], ...]:
        info = host.container
        if info is None:
            return ()
        session = self.inventory.session(info.session)
        names = [self.inventory.host(n) for n in session.containers] if session else []
        hostnames = ",".join(h.container.hostname for h in names if h and h.container)
        return (
            ("expect.hosts", hostnames),
            ("expect.host", info.hostname),
            ("expect.role", info.cluster_role),
            ("expect.idx", str(info.index)),
            ("expect.local_rank", str(info.local_rank)),
        )


# --- pairing and addressing -------------------------------------------------------------------


def _pairs(
    sources: Sequence[Host],
    targets: Sequence[Host],
    scope: Scope | None,
    modes: dict[str, SessionMode],
) -> Iterator[tuple[Host, Host]]:
    for source in sources:
        for target in targets:
            if source.name != target.name and _paired(source, target, scope, modes):
                yield source, target


def _paired(source: Host, target: Host, scope: Scope | None, modes: dict[str, SessionMode]) -> bool:
    if scope is None:
        return True
    s, t = source.container, target.container
    if scope.kind is ScopeKind.ACROSS_AGENTS:
        if s is None and t is None:
            return False
        return not _paired(source, target, Scope(ScopeKind.WITHIN_AGENT), modes)
    if scope.kind is ScopeKind.WITHIN_AGENT:
        if s is not None and t is not None:
            return s.agent == t.agent
        if t is not None:
            return t.agent == source.name
        return s is not None and s.agent == target.name
    if s is None or t is None:
        return False
    if scope.kind is ScopeKind.ACROSS_SESSIONS:
        return s.session != t.session
    return s.session == t.session and _mode_matches(source, scope, modes)


def _mode_matches(host: Host, scope: Scope | None, modes: dict[str, SessionMode]) -> bool:
    if scope is None or scope.mode is None:
        return True
    return host.container is not None and modes.get(host.container.session) == scope.mode


def _addresses(target: Host, scope: Scope | None) -> tuple[IPAddress, ...]:
    """Which of the target's addresses a hop probes.

    Within a session peers talk over the session's private network; an agent reaches its
    containers on the default network; everyone else must be blocked on every address.
    """
    if scope is not None and scope.kind is ScopeKind.WITHIN_SESSION:
        return target.cluster_addresses() or target.primary_addresses()
    if scope is not None and scope.kind is ScopeKind.WITHIN_AGENT:
        return target.primary_addresses()
    return target.all_addresses()


def _selected(host: Host, selector: str) -> bool:
    if host.name == selector:
        return True
    info = host.container
    return info is not None and selector in (info.hostname, info.cluster_role)


def _hostname(host: Host) -> str:
    return host.container.hostname if host.container else host.name


# --- labels and ids ---------------------------------------------------------------------------


def _spec_id(
    rule: Rule, index: int, hop: int, source: Host, target: Host, address: str, item: Ports
) -> str:
    return f"{rule.id.text}/{index}/{hop - 1}/{source.name}>{target.name}/{address}/{item.protocol}"


def _endpoint_label(endpoint: Endpoint, ports: bool = True) -> str:
    text = endpoint.name.text
    if endpoint.selector is not None:
        text += f"[{endpoint.selector.text}]"
    if ports and endpoint.ports:
        text += ":" + ", ".join(_port_spec_label(p) for p in endpoint.ports)
    return text


def _port_spec_label(spec: PortItem | ServiceRef) -> str:
    if isinstance(spec, ServiceRef):
        return spec.name
    ports = PortSet.of([(spec.first, spec.last)])
    return f"{spec.protocol}/{ports}"


def _flow_label(stmt: FlowStmt, label: str) -> str:
    extras = [f"except {_endpoint_label(e)}" for e in stmt.excepts]
    if stmt.closed_ok:
        extras.append("closed-ok")
    if stmt.scope is not None:
        extras.append(f"{stmt.scope.kind} {stmt.scope.mode or ''}".rstrip())
    if stmt.by_hostname:
        extras.append("by hostname")
    return " ".join([f"{stmt.action} {label}", *extras])


def _empty_reason(
    source_ep: Endpoint,
    target_ep: Endpoint,
    sources: Sequence[Host],
    targets: Sequence[Host],
    choices: Iterable[FamilyChoice],
) -> str:
    if not sources:
        return f"no host in the inventory matches {_endpoint_label(source_ep)!r}"
    if not targets:
        return f"no host in the inventory matches {_endpoint_label(target_ep)!r}"
    excluded = [c for c in choices if c.present and not c.judged]
    if excluded:
        return (
            "the inventory's families leave no address of the targets to judge "
            f"({excluded[0].rule.where})"
        )
    return "no source and target pair in scope, or every port was excepted"


def _families(stmt: FlowStmt, choices: Iterable[FamilyChoice]) -> tuple[HopFamilies, ...]:
    if stmt.by_hostname and stmt.action is not Action.DENY:
        found = list(choices)
        present = tuple(sorted({f for c in found for f in c.present}))
        return (HopFamilies(present, (), HOSTNAME_WHY, len(found)),) if found else ()
    return summarize(choices)
