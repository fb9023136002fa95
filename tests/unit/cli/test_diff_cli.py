"""`reachproof diff OLD NEW`: exit 1 when anything got worse, 0 otherwise, 2 on bad input."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reachproof.api import build_report, prepare
from reachproof.fake import Fact
from reachproof.observation import PortState
from reachproof.ports import PortSet
from reachproof.report.json_report import render_json

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "unit" / "report"))
from world import documented_world  # noqa: E402

T0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    prepared = prepare(ROOT / "policies/backend-ai.policy", ROOT / "examples/lab-small.yaml")
    folder = tmp_path_factory.mktemp("diff")
    clean = documented_world(prepared.inventory)
    leaky = documented_world(prepared.inventory)
    leaky.facts.insert(0, Fact("user", "agent2", PortState.OPEN, PortSet.parse("6001")))
    paths = []
    for name, world in (("clean", clean), ("leaky", leaky)):
        report = build_report(prepared, world.observe(prepared.plan), T0, T0)
        path = folder / f"{name}.json"
        path.write_text(render_json(report), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def diff(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reachproof", "diff", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_newly_open_port_is_worse(reports: tuple[Path, Path]) -> None:
    clean, leaky = reports
    result = diff(clean, leaky)
    assert result.returncode == 1, result.stderr
    assert "R3" in result.stdout
    assert "6001" in result.stdout


def test_a_fixed_leak_is_not_worse(reports: tuple[Path, Path]) -> None:
    clean, leaky = reports
    assert diff(leaky, clean).returncode == 0
    assert diff(clean, clean).returncode == 0


def test_markdown_and_json_formats(reports: tuple[Path, Path]) -> None:
    clean, leaky = reports
    assert diff(clean, leaky, "--format", "json").stdout.lstrip().startswith("{")
    assert "R3" in diff(clean, leaky, "--format", "markdown").stdout


def test_not_a_report_is_a_user_error(tmp_path: Path, reports: tuple[Path, Path]) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"schema": "something else"}', encoding="utf-8")
    result = diff(bogus, reports[0])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(bogus) in result.stderr
