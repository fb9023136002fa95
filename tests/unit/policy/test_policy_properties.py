"""Properties of the parser, checked on generated input.

- Any valid AST renders to text that parses back to an equal AST.
- No text at all (random, a token soup, or the real policy with characters deleted or
  inserted) makes the parser raise anything but PolicyError, and every error has a position.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reachproof.errors import PolicyError
from reachproof.inventory.model import CONTAINER_ROLE
from reachproof.policy.ast import (
    APP_PROTOCOLS,
    CHECKS,
    LISTENERS,
    Action,
    CheckStmt,
    EgressDef,
    Endpoint,
    ExpectKind,
    ExpectStmt,
    FlowStmt,
    Name,
    Policy,
    PortItem,
    PortSpec,
    Rule,
    Scope,
    ScopeKind,
    ServiceDef,
    ServiceRef,
    SessionMode,
    Severity,
    Statement,
    ZoneDef,
)
from reachproof.policy.check import check_policy
from reachproof.policy.parse import parse_policy
from reachproof.policy.render import render_policy
from reachproof.ports import MAX_PORT, Protocol

BACKEND_AI = Path(__file__).resolve().parents[3] / "policies" / "backend-ai.policy"

# Every word the DSL gives a meaning somewhere: names that collide with them must still work.
KEYWORDS = [
    "policy",
    "source",
    "role",
    "zone",
    "service",
    "sample",
    "rule",
    "severity",
    "advisory",
    "allow",
    "reach",
    "deny",
    "except",
    "closed-ok",
    "within",
    "session",
    "sessions",
    "across",
    "agent",
    "by",
    "hostname",
    "check",
    "expect",
    "from",
    "via",
    "app",
    "path",
    "status",
    "http",
    "websocket",
    "critical",
    "high",
    "medium",
    "low",
    "info",
    "single-node",
    "multi-node",
    "tcp",
    "udp",
]

_FIRST = "abcxyzABZ_"
_REST = "abcxyz0129_"
identifiers = st.one_of(
    st.sampled_from(KEYWORDS),
    st.builds(
        lambda head, tail, parts: head + tail + "".join("-" + p for p in parts),
        st.sampled_from(_FIRST),
        st.text(_REST, max_size=5),
        st.lists(st.text(_REST, min_size=1, max_size=3), max_size=2),
    ),
)
# Strings hold anything but control characters (line breaks end a string in the DSL).
strings = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=16)


@st.composite
def port_items(draw: st.DrawFn) -> PortItem:
    first = draw(st.integers(1, MAX_PORT))
    last = draw(st.one_of(st.just(first), st.integers(first, MAX_PORT)))
    return PortItem(draw(st.sampled_from(Protocol)), first, last)


@st.composite
def valid_policies(draw: st.DrawFn) -> Policy:
    """A policy that passes check_policy, with declared names used consistently."""
    names = draw(st.lists(identifiers, min_size=6, max_size=12, unique=True))
    names = [n for n in names if n != CONTAINER_ROLE]
    cut = max(1, len(names) // 3)
    roles = [*names[:cut], CONTAINER_ROLE]
    zone_names, service_names = names[cut : 2 * cut], names[2 * cut :] or ["svc"]
    zones = [
        ZoneDef(Name(z), tuple(Name(r) for r in draw(st.lists(st.sampled_from(roles), min_size=1))))
        for z in zone_names
    ]
    services = [
        ServiceDef(
            Name(s),
            tuple(draw(st.lists(port_items(), min_size=1, max_size=3))),
            draw(st.none() | st.integers(1, 5000)),
        )
        for s in service_names
    ]
    places = roles + zone_names

    def endpoint(ports: bool, name: str | None = None) -> Endpoint:
        specs: list[PortSpec] = []
        if ports:
            refs = st.builds(ServiceRef, st.sampled_from(service_names))
            specs = draw(st.lists(refs | port_items(), min_size=1, max_size=3))
        return Endpoint(
            Name(name if name is not None else draw(st.sampled_from(places))),
            draw(st.none() | st.builds(Name, identifiers)),
            tuple(specs),
        )

    def flow() -> FlowStmt:
        action = draw(st.sampled_from(Action))
        kind = draw(st.none() | st.sampled_from(ScopeKind))
        scope: Scope | None = None
        if kind is None:
            hops = draw(st.integers(1, 3))
            chain = [endpoint(False), *(endpoint(True) for _ in range(hops))]
        else:
            mode = draw(st.none() | st.sampled_from(SessionMode))
            scope = Scope(kind, mode if kind is ScopeKind.WITHIN_SESSION else None)
            other = CONTAINER_ROLE if kind is not ScopeKind.WITHIN_AGENT else None
            chain = [endpoint(False, CONTAINER_ROLE), endpoint(True, other)]
            if draw(st.booleans()):
                chain.reverse()
                chain = [
                    Endpoint(chain[0].name, chain[0].selector),
                    Endpoint(chain[1].name, chain[1].selector, chain[0].ports),
                ]
        deny = action is Action.DENY
        return FlowStmt(
            action=action,
            chain=tuple(chain),
            excepts=tuple(endpoint(True) for _ in range(draw(st.integers(0, 2)) if deny else 0)),
            closed_ok=deny and draw(st.booleans()),
            scope=scope,
            by_hostname=kind is ScopeKind.WITHIN_SESSION and draw(st.booleans()),
        )

    def statement() -> Statement:
        which = draw(st.sampled_from(("flow", "check", "expect")))
        if which == "flow":
            return flow()
        if which == "check":
            mode = draw(st.none() | st.sampled_from(SessionMode))
            scope = draw(st.none() | st.just(Scope(ScopeKind.WITHIN_SESSION, mode)))
            name = draw(st.sampled_from(CHECKS))
            target = endpoint(True, CONTAINER_ROLE) if name == LISTENERS else None
            return CheckStmt(Name(name), scope, target)
        kind = draw(st.sampled_from(ExpectKind))
        if kind is ExpectKind.TLS:
            if draw(st.booleans()):
                return ExpectStmt(kind, endpoint(False), None, target=endpoint(True))
            return ExpectStmt(kind, endpoint(False), endpoint(False), draw(st.none() | strings))
        app = draw(st.none() | strings)
        speaking = draw(st.none() | st.sampled_from(APP_PROTOCOLS)) if app is None else None
        return ExpectStmt(
            kind=kind,
            source=endpoint(False),
            via=endpoint(False),
            app=app,
            path=draw(st.just("/") | strings),
            status=draw(st.none() | st.integers(100, 599)),
            speaking=Name(speaking) if speaking is not None else None,
            at_least=draw(st.none() | st.integers(0, 9)) if app is None else None,
        )

    rule_ids = draw(st.lists(identifiers, min_size=1, max_size=4, unique=True))
    rules = [
        Rule(
            id=Name(rule_id),
            title=draw(strings),
            body=tuple(statement() for _ in range(draw(st.integers(1, 4)))),
            severity=draw(st.sampled_from(Severity)),
            advisory=draw(st.booleans()),
            sources=tuple(draw(st.lists(strings, max_size=2))),
        )
        for rule_id in rule_ids
    ]
    policy_name = draw(strings.filter(lambda s: s.strip() != ""))
    return Policy(
        name=policy_name,
        sources=tuple(draw(st.lists(strings, max_size=2))),
        roles=tuple(Name(r) for r in roles),
        zones=tuple(zones),
        services=tuple(services),
        rules=tuple(rules),
        egress=tuple(
            EgressDef(
                Name(z), tuple(Name(t) for t in draw(st.lists(st.sampled_from(places), min_size=1)))
            )
            for z in draw(st.lists(st.sampled_from(zone_names), unique=True))
            if zone_names
        ),
        strict_advisory=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_policies())
def test_render_then_parse_gives_the_same_ast(policy: Policy) -> None:
    assert check_policy(policy) == []
    text = render_policy(policy)
    again = parse_policy(text)
    assert again == policy
    assert render_policy(again) == text


def _parses_or_fails_cleanly(text: str) -> None:
    try:
        parse_policy(text, "fuzz.policy")
    except PolicyError as exc:
        assert exc.diagnostics
        for diagnostic in exc.diagnostics:
            assert diagnostic.line >= 1 and diagnostic.column >= 1, diagnostic
        assert exc.render()


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_raises_only_policy_error(text: str) -> None:
    _parses_or_fails_cleanly(text)


_TOKENS = [*KEYWORDS, "->", ":", ",", "=", "[", "]", "*", '"t"', "tcp/1", "udp/1-2", "7", "x"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=40))
def test_token_soup_raises_only_policy_error(tokens: list[str]) -> None:
    _parses_or_fails_cleanly('policy "p"\nrole x, container\n' + " ".join(tokens))


_EDIT_CHARS = st.sampled_from(list('"\\:->[],=*/#\n \t0123456789azR')) | st.characters()


@st.composite
def mutated_backend_policy(draw: st.DrawFn) -> str:
    text = BACKEND_AI.read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            length = draw(st.integers(1, 12))
            text = text[:at] + text[at + length :]
        else:
            text = text[:at] + draw(st.text(_EDIT_CHARS, min_size=1, max_size=3)) + text[at:]
    return text


@settings(max_examples=300, deadline=None)
@given(mutated_backend_policy())
def test_mutated_real_policy_raises_only_policy_error(text: str) -> None:
    _parses_or_fails_cleanly(text)
