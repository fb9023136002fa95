"""`reachproof lab` argument errors and the fault list: no root needed."""

from __future__ import annotations

from typer.testing import CliRunner

from reachproof.lab.cli import app
from reachproof.lab.faults import FAULTS


def test_faults_lists_every_fault() -> None:
    result = CliRunner().invoke(app, ["faults"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for item in FAULTS:
        assert item.name in result.output


def test_unknown_fault_is_a_usage_error_with_exit_2() -> None:
    result = CliRunner().invoke(app, ["up", "--fault", "no-such-fault"])
    assert result.exit_code == 2
    assert "unknown fault 'no-such-fault'" in result.output
    assert "Traceback" not in result.output


def test_bad_prefix_and_sessions_are_usage_errors() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["up", "--prefix", "rp-x"]).exit_code == 2
    assert runner.invoke(app, ["up", "--sessions", "multi-node:x"]).exit_code == 2
    assert runner.invoke(app, ["up", "--perimeter", "maybe"]).exit_code == 2
