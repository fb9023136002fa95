"""`reachproof check` as a CI job runs it: on the lab, output piped, files written."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from labkit import lab, require_lab

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "backend-ai.policy"
FILES = {"report.json", "junit.xml", "report.sarif", "report.html", "summary.md"}


@pytest.fixture(autouse=True)
def _needs_lab() -> None:
    require_lab()


def check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reachproof", "check", "--policy", str(POLICY), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_check_writes_every_format_and_evidence(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with lab(tmp_path, "cli", 2, "single-node:2,multi-node:2") as handle:
        result = check(
            "-i", handle.inventory_path, "-r", "R1", "-r", "R14", "--evidence", "-o", out
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 PASS" in result.stdout
    assert "0:00:0" not in result.stdout  # no progress bars (elapsed column) when piped
    assert {p.name for p in out.iterdir()} >= FILES
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["exit_code"] == 0
    captures = [c for c in report["evidence"] if c["pcap"]]
    assert captures, report["evidence"]
    for capture in captures:
        data = Path(capture["pcap"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == capture["sha256"]
    assert any(c["packets"] > 0 for c in captures)


def test_a_fault_exits_1_and_only_the_named_formats_are_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with lab(tmp_path, "clf", 2, "single-node:2,multi-node:2", faults=("agent-rpc-exposed",)) as h:
        result = check(
            "-i", h.inventory_path, "-r", "R3", "-f", "sarif", "-f", "markdown", "-o", out
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert {p.name for p in out.iterdir()} == {"report.sarif", "summary.md"}
    sarif = json.loads((out / "report.sarif").read_text(encoding="utf-8"))
    [run] = sarif["runs"]
    assert [r["ruleId"] for r in run["results"]] == ["R3"]


def test_a_failed_vantage_exits_3(tmp_path: Path) -> None:
    with lab(tmp_path, "clv", 2, "single-node:2,multi-node:2") as handle:
        broken = tmp_path / "broken.yaml"
        text = handle.inventory_path.read_text(encoding="utf-8")
        prefix = text.split("netns: ", 1)[1].split("-", 1)[0]
        broken.write_text(text.replace(f"netns: {prefix}-user", "netns: nosuch-user"), "utf-8")
        result = check("-i", broken, "-r", "R1", "-f", "terminal")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "INCONCLUSIVE" in result.stdout


def test_unknown_rule_is_a_usage_error(tmp_path: Path) -> None:
    result = check("-i", ROOT / "examples" / "lab-small.yaml", "-r", "R99")
    assert result.returncode == 2
    assert "R99" in result.stderr and "Traceback" not in result.stderr


WAIVER = """\
waivers:
  - rule: R3
    target: agent1
    ports: tcp/6001
    justification: agent RPC monitored from the user zone until the bastion ships
    accepted_by: A. Auditor
    expires: {expires}
"""


def test_a_waiver_turns_the_fail_into_waived_until_it_expires(tmp_path: Path) -> None:
    valid, expired = tmp_path / "valid.yaml", tmp_path / "expired.yaml"
    valid.write_text(WAIVER.format(expires="2999-12-31"), encoding="utf-8")
    expired.write_text(WAIVER.format(expires="2000-01-01"), encoding="utf-8")
    with lab(tmp_path, "clw", 1, "single-node:1", faults=("agent-rpc-exposed",)) as h:
        waived = check("-i", h.inventory_path, "-r", "R3", "--waivers", valid, "-o", tmp_path / "a")
        failed = check(
            "-i", h.inventory_path, "-r", "R3", "--waivers", expired, "-o", tmp_path / "b"
        )
    assert waived.returncode == 0, waived.stdout + waived.stderr
    assert "WAIVED" in waived.stdout and "every rule holds or is waived" in waived.stdout
    report = json.loads((tmp_path / "a" / "report.json").read_text(encoding="utf-8"))
    assert [r["verdict"] for r in report["rules"]] == ["WAIVED"]
    assert report["waivers"]["sha256"] == hashlib.sha256(valid.read_bytes()).hexdigest()
    assert [w["status"] for w in report["waivers"]["waivers"]] == ["applied"]
    junit = (tmp_path / "a" / "junit.xml").read_text(encoding="utf-8")
    assert '<skipped message="WAIVED: agent RPC monitored' in junit

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "expired" in failed.stdout
    report = json.loads((tmp_path / "b" / "report.json").read_text(encoding="utf-8"))
    assert [r["verdict"] for r in report["rules"]] == ["FAIL"]
    notes = [e["note"] for h in report["rules"][0]["hops"] for e in h["evidence"]]
    assert any(f"waiver {expired}:2 expired on 2000-01-01" in n for n in notes), notes
    assert [w["status"] for w in report["waivers"]["waivers"]] == ["expired"]
