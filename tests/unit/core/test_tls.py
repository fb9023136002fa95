"""The tls expectation: what the compiler plans from the inventory, and how a handshake's
detail is judged (table-driven)."""

from __future__ import annotations

import pytest

from reachproof.inventory.load import parse_inventory
from reachproof.observation import Observation, PortResult, PortState
from reachproof.plan import Expectation, ProbeKind, ProbeSpec
from reachproof.policy.ast import Action
from reachproof.policy.compile import compile_plan
from reachproof.policy.parse import parse_policy
from reachproof.ports import PortSet
from reachproof.verdict import Verdict, judge_spec

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

INVENTORY = f"""\
version: 1
tls_ca: |
{"".join("  " + line + chr(10) for line in CA.splitlines())}
vantages:
  user: {{transport: local}}
hosts:
  laptop: {{role: user, ipv4: 10.0.0.9, vantage: user}}
  web: {{role: webserver, ipv4: 10.0.1.1, ipv6: "fd00::1", tls_name: web.example}}
  proxy: {{role: appproxy, ipv4: 10.0.1.2, tls_name: apps.example}}
  plainproxy: {{role: appproxy, ipv4: 10.0.1.3}}
apps:
  - {{session: s1, name: jupyter, proxy: proxy, port: 10205, container: main1,
      container_port: 8080}}
  - {{session: s1, name: ttyd, proxy: plainproxy, port: 10206, container: main1,
      container_port: 7681}}
sessions:
  s1:
    mode: single-node
    containers:
      - {{hostname: main1, role: main, index: 1, agent: agent1, ipv4: 172.17.0.2}}
"""

POLICY = """\
policy "t"
role user, webserver, appproxy, agent, container
service web = tcp/443, udp/443
rule T1 "TLS":
    expect tls from user to webserver:web
    expect tls from user via appproxy app "jupyter"
    expect http from user via appproxy app *
"""


def _agent_inventory() -> str:
    return INVENTORY.replace(
        "  plainproxy:", "  agent1: {role: agent, ipv4: 10.0.2.1}\n  plainproxy:"
    )


def test_tls_specs_name_the_certificate_and_carry_the_ca() -> None:
    inventory = parse_inventory(_agent_inventory())
    specs = compile_plan(parse_policy(POLICY), inventory).specs
    tls = [s for s in specs if s.kind is ProbeKind.TLS]
    # webserver over both families (tcp only: no DTLS), jupyter through its proxy
    assert sorted((s.target, s.address, str(s.ports)) for s in tls) == [
        ("proxy", "10.0.1.2", "10205"),
        ("web", "10.0.1.1", "443"),
        ("web", "fd00::1", "443"),
    ]
    for spec in tls:
        assert spec.param("tls") == "1"
        assert spec.param("tls-ca") == CA
    assert {s.param("server-name") for s in tls} == {"web.example", "apps.example"}
    http = {s.target: s for s in specs if s.kind is ProbeKind.HTTP}
    # http through a TLS proxy speaks TLS; through a plain one it does not
    assert http["proxy"].param("tls") == "1"
    assert http["proxy"].param("server-name") == "apps.example"
    assert http["plainproxy"].param("tls") is None


def _spec(ports: str = "443") -> ProbeSpec:
    return ProbeSpec(
        id="T1/0/tls",
        rule_id="T1",
        statement=0,
        hop=0,
        vantage="user",
        source="laptop",
        target="web",
        address="10.0.1.1",
        family=4,
        kind=ProbeKind.TLS,
        ports=PortSet.parse(ports),
        expect=Expectation(Action.ALLOW),
        params=(("tls", "1"), ("server-name", "web.example")),
    )


OPEN = PortResult(PortSet.parse("443"), PortState.OPEN, "syn-ack", 1)
GOOD = (
    ("tls-version", "443 TLSv1.3"),
    ("tls-cipher", "443 TLS_AES_256_GCM_SHA384"),
    ("tls-not-after", "443 Jan  1 00:00:00 2036 GMT"),
)

# (results, detail) → verdict, state shown, text the note must contain
TABLE = [
    ((OPEN,), GOOD, Verdict.PASS, "TLSv1.3 TLS_AES_256_GCM_SHA384", "valid for web.example"),
    (
        (OPEN,),
        (*GOOD[:2], ("tls-error", "443 certificate rejected: certificate has expired")),
        Verdict.FAIL,
        "TLSv1.3 TLS_AES_256_GCM_SHA384",
        "certificate has expired (name web.example)",
    ),
    (
        (OPEN,),
        (("tls-error", "443 handshake failed: WRONG_VERSION_NUMBER"),),
        Verdict.FAIL,
        "no TLS",
        "WRONG_VERSION_NUMBER",
    ),
    (
        (OPEN,),
        (("tls-version", "443 TLSv1.1"), ("tls-cipher", "443 AES128-SHA")),
        Verdict.FAIL,
        "TLSv1.1 AES128-SHA",
        "older than TLS 1.2",
    ),
    ((OPEN,), (), Verdict.INCONCLUSIVE, "no TLS", "no handshake recorded"),
    (
        (PortResult(PortSet.parse("443"), PortState.CLOSED, "rst", 1),),
        (),
        Verdict.FAIL,
        "closed",
        "closed",
    ),
    ((), (), Verdict.INCONCLUSIVE, "not observed", "no handshake recorded"),
]


@pytest.mark.parametrize(("results", "detail", "verdict", "state", "note"), TABLE)
def test_tls_verdict(
    results: tuple[PortResult, ...],
    detail: tuple[tuple[str, str], ...],
    verdict: Verdict,
    state: str,
    note: str,
) -> None:
    (evidence,) = judge_spec(_spec(), Observation("T1/0/tls", results, detail))
    assert evidence.verdict is verdict
    assert evidence.state == state
    assert note in evidence.note


def test_every_port_is_judged_on_its_own() -> None:
    results = (PortResult(PortSet.parse("443-444"), PortState.OPEN, "syn-ack", 1),)
    detail = (*GOOD, ("tls-error", "444 handshake failed: WRONG_VERSION_NUMBER"))
    evidence = judge_spec(_spec("443-444"), Observation("T1/0/tls", results, detail))
    assert [(e.ports, e.verdict) for e in evidence] == [
        ("443", Verdict.PASS),
        ("444", Verdict.FAIL),
    ]
