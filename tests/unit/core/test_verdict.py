"""Verdict semantics, table-driven: every action × every port state × attempts × closed-ok."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reachproof.observation import Observation, PortResult, PortState
from reachproof.plan import Expectation, HopPlan, Plan, ProbeKind, ProbeSpec, RulePlan
from reachproof.policy.ast import Action, Severity
from reachproof.ports import PortSet
from reachproof.verdict import Verdict, combine, judge_plan, judge_port, judge_spec

P, F, U = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE  # U: undecided
S = PortState

# (action, state, attempts, closed_ok) → verdict. Silent ports need two attempts to decide.
TABLE = [
    (Action.ALLOW, S.OPEN, 1, False, P),
    (Action.ALLOW, S.CLOSED, 1, False, F),
    (Action.ALLOW, S.FILTERED, 2, False, F),
    (Action.ALLOW, S.FILTERED, 1, False, U),
    (Action.ALLOW, S.PROHIBITED, 1, False, F),
    (Action.ALLOW, S.UNREACHABLE, 1, False, F),
    (Action.ALLOW, S.OPEN_FILTERED, 2, False, U),
    (Action.ALLOW, S.ERROR, 1, False, U),
    (Action.REACH, S.OPEN, 1, False, P),
    (Action.REACH, S.CLOSED, 1, False, P),
    (Action.REACH, S.FILTERED, 2, False, F),
    (Action.REACH, S.FILTERED, 1, False, U),
    (Action.REACH, S.PROHIBITED, 1, False, F),
    (Action.REACH, S.UNREACHABLE, 1, False, F),
    (Action.REACH, S.OPEN_FILTERED, 3, False, U),
    (Action.REACH, S.ERROR, 1, False, U),
    (Action.DENY, S.OPEN, 1, False, F),
    (Action.DENY, S.OPEN, 1, True, F),
    (Action.DENY, S.CLOSED, 1, False, F),
    (Action.DENY, S.CLOSED, 1, True, P),
    (Action.DENY, S.FILTERED, 2, False, P),
    (Action.DENY, S.FILTERED, 3, True, P),
    (Action.DENY, S.FILTERED, 1, False, U),
    (Action.DENY, S.FILTERED, 0, False, U),
    (Action.DENY, S.PROHIBITED, 1, False, P),
    (Action.DENY, S.UNREACHABLE, 1, False, P),
    (Action.DENY, S.OPEN_FILTERED, 2, False, U),
    (Action.DENY, S.ERROR, 2, False, U),
]


def test_table_covers_every_action_and_state() -> None:
    seen = {(a, s) for a, s, *_ in TABLE}
    assert seen == {(a, s) for a in Action for s in PortState}


@pytest.mark.parametrize(("action", "state", "attempts", "closed_ok", "expected"), TABLE)
def test_port_verdict(
    action: Action, state: PortState, attempts: int, closed_ok: bool, expected: Verdict
) -> None:
    result = PortResult(PortSet.parse("22"), state, "why", attempts)
    verdict, note = judge_port(action, closed_ok, result)
    assert verdict is expected, note
    assert note


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([], U),
        ([P], P),
        ([P, P], P),
        ([P, U], U),
        ([P, F], F),
        ([U, F], F),
        ([F, U, P], F),
    ],
)
def test_combine(verdicts: list[Verdict], expected: Verdict) -> None:
    assert combine(verdicts) is expected


def _spec(
    action: Action = Action.DENY,
    ports: str = "1-100",
    vantage: str | None = "v",
    kind: ProbeKind = ProbeKind.TCP,
    **expect: object,
) -> ProbeSpec:
    return ProbeSpec(
        id="R/0/0/a>b",
        rule_id="R",
        statement=0,
        hop=0,
        vantage=vantage,
        source="a",
        target="b",
        address="10.0.0.2",
        family=4,
        kind=kind,
        ports=PortSet.parse(ports),
        expect=Expectation(action, **expect),  # type: ignore[arg-type]
        params=(("check", "cluster-env"),),
    )


def _result(ports: str, state: PortState, attempts: int = 2) -> PortResult:
    return PortResult(PortSet.parse(ports), state, "r", attempts)


def test_no_vantage_is_inconclusive_never_pass() -> None:
    [evidence] = judge_spec(_spec(vantage=None), None)
    assert evidence.verdict is U
    assert evidence.note == "no vantage"


def test_missing_observation_is_inconclusive() -> None:
    [evidence] = judge_spec(_spec(), None)
    assert evidence.verdict is U


def test_vantage_error_is_inconclusive() -> None:
    [evidence] = judge_spec(_spec(), Observation("x", error="ssh: connection refused"))
    assert evidence.verdict is U
    assert "ssh" in evidence.note


def test_ports_nobody_observed_are_inconclusive() -> None:
    obs = Observation("x", (_result("1-50", S.FILTERED),))
    evidence = judge_spec(_spec(), obs)
    assert [e.verdict for e in evidence] == [P, U]
    assert evidence[1].ports == "51-100"


def test_results_outside_the_spec_do_not_count() -> None:
    obs = Observation("x", (_result("1-100", S.FILTERED), _result("200", S.OPEN, 1)))
    assert [e.verdict for e in judge_spec(_spec(), obs)] == [P]


def test_one_open_port_in_a_sweep_fails_the_deny() -> None:
    obs = Observation("x", (_result("1-21,23-100", S.FILTERED), _result("22", S.OPEN, 1)))
    verdicts = {e.ports: e.verdict for e in judge_spec(_spec(), obs)}
    assert verdicts == {"1-21,23-100": P, "22": F}


def _app_spec(kind: ProbeKind, status: int | None, identity: str | None) -> ProbeSpec:
    return _spec(Action.ALLOW, "10205", kind=kind, status=status, identity=identity)


@pytest.mark.parametrize(
    ("kind", "status", "detail", "expected"),
    [
        (ProbeKind.HTTP, 200, {"status": "200", "identity": "session=s1 host=main1"}, P),
        (ProbeKind.HTTP, 200, {"status": "502", "identity": ""}, F),
        (ProbeKind.HTTP, None, {"status": "204", "identity": "session=s1 host=main1"}, P),
        (ProbeKind.HTTP, None, {"status": "400", "identity": "session=s1 host=main1"}, F),
        (ProbeKind.HTTP, 200, {"status": "200", "identity": "session=s2 host=main1"}, F),
        (ProbeKind.HTTP, 200, {"identity": "session=s1 host=main1"}, F),
        (
            ProbeKind.WEBSOCKET,
            None,
            {"status": "101", "websocket": "ok", "identity": "session=s1 host=main1"},
            P,
        ),
        (
            ProbeKind.WEBSOCKET,
            None,
            {"status": "101", "websocket": "no echo", "identity": "session=s1 host=main1"},
            F,
        ),
    ],
)
def test_app_expectations(
    kind: ProbeKind, status: int | None, detail: dict[str, str], expected: Verdict
) -> None:
    spec = _app_spec(kind, status, "session=s1 host=main1")
    obs = Observation("x", (_result("10205", S.OPEN, 1),), tuple(detail.items()))
    [evidence] = judge_spec(spec, obs)
    assert evidence.verdict is expected, evidence.note


def test_app_unreachable_fails() -> None:
    spec = _app_spec(ProbeKind.HTTP, 200, None)
    [evidence] = judge_spec(spec, Observation("x", (_result("10205", S.CLOSED, 1),)))
    assert evidence.verdict is F


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ((("ran", "cluster-env"),), P),
        ((("ran", "cluster-env"), ("problem", "BACKENDAI_CLUSTER_SIZE is not set")), F),
        ((), U),
        ((("ran", "training-env"),), U),
    ],
)
def test_check_verdicts(detail: tuple[tuple[str, str], ...], expected: Verdict) -> None:
    spec = _spec(Action.ALLOW, "1", kind=ProbeKind.CHECK)
    [evidence] = judge_spec(spec, Observation("x", detail=detail))
    assert evidence.verdict is expected


# The target's own vantage reporting that it holds the deny target's address (10.0.0.2).
HOLDS = replace(
    _spec(Action.ALLOW, "1", kind=ProbeKind.CHECK),
    id="liveness/holds/b",
    rule_id="liveness",
    address=None,
    family=None,
    params=(("check", "addresses"), ("addresses", "10.0.0.2")),
)
ALIVE = Observation(HOLDS.id, detail=(("ran", "addresses"), ("holds", "10.0.0.2")))


def _plan(hops: list[tuple[str, ...]], advisory: bool = False, *extra: ProbeSpec) -> Plan:
    specs = []
    hop_plans = []
    for index, ids in enumerate(hops):
        for spec_id in ids:
            specs.append(replace(_spec(), id=spec_id))
        hop_plans.append(HopPlan(index, 0, f"hop {index}", Action.DENY, ids, "nothing here"))
    rule = RulePlan("R", "t", Severity.HIGH, advisory, 1, (), tuple(hop_plans))
    return Plan("p", (rule,), (*specs, HOLDS, *extra))


def _obs(spec_id: str, state: PortState) -> Observation:
    return Observation(spec_id, (_result("1-100", state, 2 if state is S.FILTERED else 1),))


def test_rule_passes_only_if_every_hop_passes() -> None:
    plan = _plan([("a",), ("b",)])
    [ok] = judge_plan(plan, [_obs("a", S.FILTERED), _obs("b", S.FILTERED), ALIVE])
    assert ok.verdict is P
    [bad] = judge_plan(plan, [_obs("a", S.FILTERED), _obs("b", S.OPEN)])
    assert bad.verdict is F
    assert [h.verdict for h in bad.hops] == [P, F]


def test_fail_outweighs_inconclusive() -> None:
    [rule] = judge_plan(_plan([("a",), ("b",)]), [_obs("b", S.OPEN)])
    assert rule.verdict is F


def test_empty_target_set_is_inconclusive() -> None:
    [rule] = judge_plan(_plan([()]), [])
    assert rule.verdict is U
    assert "nothing here" in rule.reason


def test_advisory_rule_warns_instead_of_failing() -> None:
    plan = _plan([("a",)], advisory=True)
    [rule] = judge_plan(plan, [_obs("a", S.OPEN)])
    assert rule.verdict is Verdict.WARN
    [rule] = judge_plan(plan, [])
    assert rule.verdict is U


TRAINING = replace(
    _spec(Action.ALLOW, "1", kind=ProbeKind.CHECK),
    id="t",
    address=None,
    family=None,
    params=(("check", "training-env"),),
)


@pytest.mark.parametrize(
    ("findings", "advisory", "expected", "state"),
    [
        ((), True, P, "holds"),
        ((("problem", "TF_CONFIG is not set"),), True, Verdict.WARN, "violated"),
        ((("problem", "TF_CONFIG is not set"),), False, F, "violated"),
        ((("contradiction", "TF_CONFIG task.index=0 but LOCAL_RANK=1"),), True, F, "inconsistent"),
        (
            (("problem", "TF_CONFIG is not set"), ("contradiction", "MASTER_ADDR=sub1 is not")),
            True,
            F,
            "inconsistent",
        ),
    ],
)
def test_advisory_softens_absence_never_a_contradiction(
    findings: tuple[tuple[str, str], ...], advisory: bool, expected: Verdict, state: str
) -> None:
    hop = HopPlan(0, 0, "check training-env", Action.ALLOW, ("t",))
    rule = RulePlan("R15", "t", Severity.LOW, advisory, 1, (), (hop,))
    plan = Plan("p", (rule,), (TRAINING,))
    [verdict] = judge_plan(plan, [Observation("t", detail=(("ran", "training-env"), *findings))])
    assert verdict.verdict is expected
    assert verdict.hops[0].evidence[0].state == state
    if state == "inconsistent":
        assert "advisory does not soften it" in verdict.reason


def test_a_deny_on_a_target_nobody_saw_alive_is_inconclusive() -> None:
    [rule] = judge_plan(_plan([("a",)]), [_obs("a", S.FILTERED)])
    assert rule.verdict is U
    assert rule.reason == "target not shown alive: 10.0.0.2"
    [witness] = rule.hops[0].witnesses
    assert (witness.address, witness.alive, witness.state) == ("10.0.0.2", False, "not shown alive")


def test_any_answer_from_the_address_to_another_spec_is_a_witness() -> None:
    reach = replace(_spec(Action.REACH, "443"), id="other/reach", rule_id="O", source="c")
    plan = _plan([("a",)], False, reach)
    answer = Observation(reach.id, (PortResult(PortSet.parse("443"), S.CLOSED, "rst", 1),))
    [rule] = judge_plan(plan, [_obs("a", S.FILTERED), answer])
    assert rule.verdict is P
    [witness] = rule.hops[0].witnesses
    assert (witness.alive, witness.spec_id, witness.state, witness.reason) == (
        True,
        "other/reach",
        "closed",
        "rst",
    )


@pytest.mark.parametrize(
    "witness",
    [
        Observation(HOLDS.id, detail=(("ran", "addresses"), ("holds", "10.0.0.9"))),
        Observation(HOLDS.id, error="vantage down"),
        Observation(HOLDS.id, detail=(("ran", "addresses"),)),
    ],
    ids=["holds-another-address", "check-failed", "holds-nothing"],
)
def test_a_witness_must_name_the_asked_address(witness: Observation) -> None:
    [rule] = judge_plan(_plan([("a",)]), [_obs("a", S.FILTERED), witness])
    assert rule.verdict is U


@pytest.mark.parametrize("state", [S.FILTERED, S.PROHIBITED, S.UNREACHABLE, S.ERROR])
def test_no_answer_is_no_witness(state: PortState) -> None:
    other = replace(_spec(Action.REACH, "443"), id="other/reach", rule_id="O")
    plan = _plan([("a",)], False, other)
    [rule] = judge_plan(plan, [_obs("a", S.FILTERED), _obs(other.id, state)])
    assert rule.verdict is U


def test_a_failure_stays_a_failure_whatever_the_witness() -> None:
    [rule] = judge_plan(_plan([("a",)]), [_obs("a", S.OPEN)])
    assert rule.verdict is F
