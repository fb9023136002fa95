"""The shipped Backend.AI policy parses, renders back to itself, and errors land where they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from reachproof.errors import InputError, PolicyError
from reachproof.policy.ast import (
    Action,
    ExpectStmt,
    FlowStmt,
    PortItem,
    ScopeKind,
    ServiceRef,
    SessionMode,
    Severity,
)
from reachproof.policy.check import check_policy
from reachproof.policy.parse import load_policy, parse_policy
from reachproof.policy.render import render_policy
from reachproof.ports import Protocol

BACKEND_AI = Path(__file__).resolve().parents[3] / "policies" / "backend-ai.policy"


def test_backend_ai_policy_parses() -> None:
    policy = load_policy(BACKEND_AI)
    assert policy.path == str(BACKEND_AI)
    assert policy.text == BACKEND_AI.read_text(encoding="utf-8")
    assert policy.name == "Backend.AI cluster networking"
    assert [r.id.text for r in policy.rules] == [f"R{i}" for i in range(1, 17)]
    assert check_policy(policy) == []
    assert policy.service("host-port-pool") is not None
    assert policy.service("host-port-pool").sample == 64  # type: ignore[union-attr]
    zone = policy.zone("compute")
    assert zone is not None and [r.text for r in zone.roles] == ["agent", "container"]

    r13 = policy.rules[12]
    flow = r13.body[0]
    assert isinstance(flow, FlowStmt)
    assert flow.action is Action.DENY and flow.closed_ok
    assert flow.scope is not None and flow.scope.kind is ScopeKind.WITHIN_SESSION
    assert [e.selector.text for e in flow.chain if e.selector] == ["main", "sub"]

    r9 = policy.rules[8]
    assert isinstance(r9.body[0], FlowStmt) and r9.body[0].scope is not None
    assert r9.body[0].scope.mode is SessionMode.SINGLE_NODE
    assert policy.rules[14].advisory and policy.rules[14].severity is Severity.LOW

    expect = policy.rules[1].body[3]
    assert isinstance(expect, ExpectStmt)
    assert (expect.app, expect.path, expect.status) == (None, "/", 200)


def test_backend_ai_policy_round_trips() -> None:
    policy = load_policy(BACKEND_AI)
    text = render_policy(policy)
    again = parse_policy(text)
    assert again == policy
    assert render_policy(again) == text


def test_positions_point_at_the_token() -> None:
    policy = load_policy(BACKEND_AI)
    r1_flow = policy.rules[0].body[0]
    assert isinstance(r1_flow, FlowStmt)
    line = BACKEND_AI.read_text(encoding="utf-8").splitlines()[r1_flow.pos.line - 1]
    assert line[r1_flow.pos.column - 1 :].startswith("allow user -> webserver:web")
    target = r1_flow.chain[1]
    assert line[target.name.pos.column - 1 :].startswith("webserver:web")
    ref = target.ports[0]
    assert isinstance(ref, ServiceRef)
    assert line[ref.pos.column - 1 :].startswith("web ->")


def test_inline_ports_keep_their_protocol_and_range() -> None:
    text = 'policy "p"\nrole a, b\nrule R1 "t":\n    deny a -> b:udp/4789, tcp/1-1024\n'
    flow = parse_policy(text).rules[0].body[0]
    assert isinstance(flow, FlowStmt)
    assert flow.chain[1].ports == (
        PortItem(Protocol.UDP, 4789, 4789),
        PortItem(Protocol.TCP, 1, 1024),
    )


def test_error_on_line_12_column_17_is_reported_there() -> None:
    lines = [
        'policy "p"',
        "role user, agent",
        "service web = tcp/443",
        *(["# filler"] * 7),
        'rule R1 "t":',
        "   deny user -> agnt:web",
    ]
    text = "\n".join(lines) + "\n"
    assert lines[11].index("agnt") + 1 == 17
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "site.policy")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.column) == (12, 17)
    assert str(caught.value).startswith("site.policy:12:17: unknown role or zone 'agnt'")
    assert str(caught.value).endswith("\n       deny user -> agnt:web\n                    ^")


def test_syntax_error_position() -> None:
    text = 'policy "p"\nrole user\nrule R1 "t":\n    allow user webserver:web\n'
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "x.policy")
    assert caught.value.render().splitlines()[0] == "x.policy:4:16: expected '->' after 'user'"
    assert caught.value.__cause__ is not None  # the lark error is kept as the cause


def test_all_semantic_errors_come_together() -> None:
    text = 'policy "p"\nrole a, b\nrule R1 "t":\n    allow x -> b:s\nrule R1 "t":\n    check nope\n'
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    lines = [(d.line, d.column) for d in caught.value.diagnostics]
    assert lines == [(4, 11), (4, 18), (5, 6), (6, 11)]


def test_load_policy_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such policy file"):
        load_policy(tmp_path / "absent.policy")


def test_load_policy_uses_the_path_in_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.policy"
    bad.write_text('policy "p"\nrole a\n', encoding="utf-8")
    with pytest.raises(PolicyError, match=r"bad\.policy:1:8: the policy has no rules"):
        load_policy(bad)
