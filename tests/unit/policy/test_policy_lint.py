"""`policy lint` warnings: a deny that an egress declaration and an allow contradict."""

from __future__ import annotations

from pathlib import Path

import pytest

from reachproof.policy.lint import lint_warnings
from reachproof.policy.parse import load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[3]
HEADER = """policy "t"
role user, appproxy, agent, container
zone internet = user
zone compute = agent, container
service coordinator = tcp/10200
service user-ports = tcp/10200, tcp/10205-10300
service worker-api = tcp/10201
"""
EGRESS = "zone compute egress internet\n"
ALLOW = 'rule A "users":\n    allow user -> appproxy:user-ports\n'

# (case, declarations, rules, expected warnings as (line, column, fragment))
CASES = [
    (
        "deny-of-what-users-reach",
        EGRESS,
        ALLOW + 'rule D "d":\n    deny container -> appproxy:coordinator, worker-api\n',
        [(12, 23, "rule D denies container tcp/10200 of 'appproxy', which rule A (line 10)")],
    ),
    (
        "no-egress-no-warning",
        "",
        ALLOW + 'rule D "d":\n    deny container -> appproxy:coordinator\n',
        [],
    ),
    (
        "deny-of-other-ports",
        EGRESS,
        ALLOW + 'rule D "d":\n    deny container -> appproxy:worker-api\n',
        [],
    ),
    (
        "except-removes-the-overlap",
        EGRESS,
        ALLOW
        + 'rule D "d":\n    deny compute -> appproxy:tcp/1-65535 except appproxy:user-ports\n',
        [],
    ),
    (
        "reach-opens-too",
        EGRESS,
        'rule A "users":\n    reach user -> appproxy:tcp/10205\n'
        'rule D "d":\n    deny agent -> appproxy:tcp/10000-11000\n',
        [(12, 19, "agent tcp/10205 of 'appproxy'")],
    ),
    (
        "other-selectors",
        EGRESS,
        'rule A "users":\n    allow user -> appproxy[p1]:coordinator\n'
        'rule D "d":\n    deny container -> appproxy[p2]:coordinator\n',
        [],
    ),
    (
        "a-later-hop-of-a-chain",
        EGRESS,
        'rule A "chain":\n    allow user -> agent:tcp/1 -> appproxy:coordinator\n'
        'rule D "d":\n    deny container -> appproxy:coordinator\n',
        [],
    ),
    (
        "egress-as-a-role",
        "zone compute egress user\n",
        ALLOW + 'rule D "d":\n    deny container -> appproxy:coordinator\n',
        [(12, 23, "egresses as user (line 8)")],
    ),
]


@pytest.mark.parametrize(
    ("declarations", "rules", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_lint_warnings(declarations: str, rules: str, expected: list[tuple[int, int, str]]) -> None:
    policy = parse_policy(HEADER + declarations + rules, "t.policy")
    warnings = lint_warnings(policy)
    assert [(w.line, w.column) for w in warnings] == [(line, col) for line, col, _ in expected]
    for warning, (_, _, fragment) in zip(warnings, expected, strict=True):
        assert warning.message.startswith("warning: ")
        assert fragment in warning.message, warning.message


def test_the_shipped_policy_does_not_contradict_itself() -> None:
    policy = load_policy(ROOT / "policies" / "backend-ai.policy")
    assert policy.egress, "the shipped policy declares that compute egresses as internet"
    assert lint_warnings(policy) == []
