"""The command line as a user meets it: exit codes, messages, no tracebacks for mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "policies" / "backend-ai.policy"
INVENTORY = ROOT / "examples" / "lab-small.yaml"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reachproof", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_lint_accepts_the_shipped_policy() -> None:
    result = run("policy", "lint", POLICY)
    assert result.returncode == 0, result.stderr
    assert "16 rules" in result.stdout


def test_lint_warnings_keep_exit_0_with_file_line_and_column(tmp_path: Path) -> None:
    text = POLICY.read_text(encoding="utf-8")
    old = "deny container -> appproxy:appproxy-worker-api"
    assert old in text
    lines = text.replace(old, "deny container -> appproxy:appproxy-coordinator").splitlines()
    number = next(i for i, line in enumerate(lines) if "appproxy:appproxy-coordinator" in line)
    contradicting = tmp_path / "contradicting.policy"
    contradicting.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("policy", "lint", contradicting)
    assert result.returncode == 0, result.stderr
    column = lines[number].index("appproxy:") + 1
    assert f"{contradicting}:{number + 1}:{column}: warning: rule R6 denies container" in (
        result.stderr
    )
    assert "1 warning(s)" in result.stdout
    assert "warning" not in run("policy", "lint", POLICY).stderr


def test_lint_names_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.policy"
    lines = POLICY.read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines) if "deny user -> agent:any-tcp" in line)
    lines[number] = lines[number].replace("-> agent", "-> agnet")
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("policy", "lint", bad)
    assert result.returncode == 2
    column = lines[number].index("agnet") + 1
    assert f"{bad}:{number + 1}:{column}: unknown role or zone 'agnet'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "^" in result.stderr


def test_lint_reports_every_error_of_a_file(tmp_path: Path) -> None:
    bad = tmp_path / "two.policy"
    bad.write_text(
        'policy "p"\nrole a\n'
        'rule R1 "x":\n    deny a -> b:tcp/0\n'
        'rule R1 "y":\n    deny a -> a:nope\n',
        encoding="utf-8",
    )
    result = run("policy", "lint", bad)
    assert result.returncode == 2
    located = [line for line in result.stderr.splitlines() if line.startswith(str(bad))]
    assert len(located) >= 4, result.stderr  # unknown b, port 0, duplicate R1, unknown nope


def test_missing_policy_file_is_a_user_error(tmp_path: Path) -> None:
    result = run("policy", "lint", tmp_path / "absent.policy")
    assert result.returncode == 2
    assert "no such policy file" in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_json_covers_every_rule_over_both_families() -> None:
    result = run("plan", "--policy", POLICY, "--inventory", INVENTORY, "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    rule_ids = {r["id"] for r in plan["rules"]}
    assert rule_ids == {f"R{n}" for n in range(1, 17)}
    covered = {s["rule"] for s in plan["specs"]}
    assert covered - {"liveness"} == rule_ids
    # every deny target address has a planned witness
    assert plan["witnesses"] and all(w["specs"] for w in plan["witnesses"])
    for rule in rule_ids:
        families = {s["family"] for s in plan["specs"] if s["rule"] == rule}
        # in-container checks have no address; every network rule is probed over v4 and v6
        assert families - {None} in ({4, 6}, set()), (rule, families)
    v4 = [s for s in plan["specs"] if s["family"] == 4]
    v6 = [s for s in plan["specs"] if s["family"] == 6]
    assert len(v4) == len(v6)


def test_plan_table_summarises() -> None:
    result = run("plan", "-P", POLICY, "-i", INVENTORY)
    assert result.returncode == 0, result.stderr
    assert "container[main]" in result.stdout
    assert "probes" in result.stdout
    # What liveness adds to the plan, in one line: no extra probe packet for the lab.
    liveness = " ".join(result.stdout[result.stdout.index("liveness:") :].split())
    assert liveness.startswith("liveness: 46 deny target addresses")
    assert liveness.endswith("adds 15 spec(s), 0 probe packet(s)")


def test_inventory_with_undeclared_role_exits_2(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yaml"
    text = INVENTORY.read_text(encoding="utf-8").replace("role: database", "role: datastore")
    inventory.write_text(text, encoding="utf-8")
    result = run("plan", "-P", POLICY, "-i", inventory)
    assert result.returncode == 2
    assert f"{inventory}:" in result.stderr
    assert "datastore" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["plan"], ["plan", "--format", "xml"], ["nope"]])
def test_bad_command_lines_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("reachproof ")


def test_a_bad_waiver_file_exits_2_before_probing(tmp_path: Path) -> None:
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(
        "waivers:\n  - {rule: R99, justification: j, accepted_by: a, expires: 2027-13-01}\n",
        encoding="utf-8",
    )
    result = run("check", "--policy", POLICY, "-i", INVENTORY, "--waivers", waivers, "-o", tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{waivers}:2:12: waiver at line 2: the policy has no rule 'R99'" in result.stderr
    assert f"{waivers}:2:60: waiver at line 2: expires: expected a date" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("report*"))
