"""Waivers: what one covers, when it expires, and how a bad waiver file is reported."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from reachproof.errors import EXIT_INVALID, WaiverError
from reachproof.policy.parse import load_policy
from reachproof.ports import parse_ports
from reachproof.verdict import Evidence, Verdict
from reachproof.waivers.apply import Waiving
from reachproof.waivers.load import load_waivers, parse_waivers
from reachproof.waivers.model import Waiver

RULES = ("R1", "R3")
LABEL = "deny user → agent:any-tcp"


def _waiver(**scope: object) -> Waiver:
    fields: dict[str, object] = {
        "ref": "w.yaml:2",
        "line": 2,
        "rule": "R3",
        "hop": None,
        "target": None,
        "ports": None,
        "justification": "why",
        "accepted_by": "who",
        "expires": date(2026, 11, 22),
    }
    fields.update(scope)
    return Waiver(**fields)  # type: ignore[arg-type]


# (waiver scope, evidence: rule, hop number, target, address, kind, ports) → covered
COVERS = [
    ({}, ("R3", 1, "agent1", "10.0.2.11", "tcp", "6001"), True),
    ({}, ("R1", 1, "agent1", "10.0.2.11", "tcp", "6001"), False),
    ({"hop": 1}, ("R3", 1, "agent1", "10.0.2.11", "tcp", "6001"), True),
    ({"hop": 2}, ("R3", 1, "agent1", "10.0.2.11", "tcp", "6001"), False),
    ({"hop": "deny user -> agent:any-tcp"}, ("R3", 1, "agent1", None, "tcp", "6001"), True),
    ({"hop": "deny user -> agent:web"}, ("R3", 1, "agent1", None, "tcp", "6001"), False),
    ({"target": "agent1"}, ("R3", 1, "agent1", "10.0.2.11", "tcp", "6001"), True),
    ({"target": "10.0.2.11"}, ("R3", 1, "agent1", "10.0.2.11", "tcp", "6001"), True),
    ({"target": "10.0.2.11"}, ("R3", 1, "agent1", "fd00:2::11", "tcp", "6001"), False),
    ({"target": "agent2"}, ("R3", 1, "agent1", "10.0.2.11", "tcp", "6001"), False),
    ({"ports": "tcp/6000-6010"}, ("R3", 1, "agent1", None, "tcp", "6001,6005"), True),
    ({"ports": "tcp/6001"}, ("R3", 1, "agent1", None, "tcp", "6001-6002"), False),
    ({"ports": "udp/6001"}, ("R3", 1, "agent1", None, "tcp", "6001"), False),
    ({"ports": "tcp/22, udp/4789"}, ("R3", 1, "agent1", None, "udp", "4789"), True),
    ({"ports": "tcp/1-65535"}, ("R3", 1, "s1/main1", None, "check", ""), False),
    ({"target": "s1/main1"}, ("R3", 1, "s1/main1", None, "check", ""), True),
]


@pytest.mark.parametrize(("scope", "item", "covered"), COVERS)
def test_what_a_waiver_covers(
    scope: dict[str, object], item: tuple[str, int, str, str | None, str, str], covered: bool
) -> None:
    if "ports" in scope:
        scope = {**scope, "ports": parse_ports(str(scope["ports"]))}
    rule, number, target, address, kind, ports = item
    assert _waiver(**scope).covers(rule, number, LABEL, target, address, kind, ports) is covered


@pytest.mark.parametrize(
    ("today", "expired"),
    [(date(2026, 11, 21), False), (date(2026, 11, 22), False), (date(2026, 11, 23), True)],
)
def test_a_waiver_is_valid_through_its_expiry_day(today: date, expired: bool) -> None:
    assert _waiver().expired(today) is expired


GOOD = """\
waivers:
  - rule: R3
    hop: 1
    target: agent1
    ports: tcp/6001, udp/4789
    justification: monitored until the bastion ships
    accepted_by: A. Auditor
    expires: 2027-01-31
  - rule: R1
    hop: allow user -> webserver:web
    justification: j
    accepted_by: b
    expires: 2026-12-01
"""


def test_a_waiver_file_loads_with_its_positions() -> None:
    first, second = parse_waivers(GOOD, "w.yaml", RULES)
    assert (first.ref, first.rule, first.hop, first.target) == ("w.yaml:2", "R3", 1, "agent1")
    assert [str(p) for p in first.ports or ()] == ["tcp/6001", "udp/4789"]
    assert first.expires == date(2027, 1, 31)
    assert (second.ref, second.hop, second.ports) == (
        "w.yaml:9",
        "allow user -> webserver:web",
        None,
    )


BAD = [
    ("rule: R3", "rule: R9", "2:11", "the policy has no rule 'R9' (rules: R1, R3)"),
    ("expires: 2027-01-31", "expires: 31.1.2027", "8:14", "expires: expected a date"),
    ("expires: 2027-01-31", "expires: 2027-02-30", "8:14", "expires: expected a date"),
    ("ports: tcp/6001, udp/4789", "ports: tcp/70000", "5:12", "ports: port out of range"),
    ("hop: 1", "hop: 0", "3:10", "hop: expected an integer 1-9999, got 0"),
    ("    justification: monitored until the bastion ships\n", "", "2:5", "missing required key"),
    ("accepted_by: A. Auditor", 'accepted_by: ""', "7:18", "accepted_by: expected a string"),
    ("target: agent1", "taget: agent1", "4:5", "unknown key 'taget' in waiver at line 2"),
]


@pytest.mark.parametrize(("old", "new", "pos", "message"), BAD)
def test_each_mistake_is_reported_where_it_is(old: str, new: str, pos: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(WaiverError) as caught:
        parse_waivers(GOOD.replace(old, new), "w.yaml", RULES)
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.render().startswith(f"w.yaml:{pos}: ")
    assert message in diagnostic.message
    assert caught.value.exit_code == EXIT_INVALID


def test_every_mistake_of_a_file_is_reported_at_once() -> None:
    text = GOOD.replace("rule: R3", "rule: R9").replace("rule: R1", "rule: R8")
    with pytest.raises(WaiverError) as caught:
        parse_waivers(text, "w.yaml", RULES)
    assert [(d.line, d.column) for d in caught.value.diagnostics] == [(2, 11), (9, 11)]
    assert "    ^" in str(caught.value)  # the line and a caret under the mistake


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "w.yaml:1:1: empty waiver file"),
        ("waivers: [\n", "w.yaml:2:1: invalid YAML"),
        ("waivers: {rule: R3}\n", "w.yaml:1:10: waivers: expected a list, got a mapping"),
        ("- rule: R3\n", "w.yaml:1:1: waiver file: expected a mapping, got a list"),
    ],
)
def test_a_malformed_file_is_a_waiver_error(text: str, message: str) -> None:
    with pytest.raises(WaiverError) as caught:
        parse_waivers(text, "w.yaml", RULES)
    assert str(caught.value).startswith(message)


def _item(verdict: Verdict, note: str = "open: reachable although the rule denies it") -> Evidence:
    return Evidence(
        spec_id="R3/0/0/0", vantage="user", source="user", target="agent1",
        address="10.0.2.11", family=4, kind="tcp", ports="6001", state="open",
        reason="syn-ack", attempts=1, rtt_ms=0.5, ttl=64, verdict=verdict, note=note,
    )  # fmt: skip


VALID = _waiver(ref="w.yaml:2", expires=date(2026, 11, 22))
STALE = _waiver(ref="w.yaml:9", expires=date(2026, 11, 1))

# (waivers, evidence verdict) → (verdict after waiving, waiver ref, expiry noted)
WAIVING = [
    ((VALID,), Verdict.FAIL, Verdict.WAIVED, "w.yaml:2", False),
    ((STALE, VALID), Verdict.FAIL, Verdict.WAIVED, "w.yaml:2", False),
    ((STALE,), Verdict.FAIL, Verdict.FAIL, "", True),
    ((VALID,), Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE, "", False),
    ((VALID,), Verdict.PASS, Verdict.PASS, "", False),
    ((), Verdict.FAIL, Verdict.FAIL, "", False),
]


@pytest.mark.parametrize(("waivers", "before", "after", "ref", "noted"), WAIVING)
def test_only_a_fail_is_waived_and_only_by_a_valid_waiver(
    waivers: tuple[Waiver, ...], before: Verdict, after: Verdict, ref: str, noted: bool
) -> None:
    waived = Waiving(waivers, date(2026, 11, 22)).waive("R3", 1, LABEL, _item(before))
    assert (waived.verdict, waived.waiver) == (after, ref)
    assert ("waiver w.yaml:9 expired on 2026-11-01" in waived.note) is noted


def test_the_shipped_example_loads_against_the_shipped_policy() -> None:
    root = Path(__file__).resolve().parents[3]
    policy = load_policy(root / "policies" / "backend-ai.policy")
    loaded = load_waivers(root / "examples" / "waivers.yaml", [r.id.text for r in policy.rules])
    assert [(w.rule, w.target, w.hop) for w in loaded.waivers] == [
        ("R3", "agent1", None),
        ("R7", None, 1),
    ]
    assert len(loaded.sha256) == 64
