"""`reachproof scan` refuses bad input with exit 2 before anything is spawned or sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from reachproof.cli import app

INVENTORY = Path(__file__).parents[3] / "examples" / "lab-small.yaml"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--from", "user", "192.0.2.1", "-p", "80"], "192.0.2.1"),
        (["--from", "user", "webserver", "example.org", "-p", "80"], "example.org"),
        (["--from", "nowhere", "webserver", "-p", "80"], "nowhere"),
        (["--from", "user", "webserver", "-p", "80-70"], "80-70"),
        (["--from", "user", "webserver", "-p", "80", "--attempts", "1"], "--attempts"),
    ],
)
def test_bad_scan_input_exits_2_naming_the_culprit(args: list[str], named: str) -> None:
    result = CliRunner().invoke(app, ["scan", "-i", str(INVENTORY), *args])
    assert result.exit_code == 2, result.output
    assert named in result.output
