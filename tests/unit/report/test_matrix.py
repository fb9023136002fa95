"""The zone × zone reachability matrix."""

from __future__ import annotations

import os

from formats import BACKEND_AI, check_golden, matrix, prepared
from rich.console import Console

from reachproof.report.matrix import host_zones, render_matrix_terminal
from reachproof.verdict import Verdict


def test_containers_take_their_roles_zone() -> None:
    case = prepared(BACKEND_AI)
    zones = host_zones(case.inventory, case.policy)
    assert zones.zones == ("internet", "management", "compute")
    assert zones.zone_of("user") == "internet"
    assert zones.zone_of("db") == "management"
    assert zones.zone_of("s2/sub3") == "compute"
    assert zones.zone_of("nowhere") == "(no zone)"


def test_the_leak_shows_on_its_zone_pair() -> None:
    faulty = matrix(BACKEND_AI, "faulty")
    leak = faulty.cell("internet", "compute")
    assert leak is not None
    assert leak.verdict is Verdict.FAIL
    assert leak.failed == ("R3",)
    assert leak.open == 2  # 6001 over IPv4 and IPv6
    assert leak.blocked > 2_000_000
    undecided = faulty.cell("compute", "management")
    assert undecided is not None and undecided.verdict is Verdict.INCONCLUSIVE
    assert undecided.undecided > 0 and undecided.failed == ()
    assert faulty.cell("internet", "internet") is None


def test_the_clean_network_passes_everywhere() -> None:
    clean = matrix(BACKEND_AI, "clean")
    assert {c.verdict for c in clean.cells} == {Verdict.PASS}
    mgmt = clean.cell("management", "compute")
    assert mgmt is not None and mgmt.closed == 140 and mgmt.open == 6


def test_matrix_terminal_golden() -> None:
    with open(os.devnull, "w") as sink:
        console = Console(record=True, width=100, color_system=None, file=sink)
        render_matrix_terminal(matrix(BACKEND_AI, "faulty"), console)
        check_golden("faulty.matrix.txt", console.export_text())
