"""SARIF 2.1.0: valid against the OASIS schema; one SARIF rule per policy rule; results for
what did not pass, located at the rule's line in the policy."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from formats import BACKEND_AI, COMPACT, SCENARIO_NAMES, check_golden, report

from reachproof.report.sarif import artifact_uri, render_sarif
from reachproof.verdict import Verdict


@cache
def _validator() -> jsonschema.Draft4Validator:
    path = Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def _log(policy: str, scenario: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(render_sarif(report(policy, scenario)))
    return document


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_sarif_golden(scenario: str) -> None:
    check_golden(f"compact-{scenario}.sarif", render_sarif(report(COMPACT, scenario)))


@pytest.mark.parametrize("policy", [BACKEND_AI, COMPACT])
@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_sarif_matches_schema(policy: str, scenario: str) -> None:
    _validator().validate(_log(policy, scenario))


def test_the_schema_rejects_a_wrong_level() -> None:
    log = _log(BACKEND_AI, "faulty")
    log["runs"][0]["results"][0]["level"] = "critical"
    assert not _validator().is_valid(log)


def test_rules_levels_and_locations() -> None:
    faulty = report(BACKEND_AI, "faulty")
    run = _log(BACKEND_AI, "faulty")["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "reachproof"
    assert [d["id"] for d in driver["rules"]] == [r.rule_id for r in faulty.rules]
    r3 = driver["rules"][2]
    assert r3["shortDescription"]["text"] == "User → Agent (direct access) MUST BE BLOCKED"
    assert r3["defaultConfiguration"]["level"] == "error"
    assert r3["properties"]["security-severity"] == "9.5"
    assert "MUST BE BLOCKED" in r3["fullDescription"]["text"]
    assert run["invocations"][0]["exitCode"] == 1

    by_rule = {r["ruleId"]: r for r in run["results"]}
    undecided = {r.rule_id for r in faulty.rules if r.verdict is Verdict.INCONCLUSIVE}
    assert set(by_rule) == {"R3"} | undecided
    assert by_rule["R3"]["level"] == "error"
    assert "agent1 10.0.2.11 tcp/6001: open" in by_rule["R3"]["message"]["text"]
    location = by_rule["R3"]["locations"][0]["physicalLocation"]
    line = next(r.line for r in faulty.rules if r.rule_id == "R3")
    assert location == {
        "artifactLocation": {"uri": "policies/backend-ai.policy", "index": 0},
        "region": {"startLine": line},
    }
    policy_lines = Path(__file__).resolve().parents[3].joinpath(BACKEND_AI).read_text()
    assert policy_lines.splitlines()[line - 1].startswith("rule R3 ")
    for rule_id in undecided:
        assert by_rule[rule_id]["level"] == "note"
        assert "INCONCLUSIVE" in by_rule[rule_id]["message"]["text"]


def test_a_clean_run_has_no_results() -> None:
    run = _log(BACKEND_AI, "clean")["runs"][0]
    assert run["results"] == []
    assert run["invocations"][0]["exitCode"] == 0


def test_artifact_uris() -> None:
    assert artifact_uri("policies/my site.policy") == "policies/my%20site.policy"
    assert artifact_uri("/etc/reachproof/site.policy") == "file:///etc/reachproof/site.policy"
