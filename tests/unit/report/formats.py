"""Reports of the fake documented network, shared by the format tests (built once per session)."""

from __future__ import annotations

from functools import cache

from test_golden import SCENARIOS, _check_golden, _prepare, _report

from reachproof.api import Prepared
from reachproof.report.matrix import ZoneMatrix, host_zones, zone_matrix
from reachproof.report.model import Report

BACKEND_AI = "policies/backend-ai.policy"
COMPACT = "tests/unit/report/golden/compact.policy"
SCENARIO_NAMES = sorted(SCENARIOS)


@cache
def prepared(policy: str) -> Prepared:
    return _prepare(policy)


@cache
def report(policy: str, scenario: str) -> Report:
    return _report(prepared(policy), scenario)


def matrix(policy: str, scenario: str) -> ZoneMatrix:
    case = prepared(policy)
    return zone_matrix(report(policy, scenario), host_zones(case.inventory, case.policy))


def check_golden(name: str, text: str) -> None:
    _check_golden(name, text)
