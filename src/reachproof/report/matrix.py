"""The zone-to-zone reachability matrix: for each source zone × target zone, what the probes
saw (ports open, closed, blocked, undecided) and which rules failed on that pair.

Hosts map to zones through the inventory (`host.zone`); a host without one (session
containers) takes the zone the policy puts its role in (`zone compute = agent, container`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table
from rich.text import Text

from reachproof.inventory.model import Inventory
from reachproof.policy.ast import Policy
from reachproof.report.model import Report
from reachproof.report.terminal import MARKS
from reachproof.report.text import RANK, compact_count, effective, port_count
from reachproof.verdict import NO_TLS, Verdict

UNZONED = "(no zone)"
_BLOCKED = frozenset({"filtered", "prohibited", "unreachable"})


@dataclass(frozen=True)
class ZoneMap:
    """Host name → zone, and the order zones are shown in (the policy's)."""

    zones: tuple[str, ...]
    host_zone: Mapping[str, str]

    def zone_of(self, host: str) -> str:
        return self.host_zone.get(host, UNZONED)


def report_zones(report: Report) -> ZoneMap | None:
    """The zone map a report carries (None for a report built without one)."""
    if not report.host_zones:
        return None
    return ZoneMap(report.zone_order, dict(report.host_zones))


def host_zones(inventory: Inventory, policy: Policy) -> ZoneMap:
    role_zone: dict[str, str] = {}
    for zone in policy.zones:
        for role in zone.roles:
            role_zone.setdefault(role.text, zone.name.text)
    mapping = {h.name: h.zone or role_zone.get(h.role, UNZONED) for h in inventory.hosts}
    order = [z.name.text for z in policy.zones]
    order += sorted(set(mapping.values()) - set(order))
    return ZoneMap(tuple(order), mapping)


@dataclass(frozen=True)
class ZoneCell:
    source: str
    target: str
    open: int  # ports (app fetches count one) that answered
    closed: int  # ports that reset: reached the host, nothing listens
    blocked: int  # filtered, prohibited or unreachable
    undecided: int  # errors, UDP silence, nothing observed
    checks: int  # in-container checks (source = target)
    verdict: Verdict  # the worst verdict of any evidence on this pair, as its rule reports it
    rules: tuple[str, ...]  # rules that probed this pair
    failed: tuple[str, ...]  # rules with a FAIL (or advisory WARN) on this pair


@dataclass(frozen=True)
class ZoneMatrix:
    zones: tuple[str, ...]
    cells: tuple[ZoneCell, ...]

    def cell(self, source: str, target: str) -> ZoneCell | None:
        return next((c for c in self.cells if (c.source, c.target) == (source, target)), None)


@dataclass
class _Tally:
    open: int = 0
    closed: int = 0
    blocked: int = 0
    undecided: int = 0
    checks: int = 0
    verdict: Verdict = Verdict.PASS
    rules: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    failed: dict[str, None] = field(default_factory=dict)


def zone_matrix(report: Report, zones: ZoneMap) -> ZoneMatrix:
    tallies: dict[tuple[str, str], _Tally] = {}
    for rule in report.rules:
        for hop in rule.hops:
            for item in hop.evidence:
                pair = (zones.zone_of(item.source), zones.zone_of(item.target))
                tally = tallies.setdefault(pair, _Tally())
                tally.rules[rule.rule_id] = None
                verdict = effective(rule, item.verdict)
                if RANK[verdict] > RANK[tally.verdict]:
                    tally.verdict = verdict
                if verdict in (Verdict.FAIL, Verdict.WARN):
                    tally.failed[rule.rule_id] = None
                _count(tally, item.kind, item.state, item.ports)
    order = list(zones.zones) + sorted({z for p in tallies for z in p} - set(zones.zones))
    cells = tuple(_cell(s, t, tallies[(s, t)]) for s in order for t in order if (s, t) in tallies)
    used = {z for c in cells for z in (c.source, c.target)}
    return ZoneMatrix(tuple(z for z in order if z in used), cells)


def _cell(source: str, target: str, tally: _Tally) -> ZoneCell:
    return ZoneCell(
        source=source,
        target=target,
        open=tally.open,
        closed=tally.closed,
        blocked=tally.blocked,
        undecided=tally.undecided,
        checks=tally.checks,
        verdict=tally.verdict,
        rules=tuple(tally.rules),
        failed=tuple(tally.failed),
    )


def _count(tally: _Tally, kind: str, state: str, ports: str) -> None:
    if kind == "check":
        tally.checks += 1
        return
    n = port_count(ports)
    # http/websocket evidence shows the status, tls the negotiated version: the port answered.
    answered = kind == "tls" and (state.startswith("TLS") or state == NO_TLS)
    if state == "open" or state.startswith("status ") or answered:
        tally.open += n
    elif state == "closed":
        tally.closed += n
    elif state in _BLOCKED:
        tally.blocked += n
    else:
        tally.undecided += n


def cell_lines(cell: ZoneCell) -> list[str]:
    """The facts of one cell, one short line each: `2 open`, `393k blocked`, `✗ R3`."""
    lines = [
        f"{compact_count(n)} {what}"
        for n, what in (
            (cell.open, "open"),
            (cell.closed, "closed"),
            (cell.blocked, "blocked"),
            (cell.undecided, "undecided"),
            (cell.checks, "checks" if cell.checks != 1 else "check"),
        )
        if n
    ]
    if cell.failed:
        lines.append("✗ " + " ".join(cell.failed))
    return lines


def render_matrix_terminal(matrix: ZoneMatrix, console: Console) -> None:
    table = Table(title="Zone reachability (rows: from, columns: to)", show_lines=True)
    table.add_column("from \\ to", style="bold")
    for zone in matrix.zones:
        table.add_column(zone, no_wrap=True)
    for source in matrix.zones:
        row: list[Text | str] = [source]
        for target in matrix.zones:
            cell = matrix.cell(source, target)
            if cell is None:
                row.append(Text("—", style="dim"))
                continue
            mark, style = MARKS[cell.verdict]
            row.append(Text("\n".join([f"{mark} {cell.verdict}", *cell_lines(cell)]), style=style))
        table.add_row(*row)
    console.print(table)
