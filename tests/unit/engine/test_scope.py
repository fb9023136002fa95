"""The scope guard refuses undeclared targets before anything is spawned or sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from enginekit import check_spec, local_inventory, tcp_spec

from reachproof.engine import OutOfScopeError, run_specs
from reachproof.errors import InputError
from reachproof.inventory.model import Transport, Vantage


def test_undeclared_address_is_refused_before_spawning(tmp_path: Path) -> None:
    marker = tmp_path / "spawned"
    vantage = Vantage("here", Transport.EXEC, command=("touch", str(marker)))
    spec = tcp_spec("22", address="127.0.0.2", spec_id="R9/0/0/x")
    with pytest.raises(OutOfScopeError) as err:
        run_specs([tcp_spec("22"), spec], local_inventory(vantage))
    assert isinstance(err.value, InputError)
    assert "R9/0/0/x" in str(err.value) and "127.0.0.2" in str(err.value)
    assert not marker.exists()


def test_checks_need_no_address_but_probes_do() -> None:
    from reachproof.engine import check_scope

    check_scope([check_spec()], local_inventory())
    with pytest.raises(OutOfScopeError, match="not an IP address"):
        check_scope([tcp_spec("22", address="localhost")], local_inventory())
