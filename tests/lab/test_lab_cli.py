"""`reachproof lab up / status / down` end to end through the typer app (root only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from labkit import SSH_PROGRAMS, require_lab, unique_prefix
from typer.testing import CliRunner

from reachproof.lab.cli import app
from reachproof.lab.netns import list_netns
from reachproof.lab.state import teardown

pytestmark = pytest.mark.lab
require_lab(*SSH_PROGRAMS)


def test_up_status_down(tmp_path: Path) -> None:
    prefix = unique_prefix("cli")
    inventory = tmp_path / "inventory.yaml"
    ssh_inventory = tmp_path / "inventory-ssh.yaml"
    runner = CliRunner()
    try:
        result = runner.invoke(
            app,
            ["up", "--agents", "2", "--sessions", "single-node:1,multi-node:2", "--prefix", prefix,
             "--fault", "ipv6-open", "--perimeter", "reject", "--inventory", str(inventory),
             "--ssh"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert str(inventory) in result.output and str(ssh_inventory) in result.output
        assert inventory.exists() and ssh_inventory.exists()
        status = runner.invoke(app, ["status", "--prefix", prefix])
        assert status.exit_code == 0
        for expected in ("ipv6-open", "reject", "alive", f"{prefix}-fw", "ssh inventory"):
            assert expected in status.output
        assert "7 of 7 running" in status.output  # sshd of user, 4 management hosts, 2 agents
        again = runner.invoke(app, ["up", "--prefix", prefix])
        assert again.exit_code == 2
        assert "already exists" in again.output
    finally:
        down = runner.invoke(app, ["down", "--prefix", prefix])
        teardown(prefix)
    assert down.exit_code == 0
    assert list_netns(prefix) == ()
    assert not ssh_inventory.exists()
    assert "not up" in runner.invoke(app, ["status", "--prefix", prefix]).output
